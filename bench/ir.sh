#!/bin/sh
# bench/ir.sh - instructions per call of the hot operations, counted by
# callgrind: `make bench-ir` runs it.
#
#   bench/ir.sh PATH_TO_IR_BINARY [--ops K] [--json]
#
# For each of get, touch, publish and next, runs bench/ir under
# valgrind --tool=callgrind with collection on only inside ir_<op> (the
# function holding the loop of K calls), reads the total Ir of the output
# file and divides it by K. The count includes the loop's own few
# instructions per call; nothing is subtracted. With --json, one result
# line per operation goes to standard output, for bench/run, and the
# table to standard error.
#
# bench/ir in a build tree is a libtool wrapper script: it is run through
# the build tree's libtool (--mode=execute), which hands valgrind the real
# binary and the path of the uninstalled libsesh; without that libtool,
# the real binary is taken from .libs/ beside the wrapper.
set -eu

me=${0##*/}

usage() {
	echo "usage: $me PATH_TO_IR_BINARY [--ops K] [--json]" >&2
	exit 2
}

[ $# -ge 1 ] || usage
bin=$1
shift
ops=10000
json=0
while [ $# -gt 0 ]; do
	case $1 in
	--ops)
		[ $# -ge 2 ] || usage
		ops=$2
		shift 2
		;;
	--ops=*)
		ops=${1#--ops=}
		shift
		;;
	--json)
		json=1
		shift
		;;
	*)
		usage
		;;
	esac
done
case $ops in
'' | *[!0-9]* | 0*) usage ;;
esac
[ -f "$bin" ] || {
	echo "$me: no such program: $bin" >&2
	exit 1
}
command -v valgrind >/dev/null 2>&1 || {
	echo "$me: valgrind is not installed (apt-get install valgrind)" >&2
	exit 1
}

# How to run the program: a compiled binary as it is; a libtool wrapper
# through libtool, or as .libs/NAME with the build tree's libraries.
dir=$(cd "$(dirname "$bin")" && pwd)
name=${bin##*/}
bin=$dir/$name
top=$(dirname "$dir")
run=
case $(sed -n 1p "$bin" 2>/dev/null || true) in
'#!'*)
	if [ -x "$top/libtool" ]; then
		run="$top/libtool --mode=execute"
	elif [ -x "$dir/.libs/$name" ]; then
		bin=$dir/.libs/$name
		LD_LIBRARY_PATH=$top/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
		export LD_LIBRARY_PATH
	else
		echo "$me: $bin is a script, and neither $top/libtool" \
			"nor $dir/.libs/$name exists" >&2
		exit 1
	fi
	;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sesh-ir.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$json" = 1 ]; then
	exec 3>&2
else
	exec 3>&1
fi

printf '# instructions per call, callgrind, %s calls each' "$ops" >&3
printf ' (including the loop: a few per call)\n' >&3
printf '%-10s %16s\n' op instructions/op >&3

for op in get touch publish next; do
	out=$tmp/callgrind.$op
	# $run is empty or "PATH/libtool --mode=execute": split on purpose.
	# shellcheck disable=SC2086
	if ! $run valgrind --tool=callgrind --callgrind-out-file="$out" \
		--toggle-collect="ir_$op" --collect-atstart=no \
		--trace-children=no "$bin" --ops "$ops" \
		>"$tmp/log" 2>&1; then
		echo "$me: $op: the run under valgrind failed:" >&2
		cat "$tmp/log" >&2
		exit 1
	fi
	ir=$(sed -n 's/^totals: *\([0-9][0-9]*\).*/\1/p' "$out" | head -n 1)
	[ -n "$ir" ] ||
		ir=$(sed -n 's/^summary: *\([0-9][0-9]*\).*/\1/p' "$out" |
			head -n 1)
	if [ -z "$ir" ] || [ "$ir" = 0 ]; then
		echo "$me: $op: no instructions counted in ir_$op" \
			"(was it inlined or renamed?)" >&2
		exit 1
	fi
	per=$(awk -v ir="$ir" -v k="$ops" 'BEGIN { printf "%.1f", ir / k }')
	printf '%-10s %16s\n' "$op" "$per" >&3
	if [ "$json" = 1 ]; then
		printf '{"case": "ir.%s", "system": "sesh", ' "$op"
		printf '"params": {"ops": %s}, ' "$ops"
		printf '"instructions_per_op": %s}\n' "$per"
	fi
done
