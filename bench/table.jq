# bench/table.jq - the human table of a report (bench/report.jq), as
# tab-separated rows for bench/run to align. "#" starts a group title,
# "=" a line printed as it is.

def t:
	if . == null then "-"
	elif . < 1000 then "\(. | floor) ns"
	elif . < 1000000 then "\((. / 100 | floor) / 10) us"
	elif . < 1000000000 then "\((. / 100000 | floor) / 10) ms"
	else "\((. / 100000000 | floor) / 10) s" end;
def rate:
	if . == null then "-"
	elif . >= 1000000 then "\((. / 10000 | floor) / 100) M/s"
	elif . >= 1000 then "\((. / 100 | floor) / 10) k/s"
	else "\(. | floor)/s" end;
def params: [.params | to_entries[] | "\(.key)=\(.value)"] | join(" ");
def caseorder: {"stream.latency": 0, "stream.pingpong": 1,
	"stream.throughput": 2, "session.get": 3, "session.touch": 4,
	"session.create_delete": 5, "reaper.pass": 6}[.case] // 9;
def sysorder: {"sesh": 0, "uds": 1, "redis": 2, "sqlite": 3}[.system] // 9;

"=machine: \(.machine.cpu), \(.machine.ncpu) CPUs, \(.machine.kernel), clock \(.machine.clock) (\(.machine.clock_cost_ns * 10 | floor / 10) ns a read), \(if .machine.quick then "quick run" else "full run" end)",
"=  ratio: the alternative's figure divided by sesh's (x20 = sesh 20 times lower)",
( .results | map(select(.case != "session.memory"))
  | group_by([caseorder, .params])[]
  | sort_by(sysorder)
  | ("#\(.[0].case)  \(.[0] | params)",
     "system\tp50\tp95\tp99\tp99.9\tmax\tops/s\tratio p50 / p99",
     (.[] | [.system, (.p50_ns | t), (.p95_ns | t), (.p99_ns | t),
             (.p999_ns | t), (.max_ns | t), (.ops_per_s | rate),
             (if .system == "sesh" then ""
              elif .ratio_p50 == null then "-"
              else "x\(.ratio_p50) / x\(.ratio_p99)" end)]
        | @tsv)) ),
( .results | map(select(.case == "session.memory")) | sort_by(sysorder)
  | if length > 0 then
      ("#session.memory  resident=\(.[0].params.resident)",
       (.[] | "=  \(.system): \(.bytes_per_session | floor) bytes per session"))
    else empty end ),
"#performance bar (docs/DESIGN.md)",
( .bar[] | "=  \(if .pass == null then "n/a " elif .pass then "ok  " else "MISS" end) \(.figure): \(if .measured == null then "not measured" else "\(.measured) \(.unit)" end) (bar \(if .unit == "x" or .unit == "msg/s" then ">=" else "<=" end) \(.bar) \(.unit); \(.measured_as))" ),
( if (.micro | length) > 0 then
    ("#micro suite (google-benchmark, single process)",
     (.micro[] | "=  \(.name): \(.real_time * 10 | floor / 10) \(.time_unit)"))
  else empty end ),
( if (.ir | length) > 0 then
    ("#instructions per operation (callgrind)",
     (.ir[] | "=  \(.case): \(.instructions_per_op)"))
  else empty end ),
( if .skipped != "" then "=skipped: \(.skipped)" else empty end )
