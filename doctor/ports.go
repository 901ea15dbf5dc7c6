package doctor

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PortOwner says who holds one local port.
type PortOwner struct {
	Proto   string `json:"proto"` // udp | tcp
	Port    int    `json:"port"`
	Free    bool   `json:"free"`
	PIDs    []int  `json:"pids,omitempty"`
	Process string `json:"process,omitempty"` // comm of the first owner; "" if unknown
	Self    bool   `json:"self"`              // owned by snomprov
}

func (p PortOwner) String() string {
	switch {
	case p.Free:
		return fmt.Sprintf("%d/%s is free", p.Port, p.Proto)
	case p.Process == "":
		return fmt.Sprintf("%d/%s is in use by a process this user cannot see (run doctor as root to name it)", p.Port, p.Proto)
	}
	return fmt.Sprintf("%d/%s is used by %s (pid %s)", p.Port, p.Proto, p.Process, joinInts(p.PIDs))
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// procSocket is one line of /proc/net/{tcp,udp}[6].
type procSocket struct {
	Port  int
	State int // 0x0A = TCP LISTEN; 0x07 = UDP bound (unconnected)
	Inode uint64
}

// parseProcNet reads the kernel's socket table: a header line, then
// "sl local_address rem_address st ... uid timeout inode ...", addresses
// as hex IP:hex port.
func parseProcNet(r io.Reader) ([]procSocket, error) {
	var out []procSocket
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		if i < 0 {
			continue
		}
		if _, err := hex.DecodeString(f[1][:i]); err != nil {
			continue
		}
		port, err := strconv.ParseUint(f[1][i+1:], 16, 16)
		if err != nil {
			continue
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			continue
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, procSocket{Port: int(port), State: int(st), Inode: inode})
	}
	return out, sc.Err()
}

const tcpListen = 0x0A

// procRoot is where /proc is; tests point it elsewhere.
var procRoot = "/proc"

// portOwners finds who holds each port in this network namespace.
// thread-self: the calling thread's namespace, which is what matters when
// doctor runs inside `ip netns exec`.
func portOwners(udpPorts, tcpPorts []int) ([]PortOwner, error) {
	inodes := map[uint64]int{} // inode → index in out
	var out []PortOwner
	collect := func(proto string, ports []int, files ...string) error {
		var socks []procSocket
		for _, f := range files {
			fh, err := os.Open(filepath.Join(procRoot, "thread-self", "net", f))
			if err != nil {
				if os.IsNotExist(err) && strings.HasSuffix(f, "6") {
					continue // IPv6 disabled
				}
				return fmt.Errorf("read the socket table: %w", err)
			}
			s, err := parseProcNet(fh)
			fh.Close()
			if err != nil {
				return fmt.Errorf("read %s: %w", f, err)
			}
			socks = append(socks, s...)
		}
		for _, p := range ports {
			o := PortOwner{Proto: proto, Port: p, Free: true}
			idx := len(out)
			for _, s := range socks {
				if s.Port != p || (proto == "tcp" && s.State != tcpListen) {
					continue
				}
				o.Free = false
				inodes[s.Inode] = idx
			}
			out = append(out, o)
		}
		return nil
	}
	if err := collect("udp", udpPorts, "udp", "udp6"); err != nil {
		return nil, err
	}
	if err := collect("tcp", tcpPorts, "tcp", "tcp6"); err != nil {
		return nil, err
	}
	if len(inodes) > 0 {
		mapInodesToPIDs(inodes, out)
	}
	return out, nil
}

// mapInodesToPIDs walks /proc/<pid>/fd looking for socket:[inode] links.
func mapInodesToPIDs(inodes map[uint64]int, out []PortOwner) {
	procs, _ := os.ReadDir(procRoot)
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(procRoot, p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err != nil {
				continue
			}
			idx, ok := inodes[inode]
			if !ok || containsInt(out[idx].PIDs, pid) {
				continue
			}
			out[idx].PIDs = append(out[idx].PIDs, pid)
			if out[idx].Process == "" {
				comm, _ := os.ReadFile(filepath.Join(procRoot, p.Name(), "comm"))
				out[idx].Process = strings.TrimSpace(string(comm))
				out[idx].Self = out[idx].Process == "snomprov"
			}
		}
	}
}

func containsInt(v []int, n int) bool {
	for _, x := range v {
		if x == n {
			return true
		}
	}
	return false
}
