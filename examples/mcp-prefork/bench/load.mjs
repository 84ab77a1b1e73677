// load.mjs - load on an MCP Streamable HTTP server from C clients of the
// official MCP TypeScript SDK, each with its own session.
//
//   node load.mjs URL [--clients C] [--seconds S] [--label L]
//                     [--retry-ms MS]
//
// Two phases of S seconds each (default 16 clients, 5 seconds):
//
//   echo    every client calls tools/call echo in a loop;
//   resume  every client calls count n=10 delay_ms=0 close_after=2 in a
//           loop: the server ends the response after two notifications
//           and the SDK resumes it with GET and Last-Event-ID; the time
//           is from the call to its result.
//
// Prints one JSON line a phase. requests counts the correct calls; p50,
// p95 and p99 (nearest rank, in ms) are over them; errors counts calls
// that failed or came back wrong (echo: not the text sent; count: not
// "count 1" to "count 10" once each, in order, then "counted 10").
//
// The server's SSE retry field says how long the client waits before it
// resumes (mcp-prefork: 1000 ms). --retry-ms makes the client wait MS
// instead, so that the time measured is the servers' work, not the wait.
// Without it the client obeys the server.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

function usage() {
	console.error("usage: node load.mjs URL [--clients C] [--seconds S] " +
		"[--label L] [--retry-ms MS]");
	process.exit(2);
}

const opt = { clients: 16, seconds: 5, label: undefined, retryMs: undefined };
let url;
{
	const a = process.argv.slice(2);
	for (let i = 0; i < a.length; i++) {
		const num = () => {
			const v = Number(a[++i]);
			if (!Number.isFinite(v) || v < 0) usage();
			return v;
		};
		if (a[i] === "--clients") opt.clients = Math.max(1, num());
		else if (a[i] === "--seconds") opt.seconds = num();
		else if (a[i] === "--retry-ms") opt.retryMs = num();
		else if (a[i] === "--label" && i + 1 < a.length) opt.label = a[++i];
		else if (!url && !a[i].startsWith("--")) url = new URL(a[i]);
		else usage();
	}
	if (!url) usage();
}
const label = opt.label ?? url.href;
const CALL_TIMEOUT_MS = 5000;

// Nothing may hang: two phases, the connects, and some slack.
setTimeout(() => {
	console.error("load: still running past the time limit; giving up");
	process.exit(1);
}, (2 * opt.seconds + 60) * 1000).unref();

async function connect() {
	const transport = new StreamableHTTPClientTransport(url, {
		reconnectionOptions: {
			initialReconnectionDelay: 20,
			maxReconnectionDelay: 200,
			reconnectionDelayGrowFactor: 1.5,
			maxRetries: 5,
		},
	});
	// The SDK keeps the server's retry field in a private member; this
	// pins it. Bench only: the field's name is not public API.
	if (opt.retryMs !== undefined)
		Object.defineProperty(transport, "_serverRetryMs",
			{ get: () => opt.retryMs, set: () => {} });
	transport.onerror = () => {}; // a cut stream is expected here
	const client = new Client({ name: "sesh-bench", version: "0.1.0" });
	const notes = [];
	client.setNotificationHandler(LoggingMessageNotificationSchema,
		(m) => notes.push(m.params.data));
	await client.connect(transport);
	return { client, transport, notes };
}

const text = (r) => r?.content?.[0]?.text;
const COUNTS = Array.from({ length: 10 }, (_, i) => `count ${i + 1}`);
const firstErrors = new Map(); // message -> how many

function noteError(what) {
	const k = String(what).slice(0, 200);
	firstErrors.set(k, (firstErrors.get(k) ?? 0) + 1);
}

// One phase: every client runs `once` until the deadline. `once` returns
// true if the call came back right.
async function phase(name, clients, once) {
	const samples = [];
	let errors = 0;
	const start = process.hrtime.bigint();
	const deadline = start + BigInt(Math.round(opt.seconds * 1e9));
	await Promise.all(clients.map(async (c, ci) => {
		for (let k = 0; process.hrtime.bigint() < deadline; k++) {
			const t0 = process.hrtime.bigint();
			let ok;
			try {
				ok = await once(c, `${ci}.${k}`);
			} catch (e) {
				noteError(`${name}: ${e?.message ?? e}`);
				ok = false;
			}
			const dt = Number(process.hrtime.bigint() - t0) / 1e6;
			if (ok) samples.push(dt);
			else errors++;
		}
	}));
	const secs = Number(process.hrtime.bigint() - start) / 1e9;
	samples.sort((a, b) => a - b);
	const pct = (p) => samples.length ?
		+samples[Math.ceil(p / 100 * samples.length) - 1].toFixed(2) : null;
	console.log(JSON.stringify({ server: label, case: name,
		clients: clients.length, requests: samples.length,
		req_per_s: +(samples.length / secs).toFixed(1),
		p50_ms: pct(50), p95_ms: pct(95), p99_ms: pct(99), errors }));
}

async function echo(c, tag) {
	const t = `hello ${tag}`;
	const r = await c.client.callTool({ name: "echo",
		arguments: { text: t } }, undefined, { timeout: CALL_TIMEOUT_MS });
	if (text(r) === t) return true;
	noteError(`echo: got ${JSON.stringify(text(r))}`);
	return false;
}

async function resume(c) {
	c.notes.length = 0;
	const r = await c.client.callTool({ name: "count",
		arguments: { n: 10, delay_ms: 0, close_after: 2 } }, undefined,
		{ timeout: CALL_TIMEOUT_MS });
	const notes = [...c.notes];
	if (text(r) === "counted 10" &&
	    JSON.stringify(notes) === JSON.stringify(COUNTS))
		return true;
	noteError(`resume: got ${JSON.stringify(text(r))} after ` +
		JSON.stringify(notes));
	return false;
}

let clients;
try {
	clients = await Promise.all(Array.from({ length: opt.clients }, connect));
} catch (e) {
	console.error(`load: connect to ${url.href} failed: ${e?.message ?? e}`);
	process.exit(1);
}
await phase("echo", clients, echo);
await phase("resume", clients, resume);
// The errors on stderr: the five most frequent kinds.
{
	const kinds = [...firstErrors].sort((a, b) => b[1] - a[1]);
	for (const [m, n] of kinds.slice(0, 5))
		console.error(`load: ${label}: ${n} x ${m}`);
	if (kinds.length > 5)
		console.error(`load: ${label}: and ${kinds.length - 5} other ` +
			"kinds of error");
}
await Promise.allSettled(clients.map(async (c) => {
	await c.transport.terminateSession().catch(() => {});
	await c.client.close();
}));
process.exit(0);
