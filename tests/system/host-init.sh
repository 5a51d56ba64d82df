#!/bin/sh
# /init of the host VM of the system tier (busybox sh).
#
# Loads kvm and kvm-amd, tun and bridge (the guests' taps), brings lo up,
# starts the hypervisor daemon, then serves the harness on the
# virtio-serial port named "systest.0" with a line protocol:
#   harness -> host:  @@CMD <id> <timeout_s> <base64 of a shell command>
#   host -> harness:  @@OUT <id>
#                     <the command's stdout+stderr, base64, several lines>
#                     @@RC <id> <exit status>
# The host announces itself with "@@READY <kernel release>" once the daemon
# answers, or "@@FAIL <reason>" (then it keeps serving so that the harness
# can collect logs).
export PATH=/bin:/usr/local/bin
export XL_SOCKET=/run/xen.sock

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /run /var/log /var/lib/xen /dev/pts
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
echo "host: $(uname -r), $(nproc) CPUs, $(sed -n 's/MemTotal: *//p' /proc/meminfo)"

status="@@READY $(uname -r)"
for m in $(cat /lib/modules/order); do
	insmod "/lib/modules/$m" || status="@@FAIL insmod $m failed"
done
# In the host VM's clock the RTC date is the truth the guests compare to.
hwclock -s -u 2>/dev/null
if [ ! -c /dev/kvm ]; then
	status="@@FAIL /dev/kvm did not appear (svm: $(grep -c svm /proc/cpuinfo))"
fi
# Taps (the daemon opens /dev/net/tun with a vif's name; the harness makes
# persistent ones with tunctl): devtmpfs makes the node when tun loads,
# mknod is the fallback.  Anything on 127.0.0.1 needs lo up.
if [ ! -c /dev/net/tun ]; then
	mkdir -p /dev/net
	mknod /dev/net/tun c 10 200
fi
[ -c /dev/net/tun ] || status="@@FAIL no /dev/net/tun"
ip link set lo up

xen --socket "$XL_SOCKET" --state-dir /var/lib/xen --foreground \
	--log /var/log/xen.log </dev/null >/var/log/xen.stderr 2>&1 &
echo $! >/run/xen.pid
i=0
until xl list >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		status="@@FAIL the daemon did not answer: $(cat /var/log/xen.stderr)"
		break
	fi
	sleep 0.1
done
echo "host: $status"

chan=
i=0
while [ -z "$chan" ] && [ $i -lt 100 ]; do
	for p in /sys/class/virtio-ports/*; do
		[ "$(cat "$p/name" 2>/dev/null)" = systest.0 ] &&
			chan=/dev/${p##*/}
	done
	i=$((i + 1))
	[ -n "$chan" ] && [ -c "$chan" ] || { chan=; sleep 0.1; }
done
if [ -z "$chan" ]; then
	echo "host: no virtio-serial port systest.0: $(ls /sys/class/virtio-ports 2>&1)"
	poweroff -f
fi
exec 3<>"$chan"
echo "$status" >&3
# Each command is logged to /run/channel.log (for post-mortems).
while IFS=' ' read -r tag id tmo b64 <&3; do
	[ "$tag" = "@@CMD" ] || continue
	echo "$(cut -d' ' -f1 /proc/uptime) start $id" >>/run/channel.log
	echo "$b64" | base64 -d >/tmp/.cmd 2>/dev/null
	timeout -s KILL "$tmo" sh /tmp/.cmd </dev/null >/tmp/.out 2>&1
	rc=$?
	{
		echo "@@OUT $id"
		base64 /tmp/.out
		echo "@@RC $id $rc"
	} >&3
	echo "$(cut -d' ' -f1 /proc/uptime) end $id $rc" >>/run/channel.log
done
echo "host: command channel closed"
poweroff -f
