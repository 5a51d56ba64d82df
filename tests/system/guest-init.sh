#!/bin/sh
# /init of the Linux guests of the system tier (busybox sh, static).  The
# same script is the initramfs's /init and the root disk's /init.
#
# In the initramfs it prints "SYSTEST: init" as soon as it runs and loads
# the modules of /lib/modules/order (virtio-pci, -blk, -net, -rng, ext4,
# qemu_fw_cfg: sysimages.py).  With "systest_root=DEV" on the kernel command
# line it then mounts DEV (ext4) and switch_roots into it, running the root
# disk's /init as "/init root", which goes on from here.  Then either of
# them prints a small workload (files written and checked in tmpfs,
# /proc/uptime), the facts the tests check (fw_cfg's sysfs files, the
# virtio disks, rng and network interfaces among them), starts busybox's
# acpid (the power button powers the guest off in order), and acts on
# "systest=" from the kernel command line:
#   poweroff  poweroff -f            reboot  reboot -f
#   shell     an interactive shell on the console (the default)
# The workloads the tests type at that shell are in /bin/systest
# (guest-workload.sh).
export PATH=/bin
stage=initramfs
[ "$1" = root ] && stage=root

action=shell
root=
cmdline_args() {
	for arg in $(cat /proc/cmdline); do
		case "$arg" in
		systest=*) action="${arg#systest=}" ;;
		systest_root=*) root="${arg#systest_root=}" ;;
		esac
	done
}

# insmod each module of /lib/modules/order; one SYSTEST line for the lot,
# one more per failure ("optional" ones, soft dependencies such as
# crc32c-intel which needs SSE4.2, are reported but are no failure).
load_modules() {
	loaded=
	failed=
	while read -r ko opt; do
		[ -n "$ko" ] || continue
		if err=$(insmod "/lib/modules/$ko" 2>&1); then
			loaded="$loaded ${ko%.ko}"
		elif [ "$opt" = optional ]; then
			echo "SYSTEST: module ${ko%.ko} optional," \
				"not loaded: $err"
		else
			failed="$failed ${ko%.ko}"
			echo "SYSTEST: module ${ko%.ko} failed: $err"
		fi
	done </lib/modules/order
	echo "SYSTEST: modules loaded=$(echo $loaded | tr ' ' ,)" \
		"failed=$(echo $failed | tr ' ' ,)" \
		"builtin=$(paste -sd, /lib/modules/builtin)" \
		"missing=$(paste -sd, /lib/modules/missing)"
}

# Mount the root disk on /newroot, move /proc, /sys and /dev there; 0 when
# it is ready for switch_root.
mount_root() {
	i=0
	while [ ! -b "$root" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ ! -b "$root" ]; then
		echo "SYSTEST: root-failed $root: no such block device" \
			"($(ls /sys/block | tr '\n' ' '))"
		return 1
	fi
	mkdir -p /newroot
	if ! err=$(mount -t ext4 -o rw "$root" /newroot 2>&1); then
		echo "SYSTEST: root-failed mount $root: $err"
		return 1
	fi
	if [ ! -x /newroot/init ]; then
		echo "SYSTEST: root-failed $root has no /init"
		umount /newroot
		return 1
	fi
	for d in proc sys dev; do
		mount -o move /$d /newroot/$d
	done
	return 0
}

if [ $stage = initramfs ]; then
	mount -t proc proc /proc
	mount -t sysfs sys /sys
	mount -t devtmpfs dev /dev
	echo "SYSTEST: init pid=$$ uptime=$(cut -d' ' -f1 /proc/uptime)"
	load_modules
	cmdline_args
	if [ -n "$root" ] && mount_root; then
		exec switch_root /newroot /init root
	fi
else
	cmdline_args
	# What is mounted on /: "SYSTEST: root dev=/dev/vda fstype=ext4
	# opts=rw,relatime" (the tests check it is the virtio disk, rw).
	# shellcheck disable=SC2046 # its fields
	set -- $(grep -E '^/dev/[^ ]+ / ' /proc/mounts)
	echo "SYSTEST: root dev=$1 fstype=$3 opts=$4 pid=$$" \
		"uptime=$(cut -d' ' -f1 /proc/uptime)"
fi
mkdir -p /tmp
mount -t tmpfs tmp /tmp

# Workload: files of a known pattern in tmpfs, written, read back, checked.
ok=0
for i in 1 2 3; do
	dd if=/dev/urandom of=/tmp/data.$i bs=1k count=256 2>/dev/null
	sum=$(md5sum </tmp/data.$i)
	cp /tmp/data.$i /tmp/copy.$i
	[ "$(md5sum </tmp/copy.$i)" = "$sum" ] && ok=$((ok + 1))
	echo "SYSTEST: uptime $(cat /proc/uptime)"
done
rm -f /tmp/data.* /tmp/copy.*
echo "SYSTEST: workload files_ok=$ok/3"

echo "SYSTEST: facts nproc=$(nproc)" \
	"online=$(cat /sys/devices/system/cpu/online)" \
	"memtotal_kb=$(sed -n 's/MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)" \
	"date=$(date -u +%Y-%m-%d)" \
	"rtc=$(hwclock -r -u 2>&1 | tr ' ' '_')" \
	"rtc_date=$(cat /sys/class/rtc/rtc0/date 2>/dev/null)"
dmesg | grep -E '(BIOS-e820|BIOS-provided|e820: \[mem)' | sed 's/^/SYSTEST: e820 /'
dmesg | grep -E 'MP-table|for SMP configuration|Allowing [0-9]+ CPUs|Brought up' |
	sed 's/^/SYSTEST: smp /'
# QEMU's fw_cfg (the hypervisor's DSDT has it as QEMU0002): Debian builds
# its sysfs driver as a module, which the initramfs loaded.
fw=/sys/firmware/qemu_fw_cfg
if grep -qx 'qemu_fw_cfg.ko.*' /lib/modules/order ||
		grep -qx qemu_fw_cfg /lib/modules/builtin; then
	if [ -d $fw ]; then
		echo "SYSTEST: fw_cfg rev=$(cat $fw/rev)" \
			"files=$(ls $fw/by_key | wc -l)"
		# The contents of user items (opt/...) only: QEMU's own
		# (ACPI tables, option ROMs) are binary.
		for k in $fw/by_key/*; do
			[ -d "$k" ] || continue
			n=$(cat $k/name)
			case "$n" in
			opt/*)
				echo "SYSTEST: fw_cfg file key=${k##*/}" \
					"size=$(cat $k/size) name=$n" \
					"raw=$(cat $k/raw)" \
					"by_name=$(cat $fw/by_name/$n/raw)" ;;
			*)
				echo "SYSTEST: fw_cfg file key=${k##*/}" \
					"size=$(cat $k/size) name=$n" ;;
			esac
		done
	else
		echo "SYSTEST: fw_cfg absent"
	fi
else
	echo "SYSTEST: fw_cfg no-module"
fi

# Virtio devices.  PCI functions of Red Hat's vendor (0x1af4: 0x1041 net,
# 0x1042 block, 0x1044 rng for modern-only devices) and their drivers.
for d in /sys/bus/pci/devices/*; do
	[ "$(cat $d/vendor 2>/dev/null)" = 0x1af4 ] || continue
	drv=$(readlink $d/driver)
	echo "SYSTEST: pci ${d##*/} device=$(cat $d/device)" \
		"driver=${drv##*/}"
done
# Disks: "SYSTEST: disk vda size=BYTES ro=0|1 serial=..." (size from
# /sys/block/*/size, in 512-byte sectors).
n=0
for b in /sys/block/vd*; do
	[ -d "$b" ] || continue
	n=$((n + 1))
	echo "SYSTEST: disk ${b##*/} size=$(($(cat $b/size) * 512))" \
		"ro=$(cat $b/ro) serial=$(cat $b/serial 2>/dev/null)"
done
echo "SYSTEST: disks $n"
# The hardware RNG Linux uses: virtio_rng.N once virtio-rng bound.
for r in /sys/class/misc/hw_random /sys/devices/virtual/misc/hw_random; do
	[ -e $r/rng_current ] || continue
	echo "SYSTEST: rng current=$(cat $r/rng_current)" \
		"available=$(sed 's/ *$//; s/ /,/g' $r/rng_available)"
	break
done
# Network interfaces other than lo: name, MAC, driver.
for i in /sys/class/net/*; do
	[ "${i##*/}" = lo ] && continue
	drv=$(readlink $i/device/driver)
	echo "SYSTEST: net ${i##*/} mac=$(cat $i/address)" \
		"driver=${drv##*/} mtu=$(cat $i/mtu)"
done

# The ACPI power button (`xl shutdown`): Linux's button driver (the
# `button` module) reports the fixed-feature button as an input device,
# evdev makes it /dev/input/eventN, and busybox's acpid, reading those,
# runs PWRF/00000080 of its config directory on KEY_POWER: an orderly
# poweroff, which the guest logs as its own.
start_acpid() {
	mkdir -p /tmp/acpi/PWRF
	cat >/tmp/acpi/PWRF/00000080 <<-'EOF'
	#!/bin/sh
	export PATH=/bin
	exec >/dev/console 2>&1
	echo "SYSTEST: acpid power button"
	sync
	if mount -o remount,ro / 2>/dev/null; then ro=ok; else ro=no; fi
	echo "SYSTEST: orderly poweroff remount-ro=$ro"
	poweroff -f
	EOF
	chmod 755 /tmp/acpi/PWRF/00000080
	inputs=$(sed -n 's/^N: Name="\(.*\)"/\1/p' /proc/bus/input/devices |
		tr ' ' _ | paste -sd, -)
	if acpid -c /tmp/acpi -l /tmp/acpid.log -p /tmp/acpid.pid; then
		echo "SYSTEST: acpid started inputs=$inputs" \
			"events=$(ls /dev/input 2>/dev/null | grep -c event)"
	else
		echo "SYSTEST: acpid failed inputs=$inputs"
	fi
}
start_acpid

dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace' | sed 's/^/SYSTEST: dmesg-bad /'
echo "SYSTEST: ready action=$action"

case "$action" in
poweroff)
	poweroff -f
	;;
reboot)
	reboot -f
	;;
esac
export PS1='guest# '
exec setsid cttyhack sh
