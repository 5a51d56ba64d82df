#!/bin/sh
# The table `make fuzz-long` ends with: per target, the executions and
# exec/s libFuzzer reported (-print_final_stats; for a run stopped before
# its end, its last status line, marked "stopped"), and the findings:
# files in the target's artifacts directory.  Exit 1 if any target found
# something or did not finish.
# Usage: summary.sh DIR TARGET...   (DIR holds <target>.log, artifacts/)
dir=$1
shift
printf '%-9s %12s %8s %9s %9s  %s\n' target executions exec/s replayed \
	findings log
status=0
for t in "$@"; do
	log=$dir/$t.log
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" 2>/dev/null)
	found=$(find "$dir/artifacts/$t" -type f 2>/dev/null | wc -l)
	# fuzz-long's ASan pass over the corpus: "Done N runs"
	replayed=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' \
		"$dir/$t.replay.log" 2>/dev/null)
	note=
	if [ -z "$runs" ]; then
		last=$(grep -a '^#[0-9]' "$log" 2>/dev/null | tail -n 1)
		runs=$(echo "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
		rate=$(echo "$last" | sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p')
		note=" (stopped)"
		status=1
	fi
	[ "$found" -gt 0 ] && status=1
	[ -z "$replayed" ] && status=1
	printf '%-9s %12s %8s %9s %9s  %s%s\n' "$t" "${runs:-?}" \
		"${rate:-?}" "${replayed:-?}" "$found" "$log" "$note"
done
exit $status
