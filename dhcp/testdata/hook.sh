#!/bin/sh
# Test hook for dhclient (-sf), udhcpc (-s) and dhcpcd (-c): applies the
# lease inside the client's namespace and appends one line per event to
# results.txt next to this script (dhclient wipes the environment):
#   DHCP-RESULT client=<c> reason=<r> ip=<a> opt66=<...> opt67=<...> server=<id>
out="$(dirname "$0")/results.txt"
emit() { echo "DHCP-RESULT client=$1 reason=$2 ip=$3 opt66=$4 opt67=$5 server=$6" >>"$out"; }
routes() {
  ip route replace 224.0.0.0/4 dev "$1" 2>/dev/null
  ip route replace 255.255.255.255/32 dev "$1" 2>/dev/null
  return 0
}
case "${1:-}" in
  deconfig) ip -4 addr flush dev "$interface" 2>/dev/null; routes "$interface"; exit 0 ;;
  bound|renew)
    ip -4 addr replace "$ip/${mask:-24}" dev "$interface"; routes "$interface"
    emit udhcpc "$1" "$ip" "${tftp:-}" "${bootfile:-}" "${serverid:-}"; exit 0 ;;
  leasefail|nak) emit udhcpc "$1" "" "" "" ""; exit 0 ;;
esac
case "${reason:-}" in
  BOUND|RENEW|REBIND|REBOOT)
    if [ "${protocol:-}" = dhcp ]; then
      routes "$interface"
      emit dhcpcd "$reason" "$new_ip_address" "${new_tftp_server_name:-}" "${new_bootfile_name:-}" "${new_dhcp_server_identifier:-}"
    else
      ip -4 addr replace "$new_ip_address/24" dev "$interface"; routes "$interface"
      emit dhclient "$reason" "$new_ip_address" "${new_tftp_server_name:-}" "${new_bootfile_name:-}" "${new_dhcp_server_identifier:-}"
    fi ;;
  RELEASE|EXPIRE|FAIL|STOP)
    [ "${protocol:-}" = dhcp ] || ip -4 addr flush dev "$interface" 2>/dev/null
    routes "$interface"; emit "${protocol:-dhclient}" "$reason" "" "" "" "" ;;
esac
exit 0
