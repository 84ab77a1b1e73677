#!/bin/sh
# quickstart.sh - set up, build and run the demo; `./quickstart.sh check`
# also runs the whole test suite on a plain and a sanitizer build.
#
# Idempotent. Run as root, it installs the missing Debian build
# dependencies; otherwise it prints the apt-get line to run and stops.
set -eu

cd "$(dirname "$0")"
top=$(pwd)
mode=${1:-demo}
case "$mode" in
demo | check) ;;
-h | --help)
	echo "usage: ./quickstart.sh [check]"
	echo "  (no argument)  install build dependencies, build, run the demo"
	echo "  check          the same set-up, then make check on a plain build"
	echo "                 (build/) and a sanitizer build (build-asan/)"
	exit 0
	;;
*)
	echo "quickstart.sh: unknown argument '$mode' (try --help)" >&2
	exit 2
	;;
esac

say() { printf 'quickstart: %s\n' "$*"; }

# --- dependencies ----------------------------------------------------------
deps="autoconf automake libtool autoconf-archive pkg-config make gcc g++
      liburcu-dev libatomic-ops-dev libjemalloc-dev libsqlite3-dev
      libcmocka-dev libbenchmark-dev
      libhiredis-dev redis-tools gnuplot-nox jq valgrind
      libmicrohttpd-dev libjansson-dev curl"
# Node and npm for the end-to-end test of the MCP example with the
# official SDK: Debian's, unless node and npm are there already.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	deps="$deps nodejs npm"
fi
missing=
for p in $deps; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		say "installing:$missing"
		export DEBIAN_FRONTEND=noninteractive
		if ! apt-get install -y --no-install-recommends $missing; then
			apt-get update
			apt-get install -y --no-install-recommends $missing
		fi
	else
		echo "quickstart: missing build dependencies; run as root:" >&2
		echo "  apt-get install -y --no-install-recommends$missing" >&2
		exit 1
	fi
fi

# --- build -----------------------------------------------------------------
jobs=$(nproc 2>/dev/null || echo 2)

if [ ! -x configure ] || [ configure.ac -nt configure ] ||
	[ Makefile.am -nt Makefile.in ]; then
	say "bootstrapping"
	./bootstrap
fi

# build DIR [configure options]: configure once, then make.
build() {
	dir=$1
	shift
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ] || [ configure -nt "$dir/config.status" ]; then
		say "configuring $dir $*"
		(cd "$dir" && "$top/configure" -q "$@")
	fi
	say "building $dir"
	make -C "$dir" -s -j"$jobs"
}

build build

if [ "$mode" = demo ]; then
	say "running the demo"
	exec ./build/examples/demo
fi

# --- check -----------------------------------------------------------------
pass=0
fail=0
# suite DIR: make check, then add its counts to the totals.
suite() {
	say "make check in $1"
	rc=0
	make -C "$1" -s -j"$jobs" check || rc=$?
	log="$1/test-suite.log"
	p=0 f=0 e=0
	if [ -f "$log" ]; then
		p=$(sed -n 's/^# PASS: *//p' "$log" | head -n 1)
		f=$(sed -n 's/^# FAIL: *//p' "$log" | head -n 1)
		e=$(sed -n 's/^# ERROR: *//p' "$log" | head -n 1)
	fi
	pass=$((pass + ${p:-0}))
	fail=$((fail + ${f:-0} + ${e:-0}))
	if [ "$rc" -ne 0 ]; then
		# The logs of what failed, then count a failure even if make
		# broke before any test ran.
		[ -f "$log" ] && cat "$log"
		[ $((${f:-0} + ${e:-0})) -gt 0 ] || fail=$((fail + 1))
		return 1
	fi
}
status=0
suite build || status=1
build build-asan --enable-sanitizers
suite build-asan || status=1
echo "quickstart: $pass passed, $fail failed"
exit $status
