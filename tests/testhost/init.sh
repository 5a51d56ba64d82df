#!/bin/sh
# /init of the test host (busybox sh; see tests/testhost/README.md).
#
# Mounts the outer machine's "/" (9p tag "root", read-only) and the
# checkout (tag "work", read-write, at its own path), chroots into them,
# loads kvm-amd there and runs the job script named on the kernel command
# line.  The job's output goes to the virtio console; its exit status
# follows as the line "@@TESTHOST-RC <status>", then the host powers off.
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

job= work=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	testhost.job=*) job=${arg#testhost.job=} ;;
	testhost.work=*) work=${arg#testhost.work=} ;;
	esac
done

for m in $(cat /lib/modules/order); do
	insmod "/lib/modules/$m" || echo "testhost: insmod $m failed"
done

out=/dev/hvc0
i=0
while [ ! -c $out ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done

fail() {
	echo "testhost: $*" | tee $out
	echo "@@TESTHOST-RC 125" >$out
	poweroff -f
}

# 9p: a large msize moves files in fewer round trips; the read-only root
# may be cached freely, the checkout is written by both sides and is not.
R=/newroot
mkdir -p $R
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro \
	root $R || fail "cannot mount the machine's / over 9p"
# The tmpfs before the checkout: a checkout under /tmp stays visible.
mount -t tmpfs tmp $R/tmp
mount -t tmpfs run $R/run
mkdir -p "$R$work" 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 work "$R$work" ||
	fail "cannot mount the checkout $work over 9p"

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	chroot $R /bin/sh -c '
	mount -t proc proc /proc
	mount -t sysfs sys /sys
	mount -t devtmpfs dev /dev
	mkdir -p /dev/pts /dev/shm
	mount -t devpts devpts /dev/pts
	mount -t tmpfs tmp /dev/shm
	ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
	modprobe kvm-amd || echo "testhost: modprobe kvm-amd failed"
	# Taps for the virtio-net tests (tests/test_virtio.py).
	modprobe tun 2>/dev/null || echo "testhost: modprobe tun failed"
	out=$1 job=$2
	if [ -c /dev/kvm ]; then
		# Through a pipe, so that the job sees no terminal (as
		# under make), and its status through a file.
		{ HOME=/tmp sh "$job"; echo $? >/run/job.rc; } 2>&1 \
			</dev/null | cat >$out
		rc=$(cat /run/job.rc)
	else
		echo "testhost: /dev/kvm did not appear" >$out
		rc=125
	fi
	sync
	echo "@@TESTHOST-RC $rc" >$out
' testhost-init "$out" "$job"
poweroff -f
