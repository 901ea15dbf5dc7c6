#!/usr/bin/env bash
# bench/dhcp.sh - DHCPv4 DORA benchmark: perfdhcp (Debian kea-admin) in a client
# namespace against snomprov's dhcp server, dnsmasq and kea-dhcp4 (memfile), in
# the same run, with the same subnets, pools and options, one after another.
#
# usage: sudo bench/dhcp.sh [REPEAT]          (default 2 runs per cell)
#   env: STORM_RATE (12000) STORM_CLIENTS (50000) RENEW_RATE (12000) PERIOD (10)
#        SERVERS ("snomprov dnsmasq kea") WORKLOADS ("storm renew rss")
#        SHOW_SERVER_LOG=1 prints the last server's log on exit; KEEP_LOGS=1 keeps
#        perfdhcp's and the server's logs in bench/results/
#        TASKSET=0 pins the server to CPU 0 (the one-CPU budget of a small Pi)
#        CLIENT_CPU=1 pins perfdhcp to CPU 1, so that with TASKSET=0 the load
#        generator never waits for the server's CPU (taskset column: 0+cli1)
#        EXIT_WAIT_US=N passes perfdhcp -W N: it keeps receiving for N µs after
#        its period, so replies still in flight then are not counted as drops
#        CLIENT_RMEM=BYTES gives perfdhcp's socket a receive buffer of BYTES
#        (perfdhcp has no option for it and net.core.rmem_default cannot be
#        set inside a namespace, so the host's value is raised for the 0.3 s
#        in which perfdhcp opens its socket, then put back; the servers'
#        sockets are open by then and keep the default). A diagnostic: it
#        shows how much of a loss is bursts the load generator's one socket
#        cannot absorb, where real phones each have their own
#        CLIENT_THREADS=multi runs perfdhcp -g multi (a thread of its own
#        receives; perfdhcp's own default on a machine with more than one CPU)
#        instead of -g single, another diagnostic of the load generator's side
#        PROFILE=DIR builds snomprov with -tags pprof and saves, per snomprov run,
#        a CPU profile of the perfdhcp window and the allocations made in it
#        (DIR/cpu-WL-RUN.pprof, DIR/allocs-WL-RUN.pprof: go tool pprof -diff_base)
#        BASE_REV=REV adds the server "snomprov-base": snomprov built from git
#        revision REV of this repository (git archive), for before/after
#        figures in the same run, e.g. SERVERS="snomprov-base snomprov kea"
#        SNOMPROV_PROBE=1 runs snomprov with its ICMP conflict probe on
#        ([dhcp] conflict_probe; here off by default, like dnsmasq's no-ping and
#        Kea's default, so all three do the same work)
#
# Workloads
#   storm : fresh-lease storm, STORM_CLIENTS simulated clients on the relayed
#           10.78.0.0/16 pool 10.78.1.0-10.78.255.254: nearly every exchange allocates
#   renew : 100 clients on 10.77.0.0/24 pool .100-.200: the same clients come back
#   rss   : 10,000 clients at RSS_RATE (1500/s) for RSS_PERIOD (15 s), then the
#           server's RSS and how many leases it holds
# perfdhcp always acts as a relay (giaddr set, unicast to port 67).
#
# snomprov is the real binary, `snomprov serve -config` with DHCP on (PnP off,
# HTTP on an unused port). Its pool must lie in its interface's subnet, so for
# the 10.78/16 pool the server namespace's first address is 10.78.0.1/16 during
# snomprov's runs (10.77.0.1/24 stays as its second address); the peers run
# with the harness's addresses (10.77.0.1/24 and a route to 10.78/16).
#
# Network safety: everything runs in namespaces this script creates (prefix
# sdb<pid>-): veth pairs are created directly inside them, never in the host
# namespace; the namespaces have no uplink; 10.77/16 and 10.78/16 exist only
# inside them. A trap deletes every namespace on any exit.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench/dhcp.sh: run as root (it creates network namespaces)" >&2; exit 1; }
for t in ip perfdhcp dnsmasq kea-dhcp4 go; do
  command -v "$t" >/dev/null || { echo "bench/dhcp.sh: $t not installed" >&2; exit 1; }
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
REPEAT="${1:-2}"
STORM_RATE="${STORM_RATE:-12000}"; STORM_CLIENTS="${STORM_CLIENTS:-50000}"
RENEW_RATE="${RENEW_RATE:-12000}"; PERIOD="${PERIOD:-10}"
SERVERS="${SERVERS:-snomprov dnsmasq kea}"; WORKLOADS="${WORKLOADS:-storm renew rss}"
P="sdb$$-"; SW="${P}sw"; SRV="${P}srv"; CLI="${P}cli"
WORK="$(mktemp -d /tmp/snomprov-dhcp-bench.XXXXXX)"
OUT="${OUT:-$ROOT/bench/results/dhcp-raw-$(date -u +%Y%m%dT%H%M%S).csv}"
SERVER_PID=""

cleanup() {
  set +e
  [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null
  for ns in "$CLI" "$SRV" "$SW"; do
    if [ -e "/run/netns/$ns" ]; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    fi
  done
  [ -n "${RMEM_SAVED:-}" ] && echo "$RMEM_SAVED" >/proc/sys/net/core/rmem_default
  [ -n "${SHOW_SERVER_LOG:-}" ] && cat "$WORK/server.log" >&2
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

nsx() { ip netns exec "$@"; }

# --- the LAN: sw (bridge), srv 10.77.0.1/24, cli 10.77.0.11/24 + 10.78.0.2/16
ip netns add "$SW"; ip netns add "$SRV"; ip netns add "$CLI"
ip -n "$SW" link set lo up
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
ip -n "$SW" link set br0 up
for ns in "$SRV" "$CLI"; do
  port="p-${ns#"$P"}"
  ip -n "$ns" link set lo up
  nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  ip -n "$SW" link add "$port" type veth peer name eth0 netns "$ns"
  ip -n "$SW" link set "$port" master br0 up
  ip -n "$ns" link set eth0 up
done
ip -n "$SRV" addr add 10.77.0.1/24 dev eth0
ip -n "$SRV" route add 10.78.0.0/16 dev eth0
ip -n "$CLI" addr add 10.77.0.11/24 dev eth0
ip -n "$CLI" addr add 10.78.0.2/16 dev eth0

# --- server configs
TAGS=(); [ -n "${PROFILE:-}" ] && { TAGS=(-tags pprof); mkdir -p "$PROFILE"; }
(cd "$ROOT" && CGO_ENABLED=0 go build "${TAGS[@]}" -o "$WORK/snomprov" ./cmd/snomprov)
if [ -n "${BASE_REV:-}" ]; then
  mkdir -p "$WORK/base"
  git -C "$ROOT" archive "$BASE_REV" | tar -x -C "$WORK/base"
  (cd "$WORK/base" && CGO_ENABLED=0 go build -o "$WORK/snomprov-base" ./cmd/snomprov)
fi
PPROF=127.0.0.1:18081 # only in a -tags pprof build, inside the server namespace
PROBE='"0s"'; [ "${SNOMPROV_PROBE:-0}" = 1 ] && PROBE='"300ms"'
snomprov_conf() { # $1 pool $2 router $3 name
  cat >"$WORK/snomprov-$3.toml" <<TOML
[server]
interface = "eth0"
state_dir = "$WORK/state"
log_level = "warn"
[http]
listen = "127.0.0.1:18080"
https_listen = ""
[pnp]
enabled = false
[dhcp]
enabled = true
pool = "$1"
router = "$2"
lease_time = "1h"
update_server = "http://10.77.0.1:8080"
update_filename = "snom.htm"
conflict_probe = $PROBE
allow_other_servers = true
TOML
}
snomprov_conf 10.78.1.0-10.78.255.254 10.78.0.1 big
snomprov_conf 10.77.0.100-10.77.0.200 10.77.0.1 lan
# srv_addrs FIRST: the server namespace's addresses, FIRST (big|lan|peers) first.
srv_addrs() {
  ip -n "$SRV" addr flush dev eth0
  case "$1" in
    big)  ip -n "$SRV" addr add 10.78.0.1/16 dev eth0; ip -n "$SRV" addr add 10.77.0.1/24 dev eth0 ;;
    lan)  ip -n "$SRV" addr add 10.77.0.1/24 dev eth0; ip -n "$SRV" addr add 10.78.0.1/16 dev eth0 ;;
    peers) ip -n "$SRV" addr add 10.77.0.1/24 dev eth0; ip -n "$SRV" route replace 10.78.0.0/16 dev eth0 ;;
  esac
}
cat >"$WORK/dnsmasq.conf" <<CONF
port=0
no-resolv
no-hosts
interface=eth0
bind-interfaces
dhcp-authoritative
no-ping
dhcp-lease-max=70000
dhcp-range=10.77.0.100,10.77.0.200,255.255.255.0,1h
dhcp-range=10.78.1.0,10.78.255.254,255.255.0.0,1h
dhcp-option=3,10.77.0.1
dhcp-option-force=66,"http://10.77.0.1:8080"
dhcp-option-force=67,"snom.htm"
log-facility=-
CONF
cat >"$WORK/kea.json" <<JSON
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "eth0" ], "dhcp-socket-type": "raw" },
  "lease-database": { "type": "memfile", "persist": true, "lfc-interval": 0, "name": "$WORK/state/kea-leases4.csv" },
  "multi-threading": { "enable-multi-threading": false },
  "authoritative": true,
  "valid-lifetime": 3600, "renew-timer": 1800, "rebind-timer": 3150,
  "option-data": [
    { "code": 66, "name": "tftp-server-name", "data": "http://10.77.0.1:8080", "always-send": true },
    { "code": 67, "name": "boot-file-name", "data": "snom.htm", "always-send": true } ],
  "subnet4": [
    { "id": 1, "subnet": "10.77.0.0/24", "pools": [ { "pool": "10.77.0.100 - 10.77.0.200" } ],
      "option-data": [ { "name": "routers", "data": "10.77.0.1" } ] },
    { "id": 2, "subnet": "10.78.0.0/16", "pools": [ { "pool": "10.78.1.0 - 10.78.255.254" } ],
      "option-data": [ { "name": "routers", "data": "10.77.0.1" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "WARN", "output_options": [ { "output": "stdout" } ] } ] } }
JSON

start_server() { # $1 server $2 pool (big|lan)
  rm -rf "$WORK/state"; mkdir -p "$WORK/state"
  case "$1" in
    snomprov|snomprov-base) srv_addrs "$2"
              "${PIN[@]}" ip netns exec "$SRV" env SNOMPROV_PPROF="${PROFILE:+$PPROF}" "$WORK/$1" serve -config "$WORK/snomprov-$2.toml" >"$WORK/server.log" 2>&1 & ;;
    dnsmasq)  srv_addrs peers
              "${PIN[@]}" ip netns exec "$SRV" dnsmasq -k -C "$WORK/dnsmasq.conf" --dhcp-leasefile="$WORK/state/dnsmasq.leases" --pid-file="$WORK/state/dnsmasq.pid" >"$WORK/server.log" 2>&1 & ;;
    kea)      srv_addrs peers
              "${PIN[@]}" ip netns exec "$SRV" env KEA_PIDFILE_DIR="$WORK/state" KEA_LOCKFILE_DIR="$WORK/state" kea-dhcp4 -c "$WORK/kea.json" >"$WORK/server.log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 100); do
    if [ -n "$(nsx "$SRV" ss -Hlun 'sport = :67' 2>/dev/null)" ] || nsx "$SRV" ss -Hlpw 2>/dev/null | grep -q "pid=$SERVER_PID"; then break; fi
    sleep 0.1
  done
  sleep 0.5
}
stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
# PIN: the server's CPU affinity (TASKSET=0 runs it on CPU 0 only; Go's
# GOMAXPROCS follows the affinity).
PIN=(); [ -n "${TASKSET:-}" ] && PIN=(taskset -c "$TASKSET")
CPIN=(); [ -n "${CLIENT_CPU:-}" ] && CPIN=(taskset -c "$CLIENT_CPU")
XWAIT=(); [ -n "${EXIT_WAIT_US:-}" ] && XWAIT=(-W "$EXIT_WAIT_US")
CLIENT_THREADS="${CLIENT_THREADS:-single}"
case "$CLIENT_THREADS" in single | multi) ;; *) echo "bench/dhcp.sh: CLIENT_THREADS is single or multi" >&2; exit 2 ;; esac
# cpu_ms: CPU time (user+system) the server used so far, in ms.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14+$15)*1000/hz)}' "/proc/$SERVER_PID/stat" 2>/dev/null || echo 0; }
# cpu_stat: total and steal jiffies of the machine (/proc/stat), for the steal share of a run.
cpu_stat() { awk '/^cpu / {t=0; for (i=2;i<=NF;i++) t+=$i; print t, $9}' /proc/stat; }
# udp_err NS: the namespace's UDP receive-buffer overflows and send-buffer
# errors so far (/proc/net/snmp Udp RcvbufErrors SndbufErrors); each run
# records the difference, split into the server's socket and perfdhcp's.
udp_err() { ip netns exec "$1" awk '/^Udp:/ && ++n==2 {print $6, $7}' /proc/net/snmp; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0; }

# p99 latency in ms of one exchange type (DISCOVER-OFFER or REQUEST-ACK) from
# the per-packet "sent / received: T1 / T2" timestamps perfdhcp -x t prints.
p99_ms() { # $1 log $2 section
  awk -v sec="$2" '/^\*\*\*Timestamps for packets:/ {on=index($0, sec)>0; next}
       /^\*\*\*/ {on=0} on && /^sent \/ received:/ {print ($6-$4)*1000}' "$1" | sort -n |
    awk '{v[NR]=$1} END { if (NR==0) {print ""; exit} i=int(NR*0.99); if (i<1) i=1; printf "%.2f", v[i] }'
}

echo "server,workload,run,target_rate,clients,achieved_dora_s,DO_sent,DO_drops,RA_sent,RA_drops,drop_pct,avg_DO_ms,avg_RA_ms,p99_DO_ms,p99_RA_ms,rss_kb,leases,load1,cpu_ms,steal_pct,taskset,srv_rcvbuf_err,srv_sndbuf_err,cli_rcvbuf_err,srv_send_fail" | tee "$OUT"
for wl in $WORKLOADS; do
  case "$wl" in
    storm) pool=big; rate=$STORM_RATE; clients=$STORM_CLIENTS; per=$PERIOD; target=(-l 10.78.0.2 10.77.0.1) ;;
    renew) pool=lan; rate=$RENEW_RATE; clients=100; per=$PERIOD; target=(-l 10.77.0.11 10.77.0.1) ;;
    rss)   pool=big; rate=${RSS_RATE:-1500}; clients=10000; per=${RSS_PERIOD:-15}; target=(-l 10.78.0.2 10.77.0.1) ;;
  esac
  runs=$REPEAT; [ "$wl" = rss ] && runs=1
  for run in $(seq 1 "$runs"); do  # servers interleaved run by run, so drifting load hits each alike
    for srv in $SERVERS; do
      start_server "$srv" "$pool"
      log="$WORK/perf-$srv-$wl-$run.txt"
      load=$(cut -d' ' -f1 /proc/loadavg)
      cpu0=$(cpu_ms); read -r tot0 st0 < <(cpu_stat)
      read -r srb0 ssb0 < <(udp_err "$SRV"); read -r crb0 _ < <(udp_err "$CLI")
      prof=""
      if [ -n "${PROFILE:-}" ] && [ "$srv" = snomprov ]; then
        nsx "$SRV" curl -s -o "$PROFILE/allocs0-$wl-$run.pprof" "http://$PPROF/debug/pprof/allocs"
        nsx "$SRV" curl -s -o "$PROFILE/cpu-$wl-$run.pprof" "http://$PPROF/debug/pprof/profile?seconds=$per" & prof=$!
      fi
      # Snom MACs: snomprov treats the clients as phones and forces 66/67 into
      # every reply, as dnsmasq's dhcp-option-force and Kea's always-send do.
      [ -n "${CLIENT_RMEM:-}" ] && { RMEM_SAVED=$(cat /proc/sys/net/core/rmem_default); echo "$CLIENT_RMEM" >/proc/sys/net/core/rmem_default; }
      nsx "$CLI" "${CPIN[@]}" perfdhcp -4 -g "$CLIENT_THREADS" -b mac=00:04:13:00:00:00 -r "$rate" -R "$clients" -p "$per" "${XWAIT[@]}" -x t "${target[@]}" >"$log" 2>&1 & pdh=$!
      if [ -n "${CLIENT_RMEM:-}" ]; then
        sleep 0.3; echo "$RMEM_SAVED" >/proc/sys/net/core/rmem_default; RMEM_SAVED=""
        nsx "$CLI" ss -uamn | grep -o 'rb[0-9]*' | sort -u | tr '\n' ' ' >&2; echo >&2
      fi
      wait "$pdh" || true
      [ -n "$prof" ] && wait "$prof"
      if [ -n "$prof" ]; then
        nsx "$SRV" curl -s -o "$PROFILE/allocs-$wl-$run.pprof" "http://$PPROF/debug/pprof/allocs"
      fi
      sleep 0.5
      read -r srb1 ssb1 < <(udp_err "$SRV"); read -r crb1 _ < <(udp_err "$CLI")
      rss=$(rss_kb)
      cpu=$(( $(cpu_ms) - cpu0 )); read -r tot1 st1 < <(cpu_stat)
      steal=$(awk -v a="$((tot1 - tot0))" -v b="$((st1 - st0))" 'BEGIN {printf "%.1f", a ? 100*b/a : 0}')
      case "$srv" in
        snomprov*) leases=$(grep -a '"state":"bound"' "$WORK"/state/dhcp-leases.journal 2>/dev/null | grep -o '"ip":"[0-9.]*"' | sort -u | wc -l) ;;
        dnsmasq)  leases=$(wc -l <"$WORK/state/dnsmasq.leases" 2>/dev/null || echo 0) ;;
        kea)      leases=$(tail -n +2 "$WORK/state/kea-leases4.csv" 2>/dev/null | cut -d, -f1 | sort -u | wc -l) ;;
      esac
      sendfail=$(grep -c 'sending DHCP repl' "$WORK/server.log" || true)
      stop_server
      p99do=$(p99_ms "$log" DISCOVER-OFFER); p99ra=$(p99_ms "$log" REQUEST-ACK)
      awk -v srv="$srv" -v wl="$wl" -v run="$run" -v r="$rate" -v c="$clients" -v p99do="$p99do" -v p99ra="$p99ra" -v rss="$rss" -v leases="$leases" -v load="$load" -v cpu="$cpu" -v steal="$steal" -v pin="${TASKSET:-all}${CLIENT_CPU:++cli$CLIENT_CPU}" \
          -v errs="$((srb1 - srb0)),$((ssb1 - ssb0)),$((crb1 - crb0)),$sendfail" '
        /^Rate:/ {rate=$2}
        /Statistics for: DISCOVER-OFFER/ {sec="DO"} /Statistics for: REQUEST-ACK/ {sec="RA"}
        /^sent packets:/ {sent[sec]=$3} /^drops:/ {drops[sec]=$2} /^avg delay:/ {avg[sec]=$3}
        END { tot=sent["DO"]+sent["RA"]; d=drops["DO"]+drops["RA"];
              printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%.2f,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", srv,wl,run,r,c,rate,
                sent["DO"],drops["DO"],sent["RA"],drops["RA"],(tot?100*d/tot:0),avg["DO"],avg["RA"],p99do,p99ra,rss,leases,load,cpu,steal,pin,errs }' "$log" | tee -a "$OUT"
      if [ "${KEEP_LOGS:-0}" = 1 ]; then cp "$log" "$ROOT/bench/results/"; cp "$WORK/server.log" "$ROOT/bench/results/server-$srv-$wl-$run.log"; fi
    done
  done
done
echo "raw results: $OUT" >&2
