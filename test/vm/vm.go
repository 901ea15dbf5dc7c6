// Package vm runs a test of test/e2e inside a virtual machine (QEMU,
// emulated; SNOMPROV_VM_ACCEL=kvm for KVM) on Debian's own kernel, for what
// the machine's kernel cannot do: its 802.1Q VLANs. The machine has no
// network device; the test builds its namespace LAN inside it, as on the
// host. The host's root file system is the machine's, read-only over 9p,
// so the test and its clients are the host's own binaries; init (in
// ./init) is the machine's PID 1.
package vm

// Command is what init runs inside the machine; the test writes it to
// /vmtest.json in the initramfs.
type Command struct {
	Dir  string
	Args []string
	Env  []string
}

// ExitMarker starts init's last line on the console; the command's exit
// status follows it.
const ExitMarker = "vmtest: exit "

// Modules are the kernel modules the test needs that Debian builds as
// modules, in an order that loads each after what it depends on: virtio
// and 9p for the root file system, then the bridge, 802.1Q and veth of
// the namespace LAN.
var Modules = []string{
	"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
	"netfs", "fscache", "9pnet", "9pnet_virtio", "9p",
	"llc", "stp", "bridge", "mrp", "garp", "8021q", "veth",
}
