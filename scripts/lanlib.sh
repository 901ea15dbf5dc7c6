# scripts/lanlib.sh - sourced by scripts/demo.sh and bench/boot.sh.
# A private LAN of network namespaces: LAN_PREFIX"sw" holds the bridge (the
# switch); every other host is a namespace whose eth0 is a veth created
# directly between the switch namespace and it. Nothing is ever created in
# the host namespace, and lan_cleanup (installed as an EXIT trap by lan_init)
# kills every process in our namespaces and deletes them on any exit path.

LAN_NSLIST=()

lan_init() { # lan_init PREFIX
  LAN_PREFIX="$1"
  trap lan_cleanup EXIT
  trap 'exit 130' INT TERM
  lan_add_ns "${LAN_PREFIX}sw"
  ip -n "${LAN_PREFIX}sw" link add br0 type bridge
  ip -n "${LAN_PREFIX}sw" link set br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
  ip -n "${LAN_PREFIX}sw" link set br0 up
}

lan_cleanup() {
  set +e
  local ns pid
  for ns in "${LAN_NSLIST[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
  done
  sleep 0.5
  for ns in "${LAN_NSLIST[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  [ -z "${LAN_WORK:-}" ] || rm -rf "$LAN_WORK"
}

lan_add_ns() { # lan_add_ns NAME (full name)
  ip netns add "$1"
  LAN_NSLIST=("$1" "${LAN_NSLIST[@]}")
  ip -n "$1" link set lo up
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}

lan_host() { # lan_host SHORTNAME MAC [ADDR/LEN]: a host plugged into the switch
  local ns="${LAN_PREFIX}$1" port="p${#LAN_NSLIST[@]}"
  lan_add_ns "$ns"
  ip -n "${LAN_PREFIX}sw" link add "$port" type veth peer name eth0 netns "$ns"
  ip -n "$ns" link set eth0 address "$2"
  ip -n "${LAN_PREFIX}sw" link set "$port" master br0 up
  ip -n "$ns" link set eth0 up
  [ -z "${3:-}" ] || ip -n "$ns" addr add "$3" dev eth0
  ip -n "$ns" route replace 224.0.0.0/4 dev eth0
}

lan_exec() { # lan_exec SHORTNAME cmd...
  local ns="${LAN_PREFIX}$1"; shift
  ip netns exec "$ns" "$@"
}

lan_wait_log() { # lan_wait_log FILE TEXT SECONDS
  local i
  for i in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
