#!/bin/sh
# test_mcp_e2e.sh - examples/mcp-prefork against the official MCP
# TypeScript SDK client (tests/e2e/: the SDK's version is pinned in
# package.json and package-lock.json, installed with `npm ci`).
#
# Starts two servers: four workers, and one worker whose sessions idle out
# after a second; runs tests/e2e/e2e.mjs against them (initialize, tools,
# a cut stream resumed with Last-Event-ID, a second client adopting the
# session, requests on several workers, DELETE, expiry, 50 clients at
# once). Skipped only where node or npm is absent. Run by `make check`,
# which sets SESH_MCP_SERVER and SESH_E2E_SRC; by hand:
#   SESH_MCP_SERVER=build/examples/mcp-prefork/mcp-prefork \
#     SESH_E2E_SRC=tests/e2e sh tests/test_mcp_e2e.sh
set -u

SERVER=${SESH_MCP_SERVER:-./examples/mcp-prefork/mcp-prefork}
SRC=${SESH_E2E_SRC:-$(dirname "$0")/e2e}
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "test_mcp_e2e: node or npm is not installed; skipped" >&2
	exit 77
fi
if [ ! -x "$SERVER" ]; then
	echo "test_mcp_e2e: no server at $SERVER (configure found no" \
		"libmicrohttpd or jansson); skipped" >&2
	exit 77
fi

# The SDK, installed once per build tree and again when the lock changes.
work=${SESH_E2E_WORK:-$(pwd)/tests/e2e-run}
mkdir -p "$work" || exit 1
if ! cmp -s "$SRC/package-lock.json" "$work/package-lock.json" ||
	[ ! -d "$work/node_modules/@modelcontextprotocol/sdk" ]; then
	cp "$SRC/package.json" "$SRC/package-lock.json" "$work/" || exit 1
	if ! (cd "$work" && npm ci --no-audit --no-fund --loglevel=error) \
		>"$work/npm.log" 2>&1; then
		echo "test_mcp_e2e: npm ci failed:" >&2
		cat "$work/npm.log" >&2
		rm -f "$work/package-lock.json"
		exit 1
	fi
fi
cp "$SRC/e2e.mjs" "$work/" || exit 1

tmp=$(mktemp -d) || exit 1
pids=
domains="e2e4-$$ e2e1-$$"
cleanup() {
	for p in $pids; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $pids; do
		wait "$p" 2>/dev/null
	done
	for d in $domains; do
		rm -f "/dev/shm/sesh.$d"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

# start NAME ARGS...: a server in the background; its URL in $url.
start() {
	name=$1
	shift
	"$SERVER" --port 0 --unlink-at-exit "$@" >"$tmp/$name.out" \
		2>"$tmp/$name.err" &
	pids="$pids $!"
	url=
	for _ in $(seq 100); do
		url=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' \
			"$tmp/$name.out")
		[ -n "$url" ] && return 0
		sleep 0.05
	done
	echo "test_mcp_e2e: the server ($name) did not start:" >&2
	cat "$tmp/$name.out" "$tmp/$name.err" >&2
	exit 1
}

start four --workers 4 --domain "e2e4-$$" --log-streams
url4=$url
start one --workers 1 --idle-ttl 1 --domain "e2e1-$$"
url1=$url

rc=0
(cd "$work" && node e2e.mjs "$url4" "$url1") || rc=1
if grep -q "signal\|AddressSanitizer\|runtime error" "$tmp/four.err" \
	"$tmp/one.err"; then
	echo "test_mcp_e2e: a worker failed:" >&2
	grep -h "signal\|AddressSanitizer\|runtime error" "$tmp/four.err" \
		"$tmp/one.err" >&2
	rc=1
fi
# A cut stream resumed on another worker than the one that opened it:
# the resumes of check 2, 3 and 5 land wherever the kernel hands the GET.
moved=$(awk '/ opened by / { by[$3] = $6 }
	/ resumed by / { if ($3 in by && by[$3] != $6) n++ }
	END { print n + 0 }' "$tmp/four.err")
if [ "$moved" -gt 0 ]; then
	echo "ok - $moved cut streams resumed on another worker than the" \
		"one that opened them"
else
	echo "not ok - no cut stream was resumed on another worker" >&2
	rc=1
fi
if [ $rc -ne 0 ]; then
	echo "--- server logs" >&2
	grep -hv "Closing connection\| opened by \| resumed by " \
		"$tmp/four.err" "$tmp/one.err" |
		tail -n 40 >&2
fi
exit $rc
