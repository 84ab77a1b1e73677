# bench/markdown.jq - the README's tables from a report of bench/run:
#   jq -r -f bench/markdown.jq out.json
# Each cell is "p50 / p99" (ops/s for throughput); an alternative's cell
# ends with its p50 ratio to sesh (x20: sesh 20 times lower).

def t:
	if . == null then "-"
	elif . < 1000 then "\(. | floor) ns"
	elif . < 1000000 then "\((. / 100 | floor) / 10) µs"
	elif . < 1000000000 then "\((. / 100000 | floor) / 10) ms"
	else "\((. / 100000000 | floor) / 10) s" end;
def rate:
	if . == null then "-"
	elif . >= 1000000 then "\((. / 10000 | floor) / 100) M/s"
	elif . >= 1000 then "\((. / 100 | floor) / 10) k/s"
	else "\(. | floor)/s" end;
def params: [.params | to_entries[] | "\(.key)=\(.value)"] | join(" ");
def cell($thr):
	if . == null then "-"
	elif $thr then (.ops_per_s | rate)
	else "\(.p50_ns | t) / \(.p99_ns | t)" end
	+ (if . != null and .system != "sesh" and .ratio_p50 != null
	   then " (x\(.ratio_p50))" else "" end);

# table(case filter; systems; throughput?)
def table($rows; $systems; $thr):
	"| params | " + ($systems | join(" | ")) + " |",
	"|---" + ($systems | map("|---") | join("")) + "|",
	( $rows | group_by(.params)[]
	  | . as $g
	  | "| \($g[0] | params) | "
	    + ([ $systems[] as $s
	         | (first($g[] | select(.system == $s)) // null) | cell($thr) ]
	       | join(" | "))
	    + " |" );

. as $r
| "Machine: \($r.machine.cpu), \($r.machine.ncpu) CPUs, \($r.machine.memory), \($r.machine.kernel); clock \($r.machine.clock); Redis \($r.machine.redis), SQLite \($r.machine.sqlite); \(if $r.machine.quick then "quick run" else "full run" end) of \($r.machine.date), commit \($r.machine.commit).",
"",
"### The bar (docs/DESIGN.md)",
"",
"| figure | bar | measured | |",
"|---|---|---|---|",
( $r.bar[] | "| \(.figure) | \(if .unit == "x" or .unit == "msg/s" then "≥" else "≤" end) \(.bar) \(.unit) | \(if .measured == null then "not measured" else "\(.measured) \(.unit)" end) | \(if .pass == null then "n/a" elif .pass then "ok" else "**miss**" end) |" ),
"",
"### One-way latency, publish to receipt, 64 B (p50 / p99)",
"",
table([$r.results[] | select(.case == "stream.latency" and .params.size == 64)];
      ["sesh", "uds", "redis"]; false),
"",
"### Ping-pong round trip (p50 / p99)",
"",
table([$r.results[] | select(.case == "stream.pingpong")]; ["sesh", "uds"]; false),
"",
"### Throughput, publishers to one subscriber (messages/s)",
"",
table([$r.results[] | select(.case == "stream.throughput")];
      ["sesh", "uds", "redis"]; true),
"",
( ["session.get", "session.touch", "session.create_delete"][] as $c
  | "#### \($c) (p50 / p99)",
    "",
    table([$r.results[] | select(.case == $c)]; ["sesh", "redis", "sqlite"]; false),
    "" ),
"### Reaper pass (p50 / p99)",
"",
table([$r.results[] | select(.case == "reaper.pass")]; ["sesh"]; false),
"",
"### Memory per session, 1,000,000 resident, 64 B of metadata",
"",
"| system | bytes per session |",
"|---|---|",
( $r.results[] | select(.case == "session.memory")
  | "| \(.system) | \(.bytes_per_session | floor) |" )
,
"",
"### One process, no contention: google-benchmark (mean per call) and callgrind (instructions per call)",
"",
"| benchmark | time |",
"|---|---|",
( $r.micro[] | "| \(.name) | \(.real_time | t) |" ),
"",
"| operation | instructions |",
"|---|---|",
( $r.ir[] | "| \(.case) | \(.instructions_per_op | floor) |" )
