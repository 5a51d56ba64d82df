#!/bin/sh
# /bin/systest in the system tier's guests (busybox sh): the workloads the
# tests type at the guest's shell, each ending in one "SYSTEST:" line.
#
#   systest disk-write DIR N TAG  N files DIR/f001.. of known content (file
#                                 i: the line "systest TAG file i" repeated
#                                 to 4 KiB * (1 + 7i mod 64)), a manifest
#                                 DIR/MANIFEST (sha256sum), sync
#       -> SYSTEST: disk write ok N files manifest=SHA256-OF-MANIFEST
#   systest disk-verify DIR       sync, drop the page cache (so that the
#                                 files are read from the disk), check them
#                                 against the manifest
#       -> SYSTEST: disk verify ok N files manifest=SHA256
#          SYSTEST: disk verify FAILED bad=K of N: NAMES... manifest=SHA256
#          (SHA256 of the manifest the files make now: the harness compares
#          it with the one it computes itself)
#   systest ro-check DEV          a disk that must be read-only: its sysfs
#                                 ro flag, BLKROGET, a raw write, an ext4
#                                 mount (ro) and a write into it, and its
#                                 /bin/busybox against ours
#       -> SYSTEST: ro vdb sysfs_ro=1 getro=1 write=refused fs_write=refused
#                   mount_ro=ok content=same
#   systest net-up ADDR/LEN [IF]  a static address on IF (eth0), link up
#       -> SYSTEST: net-up eth0 addr=ADDR/LEN state=up mac=..
#   systest ping HOST [COUNT]     -> SYSTEST: ping HOST sent=3 received=3
#   systest seq-recv PORT         the TCP sequence checker (seqstream recv)
#                                 in the background; its report is a
#                                 "SYSTEST: seq ..." line at the stream's end
#   systest rng-read              64 bytes from /dev/hwrng (the rng Linux
#                                 chose: rng_current)
#       -> SYSTEST: rng read bytes=64 current=virtio_rng.0
#   systest shutdown              sync, remount / read-only, poweroff -f
export PATH=/bin

fail() {
	echo "SYSTEST: $*"
	exit 1
}

disk_write() {
	dir=$1 n=$2 tag=$3
	[ -n "$tag" ] || fail "disk write usage: disk-write DIR N TAG"
	mkdir -p "$dir" && cd "$dir" || fail "disk write cannot use $dir"
	rm -f f[0-9][0-9][0-9] MANIFEST
	i=1
	while [ $i -le "$n" ]; do
		size=$((4096 * (1 + (i * 7) % 64)))
		f=f$(printf %03d $i)
		yes "systest $tag file $i" | head -c $size >$f ||
			fail "disk write FAILED writing $dir/$f"
		i=$((i + 1))
	done
	sha256sum f[0-9][0-9][0-9] >MANIFEST.new &&
		mv MANIFEST.new MANIFEST || fail "disk write FAILED manifest"
	sync
	echo "SYSTEST: disk write ok $n files" \
		"manifest=$(sha256sum <MANIFEST | cut -d' ' -f1)"
}

disk_verify() {
	dir=$1
	cd "$dir" 2>/dev/null || fail "disk verify FAILED no directory $dir"
	[ -f MANIFEST ] || fail "disk verify FAILED no $dir/MANIFEST"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	n=$(wc -l <MANIFEST)
	bad=$(sha256sum -c MANIFEST 2>&1 | grep -v ': OK$' | tr '\n' ' ')
	now=$(sha256sum f[0-9][0-9][0-9] 2>/dev/null | sha256sum | cut -d' ' -f1)
	if [ -z "$bad" ]; then
		echo "SYSTEST: disk verify ok $n files manifest=$now"
	else
		echo "SYSTEST: disk verify FAILED bad=$(echo "$bad" |
			grep -o FAILED | wc -l) of $n: $bad manifest=$now"
	fi
}

ro_check() {
	dev=$1
	b=${dev##*/}
	sys_ro=$(cat /sys/block/$b/ro 2>/dev/null)
	getro=$(blockdev --getro $dev 2>&1)
	if err=$(dd if=/dev/zero of=$dev bs=4096 count=1 conv=fsync 2>&1); then
		write=accepted
	else
		write=refused
		echo "SYSTEST: ro $b write error: $(echo "$err" | head -n 1)"
	fi
	mkdir -p /mnt/$b
	mount_ro=failed fs_write=untried content=unread
	if mount -t ext4 -o ro $dev /mnt/$b 2>/dev/null; then
		mount_ro=ok
		if touch /mnt/$b/written 2>/dev/null; then
			fs_write=accepted
		else
			fs_write=refused
		fi
		if [ "$(sha256sum </mnt/$b/bin/busybox)" = \
		     "$(sha256sum </bin/busybox)" ]; then
			content=same
		else
			content=different
		fi
		umount /mnt/$b
	fi
	echo "SYSTEST: ro $b sysfs_ro=$sys_ro getro=$getro write=$write" \
		"fs_write=$fs_write mount_ro=$mount_ro content=$content"
}

net_up() {
	addr=$1 ifc=${2:-eth0}
	ip addr add "$addr" dev "$ifc" && ip link set "$ifc" up ||
		fail "net-up $ifc FAILED"
	i=0
	while [ "$(cat /sys/class/net/$ifc/operstate)" != up ] &&
	      [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	echo "SYSTEST: net-up $ifc addr=$addr" \
		"state=$(cat /sys/class/net/$ifc/operstate)" \
		"mac=$(cat /sys/class/net/$ifc/address)"
}

ping_host() {
	host=$1 count=${2:-3}
	out=$(ping -c "$count" -W 5 "$host" 2>&1)
	# "3 packets transmitted, 3 packets received, 0% packet loss"
	# shellcheck disable=SC2046 # its fields
	set -- $(echo "$out" | awk '/packets transmitted/ { print $1, $4 }')
	echo "SYSTEST: ping $host sent=${1:-0} received=${2:-0}" \
		"$(echo "$out" | sed -n 's/^round-trip.*= /rtt=/p' | tr ' ' _)"
}

cmd=$1
shift
case "$cmd" in
disk-write) disk_write "$@" ;;
disk-verify) disk_verify "$@" ;;
ro-check) ro_check "$@" ;;
net-up) net_up "$@" ;;
ping) ping_host "$@" ;;
seq-recv) seqstream recv "$1" -t 300 -p 10 & ;;
rng-read)
	echo "SYSTEST: rng read" \
		"bytes=$(timeout 60 head -c 64 /dev/hwrng 2>/dev/null | wc -c)" \
		"current=$(cat /sys/class/misc/hw_random/rng_current)"
	;;
shutdown)
	sync
	if err=$(mount -o remount,ro / 2>&1); then
		echo "SYSTEST: shutdown remount-ro=ok"
	else
		echo "SYSTEST: shutdown remount-ro=failed $err"
	fi
	poweroff -f
	;;
*)
	fail "usage: systest disk-write|disk-verify|ro-check|net-up|ping|" \
		"seq-recv|rng-read|shutdown"
	;;
esac
