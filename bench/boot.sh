#!/usr/bin/env bash
# bench/boot.sh - boot storm: N simulated Snom phones power up at once and go
# through DHCP -> PnP -> settings -> firmware file (and image), first against
# one snomprov with all three servers, then, in the same run and on the same
# LAN, against the peer stack a user would assemble instead: dnsmasq for
# DHCP (option 66 = the setting URL), the Python reference PnP responder
# (test/peers/pnp_responder_stub.py) and nginx serving the very files
# snomprov served in its run. Records the time until every phone is done and
# the servers' peak RSS (VmHWM). Both fsync their leases: snomprov before
# each ACK (group commit), dnsmasq 2.90 on every rewrite of its lease file (STRACE=1 counts both).
#
#   sudo bench/boot.sh [N...]            (default: 100 500 1000)
#   env: GROUPS_=10   phone namespaces the N phones are spread over
#        CONFLICT_PROBE=300ms  [dhcp] conflict_probe of snomprov ("0s" off);
#                     dnsmasq gets no-ping when it is "0s", else its default
#        PEERS=0      skip the peer stack
#        DNSMASQ_EXTRA="dhcp-sequential-ip"  more dnsmasq.conf lines
#        BENCH_OUT=file.md  also append the result rows to a file
#        KEEP_LOGS=dir  copy the simulate, server and peer logs there
#        STRACE=1     run snomprov and dnsmasq under strace -f -c counting
#                     fsync/fdatasync (a check of the lease claim, not a timing run)
#
# Safety: a private LAN of namespaces built by scripts/lanlib.sh (nothing in
# the host namespace; 10.76.0.0/20 exists only inside them), removed on exit
# with every process in them (snomprov, dnsmasq, nginx, the stub).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "boot.sh: needs root (network namespaces)" >&2; exit 2; }
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(100 500 1000)
GROUPS_="${GROUPS_:-10}"
PEERS="${PEERS:-1}"
PROBE="${CONFLICT_PROBE:-300ms}"
if [ "$PEERS" = 1 ]; then
  for tool in dnsmasq nginx python3 curl; do
    command -v "$tool" >/dev/null || { echo "boot.sh: $tool is missing (bash .ci/install-deps.sh)" >&2; exit 2; }
  done
fi
make -s build
BIN="$PWD/bin/snomprov"
# shellcheck source=scripts/lanlib.sh
. scripts/lanlib.sh
LAN_WORK="$(mktemp -d /tmp/snomprov-boot.XXXXXX)"
lan_init "spboot$$-"
lan_host srv 02:76:ff:00:00:01 10.76.0.1/20
for g in $(seq 1 "$GROUPS_"); do
  lan_host "g$g" "02:76:00:00:00:$(printf %02x "$g")" "10.76.0.$((10 + g))/20"
done
mkdir -p "$LAN_WORK/fw"
head -c 65536 /dev/zero > "$LAN_WORK/fw/snomD785-10.1.73.4-SIP-r.bin"

# storm N LABEL: N simulated phones at once; prints "secs provisioned failed".
storm() {
  local N=$1 label=$2 per=$(( ($1 + GROUPS_ - 1) / GROUPS_ )) pids=() failed=0 start end p g
  start=$(date +%s.%N)
  for g in $(seq 1 "$GROUPS_"); do
    lan_exec "g$g" "$BIN" simulate -interface eth0 --count "$per" --mac "$(printf '000413E%01X0000' "$g")" \
      --model snomD785 --timeout 20s >"$LAN_WORK/sim-$label-$N-$g.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
  end=$(date +%s.%N)
  local ok
  ok=$(grep -h -c 'would be provisioned' "$LAN_WORK"/sim-"$label"-"$N"-*.log | paste -sd+ | bc)
  if [ "$failed" -gt 0 ]; then { grep -h -v ' ok ' "$LAN_WORK"/sim-"$label"-"$N"-*.log || true; } | head -20 >&2 || true; fi
  echo "$(echo "$end - $start" | bc) $ok $failed"
}
hwm() { awk '/VmHWM/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

rows=()
peer_rows=()
for N in "${SIZES[@]}"; do
  per=$(( (N + GROUPS_ - 1) / GROUPS_ ))
  state="$LAN_WORK/state-$N"
  conf="$LAN_WORK/boot-$N.toml"
  cat > "$conf" <<CONF
[server]
interface = "eth0"
state_dir = "$state"
[http]
listen = ":80"
# The storm as measured before HTTPS (issue 14): plain HTTP throughout.
https_listen = ""
cleartext_models = ["snomD785"]
firmware_dir = "$LAN_WORK/fw"
unknown_phones = "allow"
[pnp]
answer = "snom"
[dhcp]
enabled = true
pool = "10.76.1.0-10.76.15.254"
lease_time = "1h"
conflict_probe = "$PROBE"
[models.snomD785]
firmware = "snomD785-10.1.73.4-SIP-r.bin"
CONF
  tracer=()
  [ -z "${STRACE:-}" ] || tracer=(strace -f -c -e trace=fsync,fdatasync -o "$LAN_WORK/strace-snomprov-$N.log")
  lan_exec srv "${tracer[@]}" "$BIN" serve -config "$conf" >"$LAN_WORK/server-$N.log" 2>&1 &
  lan_wait_log "$LAN_WORK/server-$N.log" 'msg=ready' 10 || { cat "$LAN_WORK/server-$N.log"; exit 1; }
  spid=$(for p in $(ip netns pids "${LAN_PREFIX}srv"); do [ "$(cat /proc/$p/comm)" = snomprov ] && echo "$p"; done | head -1)
  sleep 2.5 # DHCP listens for other servers for 2 s before answering
  rss_idle=$(awk '/VmRSS/{print $2}' /proc/$spid/status 2>/dev/null || echo 0)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  read -r secs phones_ok failed < <(storm "$N" snomprov)
  rss_peak=$(hwm "$spid")
  if [ "$PEERS" = 1 ]; then
    # The files the phones fetched, from snomprov itself, for nginx to serve.
    www="$LAN_WORK/www-$N"
    mkdir -p "$www"
    { grep -ho '\[http://10\.76\.0\.1/[^]]*\]' "$LAN_WORK"/sim-snomprov-"$N"-*.log || true; } | tr -d '[]' | sort -u |
      while read -r u; do printf 'url = "%s"\noutput = "%s%s"\n' "$u" "$www" "${u#http://10.76.0.1}"; done >"$LAN_WORK/fetch-$N.cfg"
    [ -s "$LAN_WORK/fetch-$N.cfg" ] || { echo "boot.sh: no URLs in the simulate logs" >&2; head -30 "$LAN_WORK/sim-snomprov-$N-1.log" >&2; exit 1; }
    lan_exec srv curl -s --create-dirs -A 'Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33; snom D785 jffs2 v3.36; 000413E10000)' \
      -K "$LAN_WORK/fetch-$N.cfg" || true
  fi
  kill -TERM "$spid"
  while kill -0 "$spid" 2>/dev/null; do sleep 0.1; done
  wait 2>/dev/null || true
  row="| snomprov | $((per * GROUPS_)) | $(printf '%.2f' "$secs") s | $phones_ok | $failed | $((rss_idle / 1024)) MB | $((rss_peak / 1024)) MB | fsynced before each ACK (group commit) | $load |"
  rows+=("$row")
  echo "$row"

  [ "$PEERS" = 1 ] || continue
  # The peer stack on the same server namespace and address.
  ping_opt=""
  [ "$PROBE" = "0s" ] && ping_opt="no-ping"
  cat >"$LAN_WORK/dnsmasq-$N.conf" <<CONF
port=0
interface=eth0
bind-interfaces
dhcp-authoritative
dhcp-range=10.76.1.0,10.76.15.254,255.255.240.0,1h
dhcp-option-force=66,"http://10.76.0.1/"
dhcp-lease-max=20000
dhcp-leasefile=$LAN_WORK/dnsmasq-$N.leases
pid-file=$LAN_WORK/dnsmasq-$N.pid
user=root
$ping_opt
${DNSMASQ_EXTRA:-}
CONF
  cat >"$LAN_WORK/nginx-$N.conf" <<CONF
user root;
worker_processes auto;
pid $LAN_WORK/nginx-$N.pid;
error_log $LAN_WORK/nginx-$N.err;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 10000;
  types { text/html htm; application/octet-stream bin; }
  server { listen 10.76.0.1:80; root $www; }
}
CONF
  tracer=()
  [ -z "${STRACE:-}" ] || tracer=(strace -f -c -e trace=fsync,fdatasync -o "$LAN_WORK/strace-dnsmasq-$N.log")
  lan_exec srv "${tracer[@]}" dnsmasq --keep-in-foreground --log-facility="$LAN_WORK/dnsmasq-$N.log" -C "$LAN_WORK/dnsmasq-$N.conf" &
  dpid=$!
  lan_exec srv nginx -c "$LAN_WORK/nginx-$N.conf" -g 'daemon off;' &
  npid=$!
  lan_exec srv python3 -u test/peers/pnp_responder_stub.py --iface-ip 10.76.0.1 --quiet --url "http://10.76.0.1/" >"$LAN_WORK/stub-$N.log" 2>&1 &
  ppid_=$!
  lan_wait_log "$LAN_WORK/dnsmasq-$N.log" 'DHCP, IP range' 10 || { cat "$LAN_WORK/dnsmasq-$N.log"; exit 1; }
  for _ in $(seq 50); do lan_exec srv curl -s -o /dev/null "http://10.76.0.1/snomD785.htm" && break; sleep 0.1; done
  for _ in $(seq 50); do grep -q ':13C4 ' <(lan_exec srv cat /proc/net/udp) && break; sleep 0.1; done
  sleep 0.5
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  read -r psecs pok pfailed < <(storm "$N" peers)
  # Peak RSS of every process of the peer stack (nginx: master and workers).
  peak_d=0 peak_p=0 peak_n=0
  for pid in $(ip netns pids "${LAN_PREFIX}srv"); do
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
      dnsmasq) peak_d=$((peak_d + $(hwm "$pid"))) ;;
      python3) peak_p=$((peak_p + $(hwm "$pid"))) ;;
      nginx) peak_n=$((peak_n + $(hwm "$pid"))) ;;
    esac
  done
  for pid in $(ip netns pids "${LAN_PREFIX}srv"); do kill -TERM "$pid" 2>/dev/null || true; done
  wait "$ppid_" "$npid" "$dpid" 2>/dev/null || true
  for _ in $(seq 100); do [ -z "$(ip netns pids "${LAN_PREFIX}srv")" ] && break; sleep 0.1; done # all gone before the next size
  sleep 0.3
  if [ -n "${STRACE:-}" ]; then
    for f in "$LAN_WORK"/strace-*-"$N".log; do echo "== $(basename "$f")"; cat "$f"; done
  fi
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp -r "$LAN_WORK"/*.log "$LAN_WORK"/*.cfg "$LAN_WORK"/*.leases "$KEEP_LOGS"/ 2>/dev/null || true; fi
  row="| dnsmasq + Python PnP + nginx | $((per * GROUPS_)) | $(printf '%.2f' "$psecs") s | $pok | $pfailed | — | $(( (peak_d + peak_p + peak_n) / 1024 )) MB (dnsmasq $((peak_d / 1024)), PnP $((peak_p / 1024)), nginx $((peak_n / 1024))) | fsynced on every lease-file rewrite | $load |"
  rows+=("$row")
  echo "$row"
done
{
  echo "| stack | phones | time until all done | phones provisioned | simulate groups failed | server RSS idle | peak RSS | leases | load before |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee -a "${BENCH_OUT:-/dev/null}"
