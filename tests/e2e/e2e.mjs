// e2e.mjs - examples/mcp-prefork proven with a client nobody on this
// project wrote: the official MCP TypeScript SDK's, over Streamable HTTP.
//
//   node e2e.mjs URL EXPIRY_URL
//
// URL is a server with several workers; EXPIRY_URL one whose sessions
// idle out after a second. Prints a TAP line a check, exits 1 if any
// failed. Run by tests/test_mcp_e2e.sh, which starts both servers.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
	CallToolResultSchema,
	LoggingMessageNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

const [url, expiryUrl] = process.argv.slice(2).map((u) => new URL(u));
let n = 0;
let failed = 0;

function check(ok, what, detail) {
	n++;
	if (!ok) failed++;
	console.log(`${ok ? "ok" : "not ok"} ${n} - ${what}` +
		(ok || detail === undefined ? "" : ` # ${detail}`));
}

// A client, its transport, and the notifications it saw. retries 0: the
// transport does not resume a cut stream by itself.
async function connect(u, { sessionId, retries = 5 } = {}) {
	const transport = new StreamableHTTPClientTransport(u, {
		sessionId,
		reconnectionOptions: {
			initialReconnectionDelay: 20,
			maxReconnectionDelay: 200,
			reconnectionDelayGrowFactor: 1.5,
			maxRetries: retries,
		},
	});
	const client = new Client({ name: "sesh-e2e", version: "0.1.0" });
	const notes = [];
	client.setNotificationHandler(LoggingMessageNotificationSchema,
		(m) => notes.push(m.params.data));
	transport.onerror = () => {}; // cut streams are the point here
	await client.connect(transport);
	return { client, transport, notes };
}

const text = (r) => r?.content?.[0]?.text;
const counts = (k) => Array.from({ length: k }, (_, i) => `count ${i + 1}`);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// 1: initialize, list tools, call echo.
async function basics(u) {
	const c = await connect(u);
	const tools = (await c.client.listTools()).tools.map((t) => t.name);
	const echo = await c.client.callTool({ name: "echo",
		arguments: { text: "hello sesh" } });
	return { c, tools, echo: text(echo) };
}

// 2: count with the response cut after 2 notifications; the transport
// resumes with Last-Event-ID wherever the GET lands.
async function resumed(c, k) {
	c.notes.length = 0;
	const r = await c.client.callTool({ name: "count",
		arguments: { n: k, delay_ms: 20, close_after: 2 } });
	return { result: text(r), notes: [...c.notes] };
}

// 3: a second client adopts the session and finishes the first one's cut
// stream from its last event id.
async function adopted(u, k) {
	const a = await connect(u, { retries: 0 });
	let last;
	const pending = a.client.request(
		{ method: "tools/call", params: { name: "count",
			arguments: { n: k, delay_ms: 20, close_after: 2 } } },
		CallToolResultSchema,
		{ onresumptiontoken: (t) => { last = t; }, timeout: 60000 });
	pending.catch(() => {}); // a never gets its answer: b does
	for (let i = 0; i < 250 && a.notes.length < 2; i++) await sleep(20);
	await sleep(100); // the cut
	const b = await connect(u, { sessionId: a.transport.sessionId });
	const r = await b.client.request(
		{ method: "tools/call", params: { name: "count",
			arguments: { n: k, delay_ms: 20, close_after: 2 } } },
		CallToolResultSchema, { resumptionToken: last });
	const out = { first: [...a.notes], second: [...b.notes],
		result: text(r) };
	await a.client.close();
	await b.client.close();
	return out;
}

// 6: whoami, many times: which workers answered one session.
async function workers(c, times) {
	const pids = new Set();
	for (let i = 0; i < times; i++)
		pids.add(text(await c.client.callTool({ name: "whoami",
			arguments: {} })));
	return pids;
}

// A request on session `sid` from a client that adopts it: null if the
// server says 404, else what happened.
async function fails404(u, sid) {
	const c = await connect(u, { sessionId: sid, retries: 0 });
	try {
		await c.client.callTool({ name: "echo",
			arguments: { text: "anyone?" } });
		return "no error";
	} catch (e) {
		return /404|not found/i.test(String(e)) ? null : String(e);
	} finally {
		await c.client.close();
	}
}

// --- the checks ----------------------------------------------------------

const one = await basics(url);
check(one.c.transport.sessionId?.length > 0, "initialize gives a session id");
check(same(one.tools.sort(), ["count", "echo", "whoami"]),
	"tools/list: echo, count, whoami", one.tools);
check(one.echo === "hello sesh", "tools/call echo", one.echo);

const two = await resumed(one.c, 8);
check(two.result === "counted 8", "count cut after 2: the result arrives",
	two.result);
check(same(two.notes, counts(8)),
	"count cut after 2: every notification once, in order", two.notes);

const three = await adopted(url, 7);
check(same(three.first, counts(2)), "first client: 2 before the cut",
	three.first);
check(same(three.second, counts(7).slice(2)),
	"second client adopts the session: the missed notifications, once, " +
	"in order", three.second);
check(three.result === "counted 7", "second client: the result",
	three.result);

const pids = await workers(one.c, 30);
check(pids.size > 1, "one session served by more than one worker",
	[...pids]);

const sid = one.c.transport.sessionId;
await one.c.transport.terminateSession();
await one.c.client.close();
const gone = await fails404(url, sid);
check(gone === null, "DELETE, then 404", gone);

const idle = await connect(expiryUrl);
const idleSid = idle.transport.sessionId;
await idle.client.close();
await sleep(2500);
const expired = await fails404(expiryUrl, idleSid);
check(expired === null, "an idle session expires: 404", expired);

// 5: fifty clients at once, each doing 1 to 3.
const many = await Promise.allSettled(Array.from({ length: 50 },
	async () => {
		const b = await basics(url);
		const r = await resumed(b.c, 5);
		const s = await adopted(url, 4);
		await b.c.client.close();
		return b.echo === "hello sesh" && r.result === "counted 5" &&
			same(r.notes, counts(5)) &&
			same(s.second, counts(4).slice(2)) &&
			s.result === "counted 4";
	}));
const bad = many.filter((p) => p.status !== "fulfilled" || !p.value);
check(bad.length === 0, "50 clients at once: no error, every notification",
	bad.slice(0, 3).map((p) => p.reason ? String(p.reason) : "wrong"));

console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
