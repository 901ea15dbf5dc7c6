#!/usr/bin/env bash
# bench/boot.sh - boot storm: N simulated Snom phones power up at once and go
# through DHCP -> PnP -> settings -> firmware file (and image), first against
# one snomprov with all three servers, then, in the same run and on the same
# LAN, against the peer stack a user would assemble instead: dnsmasq for
# DHCP (option 66 = the setting URL), the Python reference PnP responder
# (test/peers/pnp_responder_stub.py) and nginx serving the very files
# snomprov served in its run. Records the time until every phone is done,
# the servers' peak RSS (VmHWM), and how long snomprov's threads waited for
# a CPU during the storm (the sum over its threads, so more than the
# storm). Both fsync their leases: snomprov before each ACK (group
# commit), dnsmasq 2.90 on every rewrite of its lease file (STRACE=1
# counts both).
#
#   sudo bench/boot.sh [N...]            (default: 100 500 1000)
#   sudo PEERS=0 CONFLICT_PROBE=0s INVENTORY="file postgres" RUNS=3 bench/boot.sh 5000
#                                         (issue 16: the file store vs PostgreSQL, interleaved)
#   env: GROUPS_=10   phone namespaces the N phones are spread over
#        INVENTORY=file  the inventory of snomprov's storms: file (phones.json),
#                     postgres (a PostgreSQL the script starts: initdb in a
#                     temporary directory, Unix socket only, fsync on, as
#                     nobody; the schema dropped before each storm), or
#                     both, "file postgres", run one after the other
#        RUNS=1       storms per size and inventory, interleaved
#                     (file, postgres, file, postgres, ...)
#        CONFLICT_PROBE=300ms  [dhcp] conflict_probe of snomprov ("0s" off);
#                     dnsmasq gets no-ping when it is "0s", else its default
#        PEERS=0      skip the peer stack
#        DNSMASQ_EXTRA="dhcp-sequential-ip"  more dnsmasq.conf lines
#        BENCH_OUT=file.md  also append the result rows to a file
#        KEEP_LOGS=dir  copy the simulate reports, server, peer and PostgreSQL logs there
#        STRACE=1     run snomprov and dnsmasq under strace -f -c counting
#                     fsync/fdatasync (a check of the lease claim, not a timing run)
#        DB_CPU=1     the database on a host of its own, as a multi-site
#                     deployment has it: PostgreSQL pinned to that CPU, and
#                     the appliance, the phones and the peer stack to the
#                     others, in every storm (file store too), so the
#                     appliance's budget is the same with and without it
#        PG_NICE=19   PostgreSQL at that nice level: it takes only the CPU
#                     the storm leaves, so what remains of the PostgreSQL
#                     storm's cost is the appliance's own (a database on
#                     another host, on a machine with no CPU to spare)
#        PG_LOCALE=C  the cluster's locale (initdb --locale), e.g. en_US.UTF-8
#                     as pg_createcluster gives on most systems; it must be
#                     installed (locale -a)
#        PG_IDLE=1    PostgreSQL in the SCHED_IDLE class: unlike PG_NICE,
#                     which leaves it a small share, every other task
#                     preempts it at once, so it runs only on a CPU that
#                     would otherwise idle
#        PROFILE=DIR  builds snomprov with -tags pprof and saves a CPU profile
#                     of the appliance over the first 10 s of each storm
#                     (DIR/cpu-N-RUN-INVENTORY.pprof; go tool pprof -diff_base)
#        CPU_TAX=0.17 beside each file-store storm, a process that asks
#                     for that share of one CPU (that much CPU time in every
#                     250 ms, PostgreSQL's send gap, or all of it while it
#                     gets less; pinned and niced as PostgreSQL is): a
#                     control for what a database on the same CPUs costs
#                     the storm. Its CPU-seconds go in the
#                     PostgreSQL CPU column, marked "tax"
#
# Each snomprov row gives the phones' latencies from `simulate --json`:
# the DHCP exchange (DISCOVER to ACK) and every HTTP GET of a settings or
# firmware file (p50 / p99 over all phones), and with PostgreSQL the time
# from the storm's start until every event is in the database, and the
# events per second that makes.
#
# Safety: a private LAN of namespaces built by scripts/lanlib.sh (nothing in
# the host namespace; 10.76.0.0/18 exists only inside them, its pool of
# 15 000 addresses room for the largest storm), removed on exit with every
# process in them (snomprov, dnsmasq, nginx, the stub). PostgreSQL
# runs in the host namespace with no TCP port (listen_addresses empty), on a
# Unix socket in its temporary directory, which the server namespace reaches
# through the file system; it is stopped by its PID on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "boot.sh: needs root (network namespaces)" >&2; exit 2; }
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(100 500 1000)
GROUPS_="${GROUPS_:-10}"
PEERS="${PEERS:-1}"
PROBE="${CONFLICT_PROBE:-300ms}"
INVENTORY="${INVENTORY:-file}"
RUNS="${RUNS:-1}"
PIN_DB=() PIN_APP=()
if [ -n "${DB_CPU:-}" ]; then
  app_cpus="$(seq 0 $(($(nproc) - 1)) | grep -vx "$DB_CPU" | paste -sd, -)"
  [ -n "$app_cpus" ] && [ "$DB_CPU" -lt "$(nproc)" ] || { echo "boot.sh: DB_CPU=$DB_CPU leaves no CPU for the appliance ($(nproc) CPUs)" >&2; exit 2; }
  PIN_DB=(taskset -c "$DB_CPU") PIN_APP=(taskset -c "$app_cpus")
fi
[ -z "${PG_NICE:-}" ] || PIN_DB+=(nice -n "$PG_NICE")
[ "${PG_IDLE:-0}" != 1 ] || PIN_DB+=(chrt --idle 0)
command -v python3 >/dev/null || { echo "boot.sh: python3 is missing (bash .ci/install-deps.sh)" >&2; exit 2; }
for inv in $INVENTORY; do
  case "$inv" in file | postgres) ;; *) echo "boot.sh: INVENTORY: $inv is neither file nor postgres" >&2; exit 2 ;; esac
done
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
SERVE_BIN="$BIN" PPROF=127.0.0.1:18081 # the pprof listener, inside the server namespace
if [ -n "${PROFILE:-}" ]; then
  mkdir -p "$PROFILE"
  SERVE_BIN="$LAN_WORK/pprof/snomprov" # named snomprov: the script finds its PID by name
  CGO_ENABLED=0 go build -tags pprof -o "$SERVE_BIN" ./cmd/snomprov
fi
lan_init "spboot$$-"
PG_PID="" PG_DIR=""
pg_stop() {
  [ -n "$PG_PID" ] || return 0
  kill -INT "$PG_PID" 2>/dev/null || true # fast shutdown
  for _ in $(seq 150); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PG_PID" 2>/dev/null || true
  wait "$PG_PID" 2>/dev/null || true
  PG_PID=""
}
trap 'pg_stop; [ -z "$PG_DIR" ] || rm -rf "$PG_DIR"; lan_cleanup' EXIT
# pg_start: a throwaway cluster on a Unix socket, run as nobody (postgres
# refuses root). Sets PG_URL.
pg_start() {
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  [ -x "$bin/postgres" ] || { echo "boot.sh: PostgreSQL is missing (bash .ci/install-deps.sh)" >&2; exit 2; }
  PG_BIN="$bin"
  PG_DIR="$(mktemp -d /tmp/snomprov-bootpg.XXXXXX)"
  chmod 755 "$PG_DIR"
  chown 65534:65534 "$PG_DIR"
  as_pg() { env -i PATH=/usr/bin:/bin HOME="$PG_DIR" LC_ALL=C setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
  as_pg "$bin/initdb" -D "$PG_DIR/data" -U snomprov --auth=trust -E UTF8 --locale="${PG_LOCALE:-C}" >"$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log" >&2; exit 1; }
  # env and setpriv exec: $! is the postmaster's PID.
  "${PIN_DB[@]}" env -i PATH=/usr/bin:/bin HOME="$PG_DIR" LC_ALL=C setpriv --reuid=65534 --regid=65534 --clear-groups \
    "$bin/postgres" -D "$PG_DIR/data" -k "$PG_DIR" -p 5432 -c listen_addresses= -c max_connections=50 \
    >"$PG_DIR/postgres.log" 2>&1 &
  PG_PID=$!
  for _ in $(seq 300); do "$bin/pg_isready" -q -h "$PG_DIR" -p 5432 -U snomprov && break; sleep 0.1; done
  "$bin/pg_isready" -q -h "$PG_DIR" -p 5432 -U snomprov || { cat "$PG_DIR/postgres.log" >&2; exit 1; }
  PG_URL="host=$PG_DIR port=5432 user=snomprov dbname=postgres sslmode=disable"
}
pg_sql() { PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -A -t -h "$PG_DIR" -p 5432 -U snomprov -d postgres -c "$1"; }
case " $INVENTORY " in *" postgres "*) pg_start ;; esac
lan_host srv 02:76:ff:00:00:01 10.76.0.1/18
for g in $(seq 1 "$GROUPS_"); do
  lan_host "g$g" "02:76:00:00:00:$(printf %02x "$g")" "10.76.0.$((10 + g))/18"
done
mkdir -p "$LAN_WORK/fw"
head -c 65536 /dev/zero > "$LAN_WORK/fw/snomD785-10.1.73.4-SIP-r.bin"

# storm N LABEL: N simulated phones at once; prints "secs failed-groups".
# stats N LABEL then reads their reports.
storm() {
  local N=$1 label=$2 per=$(( ($1 + GROUPS_ - 1) / GROUPS_ )) pids=() failed=0 start end p g
  start=$(date +%s.%N)
  for g in $(seq 1 "$GROUPS_"); do
    lan_exec "g$g" "${PIN_APP[@]}" "$BIN" simulate -interface eth0 --count "$per" --mac "$(printf '000413E%01X0000' "$g")" \
      --model snomD785 --timeout 20s --json >"$LAN_WORK/sim-$label-$N-$g.json" 2>"$LAN_WORK/sim-$label-$N-$g.err" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
  end=$(date +%s.%N)
  echo "$(echo "$end - $start" | bc) $failed"
}
stats() { simstats "$LAN_WORK/urls-$2-$1.txt" "$LAN_WORK"/sim-"$2"-"$1"-*.json; }
# simstats URLFILE JSON...: "provisioned dhcp-p50 dhcp-p99 http-p50 http-p99"
# over the simulate reports; the HTTP URLs the phones fetched go to URLFILE.
simstats() {
  python3 - "$@" <<'PY'
import json, sys
urls, ok, dhcp, http, bad = set(), 0, [], [], []
for path in sys.argv[2:]:
    try:
        rep = json.load(open(path))
    except (OSError, ValueError) as e:
        bad.append(f"{path}: {e}")
        continue
    for ph in rep.get("phones") or []:
        failed = [s for s in ph["steps"] if s["status"] == "FAILED"]
        ok += not failed
        bad += [f'{ph["phone"]["MAC"]} {s["name"]}: {s["detail"]}' for s in failed]
        for s in ph["steps"]:
            if s["name"] == "dhcp" and s["status"] == "ok":
                dhcp.append(s["duration"] / 1e6)
            elif s["name"] in ("settings", "firmware-file", "firmware-image") and s.get("duration"):
                http.append(s["duration"] / 1e6)
                if s["status"] == "ok" and s.get("target", "").startswith("http"):
                    urls.add(s["target"])
def pct(v, q):
    v = sorted(v)
    return f"{v[min(len(v) - 1, int(len(v) * q))]:.1f}" if v else "-"
open(sys.argv[1], "w").write("".join(u + "\n" for u in sorted(urls)))
for line in bad[:20]:
    print(line, file=sys.stderr)
print(ok, pct(dhcp, .5), pct(dhcp, .99), pct(http, .5), pct(http, .99))
PY
}
# cpusecs PID...: the CPU time (user + system) the processes used so far, in s.
cpusecs() {
  local p t=0
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "scale=2; $t / $(getconf CLK_TCK)" | bc
}
# runqsecs PID: how long the process's threads have waited runnable for a
# CPU so far, in s (/proc/PID/task/*/schedstat, second field, ns).
runqsecs() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{t += $2} END {printf "%.3f", t / 1e9}'; }
# pgpids: the postmaster and its children (the backends serving snomprov).
pgpids() { [ -z "$PG_PID" ] || echo "$PG_PID" $(pgrep -P "$PG_PID"); }
# cpustat: "total steal" jiffies of all CPUs, for the steal share of a storm.
cpustat() { awk '/^cpu /{t=0; for (i=2;i<=NF;i++) t+=$i; print t, $9}' /proc/stat; }
# metric NAME: one unlabelled sample from snomprov's /metrics.
metric() { lan_exec srv curl -s http://127.0.0.1/metrics | awk -v n="$1" '$1==n{print $2}'; }
hwm() { awk '/VmHWM/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

rows=()
for N in "${SIZES[@]}"; do
for run in $(seq 1 "$RUNS"); do
for inv in $INVENTORY; do
  per=$(( (N + GROUPS_ - 1) / GROUPS_ ))
  state="$LAN_WORK/state-$N-$run-$inv"
  conf="$LAN_WORK/boot-$N-$run-$inv.toml"
  inventory=""
  if [ "$inv" = postgres ]; then
    # Every storm starts on an empty schema, migrated by snomprov at start.
    pg_sql "DROP TABLE IF EXISTS snomprov_events, snomprov_steps, snomprov_phones, snomprov_schema"
    inventory="[inventory]
url = \"$PG_URL\"
site = \"boot\""
  fi
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
pool = "10.76.1.0-10.76.63.254"
lease_time = "1h"
conflict_probe = "$PROBE"
[models.snomD785]
firmware = "snomD785-10.1.73.4-SIP-r.bin"
$inventory
CONF
  tracer=()
  [ -z "${STRACE:-}" ] || tracer=(strace -f -c -e trace="${STRACE_CALLS:-fsync,fdatasync}" -o "$LAN_WORK/strace-snomprov-$N-$run-$inv.log")
  lan_exec srv "${tracer[@]}" "${PIN_APP[@]}" env SNOMPROV_PPROF="${PROFILE:+$PPROF}" "$SERVE_BIN" serve -config "$conf" >"$LAN_WORK/server-$N-$run-$inv.log" 2>&1 &
  sjob=$!
  lan_wait_log "$LAN_WORK/server-$N-$run-$inv.log" 'msg=ready' 10 || { cat "$LAN_WORK/server-$N-$run-$inv.log"; exit 1; }
  spid=$(for p in $(ip netns pids "${LAN_PREFIX}srv"); do [ "$(cat /proc/$p/comm)" = snomprov ] && echo "$p"; done | head -1)
  sleep 2.5 # DHCP listens for other servers for 2 s before answering
  if [ "$inv" = postgres ]; then
    for _ in $(seq 100); do [ "$(metric snomprov_inventory_database_up)" = 1 ] && break; sleep 0.1; done
  fi
  rss_idle=$(awk '/VmRSS/{print $2}' /proc/$spid/status 2>/dev/null || echo 0)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  read -r cpu0 steal0 < <(cpustat)
  scpu0=$(cpusecs "$spid") pgcpu0=$(cpusecs $(pgpids)) runq0=$(runqsecs "$spid")
  taxpid=""
  if [ -n "${CPU_TAX:-}" ] && [ "$inv" = file ]; then
    # It needs its CPU-seconds per period however busy the CPUs are, as a
    # database needs them for each batch: it counts its own CPU time.
    "${PIN_DB[@]}" python3 -c 'import sys, time
busy = 0.25 * float(sys.argv[1])
while True:
    t, c = time.monotonic(), time.process_time()
    while time.process_time() - c < busy:
        pass
    time.sleep(max(0, 0.25 - (time.monotonic() - t)))' "$CPU_TAX" &
    taxpid=$!
  fi
  prof=""
  if [ -n "${PROFILE:-}" ]; then
    lan_exec srv curl -s -o "$PROFILE/cpu-$N-$run-$inv.pprof" "http://$PPROF/debug/pprof/profile?seconds=10" &
    prof=$!
  fi
  t0=$(date +%s.%N)
  read -r secs failed < <(storm "$N" "snomprov-$run-$inv")
  runq=$(printf '%.2f' "$(echo "$(runqsecs "$spid") - $runq0" | bc)") # the storm's, not the wait for the database's
  [ -z "$prof" ] || wait "$prof"
  read -r cpu1 steal1 < <(cpustat)
  taxcpu=""
  if [ -n "$taxpid" ]; then
    taxcpu=$(cpusecs "$taxpid")
    kill "$taxpid"; wait "$taxpid" 2>/dev/null || true
  fi
  indb="—" evs="—"
  if [ "$inv" = postgres ]; then
    backlog=$(metric snomprov_inventory_buffered_events) # waiting when the last phone is done
    # Until every event is in PostgreSQL (nothing buffered), at most 120 s.
    for _ in $(seq 1200); do [ "$(metric snomprov_inventory_buffered_events)" = 0 ] && break; sleep 0.1; done
    t1=$(date +%s.%N)
    events=$(metric snomprov_inventory_written_events_total)
    stored=$(pg_sql "SELECT count(*) FROM snomprov_events")
    indb="$(printf '%.2f' "$(echo "$t1 - $t0 - $secs" | bc)") s after the last phone ($stored events, $backlog waiting then)"
    evs="$(printf '%.0f' "$(echo "$events / ($t1 - $t0)" | bc -l)")"
  fi
  rss_peak=$(hwm "$spid")
  read -r phones_ok dp50 dp99 hp50 hp99 < <(stats "$N" "snomprov-$run-$inv")
  # CPU from the storm's start until every event is stored: the appliance's,
  # and (the backends live as long as snomprov's connections) PostgreSQL's.
  scpu=$(printf '%.2f' "$(echo "$(cpusecs "$spid") - $scpu0" | bc)")
  pgcpu="—"
  [ "$inv" != postgres ] || pgcpu="$(printf '%.2f' "$(echo "$(cpusecs $(pgpids)) - $pgcpu0" | bc)") s"
  [ -z "$taxcpu" ] || pgcpu="$(printf '%.2f' "$taxcpu") s tax"
  if [ "$PEERS" = 1 ]; then
    # The files the phones fetched, from snomprov itself, for nginx to serve.
    www="$LAN_WORK/www-$N"
    mkdir -p "$www"
    while read -r u; do printf 'url = "%s"\noutput = "%s%s"\n' "$u" "$www" "${u#http://10.76.0.1}"; done \
      <"$LAN_WORK/urls-snomprov-$run-$inv-$N.txt" >"$LAN_WORK/fetch-$N.cfg"
    [ -s "$LAN_WORK/fetch-$N.cfg" ] || { echo "boot.sh: no URLs in the simulate reports" >&2; head -c 3000 "$LAN_WORK/sim-snomprov-$run-$inv-$N-1.json" >&2; exit 1; }
    lan_exec srv curl -s --create-dirs -A 'Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33; snom D785 jffs2 v3.36; 000413E10000)' \
      -K "$LAN_WORK/fetch-$N.cfg" || true
  fi
  kill -TERM "$spid"
  while kill -0 "$spid" 2>/dev/null; do sleep 0.1; done
  wait "$sjob" 2>/dev/null || true
  if [ -n "${STRACE:-}" ]; then echo "== snomprov, $inv inventory, $N phones"; cat "$LAN_WORK/strace-snomprov-$N-$run-$inv.log"; fi
  steal=$(echo "scale=1; 100 * ($steal1 - $steal0) / ($cpu1 - $cpu0)" | bc)
  row="| snomprov, $inv inventory | $((per * GROUPS_)) | $(printf '%.2f' "$secs") s | $phones_ok | $failed | $dp50 / $dp99 ms | $hp50 / $hp99 ms | $indb | $evs | $scpu s | $pgcpu | $((rss_idle / 1024)) MB | $((rss_peak / 1024)) MB | $load | $steal % | $runq s |"
  rows+=("$row")
  echo "$row"
done

  [ "$PEERS" = 1 ] || continue
  # The peer stack on the same server namespace and address.
  ping_opt=""
  [ "$PROBE" = "0s" ] && ping_opt="no-ping"
  cat >"$LAN_WORK/dnsmasq-$N.conf" <<CONF
port=0
interface=eth0
bind-interfaces
dhcp-authoritative
dhcp-range=10.76.1.0,10.76.63.254,255.255.192.0,1h
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
  lan_exec srv "${tracer[@]}" "${PIN_APP[@]}" dnsmasq --keep-in-foreground --log-facility="$LAN_WORK/dnsmasq-$N.log" -C "$LAN_WORK/dnsmasq-$N.conf" &
  dpid=$!
  lan_exec srv "${PIN_APP[@]}" nginx -c "$LAN_WORK/nginx-$N.conf" -g 'daemon off;' &
  npid=$!
  lan_exec srv "${PIN_APP[@]}" python3 -u test/peers/pnp_responder_stub.py --iface-ip 10.76.0.1 --quiet --url "http://10.76.0.1/" >"$LAN_WORK/stub-$N.log" 2>&1 &
  ppid_=$!
  lan_wait_log "$LAN_WORK/dnsmasq-$N.log" 'DHCP, IP range' 10 || { cat "$LAN_WORK/dnsmasq-$N.log"; exit 1; }
  for _ in $(seq 50); do lan_exec srv curl -s -o /dev/null "http://10.76.0.1/snomD785.htm" && break; sleep 0.1; done
  for _ in $(seq 50); do grep -q ':13C4 ' <(lan_exec srv cat /proc/net/udp) && break; sleep 0.1; done
  sleep 0.5
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  read -r cpu0 steal0 < <(cpustat)
  read -r psecs pfailed < <(storm "$N" "peers-$run")
  read -r cpu1 steal1 < <(cpustat)
  read -r pok pdp50 pdp99 php50 php99 < <(stats "$N" "peers-$run")
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
    echo "== dnsmasq, $N phones"; cat "$LAN_WORK/strace-dnsmasq-$N.log"
  fi
  steal=$(echo "scale=1; 100 * ($steal1 - $steal0) / ($cpu1 - $cpu0)" | bc)
  row="| dnsmasq + Python PnP + nginx | $((per * GROUPS_)) | $(printf '%.2f' "$psecs") s | $pok | $pfailed | $pdp50 / $pdp99 ms | $php50 / $php99 ms | — | — | — | — | — | $(( (peak_d + peak_p + peak_n) / 1024 )) MB (dnsmasq $((peak_d / 1024)), PnP $((peak_p / 1024)), nginx $((peak_n / 1024))) | $load | $steal % | — |"
  rows+=("$row")
  echo "$row"
done
done
if [ -n "${KEEP_LOGS:-}" ]; then
  mkdir -p "$KEEP_LOGS"
  cp "$LAN_WORK"/*.log "$LAN_WORK"/*.json "$LAN_WORK"/*.err "$LAN_WORK"/*.cfg "$LAN_WORK"/*.leases "$KEEP_LOGS"/ 2>/dev/null || true
  [ -z "$PG_DIR" ] || cp "$PG_DIR/postgres.log" "$KEEP_LOGS"/ 2>/dev/null || true
fi
{
  echo "| stack | phones | time until all done | phones provisioned | simulate groups failed | DHCP p50 / p99 | HTTP GET p50 / p99 | every event in PostgreSQL | events/s to PostgreSQL | appliance CPU | PostgreSQL CPU | server RSS idle | peak RSS | load before | steal | appliance waiting for a CPU |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee -a "${BENCH_OUT:-/dev/null}"
