#!/bin/bash
# test_bench.sh - the benchmark programs, run briefly, so that they cannot
# rot: every case prints well-formed results (percentiles in order, a
# count, a curve), the Redis and SQLite comparisons work, the report and
# its performance bar come out of real output, and the plots render. The
# figures themselves are not judged here: speed is shown by bench/run.
# Run by `make check`, which sets SESH_BENCH_DIR and SESH_BENCH_SRC.
set -u

bin=${SESH_BENCH_DIR:-./bench}
src=${SESH_BENCH_SRC:-$(dirname "$0")/../bench}
stream=$bin/bench_stream
session=$bin/bench_session
if [ ! -x "$stream" ] || [ ! -x "$session" ]; then
	echo "test_bench: benchmark programs not built; skipped" >&2
	exit 77
fi
if ! command -v jq >/dev/null; then
	echo "test_bench: jq is not installed; skipped" >&2
	exit 77
fi
config=$bin/../config.h
has() { grep -q "^#define $1 1" "$config" 2>/dev/null; }

tmp=$(mktemp -d) || exit 1
redis_pid=
cleanup() {
	if [ -n "$redis_pid" ]; then
		redis-cli -s "$tmp/redis.sock" shutdown nosave >/dev/null 2>&1
		kill "$redis_pid" 2>/dev/null
		wait "$redis_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

fail=0
lines=$tmp/all.jsonl
: >"$lines"

# check NAME EXPECTED_RESULTS CMD...: run a program; it must exit 0 and
# print EXPECTED_RESULTS well-formed result lines.
check() {
	name=$1
	want=$2
	shift 2
	if ! "$@" >"$tmp/out" 2>"$tmp/err"; then
		echo "test_bench: $name: exit status $?" >&2
		cat "$tmp/err" >&2
		fail=1
		return
	fi
	got=$(jq -s '[.[] | select(
		(.case | type) == "string" and (.system | type) == "string" and
		(.params | type) == "object" and
		(if .case == "session.memory" then .bytes_per_session > 0
		 else .count > 0 and .p50_ns <= .p95_ns and .p95_ns <= .p99_ns
		   and .p99_ns <= .p999_ns and .p999_ns <= .max_ns
		   and .ops_per_s > 0 and (.curve | length) > 1
		   and .curve[-1][0] == 100 and .curve[-1][1] == .max_ns end))]
		| length' "$tmp/out" 2>&1)
	if [ "$got" != "$want" ]; then
		echo "test_bench: $name: $got good results, expected $want:" >&2
		cat "$tmp/out" "$tmp/err" >&2
		fail=1
		return
	fi
	jq -c 'select(.case != null)' "$tmp/out" >>"$lines"
}

check "machine" 0 "$session" machine
if ! "$session" machine | jq -e '.clock_cost_ns > 0 and .ncpu > 0' >/dev/null; then
	echo "test_bench: bench_session machine printed no clock" >&2
	fail=1
fi

for mode in spin sleep; do
	for sys in sesh uds; do
		check "latency $sys $mode" 1 "$stream" latency --system $sys \
			--size 64 --mode $mode --rate 10000 --seconds 0.3
	done
done
check "latency sesh saturated 16 KiB" 1 "$stream" latency --system sesh \
	--size 16384 --mode spin --rate 0 --seconds 0.3
check "pingpong sesh spin" 1 "$stream" pingpong --system sesh --size 64 \
	--mode spin --seconds 0.3
check "pingpong uds sleep" 1 "$stream" pingpong --system uds --size 64 \
	--mode sleep --seconds 0.3
for sys in sesh uds; do
	check "throughput $sys" 1 "$stream" throughput --system $sys \
		--publishers 2 --size 64 --batch 32 --seconds 0.3
done
check "session ops sesh" 3 "$session" ops --system sesh --resident 1000 \
	--procs 2 --ops 5000
check "session get sesh, reaper running" 1 "$session" ops --system sesh \
	--resident 1000 --procs 1 --ops 5000 --reaper
check "reaper.pass" 1 "$session" reaper --resident 1000 --passes 3
if has HAVE_SQLITE; then
	check "session ops sqlite" 3 "$session" ops --system sqlite \
		--resident 1000 --procs 2 --ops 2000
fi

# Redis: a private server on a Unix socket, as bench/run starts it.
server=$(command -v redis-server || command -v redis-check-rdb || :)
if has HAVE_HIREDIS && [ -n "$server" ] && command -v redis-cli >/dev/null
then
	(cd "$tmp" && exec -a redis-server "$server" --port 0 \
		--unixsocket "$tmp/redis.sock" --unixsocketperm 700 \
		--save '' --appendonly no --daemonize no --dir "$tmp" \
		>"$tmp/redis.log" 2>&1) &
	redis_pid=$!
	for _ in $(seq 100); do
		[ -S "$tmp/redis.sock" ] && break
		sleep 0.05
	done
	check "latency redis" 1 "$stream" latency --system redis --size 64 \
		--mode sleep --rate 10000 --seconds 0.3 \
		--redis-socket "$tmp/redis.sock"
	check "throughput redis" 1 "$stream" throughput --system redis \
		--publishers 1 --size 64 --batch 32 --seconds 0.3 \
		--redis-socket "$tmp/redis.sock"
	check "session ops redis" 3 "$session" ops --system redis \
		--resident 1000 --procs 2 --ops 2000 \
		--redis-socket "$tmp/redis.sock"
	mem_n=2
	has HAVE_SQLITE && mem_n=3
	check "session.memory" $mem_n "$session" memory --resident 1000 \
		--redis-socket "$tmp/redis.sock"
else
	echo "test_bench: no hiredis or Redis server: Redis not tried" >&2
fi

# Instruction counts under callgrind (not under the sanitizers, which
# valgrind cannot run).
if command -v valgrind >/dev/null && ! has SESH_SANITIZERS; then
	if ! "$src/ir.sh" "$bin/ir" --ops 200 --json >"$tmp/ir" 2>"$tmp/irerr" ||
		[ "$(jq -s '[.[] | select(.instructions_per_op > 50)] | length' \
			"$tmp/ir")" != 4 ]; then
		echo "test_bench: bench/ir.sh failed:" >&2
		cat "$tmp/ir" "$tmp/irerr" >&2
		fail=1
	fi
fi

# Bad usage is refused with status 2.
for args in "" "latency" "latency --system nosuch --size 64 --mode spin --rate 1 --seconds 1" \
	"latency --system sesh --size 64 --mode fast --rate 1 --seconds 1" \
	"pingpong --system redis --size 64 --mode sleep --seconds 1" \
	"pingpong --system sesh --size 64 --mode spin --rate 1 --seconds 1"; do
	# shellcheck disable=SC2086
	"$stream" $args >/dev/null 2>&1
	rc=$?
	if [ $rc -ne 2 ]; then
		echo "test_bench: bench_stream $args: exit $rc, expected 2" >&2
		fail=1
	fi
done
"$session" ops --system nosuch --resident 10 --procs 1 --ops 10 >/dev/null 2>&1
rc=$?
if [ $rc -ne 2 ]; then
	echo "test_bench: bench_session with a bad system: exit $rc, expected 2" >&2
	fail=1
fi

# The report of bench/run, from these results.
if [ -s "$lines" ]; then
	echo '[]' >"$tmp/empty.json"
	if ! jq -s --argjson machine '{"cpu": "test", "ncpu": 2, "kernel": "k",
		"quick": true, "clock": "tsc", "clock_cost_ns": 10}' \
		--slurpfile micro "$tmp/empty.json" \
		--slurpfile ir "$tmp/empty.json" --arg skipped "" \
		-f "$src/report.jq" "$lines" >"$tmp/report.json"; then
		echo "test_bench: report.jq failed" >&2
		fail=1
	elif ! jq -e '(.bar | length) == 13 and
		([.results[] | select(.system == "uds" and
			.case == "stream.latency")][0].ratio_p50 != null)' \
		"$tmp/report.json" >/dev/null; then
		echo "test_bench: the report lacks the bar or the ratios" >&2
		fail=1
	elif ! jq -r -f "$src/table.jq" "$tmp/report.json" |
		grep -q 'performance bar'; then
		echo "test_bench: table.jq printed no bar" >&2
		fail=1
	elif command -v gnuplot >/dev/null; then
		if ! "$src/plot" "$tmp/report.json" "$tmp" >"$tmp/plot.log" 2>&1 ||
			[ ! -s "$tmp/latency-stream-spin-64.svg" ] ||
			[ ! -s "$tmp/latency-pingpong-64.svg" ]; then
			echo "test_bench: bench/plot failed:" >&2
			cat "$tmp/plot.log" >&2
			fail=1
		fi
	fi
fi

if [ $fail -ne 0 ]; then
	exit 1
fi
echo "test_bench: ok"
