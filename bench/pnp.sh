#!/usr/bin/env bash
# bench/pnp.sh - SIP multicast PnP throughput: `snomprov serve` (answer = "all")
# against the minimal Python responder test/peers/pnp_responder_stub.py (a copy of
# ../shared/lan/pnp_responder_stub.py), in
# the same run, with sipp (test/sipp/pnp_subscribe.xml) as the phones.
#
# usage: sudo bench/pnp.sh                    (defaults below)
#        RATES="1000 5000 8000" SECS=5 BURST=1000 RUNS=1 bench/pnp.sh
#
# For each responder and each rate: sipp sends RATE*SECS SUBSCRIBEs at RATE/s
# from one phone namespace (no sipp retransmissions: a lost message is a
# failed call), and we record completed SUBSCRIBE->200->NOTIFY->200
# exchanges/s, failures, the responder's RSS and the load average. Then BURST
# distinct phones (MACs) "boot at once" (sipp fires them all within a few ms,
# with its normal 500 ms SUBSCRIBE retransmission) and we time until every one
# has its NOTIFY answered. Then the flood (FLOOD=0 skips it): FLOOD distinct
# SUBSCRIBEs at FLOOD_RATE/s from a socket that never answers a NOTIFY, the
# responder's peak RSS (VmHWM), and whether a real phone (one sipp call)
# sending right after the flood is answered.
#
# Network safety: everything runs in namespaces this script creates (prefix
# pnpb<pid>-): a bridge namespace and two hosts whose veth pairs are created
# inside the namespaces, 10.79.0.0/24 used only there, no uplink. Nothing is
# created in the host namespace; the trap removes every namespace on any exit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RATES="${RATES:-1000 2000 5000 8000 10000}"
SECS="${SECS:-5}"
BURST="${BURST:-1000}"
RUNS="${RUNS:-1}"
FLOOD="${FLOOD:-40000}"
FLOOD_RATE="${FLOOD_RATE:-5000}"
STUB="${STUB:-$ROOT/test/peers/pnp_responder_stub.py}"
SCEN="$ROOT/test/sipp/pnp_subscribe.xml"
P="pnpb$$-"
SW="${P}sw" SRV="${P}srv" CLI="${P}cli"
SRV_IP=10.79.0.1 CLI_IP=10.79.0.11
WORK="$(mktemp -d /tmp/pnp-bench.XXXXXX)"
RESP_PID=""

[ "$(id -u)" = 0 ] || { echo "bench/pnp.sh: needs root for network namespaces" >&2; exit 1; }
for tool in sipp python3 ip; do
  command -v "$tool" >/dev/null || { echo "bench/pnp.sh: $tool is missing (apt-get install sip-tester python3 iproute2)" >&2; exit 1; }
done

cleanup() {
  set +e
  stop_responder
  for ns in "$CLI" "$SRV" "$SW"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
stop_responder() {
  if [ -n "$RESP_PID" ]; then
    kill -TERM "$RESP_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$RESP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$RESP_PID" 2>/dev/null || true
    wait "$RESP_PID" 2>/dev/null || true
    RESP_PID=""
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the simulated LAN -------------------------------------------------------
ip netns add "$SW"
ip -n "$SW" link set lo up
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
ip -n "$SW" link set br0 up
add_host() { # ns bridge-port addr mac
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$SW" link add "$2" type veth peer name eth0 netns "$1"
  ip -n "$1" link set eth0 address "$4"
  ip -n "$SW" link set "$2" master br0 up
  ip -n "$1" link set eth0 up
  ip -n "$1" addr add "$3" dev eth0
  ip -n "$1" route replace 224.0.0.0/4 dev eth0
}
add_host "$SRV" psrv "$SRV_IP/24" 02:79:ff:00:00:01
add_host "$CLI" pcli "$CLI_IP/24" 00:04:13:79:00:01
for _ in $(seq 50); do ip netns exec "$CLI" ping -c1 -W1 -q "$SRV_IP" >/dev/null 2>&1 && break; sleep 0.2; done

# --- inputs --------------------------------------------------------------------
# 4000 MACs for the rate runs (cycled; below the inventory's 5000-phone cap),
# and BURST fresh ones for the boot storm.
python3 - "$WORK" "$BURST" <<'PY'
import sys
work, burst = sys.argv[1], int(sys.argv[2])
with open(f"{work}/macs.csv", "w") as f:
    f.write("SEQUENTIAL\n" + "".join(f"000413A{i:05X}\n" for i in range(4000)))
with open(f"{work}/burst.csv", "w") as f:
    f.write("SEQUENTIAL\n" + "".join(f"000413B{i:05X}\n" for i in range(burst)))
with open(f"{work}/after.csv", "w") as f:
    f.write("SEQUENTIAL\n000413C00001\n")
PY
# The flooder: distinct SUBSCRIBEs (MAC 000413Dxxxxx) paced at RATE/s from
# port 5070, which it never reads, so no NOTIFY is ever answered.
cat >"$WORK/flood.py" <<'PY'
import socket, sys, time
ip, n, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((ip, 5070))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
tmpl = ("SUBSCRIBE sip:MAC%3a{mac}@224.0.1.75 SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5070;rport;branch=z9hG4bKf{i}\r\n"
        "From: <sip:MAC%3a{mac}@224.0.1.75>;tag=f{i}\r\nTo: <sip:MAC%3a{mac}@224.0.1.75>\r\nCall-ID: flood-{i}@{ip}\r\n"
        "CSeq: 1 SUBSCRIBE\r\nContact: <sip:{ip}:5070>\r\n"
        'Event: ua-profile;profile-type="device";vendor="snom";model="snomD785";version="10.1.33.33"\r\n'
        "Expires: 0\r\nContent-Length: 0\r\n\r\n")
t0, batch, sent = time.time(), max(1, rate // 100), 0
while sent < n:
    for _ in range(min(batch, n - sent)):
        s.sendto(tmpl.format(mac=f"000413D{sent:05X}", ip=ip, i=sent).encode(), ("224.0.1.75", 5060))
        sent += 1
    ahead = t0 + sent / rate - time.time()
    if ahead > 0:
        time.sleep(ahead)
print(f"{sent} {time.time() - t0:.2f}")
PY
BIN="${BIN:-}"
if [ -z "$BIN" ]; then
  BIN="$WORK/snomprov"
  (cd "$ROOT" && CGO_ENABLED=0 go build -o "$BIN" ./cmd/snomprov)
fi
mkdir -p "$WORK/state" "$WORK/fw"
cat >"$WORK/snomprov.toml" <<EOF
[server]
interface = "eth0"
advertise = "$SRV_IP"
state_dir = "$WORK/state"
[http]
listen = ":8080"
https_listen = ""
firmware_dir = "$WORK/fw"
[pnp]
answer = "all"
EOF

start_responder() { # snomprov | stub
  if [ "$1" = snomprov ]; then
    ip netns exec "$SRV" "$BIN" serve -config "$WORK/snomprov.toml" 2>"$WORK/serve.log" &
    RESP_PID=$!
    for _ in $(seq 100); do grep -qs 'msg=ready' "$WORK/serve.log" && return 0; sleep 0.1; done
    echo "snomprov did not become ready:" >&2; cat "$WORK/serve.log" >&2; exit 1
  else
    ip netns exec "$SRV" python3 -u "$STUB" --iface-ip "$SRV_IP" --quiet \
      --url "http://$SRV_IP:8080/snom.htm?mac={mac}" >"$WORK/stub.log" 2>&1 &
    RESP_PID=$!
    for _ in $(seq 100); do grep -q ':13C4 ' <(ip netns exec "$SRV" cat /proc/net/udp) && return 0; sleep 0.1; done
    echo "stub did not bind 5060" >&2; exit 1
  fi
}
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$RESP_PID/status" 2>/dev/null || echo "?"; }
# UDP receive-buffer drops in a namespace, and the kernel's backlog drops.
rcvbuf_errors() { ip netns exec "$1" awk '/^Udp:/{if(h){print $6}else{h=1}}' /proc/net/snmp; }
softnet_drops() { python3 -c 'import sys; print(sum(int(l.split()[1], 16) for l in open("/proc/net/softnet_stat")))'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$RESP_PID/stat" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$RESP_PID/status" 2>/dev/null || echo "?"; }

# sipp_run NAME RATE CALLS INF EXTRA... -> prints "ok fail retrans elapsed_s"
sipp_run() {
  local name=$1 rate=$2 calls=$3 inf=$4; shift 4
  local stf="$WORK/$name.stat.csv" rc=0 t0 t1
  rm -f "$stf"
  t0=$(date +%s.%N)
  ip netns exec "$CLI" sipp -sf "$SCEN" -inf "$inf" -t u1 -i "$CLI_IP" -p 5060 -nostdin \
    -r "$rate" -m "$calls" -l 20000 -timeout 120 -timeout_error -recv_timeout 5000 \
    -buff_size 4194304 -trace_stat -stf "$stf" -fd 600 -trace_err -error_file "$WORK/$name.errors.log" "$@" 224.0.1.75:5060 >/dev/null 2>"$WORK/$name.err" || rc=$?
  t1=$(date +%s.%N)
  python3 - "$stf" "$t0" "$t1" "$rc" <<'PY'
import csv, sys
f, t0, t1, rc = sys.argv[1:]
try:
    rows = list(csv.reader(open(f), delimiter=';'))
    hdr, last = rows[0], rows[-1]
    g = lambda k: int(last[hdr.index(k)])
    ok, fail, retr = g('SuccessfulCall(C)'), g('FailedCall(C)'), g('Retransmissions(C)')
except Exception:  # sipp died before writing statistics
    ok, fail, retr = 0, -1, 0
print(ok, fail, retr, f"{float(t1)-float(t0):.2f}", rc)
PY
}

echo "# bench/pnp.sh $(date -u +%FT%TZ) on $(nproc) CPUs, $(uname -r); sipp $(sipp -v 2>&1 | grep -o 'v[0-9.]*' | head -1)"
echo
echo "| responder | target/s | calls | ok | failed | elapsed s | completed/s | responder CPU µs/exchange | RSS KiB | drops: phone rcvbuf / server rcvbuf / kernel backlog | load (1/5/15) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
declare -A BURST_RESULT PEAK
peak() { local h; h=$(hwm_kb); [ "${PEAK[$1]:-0}" -ge "$h" ] 2>/dev/null || PEAK[$1]=$h; }
# The boot storm first, each on a fresh responder: BURST distinct phones at
# once; sipp's own 500 ms retransmission stands in for the phones'.
for resp in snomprov stub; do
  start_responder "$resp"
  read -r ok fail retr el _rc < <(sipp_run "${resp}_burst" "$BURST" "$BURST" "$WORK/burst.csv" -rp 1)
  BURST_RESULT[$resp]="$ok ok, $fail failed, $retr SUBSCRIBE retransmissions, all done in ${el} s, RSS after $(rss_kb) KiB (load $(cut -d' ' -f1-3 /proc/loadavg))"
  peak "$resp"
  stop_responder
done
# The flood, each on a fresh responder.
declare -A FLOOD_RESULT
if [ "$FLOOD" -gt 0 ]; then
  for resp in snomprov stub; do
    start_responder "$resp"
    d0s=$(rcvbuf_errors "$SRV")
    read -r fsent fsecs < <(ip netns exec "$CLI" python3 "$WORK/flood.py" "$CLI_IP" "$FLOOD" "$FLOOD_RATE")
    d1s=$(rcvbuf_errors "$SRV")
    hwm_flood=$(hwm_kb)
    read -r ok fail _retr el _rc < <(sipp_run "${resp}_after_flood" 1 1 "$WORK/after.csv")
    shed=""
    if [ "$resp" = snomprov ]; then
      shed=", $(ip netns exec "$SRV" curl -s "http://$SRV_IP:8080/metrics" | awk '/^snomprov_pnp_notify_shed_total/{print $2}') NOTIFYs shed"
    fi
    FLOOD_RESULT[$resp]="$fsent SUBSCRIBEs in ${fsecs} s ($((d1s-d0s)) server rcvbuf drops$shed), peak RSS ${hwm_flood} KiB after the flood, $(hwm_kb) KiB after the real phone; real phone right after: $ok ok, $fail failed in ${el} s (load $(cut -d' ' -f1-3 /proc/loadavg))"
    peak "$resp"
    stop_responder
  done
fi
# Then the rates, the two responders alternating so that both see the same
# machine load (other work on a shared machine comes and goes).
for run in $(seq "$RUNS"); do
  for rate in $RATES; do
    for resp in snomprov stub; do
      start_responder "$resp"
      calls=$((rate * SECS))
      c0=$(cpu_ticks) d0c=$(rcvbuf_errors "$CLI") d0s=$(rcvbuf_errors "$SRV") d0k=$(softnet_drops)
      read -r ok fail _retr el _rc < <(sipp_run "${resp}_r${rate}_run${run}" "$rate" "$calls" "$WORK/macs.csv" -nr)
      c1=$(cpu_ticks) d1c=$(rcvbuf_errors "$CLI") d1s=$(rcvbuf_errors "$SRV") d1k=$(softnet_drops)
      cps=$(python3 -c "print(round($ok/$el))")
      us=$(python3 -c "print(round(($c1-$c0)*1e6/$(getconf CLK_TCK)/max($ok,1)))")
      echo "| $resp | $rate | $calls | $ok | $fail | $el | $cps | $us | $(rss_kb) | $((d1c-d0c)) / $((d1s-d0s)) / $((d1k-d0k)) | $(cut -d' ' -f1-3 /proc/loadavg) |"
      peak "$resp"
      stop_responder
      sleep 1
    done
  done
done
echo
for resp in snomprov stub; do
  echo "- $BURST phones booting at once, $resp: ${BURST_RESULT[$resp]}; peak RSS ${PEAK[$resp]} KiB"
done
if [ "$FLOOD" -gt 0 ]; then
  for resp in snomprov stub; do
    echo "- flood of $FLOOD unanswered SUBSCRIBEs at $FLOOD_RATE/s, $resp: ${FLOOD_RESULT[$resp]}"
  done
fi
