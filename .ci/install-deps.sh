#!/usr/bin/env bash
# Debian packages the tests and benchmarks drive as real peers and clients.
# dnsmasq-base (not dnsmasq) and a temporary policy-rc.d that exits 101 keep
# apt from starting any of these servers on the machine itself.
set -euo pipefail
PKGS=(iproute2 iputils-ping procps curl python3 bc
      dnsmasq-base kea-dhcp4-server kea-admin
      isc-dhcp-client udhcpc dhcpcd5
      sip-tester wrk nginx-light tshark tcpdump chromium
      systemd systemd-container debootstrap isc-dhcp-server
      postgresql qemu-system-x86 cpio)
# test/vm boots Debian's own kernel in QEMU for its 802.1Q VLANs, which the
# machine's kernel may lack: that package is downloaded there, not installed.
KERNEL_DIR=/var/cache/snomprov-test
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
need_kernel=1
compgen -G "$KERNEL_DIR/linux-image-*.deb" >/dev/null && need_kernel=0
if [ ${#missing[@]} -eq 0 ] && [ $need_kernel = 0 ]; then echo "install-deps: all packages present"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "install-deps: missing ${missing[*]} and not root; namespace tests will skip" >&2; exit 0; }
added_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added_policy=1
fi
trap 'if [ "$added_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
apt-get update -q
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ $need_kernel = 1 ]; then
  kernel=$(apt-cache depends "linux-image-$(dpkg --print-architecture)" | awk '/Depends: linux-image-/ {print $2; exit}')
  mkdir -p "$KERNEL_DIR"
  (cd "$KERNEL_DIR" && apt-get download -q -o APT::Sandbox::User=root "$kernel")
fi
