#!/bin/sh
# /init of the Linux guests of the system tier (busybox sh, static).
#
# Prints "SYSTEST: init" as soon as it runs, a small workload (files written
# and checked in tmpfs, /proc/uptime), the facts the tests check, then acts
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
