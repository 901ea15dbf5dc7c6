#!/usr/bin/env bash
# bench/boot.sh - boot storm: N simulated Snom phones power up at once and go
# through DHCP -> PnP -> settings -> firmware file (and image) against one
# snomprov with all three servers. Records the time until every phone is done
# and the server's peak RSS (VmHWM).
#
#   sudo bench/boot.sh [N...]            (default: 100 500 1000)
#   env: GROUPS_=10   phone namespaces the N phones are spread over
#        CONFLICT_PROBE=300ms  [dhcp] conflict_probe of the server ("0s" off)
#        BENCH_OUT=file.md  also append the result rows to a file
#
# Safety: a private LAN of namespaces built by scripts/lanlib.sh (nothing in
# the host namespace; 10.76.0.0/20 exists only inside them), removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "boot.sh: needs root (network namespaces)" >&2; exit 2; }
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(100 500 1000)
GROUPS_="${GROUPS_:-10}"
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

rows=()
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
conflict_probe = "${CONFLICT_PROBE:-300ms}"
[models.snomD785]
firmware = "snomD785-10.1.73.4-SIP-r.bin"
CONF
  lan_exec srv "$BIN" serve -config "$conf" >"$LAN_WORK/server-$N.log" 2>&1 &
  lan_wait_log "$LAN_WORK/server-$N.log" 'msg=ready' 10 || { cat "$LAN_WORK/server-$N.log"; exit 1; }
  spid=$(ip netns pids "${LAN_PREFIX}srv" | head -1) # the only process in the server namespace
  sleep 2.5 # DHCP listens for other servers for 2 s before answering
  rss_idle=$(awk '/VmRSS/{print $2}' /proc/$spid/status 2>/dev/null || echo 0)
  start=$(date +%s.%N)
  pids=()
  for g in $(seq 1 "$GROUPS_"); do
    lan_exec "g$g" "$BIN" simulate -interface eth0 --count "$per" --mac "$(printf '000413E%01X0000' "$g")" \
      --model snomD785 --timeout 20s >"$LAN_WORK/sim-$N-$g.log" 2>&1 &
    pids+=($!)
  done
  failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
  end=$(date +%s.%N)
  rss_peak=$(awk '/VmHWM/{print $2}' /proc/$spid/status 2>/dev/null || echo 0)
  kill -TERM "$spid"; wait || true
  phones_ok=$(grep -h -c 'would be provisioned' "$LAN_WORK"/sim-"$N"-*.log | paste -sd+ | bc)
  secs=$(echo "$end - $start" | bc)
  row="| $((per * GROUPS_)) | $(printf '%.2f' "$secs") s | $phones_ok | $failed | $((rss_idle / 1024)) MB | $((rss_peak / 1024)) MB | $(cut -d' ' -f1-3 /proc/loadavg) |"
  rows+=("$row")
  echo "$row"
  if [ "$failed" -gt 0 ]; then grep -h -v ' ok ' "$LAN_WORK"/sim-"$N"-*.log | head -20; fi
done
{
  echo "| phones | time until all done | phones provisioned | simulate groups failed | server RSS idle | server peak RSS | load before |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee -a "${BENCH_OUT:-/dev/null}"
