#!/bin/sh
# make demo: start a daemon in a temporary directory, run two counter
# guests, show `xl list` and their consoles, then clean everything up.
set -eu

BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
XEN="$BUILD/bin/xen"
XL="$BUILD/bin/xl"
COUNTER="$BUILD/guests/counter.elf"
DIR=$(mktemp -d /tmp/xen-demo.XXXXXX)
export XL_SOCKET="$DIR/xen.sock"

say() { printf '\n==> %s\n' "$*"; }

# The last whole status line of a counter guest (it may be printing one).
last_status() {
	"$XL" console --dump "$1" |
		grep -E '^COUNTER counter=[0-9]+ .* dirtied=[0-9]+.?$' | tail -n 1
}

cleanup() {
	if [ -f "$DIR/state/xen.pid" ]; then
		kill "$(cat "$DIR/state/xen.pid")" 2>/dev/null || true
	fi
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

# No usable /dev/kvm here (or XEN_TEST_HOST=nested): the same demo in a
# test host, a QEMU VM with kvm-amd inside (tests/testhost/README.md).
if [ -z "${XEN_IN_TEST_HOST:-}" ] &&
   why=$(/usr/bin/python3 tests/testhost/testhost.py needed); then
	echo "demo: $why; starting a test host (QEMU TCG + kvm-amd) to get KVM"
	rm -rf "$DIR"
	trap - EXIT INT TERM
	exec env XEN_BUILD="$BUILD" /usr/bin/python3 tests/testhost/testhost.py \
		run --rundir "$BUILD/testhost-demo" -- sh scripts/demo.sh "$BUILD"
fi

say "Starting the hypervisor daemon: $XEN --socket $XL_SOCKET --state-dir $DIR/state"
"$XEN" --socket "$XL_SOCKET" --state-dir "$DIR/state" --log "$DIR/xen.log"

say "xl info"
"$XL" info

for n in 1 2; do
	cat > "$DIR/counter$n.cfg" <<CFG
# A counter guest: counts, dirties a 4 MiB working set and verifies it.
name = "counter$n"
memory = 64
vcpus = 1
kernel = "$COUNTER"
cmdline = "ws=4M rate=2000 interval=1000"
on_crash = "destroy"
CFG
	say "xl create $DIR/counter$n.cfg"
	"$XL" create "$DIR/counter$n.cfg"
done

say "xl list"
"$XL" list

for i in 1 2 3 4 5; do
	sleep 1
	say "after ${i}s: the last console line of each guest"
	for n in 1 2; do
		printf 'counter%s: ' "$n"
		last_status "counter$n" ||
			echo "(no status line yet)"
	done
done

say "Full console of counter1 (xl console --dump counter1)"
"$XL" console --dump counter1

say "xl destroy counter1; counter2 keeps counting"
"$XL" destroy counter1
sleep 2
"$XL" list
last_status counter2

say "xl destroy counter2"
"$XL" destroy counter2
"$XL" list

say "The daemon's log (xl dmesg)"
"$XL" dmesg

say "Stopping the daemon"
