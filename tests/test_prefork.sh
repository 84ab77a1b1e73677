#!/bin/sh
# test_prefork.sh - the prefork example, run as a user would: a master
# that forks workers, kills one, and runs sesh_reap() itself. It exits 0
# only if a pass recovered the killed worker and idle sessions expired.
# Run by `make check`, which sets SESH_PREFORK; by hand:
#   SESH_PREFORK=examples/prefork sh tests/test_prefork.sh
set -u

SESH_PREFORK=${SESH_PREFORK:-./examples/prefork}
if [ ! -x "$SESH_PREFORK" ]; then
	echo "test_prefork: $SESH_PREFORK not built; skipped" >&2
	exit 77
fi
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT

fail=0
"$SESH_PREFORK" --workers 3 --seconds 2 >"$out" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
	echo "test_prefork: exit status $rc, expected 0" >&2
	fail=1
fi
if ! grep -q "dead process recovered" "$out"; then
	echo "test_prefork: no pass reported recovering the killed worker" >&2
	fail=1
fi
if ! grep -q "sessions expired" "$out"; then
	echo "test_prefork: no pass reported expired sessions" >&2
	fail=1
fi
if [ $fail -ne 0 ]; then
	cat "$out" >&2
	exit 1
fi
echo "test_prefork: ok"
