# bench/report.jq - turn the result lines of a run (slurped) into the
# report: each alternative's ratio to sesh on the same case and params,
# and DESIGN.md's performance bar against what was measured.
# Variables: $machine, $micro, $ir (slurped files), $skipped.

def key: {case, params};
def sesh_of($all; $r):
	first($all[] | select(.system == "sesh" and key == ($r | key))) // null;
def ratio($a; $b):
	if $a == null or $b == null or $b == 0 then null
	else (($a / $b) * 100 | floor) / 100 end;
def find($all; $case; $sys; $params):
	first($all[] | select(.case == $case and .system == $sys
		and .params == $params)) // null;

. as $all
| [ $all[] | . as $r
    | if .system == "sesh" then .
      else sesh_of($all; $r) as $s
        | . + { ratio_p50: ratio(.p50_ns; $s.p50_ns),
                ratio_p99: ratio(.p99_ns; $s.p99_ns) }
      end ] as $results
| (find($all; "stream.latency"; "sesh"; {size: 64, mode: "spin", rate: 10000})) as $spin
| (find($all; "stream.latency"; "sesh"; {size: 64, mode: "sleep", rate: 10000})) as $sleep
| (find($all; "stream.pingpong"; "sesh"; {size: 64, mode: "spin"})) as $ppspin
| (find($all; "stream.pingpong"; "sesh"; {size: 64, mode: "sleep"})) as $ppsleep
| (find($all; "stream.pingpong"; "uds"; {size: 64, mode: "spin"})) as $uppspin
| (find($all; "stream.pingpong"; "uds"; {size: 64, mode: "sleep"})) as $uppsleep
| (find($all; "stream.latency"; "redis"; {size: 64, mode: "sleep", rate: 10000})) as $rsleep
| (find($all; "stream.throughput"; "sesh"; {publishers: 1, size: 64, batch: 1})) as $thr1
| (find($all; "stream.throughput"; "sesh"; {publishers: 1, size: 64, batch: 32})) as $thr32
| (find($all; "session.get"; "sesh"; {resident: 1000000, procs: 1})) as $get
| (find($all; "session.get"; "redis"; {resident: 1000000, procs: 1})) as $rget
| (find($all; "session.touch"; "sesh"; {resident: 1000000, procs: 1})) as $touch
| (find($all; "session.memory"; "sesh"; {resident: 1000000})) as $mem
| def bar($figure; $what; $measured; $limit; $dir; $unit):
    { figure: $figure, measured_as: $what, measured: $measured,
      bar: $limit, unit: $unit,
      pass: (if $measured == null then null
             elif $dir == "max" then $measured <= $limit
             else $measured >= $limit end) };
  [ bar("publish -> receive, 64 B, busy-poll, p50";
        "stream.latency size=64 mode=spin rate=10000"; $spin.p50_ns; 500; "max"; "ns"),
    bar("publish -> receive, 64 B, busy-poll, p99";
        "stream.latency size=64 mode=spin rate=10000"; $spin.p99_ns; 2000; "max"; "ns"),
    bar("same, subscriber asleep on futex, p50";
        "stream.latency size=64 mode=sleep rate=10000"; $sleep.p50_ns; 15000; "max"; "ns"),
    bar("throughput 1 -> 1, 64 B";
        "stream.throughput publishers=1 size=64 batch=1"; $thr1.ops_per_s; 10000000; "min"; "msg/s"),
    bar("throughput 1 -> 1, 64 B, batched";
        "stream.throughput publishers=1 size=64 batch=32"; $thr32.ops_per_s; 30000000; "min"; "msg/s"),
    bar("session get, 1M resident, p50";
        "session.get resident=1000000 procs=1"; $get.p50_ns; 100; "max"; "ns"),
    bar("session touch, p50";
        "session.touch resident=1000000 procs=1"; $touch.p50_ns; 50; "max"; "ns"),
    bar("lower latency than Redis, stream, both waiting (p50 ratio)";
        "stream.latency size=64 mode=sleep rate=10000, redis / sesh";
        ratio($rsleep.p50_ns; $sleep.p50_ns); 50; "min"; "x"),
    bar("same, sesh busy-polling (p50 ratio)";
        "stream.latency size=64 rate=10000, redis (sleep) / sesh (spin)";
        ratio($rsleep.p50_ns; $spin.p50_ns); 50; "min"; "x"),
    bar("lower latency than Redis, session get (p50 ratio)";
        "session.get resident=1000000 procs=1, redis / sesh";
        ratio($rget.p50_ns; $get.p50_ns); 50; "min"; "x"),
    bar("lower latency than a Unix socket ping-pong (p50 ratio)";
        "stream.pingpong size=64 mode=sleep, uds / sesh";
        ratio($uppsleep.p50_ns; $ppsleep.p50_ns); 20; "min"; "x"),
    bar("same, both sides busy-polling (p50 ratio)";
        "stream.pingpong size=64 mode=spin, uds / sesh";
        ratio($uppspin.p50_ns; $ppspin.p50_ns); 20; "min"; "x"),
    bar("index memory per session at 1M";
        "session.memory resident=1000000"; $mem.bytes_per_session; 512; "max"; "B") ]
  as $bar
| { machine: $machine, results: $results, bar: $bar,
    micro: ($micro[0] // []), ir: ($ir[0] // []),
    skipped: $skipped }
