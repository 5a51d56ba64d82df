#!/bin/sh
# /init of the Linux guests of the system tier (busybox sh, static).
#
# Prints "SYSTEST: init" as soon as it runs, a small workload (files written
# and checked in tmpfs, /proc/uptime), the facts the tests check (fw_cfg's
# sysfs files among them), then acts
# on "systest=" from the kernel command line:
#   poweroff  poweroff -f            reboot  reboot -f
#   shell     an interactive shell on the console (the default)
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp
mount -t tmpfs tmp /tmp
echo "SYSTEST: init pid=$$ uptime=$(cut -d' ' -f1 /proc/uptime)"

action=shell
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	systest=*) action="${arg#systest=}" ;;
	esac
done

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
# its sysfs driver as a module, which the initramfs carries.
fw=/sys/firmware/qemu_fw_cfg
if [ -e /lib/modules/qemu_fw_cfg.ko ]; then
	insmod /lib/modules/qemu_fw_cfg.ko 2>&1 | sed 's/^/SYSTEST: fw_cfg insmod: /'
	if [ -d $fw ]; then
		echo "SYSTEST: fw_cfg rev=$(cat $fw/rev)" \
			"files=$(ls $fw/by_key | wc -l)"
		for k in $fw/by_key/*; do
			[ -d "$k" ] || continue
			n=$(cat $k/name)
			echo "SYSTEST: fw_cfg file key=${k##*/}" \
				"size=$(cat $k/size) name=$n raw=$(cat $k/raw)" \
				"by_name=$(cat $fw/by_name/$n/raw)"
		done
	else
		echo "SYSTEST: fw_cfg absent"
	fi
else
	echo "SYSTEST: fw_cfg no-module"
fi
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
