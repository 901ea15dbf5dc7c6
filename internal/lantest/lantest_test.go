package lantest

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestLANUnicastAndMulticast(t *testing.T) {
	var ns string
	t.Cleanup(func() {
		// registered before New, so it runs after the LAN's cleanup (LIFO)
		out, _ := exec.Command("ip", "netns", "list").Output()
		if ns == "" || strings.Contains(string(out), ns) {
			t.Errorf("namespace %q left behind", ns)
		}
	})
	l := New(t, "10.99.0.0/24")
	srv := l.AddHost("srv", HostOptions{Addr: "10.99.0.1/24"})
	cli := l.AddHost("cli", HostOptions{Addr: "10.99.0.11/24", MAC: "00:04:13:99:00:01"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := cli.Run(ctx, "ping", "-c1", "-W2", srv.IP.String()); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	// A multicast datagram from cli reaches a listener that joined in srv.
	var conn *net.UDPConn
	if err := srv.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		conn, err = net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.IPv4(224, 0, 1, 75), Port: 5099})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := cli.Do(func() error {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(224, 0, 1, 75), Port: 5099})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 100)
	n, from, err := conn.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "hello" || !from.IP.Equal(cli.IP.AsSlice()) {
		t.Fatalf("multicast: %q from %v: %v", buf[:n], from, err)
	}
	ns = srv.NS
}
