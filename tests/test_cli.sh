#!/bin/sh
# test_cli.sh - end-to-end test of the sesh tool and of the demo.
#
# Runs the installed-to-be binaries on domains named after this shell's pid
# (and SQLite databases in a temporary directory), checks exit statuses,
# stdout and stderr, and removes the domains and the directory at the end. Run by `make check`, which sets SESH_BIN and SESH_DEMO; by hand:
#   SESH_BIN=tools/sesh SESH_DEMO=examples/demo sh tests/test_cli.sh
# Exit status: 0 all checks passed, 1 some failed.

set -u

SESH_BIN=${SESH_BIN:-./tools/sesh}
SESH_DEMO=${SESH_DEMO:-./examples/demo}
for exe in "$SESH_BIN" "$SESH_DEMO"; do
	if ! test -x "$exe"; then
		echo "test_cli: $exe is not an executable (set SESH_BIN" \
			"and SESH_DEMO)" >&2
		exit 1
	fi
done

dom="clitest-$$"
bad="clitest-$$-bad"
strm="clitest-$$-strm"
hk="clitest-$$-hk"
pdom="clitest-$$-db"
missing="clitest-$$-missing"
shmdir=${SESH_SHM_DIR:-/dev/shm}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_cli.XXXXXX") || exit 1
# Remove the domains with the tool, and, should the tool be broken, the
# objects themselves.
cleanup() {
	test -n "${fpid:-}" && kill -KILL "$fpid" 2>/dev/null
	for name in "$dom" "$bad" "$strm" "$hk" "$pdom"; do
		"$SESH_BIN" rm "$name" >/dev/null 2>&1
		rm -f "$shmdir/sesh.$name"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

pass=0
fail=0

# check DESCRIPTION COMMAND...: run a predicate, count and print the result;
# on failure show what the last run printed.
check() {
	desc=$1
	shift
	if "$@"; then
		pass=$((pass + 1))
		echo "ok   - $desc"
	else
		fail=$((fail + 1))
		echo "FAIL - $desc"
		echo "       (exit status $rc; stdout, then stderr:)"
		sed 's/^/       | /' "$tmp/out" "$tmp/err"
	fi
}

# run ARGS...: run the tool, keeping its exit status and output.
run() {
	"$SESH_BIN" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
}
# run_in FILE ARGS...: the same, with FILE as standard input.
run_in() {
	input=$1
	shift
	"$SESH_BIN" "$@" <"$input" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

# A tool run in the background (tail -f): its pid is $fpid, its output goes
# to $tmp/fout and $tmp/ferr.
# start_bg ARGS...: start it.
start_bg() {
	"$SESH_BIN" "$@" </dev/null >"$tmp/fout" 2>"$tmp/ferr" &
	fpid=$!
}
# wait_bg SECONDS: wait for it to exit, for at most SECONDS, then kill it
# (status 999); keep its status and output as run does.
wait_bg() {
	i=0
	while kill -0 "$fpid" 2>/dev/null && test "$i" -lt $(($1 * 10)); do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$fpid" 2>/dev/null; then
		kill -KILL "$fpid"
		wait "$fpid"
		rc=999
	else
		wait "$fpid"
		rc=$?
	fi
	fpid=
	cp "$tmp/fout" "$tmp/out"
	cp "$tmp/ferr" "$tmp/err"
}
# wait_until SECONDS COMMAND...: poll COMMAND until it succeeds, for at most
# SECONDS; fails if it never does.
wait_until() {
	n=$(($1 * 10))
	shift
	while ! "$@"; do
		test "$n" -gt 0 || return 1
		sleep 0.1
		n=$((n - 1))
	done
}
# file $1 has $2 lines
lines_in() { test "$(wc -l <"$1")" -eq "$2"; }
# the domain $1 has $2 streams open
streams_open_is() {
	"$SESH_BIN" info "$1" --json 2>/dev/null |
		grep -Eq "\"streams_open\": *$2,"
}
# the value of counter $1 in the output of stats --json
stat_of() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" "$tmp/out"; }
# streams ever opened in the domain $1
subscriptions_of() {
	"$SESH_BIN" stats "$1" --json 2>/dev/null |
		sed -n 's/.*"subscriptions": *\([0-9]*\).*/\1/p'
}
# more than $2 streams were ever opened in the domain $1
subscribed_since() { test "$(subscriptions_of "$1")" -gt "$2"; }
# stdout holds $1 event ids, one per line, strictly increasing
out_ids() {
	out_lines "$1" && out_has '^[0-9]+$' && ! out_has '[^0-9]' &&
		sort -c -n -u "$tmp/out" 2>/dev/null
}
# the numbers $1, $2, ... strictly increase
increasing() {
	prev=$1
	shift
	for n in "$@"; do
		test "$n" -gt "$prev" || return 1
		prev=$n
	done
}
# the event id of the first, or last, line that tail printed to file $2
first_id() { head -n 1 "$1" | cut -f 1; }
last_id() { tail -n 1 "$1" | cut -f 1; }
# the last line of file $1 is the message $3 of event id $2
last_line_is() { test "$(tail -n 1 "$1")" = "$2	$3"; }

# Predicates on the last run.
status_is() { test "$rc" -eq "$1"; }
out_has() { grep -Eq -- "$1" "$tmp/out"; }
out_has_all() {
	for pat in "$@"; do
		out_has "$pat" || return 1
	done
}
out_empty() { ! test -s "$tmp/out"; }
err_empty() { ! test -s "$tmp/err"; }
# exactly one line on stderr, starting with $1 (no pattern characters)
err_one_line() {
	test "$(wc -l <"$tmp/err")" -eq 1 &&
		case $(cat "$tmp/err") in "$1"*) true ;; *) false ;; esac
}
# a usage error: status 2, nothing on stdout, a message and the hint
usage_error() {
	status_is 2 && out_empty &&
		test "$(wc -l <"$tmp/err")" -eq 2 &&
		test "$(tail -n 1 "$tmp/err")" = "try 'sesh --help'"
}
# a failure: status 1, nothing on stdout, one line starting with $1
failed_with() { status_is 1 && out_empty && err_one_line "$1"; }
# a failure of the library: one line "sesh: VERB: NAME: ..."
failed() { failed_with "sesh: $1: $2: "; }
succeeded() { status_is 0 && err_empty; }
succeeded_with() { succeeded && out_has "$1"; }
succeeded_same() { succeeded && cmp -s "$tmp/out" "$1"; }
# stdout is exactly the line $1
out_is() { test "$(cat "$tmp/out")" = "$1"; }
# stdout has exactly $1 lines
out_lines() { test "$(wc -l <"$tmp/out")" -eq "$1"; }
# a number in the JSON output: key $1, value $2
json_num() { out_has "\"$1\": *$2([^0-9]|\$)"; }
json_str() { out_has "\"$1\": *\"$2\""; }
json_keys() {
	for key in "$@"; do
		out_has "\"$key\": " || return 1
	done
}
valid_json() { python3 -m json.tool <"$tmp/out" >/dev/null 2>&1; }
# stdout is a JSON array of $1 elements
json_array_of() {
	python3 -c 'import json, sys
v = json.load(sys.stdin)
sys.exit(not (isinstance(v, list) and len(v) == int(sys.argv[1])))' \
		"$1" <"$tmp/out" 2>/dev/null
}
# the "meta" of the JSON object on stdout holds the bytes of file $1 (each
# byte a code point, as the tool writes them)
json_meta_is() {
	python3 -c 'import json, sys
want = open(sys.argv[1], "rb").read().decode("latin-1")
sys.exit(json.load(sys.stdin).get("meta") != want)' "$1" <"$tmp/out" 2>/dev/null
}
have_python() { command -v python3 >/dev/null 2>&1; }
no_object() { ! test -e "$shmdir/sesh.$1"; }
not() { ! "$@"; }
mode_is() { test "$(stat -c %a "$shmdir/sesh.$1" 2>/dev/null)" = "$2"; }
# Predicates on the output of stats --prometheus:
# every line but the comments is a sample "sesh_NAME{LABELS} VALUE"
prom_samples_only() {
	out_has '^sesh_' &&
		not grep -Evq -e '^#' \
			-e '^sesh_[a-z_]+(\{[^}]*\})? [0-9.e+-]+$' "$tmp/out"
}
# every metric has a HELP, then a TYPE line, then its samples, together
prom_grouped() {
	awk '
	/^# HELP / { if ($3 in seen) bad = 1; seen[$3] = 1; help = $3
		cur = ""; next }
	/^# TYPE / { if ($3 != help) bad = 1; cur = $3; next }
	/^#/ { bad = 1; next }
	{ name = $0; sub(/[{ ].*/, "", name); if (name != cur) bad = 1
		n[name]++ }
	END { for (m in seen) if (!(m in n)) bad = 1; exit bad + 0 }
	' "$tmp/out"
}
# the metrics of TYPE counter, and they alone, are named *_total
prom_counters_total() {
	out_has '^# TYPE [a-z_]+ counter$' &&
		awk '/^# TYPE / { if (($4 == "counter") != ($3 ~ /_total$/))
			bad = 1 }
		END { exit bad + 0 }' "$tmp/out"
}
# every sample is labelled domain="$1" first
prom_labelled() {
	not grep -Evq -e '^#' -e "^[a-z_]+\\{domain=\"$1\"[,}]" "$tmp/out"
}
# the value of the sample of metric $1 (with labels $2, if given)
prom_of() {
	sed -n "s/^$1{domain=\"[^\"]*\"${2:+,$2}} //p" "$tmp/out"
}

echo "== help and version"
run --help
check "--help exits 0 and prints a usage" succeeded_with '^usage: sesh'
run -h
check "-h exits 0" succeeded
run --version
check "--version exits 0 and prints 'sesh VERSION'" \
	succeeded_with '^sesh [0-9]'
for verb in create info rm session ls check recover publish tail stats \
	health reap; do
	run "$verb" --help
	cp "$tmp/out" "$tmp/help1"
	check "$verb --help exits 0 and prints a usage" \
		succeeded_with "^usage: sesh $verb"
	run help "$verb"
	check "help $verb prints the same as $verb --help" \
		succeeded_same "$tmp/help1"
done
run create --help
check "create --help lists every option" out_has_all --max-sessions \
	--stream-bytes --max-message --max-metadata --idle-ttl \
	--max-processes --unblock-ms --max-subscriptions --mode --sqlite \
	--sqlite-async --sqlite-lag-ms --sqlite-wait-ms --json
run session get --help
check "session get --help prints the session usage" \
	succeeded_with '^usage: sesh session'
check "session --help lists every command and option" out_has_all \
	'create NAME' 'get NAME' 'touch NAME' 'update NAME' 'rm NAME' \
	--ns --user --meta --meta-file --ttl --json
run ls --help
check "ls --help lists every option" out_has_all --ns --user --expired --json
run publish --help
check "publish --help lists every option" out_has_all --ns --lines
run tail --help
check "tail --help lists every option" out_has_all --ns --after --oldest \
	'-f, --follow' --json
run stats --help
check "stats --help lists every option" out_has_all --json --prometheus
run health --help
check "health --help lists --json and tells the exit statuses" \
	out_has_all --json '0 healthy, 1 degraded, 2 down'
run reap --help
check "reap --help lists every option" out_has_all --json
run --help
check "--help lists the new commands" out_has_all '^  session ' '^  ls ' \
	'^  check ' '^  recover ' '^  publish ' '^  tail ' '^  stats ' \
	'^  health ' '^  reap '
check "--help tells health's exit statuses" out_has '0 healthy'

echo "== usage errors"
run
check "no command: usage error (exit 2)" usage_error
run frobnicate "$dom"
check "unknown verb: usage error (exit 2)" usage_error
run --frob
check "unknown top-level option: usage error (exit 2)" usage_error
run help frobnicate
check "help of an unknown verb: usage error (exit 2)" usage_error
run create
check "create without a name: usage error (exit 2)" usage_error
run info "$dom" --frob
check "info with an unknown option: usage error (exit 2)" usage_error
run create "$dom" --mode
check "create with an option missing its argument: usage error" usage_error
run info "$dom" --json=yes
check "info --json=yes: usage error (exit 2)" usage_error
run rm "$dom" "$missing"
check "rm with two names: usage error (exit 2)" usage_error
check "no usage error created a domain" no_object "$dom"

echo "== create"
run create --max-sessions 100 "$dom" --stream-bytes 8k --mode 0640 --json
check "create exits 0, quiet on stderr" succeeded
check "create --json names the domain" json_str name "$dom"
check "create --json shows max_sessions 100" json_num max_sessions 100
check "create --json shows stream_bytes 8192 (8k)" json_num stream_bytes 8192
check "create --json shows mode \"0640\"" json_str mode 0640
check "create --json shows this process alive" \
	out_has '"alive": *true, *"self": *true'
if command -v python3 >/dev/null 2>&1; then
	check "create --json is valid JSON" valid_json
else
	echo "skip - python3 not found: JSON validity not checked"
fi
id=$(sed -n 's/.*"domain_id": *"\([0-9a-fA-Fx]*\)".*/\1/p' "$tmp/out")
check "create --json has a hex domain_id" test -n "$id"
check "the object $shmdir/sesh.$dom exists with mode 0640" mode_is "$dom" 640

run create "$dom"
check "create again: exit 1, one line on stderr" failed create "$dom"

echo "== info"
run info "$dom" --json
check "info NAME --json exits 0" succeeded
check "info --json shows the same domain_id as create" \
	json_str domain_id "$id"
check "info --json shows max_sessions 100" json_num max_sessions 100
check "info --json shows stream_bytes 8192" json_num stream_bytes 8192
check "info --json shows mode \"0640\"" json_str mode 0640
check "info --json shows namespace \"default\"" json_str ns default
check "info --json has every key" json_keys name ns layout_version \
	domain_id created_ns created max_sessions stream_bytes max_message \
	max_metadata idle_ttl_s max_processes unblock_ms max_subscriptions \
	mode segment_bytes committed_bytes processes_alive processes_dead \
	sessions streams_open sqlite_path sqlite_mode sqlite_lag_ms \
	sqlite_wait_ms processes slot pid comm alive self attached_ns \
	incarnation
check "info --json shows the default unblock_ms 1000" json_num unblock_ms 1000
check "info --json shows the default max_subscriptions 4096" \
	json_num max_subscriptions 4096
check "info --json shows no streams open" json_num streams_open 0
check "info --json shows no sessions yet" json_num sessions 0
check "info --json shows no database: path null, mode \"none\"" \
	eval 'out_has "\"sqlite_path\": null," && json_str sqlite_mode none &&
	out_has "\"sqlite_lag_ms\": null," &&
	out_has "\"sqlite_wait_ms\": null,"'
check "info --json shows this process alive" \
	out_has '"alive": *true, *"self": *true'
if command -v python3 >/dev/null 2>&1; then
	check "info --json is valid JSON" valid_json
else
	echo "skip - python3 not found: JSON validity not checked"
fi

run info --ns other-ns --json "$dom"
check "info --ns other-ns (options first) shows ns \"other-ns\"" \
	succeeded_with '"ns": *"other-ns"'

run info "$dom"
check "info exits 0" succeeded
check "info shows max sessions 100" out_has '^max sessions: +100$'
check "info shows stream bytes 8192" out_has '^stream bytes: +8192 '
check "info shows mode 0640" out_has '^mode: +0640$'
check "info lists itself as alive, (this process)" \
	out_has ' alive .*\(this process\)$'
check "info shows sessions 0" out_has '^sessions: +0$'
check "info shows unblock after 1000 ms" out_has '^unblock after: +1000 ms$'
check "info shows max subscriptions 4096" \
	out_has '^max subscriptions: +4096 per process$'
check "info shows streams open 0" out_has '^streams open: +0$'
check "info shows database none, and no mode" \
	eval 'out_has "^database: +none$" && not out_has "^database mode:"'

run info "$missing"
check "info of a missing domain: exit 1, one line on stderr" \
	failed info "$missing"

echo "== session usage errors"
run session
check "session without a command: usage error (exit 2)" usage_error
run session frobnicate "$dom" s1
check "session with an unknown command: usage error (exit 2)" usage_error
run session --frob
check "session with an option for a command: usage error" usage_error
run session get "$dom"
check "session get without an ID: usage error (exit 2)" usage_error
run session touch
check "session touch without a name: usage error (exit 2)" usage_error
run session rm "$dom" s1 s2
check "session rm with two IDs: usage error (exit 2)" usage_error
run session update "$dom" s1
check "session update without --meta: usage error (exit 2)" usage_error
run session create "$dom" s1 --meta a --meta-file /dev/null
check "session create --meta and --meta-file: usage error" usage_error
run session get "$dom" s1 --ttl 5
check "session get --ttl (not its option): usage error" usage_error
for ttl in abc -1 1.5 4294967296 ''; do
	run session create "$dom" s1 --ttl "$ttl"
	check "session create --ttl '$ttl': usage error (exit 2)" usage_error
done
run ls "$dom" --expired soon
check "ls --expired soon: usage error (exit 2)" usage_error
run ls "$dom" --meta x
check "ls --meta (not its option): usage error (exit 2)" usage_error
run check "$dom" --ns x
check "check --ns (not its option): usage error (exit 2)" usage_error
run recover "$dom" extra
check "recover with two names: usage error (exit 2)" usage_error
run ls
check "ls without a name: usage error (exit 2)" usage_error
run session get "$dom" s1
check "no usage error created a session" failed "session get" "$dom"

echo "== session create"
run session create "$dom" s-one --user alice --meta 'hello world' --ttl 600
check "session create NAME ID exits 0" succeeded
check "  ... and prints the id" out_is s-one
run session create "$dom" --user bob
check "session create NAME (no ID) exits 0" succeeded
check "  ... and prints one generated id of 32 hex digits" \
	out_has '^[0-9a-f]{32}$'
check "  ... on one line" out_lines 1
gen=$(cat "$tmp/out")
run session create "$dom" s-json --json
check "session create --json exits 0" succeeded
check "  ... and shows the id" json_str id s-json
if have_python; then
	check "  ... as valid JSON" valid_json
fi
run session create "$dom" s-one
check "session create of an existing id: exit 1" \
	failed "session create" "$dom"
run session create "$dom" 'bad id'
check "session create of an id with a blank: exit 1" \
	failed "session create" "$dom"
run session create "$missing" s-one
check "session create in a missing domain: exit 1" \
	failed "session create" "$missing"
check "  ... which it did not create" no_object "$missing"

printf 'a\001b\\c\n' >"$tmp/meta"
run session create "$dom" s-bin --meta-file "$tmp/meta"
check "session create --meta-file exits 0" succeeded_with '^s-bin$'
head -c 1048577 /dev/zero >"$tmp/big"
run session create "$dom" s-big --meta-file "$tmp/big"
check "session create --meta-file of over 1 MiB: exit 1, one line" \
	failed_with "sesh: session create: $tmp/big: "
run session create "$dom" s-big --meta-file "$tmp/no-such-file"
check "session create --meta-file of a missing file: exit 1" \
	failed_with "sesh: session create: $tmp/no-such-file: "
run session get "$dom" s-big
check "  ... and no session s-big" failed "session get" "$dom"

echo "== session get"
run session get "$dom" s-one
check "session get exits 0" succeeded
check "session get shows every field" out_has_all '^id: +s-one$' \
	'^user: +alice$' '^created: +[0-9]{4}-[0-9]{2}-[0-9]{2}T.*Z$' \
	'^last seen: +[0-9]{4}-' '^ttl: +600 s$' '^last event id: +0$' \
	'^meta length: +11$' '^meta: +hello world$'
run session get "$dom" "$gen"
check "session get of the generated id shows user bob" \
	succeeded_with '^user: +bob$'
run session get "$dom" s-bin
check "session get escapes metadata that is not printable" \
	succeeded_with '^meta: +a\\x01b\\x5cc\\x0a$'
run session get "$dom" s-one --json
check "session get --json exits 0" succeeded
check "session get --json has every key" json_keys id user created_ns \
	created last_seen_ns last_seen ttl_s last_event_id meta_len meta
check "session get --json shows id, user, ttl and metadata" \
	eval 'json_str id s-one && json_str user alice &&
		json_num ttl_s 600 && json_num meta_len 11 &&
		json_str meta "hello world"'
if have_python; then
	check "session get --json is valid JSON" valid_json
	run session get "$dom" s-bin --json
	check "session get --json escapes binary metadata" \
		json_meta_is "$tmp/meta"
fi
run session get "$dom" s-one --user alice
check "session get --user of the owner exits 0" succeeded_with '^id: +s-one$'
run session get "$dom" s-one --user mallory
check "session get --user of another user: exit 1" \
	failed "session get" "$dom"
run session get "$dom" no-such-session
check "session get of a missing id: exit 1" failed "session get" "$dom"

echo "== session touch and update"
run session get "$dom" s-one --json
seen1=$(sed -n 's/.*"last_seen_ns": *\([0-9]*\).*/\1/p' "$tmp/out")
sleep 1
run session touch "$dom" s-one
check "session touch exits 0, prints nothing" eval 'succeeded && out_empty'
run session get "$dom" s-one --json
seen2=$(sed -n 's/.*"last_seen_ns": *\([0-9]*\).*/\1/p' "$tmp/out")
check "session touch moves last seen ahead" test "${seen2:-0}" -gt "${seen1:-0}"
run session touch "$dom" no-such-session
check "session touch of a missing id: exit 1" failed "session touch" "$dom"
run session update "$dom" s-one --meta 'new meta'
check "session update exits 0, prints nothing" eval 'succeeded && out_empty'
run session get "$dom" s-one
check "session get shows the new metadata" out_has_all '^meta: +new meta$' \
	'^meta length: +8$'
run session update "$dom" s-one --meta-file "$tmp/meta"
check "session update --meta-file exits 0" succeeded
run session get "$dom" s-one
check "session get shows the metadata of the file" \
	out_has '^meta: +a\\x01b\\x5cc\\x0a$'
run session update "$dom" no-such-session --meta x
check "session update of a missing id: exit 1" failed "session update" "$dom"

echo "== ls"
# s-one, s-json and s-bin (no user), $gen (bob)
run session create "$dom" s-two --user alice
check "session create s-two exits 0" succeeded
run ls "$dom"
check "ls exits 0" succeeded
check "ls shows a header and 5 sessions" out_lines 6
check "ls shows the header" out_has '^ID +USER +LAST SEEN +TTL +META$'
check "ls shows s-one: user, ttl, meta length" \
	out_has '^s-one +alice +[0-9]{4}-[^ ]+ +600 +6$'
check "ls shows - for a session without user" out_has '^s-json +- '
run ls "$dom" --user alice
check "ls --user alice shows a header and 2 sessions" \
	eval 'succeeded && out_lines 3 && out_has "^s-one " && out_has "^s-two "'
run ls "$dom" --json
check "ls --json exits 0" succeeded
if have_python; then
	check "ls --json is an array of 5" json_array_of 5
	run ls "$dom" --user nobody --json
	check "ls --user nobody --json is an empty array" json_array_of 0
fi
run info "$dom" --json
check "info --json counts the 5 sessions" json_num sessions 5
run ls "$dom" --expired 0
check "ls --expired 0: none past its TTL, only the header" \
	eval 'succeeded && out_lines 1'
run session create "$dom" s-short --ttl 1
check "session create --ttl 1 exits 0" succeeded
sleep 2
run session get "$dom" s-short
check "session get after its TTL: exit 1" failed "session get" "$dom"
run ls "$dom" --expired 0
check "ls --expired 0 shows it" \
	eval 'succeeded && out_lines 2 && out_has "^s-short "'
run ls "$dom" --expired 1 --user alice
check "ls --expired 1 --user alice shows s-one and s-two" \
	eval 'succeeded && out_lines 3 && out_has "^s-one " && out_has "^s-two "'
run ls "$dom"
check "ls leaves it out" eval 'succeeded && out_lines 6'
run ls "$missing"
check "ls of a missing domain: exit 1" failed ls "$missing"

echo "== namespaces"
run session create "$dom" s-ns --ns ns-a --user carol
check "session create --ns ns-a exits 0" succeeded
run session get "$dom" s-ns --ns ns-a
check "session get --ns ns-a finds it" succeeded_with '^user: +carol$'
run session get "$dom" s-ns --ns ns-b
check "session get --ns ns-b: exit 1" failed "session get" "$dom"
run session get "$dom" s-ns
check "session get in the default namespace: exit 1" \
	failed "session get" "$dom"
run ls "$dom" --ns ns-b
check "ls --ns ns-b shows only the header" eval 'succeeded && out_lines 1'
run ls "$dom" --ns ns-a
check "ls --ns ns-a shows s-ns alone" \
	eval 'succeeded && out_lines 2 && out_has "^s-ns +carol "'
run session create "$dom" s-one --ns ns-b
check "the same id in another namespace can be created" succeeded
run session rm "$dom" s-one --ns ns-b
check "  ... and removed, leaving the default namespace's" succeeded
run session get "$dom" s-one
check "  ... which is still there" succeeded

echo "== session rm"
run session rm "$dom" s-two
check "session rm exits 0, prints nothing" eval 'succeeded && out_empty'
run session get "$dom" s-two
check "session get after rm: exit 1" failed "session get" "$dom"
run session rm "$dom" s-two
check "session rm again: exit 1" failed "session rm" "$dom"
run ls "$dom" --user alice
check "ls --user alice shows s-one alone" eval 'succeeded && out_lines 2'

echo "== check and recover"
run check "$dom"
check "check of a sound domain exits 0" succeeded
check "check shows the counters" out_has_all '^sessions: +[0-9]+$' \
	'^namespaces: +[0-9]+$' '^blocks live: +[0-9]+$' \
	'^blocks free: +[0-9]+$' '^problems: +0$' '^first problem: +none$'
run check "$dom" --json
check "check --json exits 0 with problems 0" \
	eval 'succeeded && json_num problems 0 && json_str first_problem ""'
check "check --json has every key" json_keys sessions namespaces \
	blocks_live blocks_retired blocks_owned blocks_dead blocks_free \
	problems first_problem
if have_python; then
	check "check --json is valid JSON" valid_json
fi
run check "$missing"
check "check of a missing domain: exit 1" failed check "$missing"
run recover "$dom"
check "recover prints 'recovered 0 dead processes'" \
	eval 'succeeded && out_is "recovered 0 dead processes"'
run recover "$missing"
check "recover of a missing domain: exit 1" failed recover "$missing"

echo "== streams: create options"
run create "$strm" --stream-bytes 4k --max-message 512 --unblock-ms 250 \
	--max-subscriptions 8 --json
check "create --unblock-ms 250 --max-subscriptions 8 exits 0" succeeded
check "  ... and shows unblock_ms 250" json_num unblock_ms 250
check "  ... and max_subscriptions 8" json_num max_subscriptions 8
check "  ... and streams_open 0" json_num streams_open 0
run info "$strm"
check "info shows unblock after 250 ms" out_has '^unblock after: +250 ms$'
check "info shows max subscriptions 8" \
	out_has '^max subscriptions: +8 per process$'

echo "== streams: usage errors"
run publish "$strm"
check "publish without an ID: usage error (exit 2)" usage_error
run publish "$strm" s1 one two
check "publish with two messages: usage error (exit 2)" usage_error
run publish "$strm" s1 hello --lines
check "publish MESSAGE --lines: usage error (exit 2)" usage_error
run publish "$strm" s1 hello -f
check "publish -f (not its option): usage error (exit 2)" usage_error
run publish "$strm" s1 hello --json
check "publish --json (not its option): usage error (exit 2)" usage_error
run tail "$strm"
check "tail without an ID: usage error (exit 2)" usage_error
run tail "$strm" s1 extra
check "tail with an extra argument: usage error (exit 2)" usage_error
run tail "$strm" s1 --after 1 --oldest
check "tail --after --oldest: usage error (exit 2)" usage_error
for ev in abc -1 1.5 18446744073709551616 ''; do
	run tail "$strm" s1 --after "$ev"
	check "tail --after '$ev': usage error (exit 2)" usage_error
done
run tail "$strm" s1 --lines
check "tail --lines (not its option): usage error (exit 2)" usage_error
run stats "$strm" s1
check "stats with an extra argument: usage error (exit 2)" usage_error
run stats "$strm" --ns x
check "stats --ns (not its option): usage error (exit 2)" usage_error

echo "== streams: publish and tail"
run session create "$strm" s1
check "session create s1 exits 0" succeeded
run tail "$strm" s1
check "tail of a stream never published to exits 0, prints nothing" \
	eval 'succeeded && out_empty'
run stats "$strm" --json
pub0=$(stat_of published)
pubb0=$(stat_of published_bytes)
del0=$(stat_of delivered)
sub0=$(stat_of subscriptions)
lap0=$(stat_of lapped)
run publish "$strm" s1 hello
check "publish NAME ID MESSAGE exits 0" succeeded
check "  ... and prints one decimal event id" out_ids 1
id1=$(cat "$tmp/out")
run stats "$strm" --json
check "stats counts 1 more message published" \
	test "$(stat_of published)" -eq $((pub0 + 1))
check "  ... and 5 more bytes" \
	test "$(stat_of published_bytes)" -eq $((pubb0 + 5))
run publish "$strm" s1 -- '-second message'
check "publish -- MESSAGE starting with - exits 0" succeeded
id2=$(cat "$tmp/out")
check "  ... with a larger event id" test "${id2:-0}" -gt "${id1:-0}"
printf 'a\nb\tc\\d\001e\377' >"$tmp/msg"
run_in "$tmp/msg" publish "$strm" s1 -
check "publish NAME ID - reads standard input" succeeded_with '^[0-9]+$'
id3=$(cat "$tmp/out")
run_in "$tmp/msg" publish "$strm" s1
check "publish NAME ID reads standard input" succeeded_with '^[0-9]+$'
id4=$(cat "$tmp/out")
run publish "$strm" s1
check "publish of an empty standard input exits 0" succeeded_with '^[0-9]+$'
id5=$(cat "$tmp/out")
check "the ids increase" increasing "$id1" "$id2" "$id3" "$id4" "$id5"
esc='a\\nb\\tc\\\\d\\x01e\\xff'
printf "%s\thello\n%s\t-second message\n%s\t$esc\n%s\t$esc\n%s\t\n" \
	"$id1" "$id2" "$id3" "$id4" "$id5" >"$tmp/want"
run tail "$strm" s1
check "tail prints every message, one line each, escaped" \
	succeeded_same "$tmp/want"
run tail "$strm" s1 --oldest
check "tail --oldest prints the same" succeeded_same "$tmp/want"
run stats "$strm" --json
check "stats counts 10 messages delivered to the two tails" \
	test "$(stat_of delivered)" -eq $((del0 + 10))
check "  ... and 2 subscriptions" \
	test "$(stat_of subscriptions)" -eq $((sub0 + 2))
sed -n '3,$p' "$tmp/want" >"$tmp/want2"
run tail "$strm" s1 --after "$id2"
check "tail --after ID prints only what came after" \
	succeeded_same "$tmp/want2"
run tail "$strm" s1 --after "$id5"
check "tail --after the newest id prints nothing" \
	eval 'succeeded && out_empty'
run tail "$strm" s1 --after $((id5 + 1000000))
check "tail --after an id never issued: exit 1" failed tail "$strm"
run tail "$strm" s1 --after 1
check "tail --after an id older than the stream exits 0" status_is 0
check "  ... says it was lapped, on one line of stderr" \
	err_one_line "sesh: tail: $strm: lapped, resuming at "
check "  ... and prints every message" cmp -s "$tmp/out" "$tmp/want"
run tail "$strm" s1 --json
check "tail --json exits 0, one line per message" \
	eval 'succeeded && out_lines 5'
if have_python; then
	check "tail --json: objects with id, published_ns and the bytes" \
		python3 -c 'import json, sys
want = open(sys.argv[1], "rb").read().decode("latin-1")
ids = [int(x) for x in sys.argv[2:7]]
data = ["hello", "-second message", want, want, ""]
got = [json.loads(l) for l in open(sys.argv[7], encoding="ascii")]
ok = [g["id"] for g in got] == ids and \
	[g["data"] for g in got] == data and \
	all(isinstance(g["published_ns"], int) and
	    g["published_ns"] > 1600000000 * 10**9 for g in got)
sys.exit(not ok)' "$tmp/msg" "$id1" "$id2" "$id3" "$id4" "$id5" "$tmp/out"
fi
run tail "$strm" no-such-session
check "tail of a missing session: exit 1" failed tail "$strm"
run publish "$strm" no-such-session hello
check "publish to a missing session: exit 1" failed publish "$strm"
run tail "$missing" s1
check "tail in a missing domain: exit 1" failed tail "$missing"
run session get "$strm" s1
check "session get shows the last event id" \
	succeeded_with "^last event id: +$id5\$"

echo "== streams: the largest message"
head -c 512 /dev/zero | tr '\0' x >"$tmp/m512"
head -c 513 /dev/zero | tr '\0' x >"$tmp/m513"
run_in "$tmp/m512" publish "$strm" s1
check "publish of max_message (512) bytes from standard input exits 0" \
	succeeded_with '^[0-9]+$'
run publish "$strm" s1 "$(cat "$tmp/m513")"
check "publish MESSAGE of 513 bytes: exit 1" failed publish "$strm"
cp "$tmp/err" "$tmp/err513"
run_in "$tmp/m513" publish "$strm" s1
check "publish of 513 bytes from standard input: exit 1" \
	failed publish "$strm"
check "  ... with the library's message, as for MESSAGE" \
	cmp -s "$tmp/err" "$tmp/err513"
head -c 4194304 /dev/zero >"$tmp/m4m"
run_in "$tmp/m4m" publish "$strm" s1
check "publish of 4 MiB from standard input: exit 1" failed publish "$strm"
run tail "$strm" s1 --after "$id5"
check "  ... and only the 512 bytes were published" \
	eval 'succeeded && out_lines 1 && out_has "	x{512}\$"'

echo "== streams: publish --lines"
run session create "$strm" s2
printf 'one\ntwo\n\nfour' >"$tmp/lines"
run_in "$tmp/lines" publish "$strm" s2 --lines
check "publish --lines exits 0" succeeded
check "  ... and prints 4 ids, increasing" out_ids 4
# shellcheck disable=SC2046 # the ids, one word each
set -- $(cat "$tmp/out")
printf '%s\tone\n%s\ttwo\n%s\t\n%s\tfour\n' "$@" >"$tmp/want"
run tail "$strm" s2
check "  ... one message per line, the empty one too" \
	succeeded_same "$tmp/want"
last=${4:-}
{
	printf 'ok\n'
	cat "$tmp/m513"
	printf '\nnever\n'
} >"$tmp/lines"
run_in "$tmp/lines" publish "$strm" s2 --lines -
check "publish --lines with a line over max_message: exit 1" status_is 1
check "  ... one line on stderr" err_one_line "sesh: publish: $strm: "
check "  ... the id of the line before it on stdout" out_ids 1
run tail "$strm" s2 --after "$last"
check "  ... which alone was published" \
	eval 'succeeded && out_lines 1 && out_has "	ok\$"'
seq 1 200 >"$tmp/lines"
run_in "$tmp/lines" publish "$strm" s2 --lines
check "publish --lines of 200 lines (several batches) exits 0" succeeded
check "  ... and prints 200 ids, increasing" out_ids 200

echo "== streams: lapping"
# 100 messages of 100 bytes do not fit a ring of 4 KiB.
run session create "$strm" s3
i=0
while test $i -lt 100; do
	printf '%03d%097d\n' $i 0
	i=$((i + 1))
done >"$tmp/lines"
run_in "$tmp/lines" publish "$strm" s3 --lines
check "publish --lines of 100 messages of 100 bytes exits 0" \
	eval 'succeeded && out_lines 100'
first=$(head -n 1 "$tmp/out")
last=$(tail -n 1 "$tmp/out")
run tail "$strm" s3 --oldest
kept=$(wc -l <"$tmp/out")
check "tail --oldest prints what the ring retains, no lapping" succeeded
check "  ... which is not every message" \
	test "$kept" -gt 0 -a "$kept" -lt 100
check "  ... up to the last message" test "$(last_id "$tmp/out")" = "$last"
run tail "$strm" s3 --after "$first"
check "tail --after an overwritten id exits 0" status_is 0
check "  ... and says where it resumes, on one line of stderr" \
	err_one_line "sesh: tail: $strm: lapped, resuming at "
resume=$(sed -n 's/.*resuming at \([0-9]*\)$/\1/p' "$tmp/err")
check "  ... then prints from there" \
	test "$(first_id "$tmp/out")" -ge "${resume:-0}" -a -n "$resume"
check "  ... to the last message" test "$(last_id "$tmp/out")" = "$last"
cut -f 2 "$tmp/out" >"$tmp/data"
check "  ... the messages intact" not grep -Evq '^[0-9]{3}0{97}$' "$tmp/data"

echo "== streams: stats"
run stats "$strm"
check "stats exits 0" succeeded
check "stats shows every counter" out_has_all '^published: +[0-9]+$' \
	'^published bytes: +[0-9]+$' '^publish failed: +[0-9]+$' \
	'^delivered: +[0-9]+$' '^delivered bytes: +[0-9]+$' \
	'^lapped: +[0-9]+$' '^holes unblocked: +[0-9]+$' \
	'^futex waits: +[0-9]+$' '^futex wakes: +[0-9]+$' \
	'^subscriptions: +[0-9]+$' '^sessions created: +[0-9]+$' \
	'^sessions deleted: +[0-9]+$' '^sessions expired: +[0-9]+$' \
	'^reaper passes: +[0-9]+$' '^persist rows: +0$' \
	'^persist commits: +0$' '^persist errors: +0$'
run stats "$strm" --json
check "stats --json has every key" json_keys published published_bytes \
	publish_failed delivered delivered_bytes lapped holes_unblocked \
	futex_waits futex_wakes subscriptions sessions_created \
	sessions_deleted sessions_expired reaper_passes persist_rows \
	persist_commits persist_errors
check "stats --json counts the two laps" \
	test "$(stat_of lapped)" -eq $((lap0 + 2))
if have_python; then
	check "stats --json is valid JSON" valid_json
fi
run stats "$missing"
check "stats of a missing domain: exit 1" failed stats "$missing"

echo "== streams: tail --follow"
run session create "$strm" s4
run publish "$strm" s4 before
subs=$(subscriptions_of "$strm")
start_bg tail "$strm" s4 --follow
check "tail --follow subscribes (stats counts it)" \
	wait_until 10 subscribed_since "$strm" "$subs"
check "  ... info shows 1 stream open" streams_open_is "$strm" 1
run publish "$strm" s4 after1
ida=$(cat "$tmp/out")
run_in "$tmp/msg" publish "$strm" s4
idb=$(cat "$tmp/out")
printf "%s\tafter1\n%s\t$esc\n" "$ida" "$idb" >"$tmp/want"
check "tail --follow prints new messages as they come" \
	wait_until 10 lines_in "$tmp/fout" 2
run session rm "$strm" s4
wait_bg 10
check "tail --follow exits 0 when the session is removed" succeeded
check "  ... having printed only what came after it started" \
	cmp -s "$tmp/out" "$tmp/want"
check "  ... and detached" streams_open_is "$strm" 0

run session create "$strm" s5
run publish "$strm" s5 kept
start_bg tail "$strm" s5 -f --oldest --json
check "tail -f --oldest prints what is there" \
	wait_until 10 lines_in "$tmp/fout" 1
kill -TERM "$fpid"
wait_bg 10
check "SIGTERM ends tail -f with exit 0" succeeded
check "  ... after the message" eval 'out_lines 1 && out_has "\"kept\""'
run info "$strm" --json
check "  ... detached: no stream open, no dead process" \
	eval 'json_num streams_open 0 && json_num processes_dead 0'

if env --default-signal=INT true 2>/dev/null; then
	# A background job of sh starts with SIGINT ignored; env restores it.
	subs=$(subscriptions_of "$strm")
	env --default-signal=INT "$SESH_BIN" tail "$strm" s5 -f \
		</dev/null >"$tmp/fout" 2>"$tmp/ferr" &
	fpid=$!
	check "tail -f waits" wait_until 10 subscribed_since "$strm" "$subs"
	kill -INT "$fpid"
	wait_bg 10
	check "SIGINT ends tail -f with exit 0" \
		eval 'succeeded && out_empty'
else
	echo "skip - env --default-signal missing: SIGINT not checked"
fi

start_bg tail "$strm" s3 -f --after "$first"
last_msg=$(tail -n 1 "$tmp/lines")
check "tail -f --after an overwritten id prints up to the last message" \
	wait_until 10 last_line_is "$tmp/fout" "$last" "$last_msg"
run publish "$strm" s3 more
idm=$(cat "$tmp/out")
check "  ... and goes on with new ones" \
	wait_until 10 last_line_is "$tmp/fout" "$idm" more
kill -TERM "$fpid"
wait_bg 10
check "  ... exit 0" status_is 0
check "  ... having said once that it was lapped" \
	err_one_line "sesh: tail: $strm: lapped, resuming at "

run rm "$strm"
check "rm of the stream domain exits 0" succeeded

echo "== housekeeping: usage errors"
run stats "$hk" --json --prometheus
check "stats --json --prometheus: usage error (exit 2)" usage_error
run stats "$hk" --prometheus --json
check "stats --prometheus --json: usage error (exit 2)" usage_error
run stats "$hk" --prometheus=yes
check "stats --prometheus=yes: usage error (exit 2)" usage_error
run health
check "health without a name: usage error (exit 2)" usage_error
run health "$hk" extra
check "health with an extra argument: usage error (exit 2)" usage_error
run health "$hk" --prometheus
check "health --prometheus (not its option): usage error (exit 2)" \
	usage_error
run reap
check "reap without a name: usage error (exit 2)" usage_error
run reap "$hk" extra
check "reap with an extra argument: usage error (exit 2)" usage_error
run reap "$hk" --ns x
check "reap --ns (not its option): usage error (exit 2)" usage_error
check "no usage error created a domain" no_object "$hk"

echo "== housekeeping: health"
run create "$hk" --max-sessions 100
check "create $hk exits 0" succeeded
run health "$hk"
check "health of a fresh domain, no reaper ever: exit 1 (degraded)" \
	eval 'status_is 1 && err_empty'
check "  ... says degraded, reaper absent, no pass" out_has_all \
	'^status: +degraded$' '^reaper: +absent$' '^reaper pid: +none$' \
	'^reaper passes: +0$' '^last pass: +never$'
check "  ... with a reason that mentions the reaper" \
	out_has '^reason: .*reaper'
check "  ... and every other line" out_has_all \
	'^sessions: +0 of 100 \(0\.0%\)$' \
	'^processes: +1 alive, 0 dead, of [0-9]+ \([0-9.]+%\)$' \
	'^streams open: +0$' '^stuck readers: +0$' \
	'^retired blocks: +[0-9]+$' '^committed: +[0-9]+ bytes ' \
	'^segment size: +[0-9]+ bytes .* virtual$' '^persistence: +none$'
check "  ... and no more about a database" \
	not out_has '^(database|pending changes|lag|resync due|last commit):'
run health "$hk" --json
check "health --json: exit 1 too" eval 'status_is 1 && err_empty'
check "  ... status as a string and as a number" \
	eval 'json_str status degraded && json_num status_code 1'
check "  ... every key" json_keys status status_code reason sessions \
	max_sessions sessions_percent processes_alive processes_dead \
	max_processes processes_percent streams_open reaper_alive \
	reaper_pid reaper_passes reaper_last_ns reaper_last reaper_age_s \
	stuck_readers retired_blocks committed_bytes segment_bytes persistence
check "  ... persistence: mode none, and nothing else" \
	eval 'json_str mode none && not json_keys ok'
check "  ... no reaper, no pass" eval 'out_has "\"reaper_alive\": false" &&
	json_num reaper_pid 0 && json_num reaper_passes 0 &&
	out_has "\"reaper_last\": null"'
if have_python; then
	check "  ... valid JSON" valid_json
fi
run health "$missing"
check "health of a missing domain: exit 2 (down), one line on stderr" \
	eval 'status_is 2 && out_empty && err_one_line "sesh: health: $missing: "'
run health "$missing" --json
check "health --json of a missing domain: exit 2 too" \
	eval 'status_is 2 && out_empty'
printf 'not a sesh domain' >"$shmdir/sesh.$bad"
run health "$bad"
check "health of an object that is not a domain: exit 2, one line" \
	eval 'status_is 2 && out_empty && err_one_line "sesh: health: $bad: "'
rm -f "$shmdir/sesh.$bad"

echo "== housekeeping: stats --prometheus"
run stats "$hk" --prometheus
check "stats --prometheus exits 0" succeeded
check "  ... every line a comment or a sample NAME{LABELS} VALUE" \
	prom_samples_only
check "  ... every metric has HELP and TYPE before its samples" prom_grouped
check "  ... counters, and they alone, end in _total" prom_counters_total
check "  ... every sample labelled domain=\"$hk\"" prom_labelled "$hk"
check "  ... every counter" out_has_all \
	'^sesh_messages_published_total\{' '^sesh_published_bytes_total\{' \
	'^sesh_publish_failed_total\{' '^sesh_messages_delivered_total\{' \
	'^sesh_delivered_bytes_total\{' '^sesh_lapped_total\{' \
	'^sesh_holes_unblocked_total\{' '^sesh_futex_waits_total\{' \
	'^sesh_futex_wakes_total\{' '^sesh_subscriptions_total\{' \
	'^sesh_sessions_created_total\{' '^sesh_sessions_deleted_total\{' \
	'^sesh_sessions_expired_total\{' '^sesh_reaper_passes_total\{' \
	'^sesh_persist_rows_total\{' '^sesh_persist_commits_total\{' \
	'^sesh_persist_errors_total\{'
check "  ... every gauge" out_has_all '^sesh_sessions\{' \
	'^sesh_sessions_max\{' '^sesh_processes\{.*,state="alive"\}' \
	'^sesh_processes\{.*,state="dead"\}' '^sesh_processes_max\{' \
	'^sesh_streams_open\{' '^sesh_segment_bytes\{' \
	'^sesh_committed_bytes\{' '^sesh_reaper_up\{' \
	'^sesh_stuck_readers\{' '^sesh_retired_blocks\{' \
	'^sesh_health_status\{'
check "  ... sessions_max 100, reaper down, status degraded" \
	eval 'test "$(prom_of sesh_sessions_max)" = 100 &&
	test "$(prom_of sesh_reaper_up)" = 0 &&
	test "$(prom_of sesh_health_status)" = 1'
check "  ... no timestamp of a last pass: none ran" \
	not out_has '^sesh_reaper_last_pass_timestamp_seconds'
check "  ... no gauges of a database: it has none" \
	not out_has '^sesh_persist_(pending|lag_seconds|ok)\{'
created0=$(prom_of sesh_sessions_created_total)
deleted0=$(prom_of sesh_sessions_deleted_total)
run session create "$hk" p1
run session create "$hk" p2
run session rm "$hk" p1
run stats "$hk" --prometheus
check "creating 2 sessions and deleting 1 moves the counters" \
	eval 'test "$(prom_of sesh_sessions_created_total)" -eq \
		$((${created0:-0} + 2)) &&
	test "$(prom_of sesh_sessions_deleted_total)" -eq \
		$((${deleted0:-0} + 1))'
check "  ... and the sessions gauge" test "$(prom_of sesh_sessions)" = 1
check "  ... processes: this one alive, none dead" \
	eval 'test "$(prom_of sesh_processes state=\"alive\")" = 1 &&
	test "$(prom_of sesh_processes state=\"dead\")" = 0'

echo "== housekeeping: reap"
run session create "$hk" short --ttl 1
run stats "$hk" --json
expired0=$(stat_of sessions_expired)
passes0=$(stat_of reaper_passes)
sleep 1.2
run reap "$hk"
check "reap exits 0, quiet on stderr" succeeded
check "  ... and prints every field" out_has_all '^pass: +[0-9]+$' \
	'^started: +[0-9]{4}-[0-9]{2}-[0-9]{2}T.*Z$' '^duration: +[0-9]+ ns$' \
	'^processes recovered: +0$' '^recovery walk: +(yes, finished|yes, goes on|no)$' \
	'^sessions expired: +[0-9]+$' '^buckets scanned: +[0-9]+$' \
	'^sweep wrapped: +(yes|no)$' '^blocks freed: +[0-9]+$' \
	'^rings freed: +[0-9]+$' '^holes unblocked: +[0-9]+$' \
	'^persist rows: +0$' '^persist error: +none$'
check "  ... the first pass of the domain" out_has "^pass: +$((passes0 + 1))\$"
check "  ... which expired the session past its TTL" \
	out_has '^sessions expired: +1$'
run ls "$hk" --expired 0
check "  ... for good: ls --expired 0 shows only the header" \
	eval 'succeeded && out_lines 1'
run session get "$hk" p2
check "  ... and kept the session within its TTL" succeeded
run stats "$hk" --json
check "stats counts the expiry and the pass" \
	eval 'test "$(stat_of sessions_expired)" -eq $((expired0 + 1)) &&
	test "$(stat_of reaper_passes)" -eq $((passes0 + 1))'
run reap "$hk" --json
check "reap --json exits 0" succeeded
check "  ... every key" json_keys pass started_ns started duration_ns \
	processes_recovered recovery_walk recovery_done sessions_expired buckets_scanned \
	sweep_wrapped blocks_freed rings_freed holes_unblocked persist_rows \
	persist_error
check "  ... the next pass, nothing left to expire" \
	eval 'json_num pass $((passes0 + 2)) && json_num sessions_expired 0'
if have_python; then
	check "  ... valid JSON" valid_json
else
	echo "skip - python3 not found: JSON validity not checked"
fi
run health "$hk"
check "health after reap: still exit 1, the reap process is gone" \
	eval 'status_is 1 && err_empty'
check "  ... reaper absent, with the pid and passes of the last pass" \
	out_has_all '^reaper: +absent$' '^reaper pid: +[0-9]+$' \
	"^reaper passes: +$((passes0 + 2))\$" '^last pass: +[0-9.]+ s ago, '
check "  ... with a reason that mentions the reaper" \
	out_has '^reason: .*reaper'
run health "$hk" --json
check "health --json after reap: the time of the last pass" \
	eval 'status_is 1 && json_keys reaper_last &&
	out_has "\"reaper_last\": \"[0-9]{4}-" &&
	out_has "\"reaper_age_s\": [0-9.]+"'
run stats "$hk" --prometheus
check "stats --prometheus after reap: the time of the last pass" \
	eval 'prom_samples_only && prom_grouped &&
	out_has "^sesh_reaper_last_pass_timestamp_seconds\\{.*\\} [0-9]+\\.[0-9]+$"'
check "  ... the passes counted, reaper still down" \
	eval 'test "$(prom_of sesh_reaper_passes_total)" -eq $((passes0 + 2)) &&
	test "$(prom_of sesh_reaper_up)" = 0'
run reap "$missing"
check "reap of a missing domain: exit 1, one line on stderr" \
	failed reap "$missing"
run rm "$hk"
check "rm of the housekeeping domain exits 0" succeeded

echo "== persistence: usage errors"
run create "$pdom" --sqlite x.db
check "create --sqlite with a relative path: usage error (exit 2)" usage_error
check "  ... which says the path must be absolute" \
	eval 'head -n 1 "$tmp/err" | grep -q "absolute path"'
run create "$pdom" --sqlite ''
check "create --sqlite '': usage error (exit 2)" usage_error
run create "$pdom" --sqlite-async
check "create --sqlite-async without --sqlite: usage error" usage_error
run create "$pdom" --sqlite "$tmp/db/x.db" --sqlite-lag-ms 10
check "create --sqlite-lag-ms without --sqlite-async: usage error" usage_error
run create "$pdom" --sqlite "$tmp/db/x.db" --sqlite-async \
	--sqlite-wait-ms 10
check "create --sqlite-wait-ms with --sqlite-async: usage error" usage_error
run create "$pdom" --sqlite "$tmp/db/x.db" --sqlite-async \
	--sqlite-lag-ms 1k
check "create --sqlite-lag-ms 1k: usage error (exit 2)" usage_error
check "no usage error created a domain" no_object "$pdom"
check "  ... nor a database" not test -e "$tmp/db/x.db"

# the rows of the database $1, as ns|id|user|meta|ttl_s, by id
db_rows() {
	sqlite3 "$1" 'SELECT ns, id, user, meta, ttl_s FROM sessions
		ORDER BY id' 2>&1
}
have_sqlite3() { command -v sqlite3 >/dev/null 2>&1; }
# stderr is the line of `session $1` that says its change, $2, is made and
# not yet written to the database
not_durable() {
	err_one_line "sesh: session $1: $pdom: $2, but not written to " &&
		grep -q "to the database yet: [^ ]" "$tmp/err"
}

echo "== persistence: write-through"
mkdir "$tmp/db"
run create "$pdom" --sqlite "$tmp/db/nodir/x.db"
check "create --sqlite in a missing directory: exit 1, one line" \
	failed create "$pdom"
# A library without SQLite says so before it looks at the directory.
if ! grep -q 'without SQLite' "$tmp/err"; then
	check "  ... which names the directory" \
		grep -q 'cannot be created: its directory: ' "$tmp/err"
fi
check "  ... and no domain" no_object "$pdom"
run create "$pdom" --sqlite "$tmp/db/x.db" --max-sessions 100
if status_is 1 && grep -q 'without SQLite' "$tmp/err"; then
	echo "skip - the library is built without SQLite: persistence" \
		"not checked"
	skip_db=yes
else
	skip_db=no
	check "create --sqlite exits 0" succeeded
	check "  ... and makes the database" test -s "$tmp/db/x.db"
	check "  ... and describes it: path, synchronous, lag and wait" \
		out_has_all "^database: +$tmp/db/x.db\$" \
		'^database mode: +synchronous$' '^database lag: +1000 ms$' \
		'^database wait: +5000 ms$'
fi
if test $skip_db = no; then
	run session create "$pdom" p-keep --user alice --meta one --ttl 600
	check "session create in it exits 0" succeeded_with '^p-keep$'
	run session create "$pdom" p-upd --meta old
	run session create "$pdom" p-del --meta gone
	run session create "$pdom" --meta generated
	pgen=$(cat "$tmp/out")
	run session update "$pdom" p-upd --meta new
	check "session update in it exits 0" succeeded
	run session rm "$pdom" p-del
	check "session rm in it exits 0" succeeded

	run health "$pdom"
	check "health shows persistence synchronous, database ok" out_has_all \
		'^persistence: +synchronous$' '^database: +ok$' \
		'^pending changes: +0$' '^lag: +0 ms$' \
		'^resync due: +(yes|no)$' \
		'^last commit: +[0-9.]+ s ago, [0-9]{4}-'
	run health "$pdom" --json
	check "health --json: persistence synchronous and ok" \
		eval 'json_str mode synchronous && out_has "\"ok\": true" &&
		json_str error "" && json_num pending 0 && json_num lag_ms 0'
	check "  ... every key of persistence" json_keys mode ok error pending \
		lag_ms resync last_commit_ns last_commit last_commit_age_s
	if have_python; then
		check "  ... valid JSON" valid_json
	fi

	run stats "$pdom" --prometheus
	check "stats --prometheus with a database: well formed" \
		eval 'prom_samples_only && prom_grouped && prom_counters_total'
	check "  ... the persist counters: 5 rows or more, no error" \
		eval 'test "$(prom_of sesh_persist_rows_total)" -ge 5 &&
		test "$(prom_of sesh_persist_commits_total)" -ge 1 &&
		test "$(prom_of sesh_persist_errors_total)" = 0'
	check "  ... and its gauges: nothing pending, ok" \
		eval 'test "$(prom_of sesh_persist_pending)" = 0 &&
		test "$(prom_of sesh_persist_ok)" = 1 &&
		out_has "^sesh_persist_lag_seconds\\{.*\\} 0\\.000$"'
	run stats "$pdom" --json
	check "stats --json counts the rows and commits" \
		eval 'test "$(stat_of persist_rows)" -ge 5 &&
		test "$(stat_of persist_commits)" -ge 1 &&
		test "$(stat_of persist_errors)" = 0'
	run reap "$pdom" --json
	check "reap --json with a database: no error" \
		eval 'succeeded && json_str persist_error "" &&
		json_num persist_rows "[0-9]+"'

	if have_sqlite3; then
		printf '%s\n' "default|$pgen||generated|1800" \
			"default|p-keep|alice|one|600" \
			"default|p-upd||new|1800" >"$tmp/want"
		db_rows "$tmp/db/x.db" >"$tmp/rows"
		check "sqlite3: the database has the sessions but the deleted" \
			cmp -s "$tmp/rows" "$tmp/want"
	else
		echo "skip - sqlite3 not found: the rows themselves not checked"
	fi

	run rm "$pdom"
	check "rm of the domain with a database exits 0" succeeded
	check "  ... and leaves the database" test -s "$tmp/db/x.db"
	run create "$pdom" --sqlite "$tmp/db/x.db" --max-sessions 100
	check "create again with the same --sqlite exits 0" succeeded
	run ls "$pdom"
	check "ls: the sessions are back" \
		out_has_all '^p-keep +alice ' '^p-upd ' "^$pgen "
	check "  ... and the deleted one is not" not out_has '^p-del '
	check "  ... three of them" out_lines 4
	run session get "$pdom" p-keep --json
	check "session get: owner, metadata and TTL restored" \
		eval 'json_str user alice && json_str meta one &&
		json_num ttl_s 600'
	run session get "$pdom" p-upd
	check "session get: the metadata as last updated" \
		succeeded_with '^meta: +new$'
	run health "$pdom" --json
	check "health --json after the restore: synchronous and ok" \
		eval 'json_str mode synchronous && out_has "\"ok\": true"'

	echo "== persistence: the database fails"
	mv "$tmp/db" "$tmp/db.away"
	run session create "$pdom" p-out --meta outage
	check "session create with the database gone: exit 1, one line" \
		eval 'status_is 1 && not_durable create created'
	check "  ... and the id all the same" out_is p-out
	run session get "$pdom" p-out
	check "  ... the session exists" succeeded
	run session update "$pdom" p-upd --meta newer
	check "session update with the database gone: exit 1, one line" \
		eval 'status_is 1 && out_empty && not_durable update updated'
	run health "$pdom"
	check "health: degraded, the database failing" \
		eval 'status_is 1 && out_has "^database: +failing: ."'
	check "  ... the changes pending" out_has '^pending changes: +[1-9]'
	run health "$pdom" --json
	check "health --json: ok false, with the error" \
		eval 'out_has "\"ok\": false" && out_has "\"error\": \"[^\"]"'
	run stats "$pdom" --prometheus
	check "stats --prometheus: persist_ok 0, errors counted" \
		eval 'test "$(prom_of sesh_persist_ok)" = 0 &&
		test "$(prom_of sesh_persist_errors_total)" -ge 1'
	run reap "$pdom"
	check "reap: exit 0, with the database's error" \
		eval 'succeeded &&
		out_has "^persist error: +writing to the database failed: ."'
	mv "$tmp/db.away" "$tmp/db"
	run session create "$pdom" p-back
	check "with the database back, session create exits 0" succeeded
	run health "$pdom"
	check "  ... health: the database ok, nothing pending" \
		out_has_all '^database: +ok$' '^pending changes: +0$'
	if have_sqlite3; then
		db_rows "$tmp/db/x.db" | cut -d '|' -f 2,4 >"$tmp/rows"
		check "sqlite3: what the outage held back is written" \
			eval 'grep -qx "p-out|outage" "$tmp/rows" &&
			grep -qx "p-upd|newer" "$tmp/rows" &&
			grep -qx "p-back|" "$tmp/rows"'
	fi
	run rm "$pdom"

	echo "== persistence: what a restore refuses"
	# x.db holds 5 live sessions; the longest metadata is "generated".
	run create "$pdom" --sqlite "$tmp/db/x.db" --max-metadata 4
	check "create --max-metadata under a session's: exit 1, one line" \
		failed create "$pdom"
	check "  ... which names the database and --max-metadata" \
		grep -q "the database $tmp/db/x.db holds a session whose metadata is larger than --max-metadata" "$tmp/err"
	check "  ... and no domain" no_object "$pdom"
	run create "$pdom" --sqlite "$tmp/db/x.db" --max-sessions 2
	check "create --max-sessions under the sessions held: exit 1" \
		failed create "$pdom"
	check "  ... which says more live sessions than --max-sessions" \
		grep -q "the database $tmp/db/x.db holds more live sessions than --max-sessions, or the segment is too large$" "$tmp/err"
	check "  ... and no domain" no_object "$pdom"
	printf 'no database in here\n' >"$tmp/junk.db"
	cp "$tmp/junk.db" "$tmp/junk.want"
	run create "$pdom" --sqlite "$tmp/junk.db"
	check "create --sqlite of a file that is not SQLite: exit 1" \
		failed create "$pdom"
	check "  ... which says it is not a sesh database" \
		grep -q "$tmp/junk.db is not a sesh database" "$tmp/err"
	check "  ... and no domain" no_object "$pdom"
	check "  ... and the file as it was" cmp -s "$tmp/junk.db" \
		"$tmp/junk.want"

	run create "$pdom" --sqlite "$tmp/db/x.db" --sqlite-async \
		--sqlite-lag-ms 250 --json
	check "create --sqlite-async --sqlite-lag-ms 250 exits 0" succeeded
	run info "$pdom" --json
	check "info --json: the path, asynchronous, lag 250, wait 5000" \
		eval 'json_str sqlite_path "$tmp/db/x.db" &&
		json_str sqlite_mode asynchronous &&
		json_num sqlite_lag_ms 250 && json_num sqlite_wait_ms 5000'
	if have_python; then
		check "  ... valid JSON" valid_json
	fi
	run info "$pdom"
	check "info: database mode asynchronous, lag 250 ms" \
		out_has_all '^database mode: +asynchronous$' \
		'^database lag: +250 ms$'
	run rm "$pdom"

	if have_sqlite3; then
		sqlite3 "$tmp/foreign.db" 'CREATE TABLE t (x)'
		run create "$pdom" --sqlite "$tmp/foreign.db"
		check "create --sqlite of another program's database: exit 1" \
			failed create "$pdom"
		check "  ... which says so" \
			grep -q 'is not a sesh database' "$tmp/err"
		check "  ... and no domain" no_object "$pdom"
	fi
fi

echo "== bad numbers leave no domain behind"
# what, expected exit status, options
while read -r want opts; do
	# shellcheck disable=SC2086 # $opts is a list of words
	run create "$bad" $opts
	check "create $opts: exit $want" status_is "$want"
	check "  ... and no domain $bad" no_object "$bad"
	# so that one wrongly created does not fail the next rows
	"$SESH_BIN" rm "$bad" >/dev/null 2>&1
done <<EOF
2 --max-sessions abc
2 --max-sessions -5
2 --max-sessions 1.5
2 --max-sessions 99999999999999999999999
2 --stream-bytes 8x
2 --stream-bytes 17179869184g
2 --mode 999
2 --mode -600
2 --unblock-ms abc
2 --unblock-ms 1k
2 --unblock-ms 4294967296
2 --max-subscriptions -1
2 --max-subscriptions 1m
1 --stream-bytes 3000
1 --max-sessions 0
1 --mode 0400
1 --unblock-ms 0
1 --unblock-ms 60001
1 --max-subscriptions 0
1 --max-subscriptions 1048577
EOF
run create "$bad" --max-sessions ""
check "create --max-sessions '': exit 2" status_is 2
check "  ... and no domain $bad" no_object "$bad"
run info "$bad"
check "info $bad: no such domain (exit 1)" failed info "$bad"

echo "== rm"
run rm "$dom"
check "rm exits 0" succeeded
check "the object is gone" no_object "$dom"
run rm "$dom"
check "rm again: exit 1, one line on stderr" failed rm "$dom"
run info "$dom"
check "info after rm: exit 1" failed info "$dom"

echo "== demo"
"$SESH_DEMO" </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
check "the demo exits 0, quiet on stderr" succeeded
check "the demo reports the killed worker dead" out_has 'dead'
check "the demo's session outlives its creator" out_has 'lives on'
check "another worker serves the session" out_has 'serves session'
check "the owner check hides it from another user" out_has 'user mallory: no such'
check "a subscriber in another worker gets the messages" out_has '<- id: [0-9]+ data: \{"progress":3\}'
check "a resumed stream gets exactly what was missed" out_has 'got exactly the 3 messages missed'

echo "test_cli: $pass passed, $fail failed"
test "$fail" -eq 0
