// sdk-server.mjs - the MCP TypeScript SDK's own server, for comparison
// with mcp-prefork: one Node process, Express (a dependency of the SDK),
// StreamableHTTPServerTransport with a session per client, and the
// InMemoryEventStore from the SDK's examples for resumption. Same tools
// as the C server: echo, count (with close_after) and whoami.
//
//   node sdk-server.mjs [--ordered-store] [PORT]   (0 or none: a free port)
//
// The SDK's InMemoryEventStore replays a stream's events sorted by their
// ids, `<stream>_<Date.now()>_<random>`: events stored in the same
// millisecond sort at random, so a resumed stream gets them out of
// order, some twice and some never (typescript-sdk issue #943, pull
// request #1978). --ordered-store replays in insertion order instead, as that
// pull request does, to show the server without that bug.
//
// Prints "listening on http://127.0.0.1:PORT/mcp" when ready. Run by
// ./run from the directory where the SDK is installed.

import { randomUUID } from "node:crypto";
import { z } from "zod";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { InMemoryEventStore } from "@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js";

const args = process.argv.slice(2);
const ordered = args[0] === "--ordered-store";
const port = Number(args[ordered ? 1 : 0] ?? 0);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const text = (t) => ({ content: [{ type: "text", text: t }] });

// InMemoryEventStore, but replaying in insertion order (a Map keeps it).
class OrderedEventStore extends InMemoryEventStore {
	async replayEventsAfter(lastEventId, { send }) {
		const last = this.events.get(lastEventId);
		if (!last) return "";
		let found = false;
		for (const [id, { streamId, message }] of this.events) {
			if (streamId !== last.streamId) continue;
			if (found) await send(id, message);
			else found = id === lastEventId;
		}
		return last.streamId;
	}
}

// One McpServer per session, as the SDK's examples do.
function newServer() {
	const s = new McpServer({ name: "sesh-bench-sdk", version: "0.1.0" },
		{ capabilities: { logging: {} } });
	s.registerTool("echo", {
		description: "Return the text it is given.",
		inputSchema: { text: z.string() },
	}, async ({ text: t }) => text(t));
	s.registerTool("count", {
		description: "Send n notifications/message, delay_ms apart, " +
			"then the result. With close_after K the HTTP response " +
			"ends after K notifications; resume with GET and " +
			"Last-Event-ID.",
		inputSchema: {
			n: z.number().int().min(0).max(10000).optional(),
			delay_ms: z.number().int().min(0).max(60000).optional(),
			close_after: z.number().int().min(0).max(10000).optional(),
		},
	}, async ({ n = 5, delay_ms = 50, close_after = 0 }, extra) => {
		for (let i = 1; i <= n; i++) {
			if (i > 1 && delay_ms) await sleep(delay_ms);
			// sendNotification ties the message to this request's
			// stream (and stores it in the event store).
			await extra.sendNotification({
				method: "notifications/message",
				params: { level: "info", logger: "count",
					data: `count ${i}` },
			});
			// closeSSEStream exists only with an event store and a
			// 2025-11-25 client.
			if (i === close_after) extra.closeSSEStream?.();
		}
		if (n && delay_ms) await sleep(delay_ms);
		return text(`counted ${n}`);
	});
	s.registerTool("whoami", {
		description: "The pid of the process that serves the call.",
	}, async () => text(`pid ${process.pid}`));
	return s;
}

const sessions = new Map(); // session id -> transport
const app = createMcpExpressApp({ host: "127.0.0.1" });

app.all("/mcp", async (req, res) => {
	try {
		const sid = req.headers["mcp-session-id"];
		const known = sid ? sessions.get(sid) : undefined;
		if (known) {
			await known.handleRequest(req, res, req.body);
			return;
		}
		if (sid) {
			res.status(404).json({ jsonrpc: "2.0", id: null, error:
				{ code: -32001, message: "Session not found" } });
			return;
		}
		if (req.method !== "POST" || !isInitializeRequest(req.body)) {
			res.status(400).json({ jsonrpc: "2.0", id: null, error:
				{ code: -32000, message:
					"Bad Request: No valid session ID provided" } });
			return;
		}
		const transport = new StreamableHTTPServerTransport({
			sessionIdGenerator: () => randomUUID(),
			eventStore: ordered ? new OrderedEventStore() :
				new InMemoryEventStore(),
			onsessioninitialized: (id) => sessions.set(id, transport),
		});
		transport.onclose = () => {
			if (transport.sessionId) sessions.delete(transport.sessionId);
		};
		await newServer().connect(transport);
		await transport.handleRequest(req, res, req.body);
	} catch (e) {
		console.error("sdk-server:", e);
		if (!res.headersSent)
			res.status(500).json({ jsonrpc: "2.0", id: null, error:
				{ code: -32603, message: "Internal server error" } });
	}
});

const http = app.listen(port, "127.0.0.1", () => {
	console.log(`listening on http://127.0.0.1:${http.address().port}/mcp` +
		(ordered ? " (ordered store)" : ""));
});
const stop = () => {
	for (const t of sessions.values()) t.close().catch(() => {});
	http.close();
	http.closeAllConnections?.();
	setTimeout(() => process.exit(0), 500).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
