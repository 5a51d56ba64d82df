#!/bin/sh
# The table `make fuzz-long` ends with: per target, the executions and
# exec/s libFuzzer reported (-print_final_stats) and the findings (files
# in the target's artifacts directory, and whether the run failed).
# Usage: summary.sh DIR TARGET...   (DIR holds <target>.log, artifacts/)
dir=$1
shift
printf '%-9s %12s %8s %9s  %s\n' target executions exec/s findings log
status=0
for t in "$@"; do
	log=$dir/$t.log
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" 2>/dev/null)
	found=$(find "$dir/artifacts/$t" -type f 2>/dev/null | wc -l)
	if ! grep -q '^Done [0-9]* runs' "$log" 2>/dev/null; then
		found="$found+failed"
		status=1
	elif [ "$found" -gt 0 ]; then
		status=1
	fi
	printf '%-9s %12s %8s %9s  %s\n' "$t" "${runs:-?}" "${rate:-?}" \
		"$found" "$log"
done
exit $status
