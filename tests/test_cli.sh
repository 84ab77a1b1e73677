#!/bin/sh
# test_cli.sh - end-to-end test of the sesh tool and of the demo.
#
# Runs the installed-to-be binaries on domains named after this shell's pid,
# checks exit statuses, stdout and stderr, and removes the domains at the
# end. Run by `make check`, which sets SESH_BIN and SESH_DEMO; by hand:
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
missing="clitest-$$-missing"
shmdir=${SESH_SHM_DIR:-/dev/shm}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_cli.XXXXXX") || exit 1
# Remove the domains with the tool, and, should the tool be broken, the
# objects themselves.
cleanup() {
	for name in "$dom" "$bad"; do
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
# a failure: status 1, nothing on stdout, one line "sesh: VERB: NAME: ..."
failed() { status_is 1 && out_empty && err_one_line "sesh: $1: $2: "; }
succeeded() { status_is 0 && err_empty; }
succeeded_with() { succeeded && out_has "$1"; }
succeeded_same() { succeeded && cmp -s "$tmp/out" "$1"; }
# a number in the JSON output: key $1, value $2
json_num() { out_has "\"$1\": *$2([^0-9]|\$)"; }
json_str() { out_has "\"$1\": *\"$2\""; }
json_keys() {
	for key in "$@"; do
		out_has "\"$key\": " || return 1
	done
}
valid_json() { python3 -m json.tool <"$tmp/out" >/dev/null 2>&1; }
no_object() { ! test -e "$shmdir/sesh.$1"; }
mode_is() { test "$(stat -c %a "$shmdir/sesh.$1" 2>/dev/null)" = "$2"; }

echo "== help and version"
run --help
check "--help exits 0 and prints a usage" succeeded_with '^usage: sesh'
run -h
check "-h exits 0" succeeded
run --version
check "--version exits 0 and prints 'sesh VERSION'" \
	succeeded_with '^sesh [0-9]'
for verb in create info rm; do
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
	--max-processes --mode --json

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
	max_metadata idle_ttl_s max_processes mode segment_bytes \
	committed_bytes processes_alive processes_dead processes slot pid \
	comm alive self attached_ns incarnation
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

run info "$missing"
check "info of a missing domain: exit 1, one line on stderr" \
	failed info "$missing"

echo "== bad numbers leave no domain behind"
# what, expected exit status, options
while read -r want opts; do
	# shellcheck disable=SC2086 # $opts is a list of words
	run create "$bad" $opts
	check "create $opts: exit $want" status_is "$want"
	check "  ... and no domain $bad" no_object "$bad"
done <<EOF
2 --max-sessions abc
2 --max-sessions -5
2 --max-sessions 1.5
2 --max-sessions 99999999999999999999999
2 --stream-bytes 8x
2 --stream-bytes 17179869184g
2 --mode 999
2 --mode -600
1 --stream-bytes 3000
1 --max-sessions 0
1 --mode 0400
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

echo "test_cli: $pass passed, $fail failed"
test "$fail" -eq 0
