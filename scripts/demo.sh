#!/usr/bin/env bash
# make demo: the whole appliance in about a minute, on a private LAN made of
# network namespaces (a bridge namespace as the switch, one server, a few
# phones). Nothing is created in the host namespace and nothing leaves it;
# everything is removed on exit, whatever happens.
#
#   sudo make demo            (or: sudo scripts/demo.sh [PHONES])
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: needs root to create network namespaces (try: sudo make demo)" >&2; exit 2; }
command -v ip >/dev/null || { echo "demo: needs iproute2 (ip)" >&2; exit 2; }
PHONES="${1:-4}"
BIN="$PWD/bin/snomprov"
[ -x "$BIN" ] || { echo "demo: build first (make build)" >&2; exit 2; }
# shellcheck source=scripts/lanlib.sh
. scripts/lanlib.sh
LAN_WORK="$(mktemp -d /tmp/snomprov-demo.XXXXXX)"
WORK="$LAN_WORK"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building a private LAN: a switch, the appliance and $PHONES phones (10.77.0.0/24, inside namespaces only)"
lan_init "spdemo$$-"
lan_host srv 02:77:ff:00:00:01 10.77.0.1/24
MACS=()
for i in $(seq 1 "$PHONES"); do
  lan_host "ph$i" "02:77:00:00:00:$(printf %02x "$i")" "10.77.0.$((10 + i))/24"
  MACS+=("$(printf '000413D0%04X' "$i")")
done

mkdir -p "$WORK/fw"
head -c 200000 /dev/zero > "$WORK/fw/snomD785-10.1.73.4-SIP-r.bin"
cat > "$WORK/snomprov.toml" <<CONF
[server]
interface = "eth0"
state_dir = "$WORK/state"
[http]
listen = ":80"
firmware_dir = "$WORK/fw"
[pnp]
answer = "snom"
[dhcp]
enabled = true
pool = "10.77.0.100-10.77.0.199"
router = "10.77.0.1"
[settings]
language = "English"
[models.snomD785]
firmware = "snomD785-10.1.73.4-SIP-r.bin"
CONF
for i in $(seq 1 "$PHONES"); do
  cat >> "$WORK/snomprov.toml" <<CONF
[[phones]]
mac = "${MACS[$((i - 1))]}"
model = "snomD785"
[phones.settings]
user_name = { 1 = "10$i" }
user_pass = { 1 = "demo-secret-$i" }
user_host = { 1 = "pbx.example.com" }
CONF
done
echo "config: $WORK/snomprov.toml"
"$BIN" check -config "$WORK/snomprov.toml" | sed 's/^/  /' || true

say "Starting snomprov (DHCP + PnP + HTTP) in the server namespace"
lan_exec srv "$BIN" serve -config "$WORK/snomprov.toml" >"$WORK/server.log" 2>&1 &
lan_wait_log "$WORK/server.log" 'msg=ready' 10 || { cat "$WORK/server.log"; echo "demo: server did not start" >&2; exit 1; }
sed 's/^/  /' "$WORK/server.log"

say "Booting $PHONES simulated Snom D785 phones at once: DHCP -> PnP -> settings -> firmware"
pids=()
for i in $(seq 1 "$PHONES"); do
  lan_exec "ph$i" "$BIN" simulate -interface eth0 --ca "$WORK/state/tls/ca.crt" --mac "${MACS[$((i - 1))]}" --model snomD785 >"$WORK/phone$i.log" 2>&1 &
  pids+=($!)
done
fail=0
for i in $(seq 1 "$PHONES"); do
  if wait "${pids[$((i - 1))]}"; then r=ok; else r=FAILED; fail=1; fi
  echo "-- phone $i (${MACS[$((i - 1))]}): $r"; sed 's/^/  /' "$WORK/phone$i.log"
done

say "What the appliance recorded (snomprov phones / snomprov phone MAC)"
sleep 2.5   # the inventory is written every 2 s
"$BIN" phones -config "$WORK/snomprov.toml" | sed 's/^/  /'
"$BIN" phone -config "$WORK/snomprov.toml" "${MACS[0]}" | sed 's/^/  /'
"$BIN" leases -config "$WORK/snomprov.toml" | sed 's/^/  /'

say "Cleaning up the namespaces"
exit "$fail"
