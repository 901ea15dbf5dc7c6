#!/usr/bin/env bash
# bench/http.sh - snomprov's per-MAC settings file against nginx serving the
# very same bytes as a static file, in the same run, on a private two-namespace
# LAN built here.
#
#   srv ns (10.79.0.1): snomprov serve (:8080, 1000 phones configured)
#                       nginx (:8081, worker_processes 1, the harness config)
#   cli ns (10.79.0.2): wrk -t1 -c50 -d10s --latency, curl
#
# CPUs: with two or more, both servers run on CPU 0 and wrk on CPU 1
# (taskset), because on the LAN the load comes from the phones, not from a
# process competing for the server's CPU. With PIN=0 all three share every
# CPU, as in the first measurements (docs/benchmarks.md shows both).
# Pinned to one CPU, Go runs snomprov with GOMAXPROCS=1 by itself.
#
# usage: sudo bench/http.sh [RUNS] [DURATION]          (defaults: 2 10s)
# env:   SNOMPROV=/path/to/binary  use a built binary instead of building one
#        PHONES=1000               phones in the generated config
#        BENCH_OUT=file.md         also append the summary table to a file
#        GOGC / GOMEMLIMIT         passed through to snomprov (shown in the output)
#        PIN=0                     do not pin servers and wrk to separate CPUs
#        SNOMPROV_LOG=file         keep snomprov's log (e.g. with GODEBUG=gctrace=1)
#        RELOADS=5                 SIGHUPs after the runs, to measure a reload's memory
#
# Safety: both namespaces are created here and connected by one veth pair made
# with `ip -n <srv> link add ... peer ... netns <cli>`, so no interface ever
# exists in the host namespace and nothing can leave the machine. 10.79.0.0/24
# exists only inside the two namespaces. The EXIT trap kills our processes by
# PID and deletes both namespaces on every exit path.
set -euo pipefail

RUNS="${1:-2}"
DUR="${2:-10s}"
PHONES="${PHONES:-1000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TAG="hb$$"
SRV="${TAG}-srv"
CLI="${TAG}-cli"
SRV_IP=10.79.0.1
CLI_IP=10.79.0.2
WORK="$(mktemp -d /tmp/snomprov-httpbench.XXXXXX)"
PIDS=()

die() { echo "http.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces)"
for tool in ip wrk nginx curl taskset; do command -v "$tool" >/dev/null || die "$tool not installed (as root: bash .ci/install-deps.sh)"; done

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for ns in "$CLI" "$SRV"; do
    if [ -e "/run/netns/$ns" ]; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  if [ -n "${SNOMPROV_LOG:-}" ] && [ -f "$WORK/snomprov.log" ]; then cp "$WORK/snomprov.log" "$SNOMPROV_LOG"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the LAN: two namespaces, one veth pair created inside them -------------
ip netns add "$SRV"
ip netns add "$CLI"
ip -n "$SRV" link add eth0 type veth peer name eth0 netns "$CLI"
ip -n "$SRV" addr add "$SRV_IP/24" dev eth0
ip -n "$CLI" addr add "$CLI_IP/24" dev eth0
for ns in "$SRV" "$CLI"; do
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
done

# --- CPU pinning ---------------------------------------------------------------
SRV_CPU=(); CLI_CPU=(); PINNED="shared CPUs"
if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  SRV_CPU=(taskset -c 0); CLI_CPU=(taskset -c 1); PINNED="servers on CPU 0, wrk on CPU 1"
fi

# --- the binary and a config with $PHONES phones ----------------------------
BIN="${SNOMPROV:-}"
if [ -z "$BIN" ]; then
  BIN="$WORK/snomprov"
  (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$BIN" ./cmd/snomprov)
fi
mkdir -p "$WORK/state" "$WORK/fw" "$WORK/www" "$WORK/nginx-tmp"
head -c 1048576 /dev/zero >"$WORK/fw/snomD785-10.1.215.13-SIP-r.bin"
CFG="$WORK/snomprov.toml"
{
  cat <<EOF
[server]
interface = "eth0"
advertise = "$SRV_IP"
state_dir = "$WORK/state"
log_level = "info"

[http]
listen = "$SRV_IP:8080"
# The per-MAC settings file over plain HTTP, against nginx's plain HTTP
# (issue 12): HTTPS off and the phones an explicit exception, or the
# bootstrap (172 bytes) would be measured instead.
https_listen = ""
cleartext_models = ["snomD785"]
firmware_dir = "$WORK/fw"

[pnp]
enabled = false

[settings]
language = "English"
timezone = "GBR-0"
user_host = { 1 = "pbx.example.lan" }

[models.snomD785]
firmware = "snomD785-10.1.215.13-SIP-r.bin"

EOF
  for i in $(seq 0 $((PHONES - 1))); do
    mac=$(printf '000413%06X' "$i")
    ext=$((1000 + i))
    cat <<EOF
[[phones]]
mac = "$mac"
model = "snomD785"
description = "desk $ext"
[phones.settings]
user_name = { 1 = "$ext" }
user_pass = { 1 = "pw-$ext-secret" }
user_realname = { 1 = "Extension $ext" }
display_name = { 1 = "$ext" }
[phones.fkeys]
0 = "line"
1 = { value = "blf sip:$((ext + 1))@pbx.example.lan|*8", label = "Next $((ext + 1))" }
2 = { value = "speed 100", label = "Reception" }

EOF
  done
} >"$CFG"
MAC=$(printf '000413%06X' $((PHONES / 2)))
PATH_MAC="/snomD785-$MAC.htm"
UA="Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 $MAC SXM:0 UXM:0)"

# --- snomprov ----------------------------------------------------------------
ip netns exec "$SRV" "${SRV_CPU[@]}" "$BIN" serve -config "$CFG" >"$WORK/snomprov.log" 2>&1 &
SNOM_PID=$!
PIDS+=("$SNOM_PID")
for _ in $(seq 1 100); do
  grep -q 'msg=ready' "$WORK/snomprov.log" && break
  kill -0 "$SNOM_PID" 2>/dev/null || { cat "$WORK/snomprov.log"; die "snomprov exited"; }
  sleep 0.1
done
grep -q 'msg=ready' "$WORK/snomprov.log" || { cat "$WORK/snomprov.log"; die "snomprov not ready after 10 s"; }
READY_HWM=$(awk '/^VmHWM/{print $2}' "/proc/$SNOM_PID/status")
READY_RSS=$(awk '/^VmRSS/{print $2}' "/proc/$SNOM_PID/status")

# --- nginx serving the very same bytes ---------------------------------------
ip netns exec "$CLI" curl -sf -A "$UA" -o "$WORK/www$PATH_MAC" "http://$SRV_IP:8080$PATH_MAC" || die "snomprov did not serve $PATH_MAC"
chmod 755 "$WORK" "$WORK/www"; chmod 644 "$WORK/www$PATH_MAC"
# The LAN harness's nginx config (../shared/lan/conf/nginx.conf.in), 1 worker.
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $WORK/nginx-tmp/body;
  proxy_temp_path $WORK/nginx-tmp/proxy;
  fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
  scgi_temp_path $WORK/nginx-tmp/scgi;
  types { text/html html; application/xml htm xml; }
  default_type application/octet-stream;
  server {
    listen $SRV_IP:8081 reuseport;
    root $WORK/www;
  }
}
EOF
# same_bytes NAME PORT: wait for the server on PORT, then check it serves
# exactly the file snomprov served.
same_bytes() {
  for _ in $(seq 1 50); do
    ip netns exec "$CLI" curl -sf -o /dev/null "http://$SRV_IP:$2$PATH_MAC" && break
    sleep 0.1
  done
  cmp -s "$WORK/www$PATH_MAC" <(ip netns exec "$CLI" curl -sf "http://$SRV_IP:$2$PATH_MAC") || die "$1 does not serve the same bytes"
}
ip netns exec "$SRV" "${SRV_CPU[@]}" nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" &
PIDS+=("$!")
same_bytes nginx 8081
BYTES=$(stat -c %s "$WORK/www$PATH_MAC")

SERVERS="snomprov nginx"

# --- wrk, alternating servers -------------------------------------------------
to_ms() { # wrk latency (850.00us, 1.20ms, 2.00s) to milliseconds
  awk -v v="$1" 'BEGIN{ if (v ~ /us$/) { sub(/us$/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v+0 } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000 } else print v }'
}
# CPU time the hypervisor gave to others while we waited (from /proc/stat;
# the total, and per CPU: cpu0 runs the servers, cpu1 wrk when pinned):
# runs with much steal measure the host, not the servers.
steal_ticks() { awk '$1=="cpu"{print $9}' /proc/stat; }
steal_cpu() { awk -v c="cpu$1" '$1==c{print $9}' /proc/stat; }
declare -A RPS P99 STEAL
echo "# $PHONES phones, file $PATH_MAC ($BYTES bytes), wrk -t1 -c50 -d$DUR --latency, $(nproc) CPUs ($PINNED), GOGC=${GOGC:-default} GOMEMLIMIT=${GOMEMLIMIT:-default}"
for run in $(seq 1 "$RUNS"); do
  for server in $SERVERS; do
    case "$server" in snomprov) port=8080 ;; nginx) port=8081 ;; esac
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    steal0=$(steal_ticks); stealc0=$(steal_cpu 0); stealc1=$(steal_cpu 1)
    out=$(ip netns exec "$CLI" "${CLI_CPU[@]}" wrk -t1 -c50 -d"$DUR" --latency -H "User-Agent: $UA" "http://$SRV_IP:$port$PATH_MAC")
    rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
    p99=$(to_ms "$(awk '$1=="99%"{print $2}' <<<"$out")")
    p50=$(to_ms "$(awk '$1=="50%"{print $2}' <<<"$out")")
    p90=$(to_ms "$(awk '$1=="90%"{print $2}' <<<"$out")")
    errs=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    hz=$(getconf CLK_TCK)
    steal=$(( ($(steal_ticks) - steal0) * 1000 / hz ))
    steal_split=""
    if [ "$(nproc)" -ge 2 ]; then
      steal_split=" (cpu0 $(( ($(steal_cpu 0) - stealc0) * 1000 / hz )) + cpu1 $(( ($(steal_cpu 1) - stealc1) * 1000 / hz )))"
    fi
    RPS[$server.$run]=$rps; P99[$server.$run]=$p99; STEAL[$server.$run]=$steal
    printf 'run %d %-8s %10s req/s  p50 %6s  p90 %6s  p99 %6s ms  steal %4d ms%s  load(1/5/15) %s %s\n' "$run" "$server" "$rps" "$p50" "$p90" "$p99" "$steal" "$steal_split" "$load" "$errs"
  done
done
STATUS=$(cat "/proc/$SNOM_PID/status")
HWM=$(awk '/^VmHWM/{print $2}' <<<"$STATUS")
RSS=$(awk '/^VmRSS/{print $2}' <<<"$STATUS")
ANON=$(awk '/^RssAnon/{print $2}' <<<"$STATUS")
FILE=$(awk '/^RssFile/{print $2}' <<<"$STATUS")

# --- reloads: SIGHUP re-reads and re-renders the 1000 phones ------------------
RELOADS="${RELOADS:-5}"
for i in $(seq 1 "$RELOADS"); do
  kill -HUP "$SNOM_PID"
  for _ in $(seq 1 50); do
    [ "$(grep -c 'msg="configuration reloaded"' "$WORK/snomprov.log")" -ge "$i" ] && break
    sleep 0.1
  done
  sleep 0.5
done
[ "$(grep -c 'msg="configuration reloaded"' "$WORK/snomprov.log")" -ge "$RELOADS" ] || die "snomprov did not log $RELOADS reloads"
RELOAD_STATUS=$(cat "/proc/$SNOM_PID/status")
RELOAD_HWM=$(awk '/^VmHWM/{print $2}' <<<"$RELOAD_STATUS")
RELOAD_RSS=$(awk '/^VmRSS/{print $2}' <<<"$RELOAD_STATUS")

# --- summary -----------------------------------------------------------------
summary() {
  echo
  echo "| run | snomprov req/s | nginx req/s | ratio | snomprov p99 | nginx p99 | steal snomprov / nginx |"
  echo "|---|---|---|---|---|---|---|"
  for run in $(seq 1 "$RUNS"); do
    awk -v r="$run" -v a="${RPS[snomprov.$run]}" -v b="${RPS[nginx.$run]}" -v pa="${P99[snomprov.$run]}" -v pb="${P99[nginx.$run]}" \
      -v sa="${STEAL[snomprov.$run]}" -v sb="${STEAL[nginx.$run]}" \
      'BEGIN{ printf "| %d | %.0f | %.0f | %.2f | %.2f ms | %.2f ms | %d / %d ms |\n", r, a, b, a/b, pa, pb, sa, sb }'
  done
  echo
  echo "snomprov memory after the runs: VmHWM $((HWM / 1024)) MiB, VmRSS $((RSS / 1024)) MiB = $((ANON / 1024)) MiB anonymous + $((FILE / 1024)) MiB file-backed ($PHONES phones configured)"
  echo "snomprov memory when ready, before any request: VmHWM $((READY_HWM / 1024)) MiB, VmRSS $((READY_RSS / 1024)) MiB"
  echo "snomprov memory after $RELOADS reloads (SIGHUP) of the $PHONES phones: VmHWM $((RELOAD_HWM / 1024)) MiB, VmRSS $((RELOAD_RSS / 1024)) MiB"
  echo "targets: ratio >= 0.70, p99 < 10 ms, RSS < 30 MiB"
}
summary
if [ -n "${BENCH_OUT:-}" ]; then summary >>"$BENCH_OUT"; fi
if grep -q 'level=ERROR' "$WORK/snomprov.log"; then echo "snomprov logged errors:"; grep 'level=ERROR' "$WORK/snomprov.log"; fi
