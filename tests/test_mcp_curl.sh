#!/bin/sh
# test_mcp_curl.sh - smoke test of the prefork MCP server with curl.
#
# Starts examples/mcp-prefork/mcp-prefork (or $SESH_MCP_SERVER) with two
# workers on a free port and a domain of its own, then speaks MCP
# Streamable HTTP to it with curl: initialize, the transport errors (no
# session, unknown session, bad protocol version, bad Origin, malformed
# JSON), tools/list and tools/call, a count whose response ends early and
# is resumed with GET and Last-Event-ID, requests spread over the
# workers, a worker killed and forked again, and DELETE. The server is
# stopped and the domain removed at the end, whatever happens. Exit 0 if
# every check passes, 1 if one
# fails, 77 (skip) without curl or without the server binary.

SERVER=${SESH_MCP_SERVER:-./examples/mcp-prefork/mcp-prefork}
SHM=${SESH_SHM_DIR:-/dev/shm}
DOMAIN="mcp-curl-$$"

if ! command -v curl >/dev/null 2>&1; then
	echo "test_mcp_curl: curl is not installed; skipped"
	exit 77
fi
if [ ! -x "$SERVER" ]; then
	echo "test_mcp_curl: no server at $SERVER (set SESH_MCP_SERVER); skipped"
	exit 77
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mcp-curl.XXXXXX") || exit 1
PID=

cleanup() {
	if [ -n "$PID" ]; then
		kill -TERM "$PID" 2>/dev/null
		i=0
		while kill -0 "$PID" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -f "$SHM/sesh.$DOMAIN"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

"$SERVER" --port 0 --workers 2 --domain "$DOMAIN" --unlink-at-exit \
	>"$TMP/out" 2>"$TMP/err" &
PID=$!

i=0
while ! grep -q '^listening on ' "$TMP/out" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$PID" 2>/dev/null; then
		echo "test_mcp_curl: the server did not start"
		cat "$TMP/err"
		exit 1
	fi
	sleep 0.05
done
PORT=$(sed -n 's|^listening on http://[^ ]*:\([0-9]*\)/mcp .*|\1|p' \
	"$TMP/out")
URL="http://127.0.0.1:$PORT/mcp"
echo "# server on $URL, domain $DOMAIN"

FAILED=0
N=0
ok() {
	N=$((N + 1))
	echo "ok $N - $1"
}
not_ok() {
	N=$((N + 1))
	FAILED=1
	echo "not ok $N - $1"
	[ -n "$2" ] && sed 's/^/#   /' "$2"
}
# check DESCRIPTION FILE PATTERN...: every grep pattern is in FILE.
check() {
	desc=$1
	file=$2
	shift 2
	for p in "$@"; do
		if ! grep -q -- "$p" "$file"; then
			not_ok "$desc (no '$p')" "$file"
			return
		fi
	done
	ok "$desc"
}

JSON='Content-Type: application/json'
BOTH='Accept: application/json, text/event-stream'
VER='MCP-Protocol-Version: 2025-11-25'

# post NAME BODY [curl options...]: POST BODY; headers and body in NAME.
post() {
	name=$1
	body=$2
	shift 2
	curl -sS -i --max-time 20 -X POST "$URL" -H "$JSON" "$@" \
		--data-binary "$body" >"$TMP/$name" 2>&1
}

# 1. initialize
post init '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{
	"protocolVersion":"2025-11-25","capabilities":{},
	"clientInfo":{"name":"curl-test","version":"1.0"}}}' -H "$BOTH"
SID=$(sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: *\([!-~]*\).*/\1/p' "$TMP/init" |
	tr -d '\r')
if grep -q '^HTTP/1.1 200' "$TMP/init" && [ -n "$SID" ] &&
	grep -q '"protocolVersion":"2025-11-25"' "$TMP/init"; then
	ok "initialize: 200, Mcp-Session-Id $SID"
else
	not_ok "initialize: 200 with Mcp-Session-Id" "$TMP/init"
	exit 1
fi
SESS="Mcp-Session-Id: $SID"
post initialized '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
	-H "$BOTH" -H "$SESS" -H "$VER"
check "notification: 202" "$TMP/initialized" '^HTTP/1.1 202'

# 2. transport errors
post nosess '{"jsonrpc":"2.0","id":2,"method":"ping"}' -H "$BOTH" -H "$VER"
check "no Mcp-Session-Id: 400" "$TMP/nosess" '^HTTP/1.1 400'
post unknown '{"jsonrpc":"2.0","id":2,"method":"ping"}' -H "$BOTH" \
	-H "$VER" -H 'Mcp-Session-Id: 0123456789abcdef0123456789abcdef'
check "unknown session: 404, -32001" "$TMP/unknown" '^HTTP/1.1 404' \
	'"code":-32001' 'Session not found'
post badver '{"jsonrpc":"2.0","id":2,"method":"ping"}' -H "$BOTH" \
	-H "$SESS" -H 'MCP-Protocol-Version: 1999-01-01'
check "unsupported MCP-Protocol-Version: 400" "$TMP/badver" \
	'^HTTP/1.1 400'
post origin '{"jsonrpc":"2.0","id":2,"method":"ping"}' -H "$BOTH" \
	-H "$SESS" -H "$VER" -H 'Origin: http://evil.example'
check "bad Origin: 403" "$TMP/origin" '^HTTP/1.1 403'
post parse '{"jsonrpc":"2.0","id":' -H "$BOTH" -H "$SESS" -H "$VER"
check "malformed JSON: parse error" "$TMP/parse" '^HTTP/1.1 400' \
	'"code":-32700'
post ping '{"jsonrpc":"2.0","id":3,"method":"ping"}' -H "$BOTH" \
	-H "$SESS" -H "$VER"
check "ping after the errors: {}" "$TMP/ping" '^HTTP/1.1 200' \
	'"id":3,"result":{}'

# 3. tools
post list '{"jsonrpc":"2.0","id":4,"method":"tools/list"}' -H "$BOTH" \
	-H "$SESS" -H "$VER"
check "tools/list: echo, count, whoami" "$TMP/list" '"name":"echo"' \
	'"name":"count"' '"name":"whoami"' '"inputSchema"'
post echo '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{
	"name":"echo","arguments":{"text":"hello, sesh"}}}' -H "$BOTH" \
	-H "$SESS" -H "$VER"
check "tools/call echo (SSE)" "$TMP/echo" 'text/event-stream' \
	'^id: r[0-9a-f]*:[0-9]' '"text":"hello, sesh"'
post echojson '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{
	"name":"echo","arguments":{"text":"only json"}}}' \
	-H 'Accept: application/json' -H "$SESS" -H "$VER"
check "tools/call echo (JSON only)" "$TMP/echojson" \
	'application/json' '"id":6,"result".*"text":"only json"'

# 4. count with close_after=2, then resume with GET and Last-Event-ID
post count '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{
	"name":"count","arguments":{"n":5,"delay_ms":50,"close_after":2}}}' \
	-H "$BOTH" -H "$SESS" -H "$VER"
tr -d '\r' <"$TMP/count" | sed -n 's/^data: {.*"data":"\(count [0-9]*\)".*/\1/p;
	s/^data: {.*"text":"\(counted [0-9]*\)".*/\1/p' >"$TMP/count.got"
printf 'count 1\ncount 2\n' >"$TMP/count.want"
if cmp -s "$TMP/count.got" "$TMP/count.want" &&
	grep -q '^retry: ' "$TMP/count"; then
	ok "count close_after=2: 2 notifications, retry, end"
else
	not_ok "count close_after=2: 2 notifications, retry, end" \
		"$TMP/count"
fi
LAST=$(tr -d '\r' <"$TMP/count" | sed -n 's/^id: //p' | tail -n 1)
curl -sS -i --max-time 20 "$URL" -H 'Accept: text/event-stream' \
	-H "$SESS" -H "$VER" -H "Last-Event-ID: $LAST" >"$TMP/resume" 2>&1
tr -d '\r' <"$TMP/resume" | sed -n 's/^data: {.*"data":"\(count [0-9]*\)".*/\1/p;
	s/^data: {.*"text":"\(counted [0-9]*\)".*/\1/p' >"$TMP/resume.got"
printf 'count 3\ncount 4\ncount 5\ncounted 5\n' >"$TMP/resume.want"
if cmp -s "$TMP/resume.got" "$TMP/resume.want"; then
	ok "GET Last-Event-ID $LAST: count 3..5 and the result, once, in order"
else
	not_ok "GET Last-Event-ID: count 3..5 and the result, once, in order" \
		"$TMP/resume"
fi

# 5. whoami on 20 connections: more than one worker answers
: >"$TMP/pids"
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
	# The body ends without a newline: add one for sed and wc.
	{
		curl -sS --max-time 10 -X POST "$URL" -H "$JSON" \
			-H 'Accept: application/json' -H "$SESS" -H "$VER" \
			-d '{"jsonrpc":"2.0","id":8,"method":"tools/call",
			"params":{"name":"whoami","arguments":{}}}'
		echo
	} | sed -n 's/.*"text":"pid \([0-9]*\)".*/\1/p' >>"$TMP/pids"
done
NPIDS=$(sort -u "$TMP/pids" | wc -l)
NANS=$(wc -l <"$TMP/pids")
if [ "$NANS" -eq 20 ] && [ "$NPIDS" -gt 1 ]; then
	ok "whoami: 20 answers from $NPIDS workers"
else
	not_ok "whoami: 20 answers from more than one worker ($NANS answers, $NPIDS pids)"
fi

# 6. A worker killed with SIGKILL: the master forks another, and the
# session lives on (it is in the sesh domain, not in the worker).
VICTIM=$(head -n 1 "$TMP/pids")
kill -KILL "$VICTIM" 2>/dev/null
i=0
while ! grep -q "worker $VICTIM died of signal 9" "$TMP/err" ||
	[ "$(grep -c 'is pid' "$TMP/err")" -lt 1 ]; do
	i=$((i + 1))
	[ $i -gt 60 ] && break
	sleep 0.1
done
if grep -q "worker $VICTIM died of signal 9" "$TMP/err" &&
	grep -q 'is pid' "$TMP/err"; then
	ok "a worker killed with SIGKILL is forked again"
else
	not_ok "a worker killed with SIGKILL is forked again" "$TMP/err"
fi
: >"$TMP/pids2"
for i in 1 2 3 4 5 6 7 8 9 10; do
	{
		curl -sS --max-time 10 -X POST "$URL" -H "$JSON" \
			-H 'Accept: application/json' -H "$SESS" -H "$VER" \
			-d '{"jsonrpc":"2.0","id":10,"method":"tools/call",
			"params":{"name":"whoami","arguments":{}}}'
		echo
	} | sed -n 's/.*"text":"pid \([0-9]*\)".*/\1/p' >>"$TMP/pids2"
done
if [ "$(wc -l <"$TMP/pids2")" -eq 10 ] &&
	! grep -qx "$VICTIM" "$TMP/pids2"; then
	ok "the session outlives the killed worker: 10 answers from others"
else
	not_ok "the session outlives the killed worker" "$TMP/pids2"
fi

# 7. DELETE, then the session is gone
curl -sS -i --max-time 10 -X DELETE "$URL" -H "$SESS" -H "$VER" \
	>"$TMP/delete" 2>&1
check "DELETE: 200" "$TMP/delete" '^HTTP/1.1 200'
post gone '{"jsonrpc":"2.0","id":9,"method":"ping"}' -H "$BOTH" \
	-H "$SESS" -H "$VER"
check "after DELETE: 404, -32001" "$TMP/gone" '^HTTP/1.1 404' \
	'"code":-32001'

# No worker died on the way but the one we killed.
if grep 'died of signal' "$TMP/err" | grep -qv "worker $VICTIM died of signal 9"; then
	not_ok "no worker crashed" "$TMP/err"
else
	ok "no worker crashed"
fi

echo "1..$N"
exit $FAILED
