#!/bin/bash
# test_seshd.sh - end-to-end test of the reaper daemon, seshd.
#
# Starts seshd on domains named after this shell's pid and checks, through
# the sesh tool, what a reaper must do: expire idle sessions and leave the
# others, keep the domain healthy, go on after kill -9, share a domain with
# a second seshd, stop on SIGTERM, follow a domain removed and created
# again, write sessions through to SQLite and say when the database fails,
# refuse a domain whose database is not that of --sqlite, and daemonize
# only once attached. Every wait is a poll against a deadline. The trap
# kills every seshd started here and removes the domains. Run by `make
# check`, which sets SESH_BIN and SESHD_BIN; by hand:
#   SESH_BIN=tools/sesh SESHD_BIN=tools/seshd bash tests/test_seshd.sh
# Exit status: 0 all checks passed, 1 one failed, 77 skipped (no binaries).

set -eu

for exe in "${SESH_BIN:-}" "${SESHD_BIN:-}"; do
	if [ -z "$exe" ] || [ ! -x "$exe" ]; then
		echo "test_seshd: SESH_BIN and SESHD_BIN must name the sesh" \
			"and seshd executables; skipped" >&2
		exit 77
	fi
done

dom="seshd-test-$$-fg"      # foreground daemons
ddom="seshd-test-$$-dm"     # the daemon
pdom="seshd-test-$$-db"     # written through to SQLite
missing="seshd-test-$$-none" # never created
shmdir=${SESH_SHM_DIR:-/dev/shm}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_seshd.XXXXXX")
pids="" # the seshd children not yet waited for

# The daemon of $ddom: not our child, so found by its command line, which
# holds the unique domain name.
daemon_pid() {
	pgrep -f -- "seshd $ddom --interval-ms" || true
}

cleanup() {
	set +e
	for p in $pids $(daemon_pid); do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	for name in "$dom" "$ddom" "$pdom"; do
		"$SESH_BIN" rm "$name" >/dev/null 2>&1
		rm -f "$shmdir/sesh.$name"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

checks=0

ok() {
	checks=$((checks + 1))
	echo "ok   - $*"
}

# fail MESSAGE [FILE...]: report, show the files (logs), and stop.
fail() {
	echo "FAIL - $1"
	shift
	for f in "$@"; do
		echo "       $f:"
		sed 's/^/       | /' "$f"
	done
	exit 1
}

# poll SECONDS COMMAND...: run COMMAND every 50 ms until it succeeds (0)
# or SECONDS have passed (1).
poll() {
	local end
	end=$(($(date +%s%N) + ${1%.*} * 1000000000))
	shift
	until "$@"; do
		if [ "$(date +%s%N)" -gt "$end" ]; then
			return 1
		fi
		sleep 0.05
	done
}

# num KEY: the first number of "KEY": N in the JSON on stdin.
num() {
	sed -n "s/.*\"$1\": *\([0-9][0-9]*\).*/\1/p" | head -n 1
}

stored() { "$SESH_BIN" info "$1" --json | num sessions; }
passes() { "$SESH_BIN" stats "$1" --json | num reaper_passes; }
expired() { "$SESH_BIN" stats "$1" --json | num sessions_expired; }
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }
has() { grep -q -- "$2" "$1"; }
stored_is() { [ "$(stored "$1")" = "$2" ]; }
passes_over() { [ "$(passes "$1")" -gt "$2" ]; }

# forget PID: a child waited for, whose pid may be reused.
forget() { pids=$(echo " $pids " | sed "s/ $1 / /"); }

# health NAME: the exit status of `sesh health`; its output in $tmp/health.
health() {
	local rc=0
	"$SESH_BIN" health "$1" >"$tmp/health" 2>&1 || rc=$?
	return $rc
}
healthy() { health "$1"; }
degraded() {
	local rc=0
	health "$1" || rc=$?
	[ "$rc" -eq 1 ]
}

have_health=yes
if ! "$SESH_BIN" health --help >/dev/null 2>&1; then
	have_health=no
	echo "# sesh has no health verb yet: health checks skipped"
fi

# start LOG ARGS...: start seshd NAME ARGS in the foreground, its stderr in
# LOG, and wait until it has attached. Sets $pid.
start() {
	local log=$1
	shift
	"$SESHD_BIN" "$@" --foreground </dev/null 2>"$log" &
	pid=$!
	pids="$pids $pid"
	poll 5 has "$log" ": started: pid $pid, interval " ||
		fail "seshd $* did not start" "$log"
}

# stop PID LOG: SIGTERM; it must exit 0 within 2 s, with its exit logged.
stop() {
	local rc=0
	kill -TERM "$1"
	poll 2 dead "$1" || fail "seshd $1 still runs 2 s after SIGTERM" "$2"
	wait "$1" || rc=$?
	forget "$1"
	[ "$rc" -eq 0 ] || fail "seshd $1 exited with $rc on SIGTERM" "$2"
	has "$2" ": exiting on SIGTERM" || fail "no exit line" "$2"
}

# --- usage and start-up errors --------------------------------------------

rc=0
"$SESHD_BIN" "$dom" --max-sessions 10 --foreground 2>"$tmp/err" || rc=$?
[ "$rc" -eq 2 ] && has "$tmp/err" "needs --create" ||
	fail "a capacity without --create: status $rc, not 2" "$tmp/err"
rc=0
"$SESHD_BIN" "$dom" --interval-ms 5 --foreground 2>"$tmp/err" || rc=$?
[ "$rc" -eq 2 ] || fail "--interval-ms 5: status $rc, not 2" "$tmp/err"
rc=0
"$SESHD_BIN" --foreground 2>"$tmp/err" || rc=$?
[ "$rc" -eq 2 ] || fail "no NAME: status $rc, not 2" "$tmp/err"
rc=0
"$SESHD_BIN" "$pdom" --sqlite "$tmp/x.db" --sqlite-async --foreground \
	2>"$tmp/err" || rc=$?
[ "$rc" -eq 2 ] && has "$tmp/err" "--sqlite-async is for creating the domain" ||
	fail "--sqlite-async without --create: status $rc, not 2" "$tmp/err"
rc=0
"$SESHD_BIN" "$pdom" --create --sqlite x.db --foreground 2>"$tmp/err" ||
	rc=$?
[ "$rc" -eq 2 ] && has "$tmp/err" "needs an absolute path" ||
	fail "--sqlite with a relative path: status $rc, not 2" "$tmp/err"
rc=0
"$SESHD_BIN" "$pdom" --create --sqlite-async --foreground 2>"$tmp/err" ||
	rc=$?
[ "$rc" -eq 2 ] && has "$tmp/err" "needs --sqlite" ||
	fail "--sqlite-async without --sqlite: status $rc, not 2" "$tmp/err"
[ ! -e "$shmdir/sesh.$pdom" ] && [ ! -e "$tmp/x.db" ] ||
	fail "a usage error created a domain or a database"
ok "usage errors exit 2"

for mode in --foreground ""; do
	rc=0
	# $mode unquoted: empty for the daemon
	"$SESHD_BIN" "$missing" $mode </dev/null >"$tmp/out" 2>"$tmp/err" ||
		rc=$?
	[ "$rc" -eq 1 ] ||
		fail "missing domain ${mode:-as a daemon}: status $rc" \
			"$tmp/err"
	[ "$(wc -l <"$tmp/err")" -eq 1 ] && has "$tmp/err" "^seshd: $missing: " ||
		fail "missing domain ${mode:-as a daemon}: not one line" \
			"$tmp/err"
	[ ! -s "$tmp/out" ] || fail "missing domain: stdout" "$tmp/out"
done
no_missing() { ! pgrep -f -- "seshd $missing" >/dev/null; }
poll 2 no_missing || fail "a seshd of the missing domain is left"
[ ! -e "$shmdir/sesh.$missing" ] || fail "the missing domain was created"
ok "a missing domain without --create: exit 1, one line, no process"

# --sqlite names the database the domain must write to: a domain with none
# is refused, without --create or existing under it.
"$SESH_BIN" create "$pdom" >/dev/null
for create in "" --create; do
	rc=0
	# $create unquoted: empty without --create
	"$SESHD_BIN" "$pdom" $create --sqlite "$tmp/x.db" --foreground \
		</dev/null >"$tmp/out" 2>"$tmp/err" || rc=$?
	[ "$rc" -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] ||
		fail "--sqlite ${create:-alone}, a domain without a database:" \
			"status $rc" "$tmp/err"
	# A library without SQLite refuses --create --sqlite first.
	has "$tmp/err" "^seshd: $pdom: the domain .*writes to no database, not to $tmp/x.db (--sqlite)" ||
		{ [ -n "$create" ] && has "$tmp/err" "without SQLite"; } ||
		fail "--sqlite ${create:-alone}: the message" "$tmp/err"
done
rc=0
"$SESHD_BIN" "$pdom" --sqlite "$tmp/x.db" </dev/null 2>"$tmp/err" || rc=$?
[ "$rc" -eq 1 ] && has "$tmp/err" "writes to no database" ||
	fail "--sqlite as a daemon, a domain without a database: status $rc" \
		"$tmp/err"
"$SESH_BIN" rm "$pdom"
[ ! -e "$tmp/x.db" ] || fail "seshd --sqlite made a database"
ok "--sqlite, a domain without a database: exit 1, one line that says so"

# --- expiry ---------------------------------------------------------------

start "$tmp/a.log" "$dom" --create --idle-ttl 1 --interval-ms 100
a=$pid
"$SESH_BIN" session create "$dom" short1 --ttl 1 >/dev/null
"$SESH_BIN" session create "$dom" short2 --ttl 1 >/dev/null
"$SESH_BIN" session create "$dom" dflt >/dev/null # the domain's TTL, 1 s
"$SESH_BIN" session create "$dom" long --ttl 600 >/dev/null
[ "$(stored "$dom")" -eq 4 ] || fail "4 sessions not stored"
# Stored counts include sessions expired and not removed: only a reaper
# brings it down.
poll 6 stored_is "$dom" 1 ||
	fail "expired sessions not reaped: $(stored "$dom") stored" "$tmp/a.log"
"$SESH_BIN" ls "$dom" >"$tmp/ls"
has "$tmp/ls" "^long " && ! has "$tmp/ls" "^short" ||
	fail "ls after the reaper" "$tmp/ls"
[ "$(expired "$dom")" -ge 3 ] || fail "stats: sessions_expired under 3"
has "$tmp/a.log" "sessions_expired=[1-9]" ||
	fail "no pass with sessions_expired logged" "$tmp/a.log"
ok "idle sessions reaped within the deadline; the long one stays"

if [ $have_health = yes ]; then
	poll 3 healthy "$dom" || fail "health while seshd runs" "$tmp/health"
	ok "health: healthy while seshd runs"
fi

# --- kill -9 and restart ----------------------------------------------------

kill -KILL "$a"
wait "$a" 2>/dev/null || true
forget "$a"
before=$(passes "$dom")
if [ $have_health = yes ]; then
	degraded "$dom" || fail "health after kill -9 of seshd" "$tmp/health"
	ok "health: degraded once seshd is killed"
fi
start "$tmp/b.log" "$dom" --create --idle-ttl 1 --interval-ms 100
b=$pid
poll 3 passes_over "$dom" $((before + 3)) ||
	fail "passes do not go on after a restart" "$tmp/b.log"
has "$tmp/b.log" "processes_recovered=1 recovery_walk=1" ||
	fail "the killed seshd was not recovered" "$tmp/b.log"
"$SESH_BIN" session create "$dom" short3 --ttl 1 >/dev/null
poll 6 stored_is "$dom" 1 || fail "no expiry after the restart" "$tmp/b.log"
ok "kill -9, restart: passes go on, the dead seshd recovered, expiry too"
if [ $have_health = yes ]; then
	poll 3 healthy "$dom" || fail "health after the restart" "$tmp/health"
	ok "health: healthy again"
fi

# --- two at once ------------------------------------------------------------

start "$tmp/c.log" "$dom" --create --idle-ttl 1 --interval-ms 100
c=$pid
before=$(passes "$dom")
"$SESH_BIN" session create "$dom" short4 --ttl 1 >/dev/null
poll 6 stored_is "$dom" 1 || fail "no expiry with two seshd" "$tmp/c.log"
[ "$(passes "$dom")" -gt $((before + 5)) ] ||
	fail "two seshd: passes did not go on" "$tmp/b.log" "$tmp/c.log"
alive "$b" && alive "$c" || fail "two seshd: one died" "$tmp/b.log" "$tmp/c.log"
"$SESH_BIN" check "$dom" >"$tmp/check" 2>&1 ||
	fail "check with two seshd" "$tmp/check"
if [ $have_health = yes ]; then
	healthy "$dom" || fail "health with two seshd" "$tmp/health"
fi
! has "$tmp/b.log" "failed" && ! has "$tmp/c.log" "failed" ||
	fail "two seshd: a pass failed" "$tmp/b.log" "$tmp/c.log"
ok "two seshd on one domain: both run, expiry goes on, index valid"

# --- following the name -----------------------------------------------------

# Removed under two seshd --create: they notice, and one of them creates
# it again (with --idle-ttl 1), the other attaches.
"$SESH_BIN" rm "$dom"
poll 3 has "$tmp/b.log" "attached again" ||
	fail "seshd did not follow the domain" "$tmp/b.log"
poll 3 has "$tmp/c.log" "attached again" ||
	fail "seshd did not follow the domain" "$tmp/c.log"
[ "$(stored "$dom")" -eq 0 ] || fail "the domain created again is not new"
"$SESH_BIN" session create "$dom" short5 >/dev/null
poll 6 stored_is "$dom" 0 ||
	fail "no expiry in the new domain" "$tmp/b.log" "$tmp/c.log"
ok "a domain removed under seshd --create: created again and reaped"

stop "$b" "$tmp/b.log"
stop "$c" "$tmp/c.log"
for log in "$tmp/b.log" "$tmp/c.log"; do
	has "$log" "^seshd: $dom: started: pid [0-9]*, interval 100 ms$" ||
		fail "start line" "$log"
done
ok "SIGTERM: both exit 0 within 2 s, start and exit logged"

if [ $have_health = yes ]; then
	degraded "$dom" && has "$tmp/health" "reaper absent" ||
		fail "health with no seshd left" "$tmp/health"
	ok "health: degraded, reaper absent, once seshd is gone"
fi

# --- write-through to SQLite -------------------------------------------------

have_sqlite3() { command -v sqlite3 >/dev/null 2>&1; }
# the ids in the database, on one line
db_ids() {
	sqlite3 "$tmp/db/x.db" 'SELECT id FROM sessions ORDER BY id' 2>&1 |
		tr '\n' ' '
}
db_ids_are() { [ "$(db_ids)" = "$1" ]; }
pending() { "$SESH_BIN" health "$pdom" --json | num pending; }
pending_is() { [ "$(pending)" = "$1" ]; }
rows() { "$SESH_BIN" stats "$pdom" --json | num persist_rows; }
rows_over() { [ "$(rows)" -gt "$1" ]; }

mkdir "$tmp/db"
rc=0
"$SESH_BIN" create "$pdom" --sqlite "$tmp/db/x.db" >/dev/null 2>"$tmp/err" ||
	rc=$?
"$SESH_BIN" rm "$pdom" >/dev/null 2>&1 || true
rm -f "$tmp/db/x.db"*
if [ "$rc" -ne 0 ] && has "$tmp/err" "without SQLite"; then
	echo "# the library is built without SQLite: write-through skipped"
else
	start "$tmp/p.log" "$pdom" --create --sqlite "$tmp/db/x.db" \
		--sqlite-async --interval-ms 100
	p=$pid
	"$SESH_BIN" session create "$pdom" w1 --meta one >/dev/null
	"$SESH_BIN" session create "$pdom" w2 --meta two >/dev/null
	"$SESH_BIN" session create "$pdom" w3 --ttl 1 >/dev/null
	poll 2 pending_is 0 && rows_over 2 ||
		fail "changes not committed within 2 s: $(pending) pending" \
			"$tmp/p.log"
	if have_sqlite3; then
		poll 1 db_ids_are "w1 w2 w3 " ||
			fail "sqlite3: the database has '$(db_ids)'" \
				"$tmp/p.log"
	else
		echo "# sqlite3 not found: the rows are checked by a restore"
	fi
	ok "seshd --sqlite-async: sessions written to the database at once"

	# A second reaper that names the same database, by another name, is
	# welcome; one that names another database is not; one with
	# --create in the other mode is, with a warning.
	ln -s "$tmp/db/x.db" "$tmp/link.db"
	start "$tmp/q.log" "$pdom" --sqlite "$tmp/link.db" --interval-ms 100
	stop "$pid" "$tmp/q.log"
	for create in "" --create; do
		rc=0
		"$SESHD_BIN" "$pdom" $create --sqlite "$tmp/db/y.db" \
			--foreground </dev/null 2>"$tmp/err" || rc=$?
		[ "$rc" -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
			has "$tmp/err" "writes to the database $tmp/db/x.db, not to $tmp/db/y.db (--sqlite)" ||
			fail "--sqlite ${create:-alone} of another database:" \
				"status $rc" "$tmp/err"
	done
	[ ! -e "$tmp/db/y.db" ] || fail "seshd --sqlite made another database"
	start "$tmp/q.log" "$pdom" --create --sqlite "$tmp/db/x.db" \
		--interval-ms 100
	stop "$pid" "$tmp/q.log"
	has "$tmp/q.log" "existed, and writes to its database asynchronously, not synchronously" ||
		fail "no warning of the other mode" "$tmp/q.log"
	ok "--sqlite checked: the same file runs, another fails, a mode warns"
	if [ $have_health = yes ]; then
		poll 3 healthy "$pdom" && has "$tmp/health" "asynchronous" ||
			fail "health with a database" "$tmp/health"
		ok "health: healthy, persistence asynchronous"
	fi

	poll 6 has "$tmp/p.log" "sessions_expired=1 .*persist_rows=[1-9]" ||
		fail "no pass logged the expiry and its rows" "$tmp/p.log"
	if have_sqlite3; then
		poll 1 db_ids_are "w1 w2 " ||
			fail "sqlite3: after the expiry: '$(db_ids)'" \
				"$tmp/p.log"
	fi
	ok "an expired session is removed from the database, rows logged"

	mv "$tmp/db" "$tmp/db.away"
	"$SESH_BIN" session create "$pdom" w4 --meta four >/dev/null
	poll 3 has "$tmp/p.log" \
		": persistence: writing to the database failed: " ||
		fail "the failing database not logged" "$tmp/p.log"
	if [ $have_health = yes ]; then
		degraded "$pdom" && has "$tmp/health" "database: *failing: " ||
			fail "health with the database gone" "$tmp/health"
	fi
	mv "$tmp/db.away" "$tmp/db"
	poll 3 has "$tmp/p.log" \
		": the database works again, after [0-9]* passes" ||
		fail "the database back not logged" "$tmp/p.log"
	[ "$(grep -c "writing to the database failed" "$tmp/p.log")" -eq 1 ] ||
		fail "the failure logged more than once a minute" "$tmp/p.log"
	poll 2 pending_is 0 || fail "the change held back not written"
	ok "database gone: logged once, degraded; back: logged, written"

	stop "$p" "$tmp/p.log"
	"$SESH_BIN" rm "$pdom"
	"$SESH_BIN" create "$pdom" --sqlite "$tmp/db/x.db" --sqlite-async \
		>/dev/null
	"$SESH_BIN" ls "$pdom" >"$tmp/ls"
	has "$tmp/ls" "^w1 " && has "$tmp/ls" "^w2 " && has "$tmp/ls" "^w4 " &&
		! has "$tmp/ls" "^w3 " && [ "$(wc -l <"$tmp/ls")" -eq 4 ] ||
		fail "restored after seshd stopped and rm" "$tmp/ls"
	"$SESH_BIN" rm "$pdom"
	ok "seshd stopped, domain removed and created again: sessions restored"
fi

# --- daemon mode --------------------------------------------------------------

"$SESH_BIN" create "$ddom" --idle-ttl 1 >/dev/null
start_ns=$(date +%s%N)
rc=0
"$SESHD_BIN" "$ddom" --interval-ms 100 </dev/null >"$tmp/out" 2>"$tmp/err" ||
	rc=$?
[ "$rc" -eq 0 ] || fail "daemon: status $rc" "$tmp/err"
[ ! -s "$tmp/out" ] && [ ! -s "$tmp/err" ] ||
	fail "daemon: output" "$tmp/out" "$tmp/err"
[ $(($(date +%s%N) - start_ns)) -lt 2000000000 ] ||
	fail "daemon: took 2 s or more to return"
d=$(daemon_pid)
[ -n "$d" ] && [ "$(echo "$d" | wc -l)" -eq 1 ] ||
	fail "daemon: not exactly one process: '$d'"
[ "$(readlink "/proc/$d/cwd")" = / ] || fail "daemon: cwd is not /"
[ "$(readlink "/proc/$d/fd/2")" = /dev/null ] ||
	fail "daemon: stderr is not /dev/null"
[ "$(ps -o sid= -p "$d" | tr -d ' ')" != "$(ps -o sid= -p $$ | tr -d ' ')" ] ||
	fail "daemon: still in our session"
"$SESH_BIN" info "$ddom" --json | grep -q "\"pid\": $d," ||
	fail "daemon: not attached to the domain"
"$SESH_BIN" session create "$ddom" short6 --ttl 1 >/dev/null
poll 6 stored_is "$ddom" 0 || fail "daemon: no expiry"
if [ $have_health = yes ]; then
	healthy "$ddom" || fail "health with the daemon" "$tmp/health"
fi
ok "daemon: returns 0 once attached, reaps"

# Removed under a seshd without --create: it waits for the domain to be
# created again, then reaps it.
"$SESH_BIN" rm "$ddom"
attached() { "$SESH_BIN" info "$ddom" --json | grep -q "\"pid\": $d,"; }
# It has detached when its mapping of the removed object is gone.
detached() { ! grep -q "/sesh\.$ddom (deleted)" "/proc/$d/maps"; }
poll 3 detached || fail "daemon: kept the removed domain mapped"
"$SESH_BIN" create "$ddom" --idle-ttl 1 >/dev/null
poll 3 attached || fail "daemon: did not attach to the new domain"
"$SESH_BIN" session create "$ddom" short7 >/dev/null
poll 6 stored_is "$ddom" 0 || fail "daemon: no expiry in the new domain"
ok "daemon: follows a domain removed and created again"

kill -TERM "$d"
poll 2 dead "$d" || fail "daemon: still runs 2 s after SIGTERM"
ok "daemon: stops on SIGTERM"

echo "# $checks checks passed in about $SECONDS s"
exit 0
