/*
 * mcp.c - the MCP protocol of the prefork server: JSON-RPC messages, the
 * methods (initialize, ping, tools/list, tools/call, logging/setLevel),
 * the tools (echo, count, whoami), and the framing of server messages in
 * the session's sesh stream.
 *
 * How server messages travel: every message the server sends to a client
 * is first published to the session's sesh stream, then a subscriber
 * (the SSE body of the HTTP response, in whichever worker holds the
 * connection) writes it out. One sesh stream carries the messages of all
 * the MCP streams of a session (one per POSTed request, and the
 * standalone GET stream), so each message is framed with the MCP stream
 * it belongs to:
 *
 *	<stream> <flag>\n<JSON message>
 *
 * <stream> is "g" for the GET stream or "r" and 16 random hex digits for
 * the stream of one POSTed request (random rather than the JSON-RPC id,
 * which the client chooses, may repeat, and may hold any character);
 * <flag> is 'm' for a message and 'e' for the response that ends a
 * request stream. A plain text header, not a JSON wrapper, so that a
 * reader forwards the message bytes as they are, without parsing them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "mcp-prefork.h"

#define SERVER_NAME    "sesh-mcp-prefork"
#define SERVER_VERSION "0.1.0"

#define COUNT_MAX    10000 /* count: largest n */
#define DELAY_MAX_MS 60000 /* count: largest delay_ms */

const char *const mcp_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
				    NULL};

bool mcp_version_ok(const char *v)
{
	for (int i = 0; mcp_versions[i]; i++)
		if (strcmp(v, mcp_versions[i]) == 0)
			return true;
	return false;
}

/* {"jsonrpc":"2.0","id":@id,"error":{...}}; @id NULL means null. */
json_t *rpc_error(json_t *id, int code, const char *message)
{
	return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
			 id ? id : json_null(), "error", "code", code,
			 "message", message);
}

/* {"jsonrpc":"2.0","id":@id,"result":@result}; takes @result. */
static json_t *rpc_result(json_t *id, json_t *result)
{
	if (result == NULL)
		return NULL;
	return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id,
			 "result", result);
}

/* ----------------------------------------------------------------------
 * Stream ids and frames
 */

bool mcp_valid_stream(const char *s)
{
	if (strcmp(s, "g") == 0)
		return true;
	if (s[0] != 'r' || strlen(s) != 17)
		return false;
	for (int i = 1; i < 17; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* A new request stream id. getrandom() of 8 bytes does not fail short;
 * if it fails, the clock and pid still make a usable id. */
void mcp_new_stream(char stream[MCP_STREAM_MAX])
{
	uint64_t r;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		r = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^
		    (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid();
	}
	snprintf(stream, MCP_STREAM_MAX, "r%016llx", (unsigned long long)r);
}

/*
 * Split a published frame. The bytes may come from anyone who can
 * publish to the domain (the sesh tool, say), so everything is checked:
 * a valid stream id, a known flag, and a message without line breaks
 * (which would break SSE framing). 0, or -EINVAL.
 */
int mcp_frame_parse(const void *data, size_t len, char stream[MCP_STREAM_MAX],
		    char *flag, const char **json, size_t *json_len)
{
	const char *p = data, *nl, *sp;
	size_t n;

	if (p == NULL || len < 4)
		return -EINVAL;
	nl = memchr(p, '\n', len);
	if (nl == NULL || nl - p < 3 || (size_t)(nl - p) > MCP_STREAM_MAX)
		return -EINVAL;
	sp = nl - 2;
	if (*sp != ' ' || (sp[1] != 'm' && sp[1] != 'e'))
		return -EINVAL;
	n = (size_t)(sp - p);
	memcpy(stream, p, n);
	stream[n] = 0;
	if (!mcp_valid_stream(stream))
		return -EINVAL;
	*flag = sp[1];
	*json = nl + 1;
	*json_len = len - (size_t)(nl + 1 - p);
	if (*json_len == 0 || memchr(*json, '\n', *json_len) ||
	    memchr(*json, '\r', *json_len))
		return -EINVAL;
	return 0;
}

/* Publish @msg, of MCP stream @stream, to session @sid. 0 or -errno. */
int mcp_publish(const char *sid, const char *stream, char flag,
		const json_t *msg)
{
	char *body, *frame;
	size_t blen, hlen, len;
	int err;

	body = json_dumps(msg, JSON_COMPACT);
	if (body == NULL)
		return -ENOMEM;
	blen = strlen(body);
	hlen = strlen(stream) + 3;
	len = hlen + blen;
	frame = malloc(len);
	if (frame == NULL) {
		free(body);
		return -ENOMEM;
	}
	snprintf(frame, hlen + 1, "%s %c\n", stream, flag);
	memcpy(frame + hlen, body, blen);
	err = sesh_publish(mcp_dom, sid, frame, len, NULL);
	free(frame);
	free(body);
	return err;
}

/* ----------------------------------------------------------------------
 * initialize
 */

/* Copy a string member of @obj, cut to @max bytes, into @to as @key. */
static void copy_str(json_t *to, const char *key, const json_t *obj,
		     size_t max)
{
	const char *s = json_string_value(json_object_get(obj, key));

	if (s && strlen(s) <= max)
		json_object_set_new(to, key, json_string(s));
}

/*
 * Answer `initialize` @req: negotiate the version (the client's if we
 * speak it, else our newest, as the spec says), create the session, with
 * the version and the client's name and version as its metadata. Returns
 * the response and fills @sid and @version; or NULL with *err the HTTP
 * status to answer (the session could not be made).
 */
json_t *mcp_initialize(json_t *req, char sid[SESH_ID_MAX + 1],
		       char version[MCP_VERSION_MAX], int *err)
{
	json_t *params = json_object_get(req, "params");
	json_t *id = json_object_get(req, "id");
	json_t *meta, *client, *result;
	const char *want;
	char *blob;
	int rc;

	*err = 0;
	if (params && !json_is_object(params))
		return rpc_error(id, RPC_INVALID_PARAMS,
				 "Invalid params: params must be an object");
	want = json_string_value(json_object_get(params, "protocolVersion"));
	if (want == NULL)
		return rpc_error(id, RPC_INVALID_PARAMS,
				 "Invalid params: protocolVersion is required");
	snprintf(version, MCP_VERSION_MAX, "%s",
		 mcp_version_ok(want) ? want : mcp_versions[0]);

	meta = json_pack("{s:s}", "v", version);
	client = json_object();
	if (meta == NULL || client == NULL) {
		json_decref(meta);
		json_decref(client);
		*err = 500;
		return NULL;
	}
	copy_str(client, "name", json_object_get(params, "clientInfo"), 128);
	copy_str(client, "version", json_object_get(params, "clientInfo"),
		 64);
	json_object_set_new(meta, "client", client);
	blob = json_dumps(meta, JSON_COMPACT);
	json_decref(meta);
	if (blob == NULL) {
		*err = 500;
		return NULL;
	}
	rc = sesh_session_create(mcp_dom, NULL, NULL, blob, strlen(blob),
				 mcp_opts.idle_ttl_s, sid);
	free(blob);
	if (rc) {
		fprintf(stderr, "mcp-prefork: worker %ld: session_create: %s\n",
			(long)getpid(), sesh_strerror(rc));
		*err = rc == -ENOSPC ? 503 : 500;
		return NULL;
	}

	result = json_pack("{s:s, s:{s:{s:b}, s:{}}, s:{s:s, s:s}, s:s}",
			   "protocolVersion", version, "capabilities", "tools",
			   "listChanged", 0, "logging", "serverInfo", "name",
			   SERVER_NAME, "version", SERVER_VERSION,
			   "instructions",
			   "Demo server: echo, count and whoami.");
	return rpc_result(id, result);
}

/* ----------------------------------------------------------------------
 * Tools
 */

static json_t *tools_list(void)
{
	return json_pack(
		"{s:[{s:s, s:s, s:{s:s, s:{s:{s:s, s:s}}, s:[s]}},"
		"    {s:s, s:s, s:{s:s, s:{s:{s:s, s:s, s:i},"
		"                          s:{s:s, s:s, s:i},"
		"                          s:{s:s, s:s, s:i}}}},"
		"    {s:s, s:s, s:{s:s, s:{}}}]}",
		"tools",
		/* echo */
		"name", "echo", "description", "Return the text it is given.",
		"inputSchema", "type", "object", "properties", "text", "type",
		"string", "description", "text to echo", "required", "text",
		/* count */
		"name", "count", "description",
		"Send n notifications/message, delay_ms apart, then the "
		"result. With close_after K the HTTP response ends after K "
		"notifications; resume with GET and Last-Event-ID.",
		"inputSchema", "type", "object", "properties", "n", "type",
		"integer", "description", "how many (default 5)", "minimum", 0,
		"delay_ms", "type", "integer", "description",
		"milliseconds between messages (default 50)", "minimum", 0,
		"close_after", "type", "integer", "description",
		"end the HTTP response after this many (0: never)", "minimum",
		0,
		/* whoami */
		"name", "whoami", "description",
		"The pid of the worker process that serves the call.",
		"inputSchema", "type", "object", "properties");
}

static json_t *text_result(const char *text)
{
	return json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text",
			 text);
}

/* Read integer member @key of @args into *@out: @def if absent; -1 if
 * not an integer of 0..@max. */
static int arg_uint(const json_t *args, const char *key, unsigned def,
		    unsigned max, unsigned *out)
{
	json_t *v = json_object_get(args, key);
	double d;

	*out = def;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		if (i < 0 || i > (json_int_t)max)
			return -1;
		*out = (unsigned)i;
		return 0;
	}
	if (!json_is_real(v))
		return -1;
	d = json_real_value(v);
	if (!(d >= 0 && d <= max) || d != (double)(unsigned)d)
		return -1;
	*out = (unsigned)d;
	return 0;
}

struct count_args {
	unsigned n, delay_ms, close_after;
};

/* Check the arguments of count; 0 or -1. */
static int count_args(const json_t *args, struct count_args *a)
{
	if (arg_uint(args, "n", 5, COUNT_MAX, &a->n) ||
	    arg_uint(args, "delay_ms", 50, DELAY_MAX_MS, &a->delay_ms) ||
	    arg_uint(args, "close_after", 0, COUNT_MAX, &a->close_after))
		return -1;
	return 0;
}

/* The name and arguments of a tools/call, or -1 if malformed. */
static int call_parts(const json_t *req, const char **name, json_t **args)
{
	json_t *params = json_object_get(req, "params");

	if (!json_is_object(params))
		return -1;
	*name = json_string_value(json_object_get(params, "name"));
	*args = json_object_get(params, "arguments");
	if (*name == NULL || (*args && !json_is_object(*args) &&
			      !json_is_null(*args)))
		return -1;
	return 0;
}

/*
 * Whether @req takes a while (count with delays): such a call runs in a
 * thread of its own, so that the SSE response forwards its messages as
 * they come, and the call goes on if the client goes away. Sets
 * *close_after (0: never) for the response that carries it.
 */
bool mcp_plan(const json_t *req, unsigned *close_after)
{
	struct count_args a;
	const char *method = json_string_value(json_object_get(req, "method"));
	const char *name;
	json_t *args;

	*close_after = 0;
	if (method == NULL || strcmp(method, "tools/call") != 0 ||
	    call_parts(req, &name, &args) || strcmp(name, "count") != 0 ||
	    count_args(args, &a))
		return false;
	*close_after = a.close_after;
	return a.n > 0 && a.delay_ms > 0;
}

/* Sleep @ms milliseconds in slices, or less if the worker stops. */
static void nap(unsigned ms)
{
	while (ms > 0 && !mcp_stopping) {
		unsigned step = ms < 100 ? ms : 100;
		struct timespec ts = {0, (long)step * 1000000L};

		nanosleep(&ts, NULL);
		ms -= step;
	}
}

static json_t *tool_count(const char *sid, const char *stream, json_t *id,
			  const json_t *args)
{
	struct count_args a;
	char text[32];
	int err;

	if (count_args(args, &a))
		return rpc_error(id, RPC_INVALID_PARAMS,
				 "Invalid params: n, delay_ms and close_after "
				 "must be integers of 0..10000 (delay_ms "
				 "0..60000)");
	for (unsigned i = 1; i <= a.n; i++) {
		json_t *note;

		if (i > 1)
			nap(a.delay_ms);
		if (mcp_stopping)
			return rpc_error(id, RPC_INTERNAL_ERROR,
					 "Internal error: server stopping");
		snprintf(text, sizeof(text), "count %u", i);
		note = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "jsonrpc",
				 "2.0", "method", "notifications/message",
				 "params", "level", "info", "logger", "count",
				 "data", text);
		if (note == NULL)
			return rpc_error(id, RPC_INTERNAL_ERROR,
					 "Internal error: out of memory");
		err = mcp_publish(sid, stream, 'm', note);
		json_decref(note);
		if (err == -ENOENT) /* the session is gone: stop */
			return rpc_error(id, RPC_NO_SESSION,
					 "Session not found");
		if (err)
			fprintf(stderr,
				"mcp-prefork: worker %ld: publish: %s\n",
				(long)getpid(), sesh_strerror(err));
	}
	nap(a.n ? a.delay_ms : 0);
	snprintf(text, sizeof(text), "counted %u", a.n);
	return rpc_result(id, text_result(text));
}

static json_t *tools_call(const char *sid, const char *stream, json_t *req)
{
	json_t *id = json_object_get(req, "id");
	const char *name, *text;
	json_t *args;
	char buf[48];

	if (call_parts(req, &name, &args))
		return rpc_error(id, RPC_INVALID_PARAMS,
				 "Invalid params: name (string) and arguments "
				 "(object) expected");
	if (strcmp(name, "echo") == 0) {
		text = json_string_value(json_object_get(args, "text"));
		if (text == NULL)
			return rpc_error(id, RPC_INVALID_PARAMS,
					 "Invalid params: text (string) is "
					 "required");
		return rpc_result(id, text_result(text));
	}
	if (strcmp(name, "count") == 0)
		return tool_count(sid, stream, id, args);
	if (strcmp(name, "whoami") == 0) {
		snprintf(buf, sizeof(buf), "pid %ld", (long)getpid());
		return rpc_result(id, text_result(buf));
	}
	return rpc_error(id, RPC_INVALID_PARAMS, "Unknown tool");
}

/* Answer request @req (not initialize) of session @sid, publishing what
 * comes before the response to MCP stream @stream. */
static json_t *dispatch(const char *sid, const char *stream, json_t *req)
{
	const char *method = json_string_value(json_object_get(req, "method"));
	json_t *id = json_object_get(req, "id");
	json_t *params = json_object_get(req, "params");

	if (params && !json_is_object(params) && !json_is_array(params))
		return rpc_error(id, RPC_INVALID_REQUEST,
				 "Invalid Request: params must be structured");
	if (strcmp(method, "ping") == 0)
		return rpc_result(id, json_object());
	if (strcmp(method, "tools/list") == 0)
		return rpc_result(id, tools_list());
	if (strcmp(method, "tools/call") == 0)
		return tools_call(sid, stream, req);
	if (strcmp(method, "logging/setLevel") == 0)
		return rpc_result(id, json_object());
	if (strcmp(method, "initialize") == 0)
		return rpc_error(id, RPC_INVALID_REQUEST,
				 "Invalid Request: already initialized");
	return rpc_error(id, RPC_METHOD_NOT_FOUND, "Method not found");
}

/*
 * Serve request @req of session @sid on MCP stream @stream: run it, and
 * publish its response as the end of the stream. A response too large
 * for the stream (-E2BIG) is replaced by an error, so that the stream
 * still ends. Returns the response (for a client that takes JSON), or
 * NULL if out of memory.
 */
json_t *mcp_run(const char *sid, const char *stream, json_t *req)
{
	json_t *resp = dispatch(sid, stream, req);
	int err;

	if (resp == NULL)
		resp = rpc_error(json_object_get(req, "id"),
				 RPC_INTERNAL_ERROR, "Internal error");
	if (resp == NULL)
		return NULL;
	err = mcp_publish(sid, stream, 'e', resp);
	if (err == -E2BIG || err == -ENOMEM) {
		json_decref(resp);
		resp = rpc_error(json_object_get(req, "id"),
				 RPC_INTERNAL_ERROR,
				 "Internal error: response too large");
		if (resp == NULL)
			return NULL;
		err = mcp_publish(sid, stream, 'e', resp);
	}
	if (err && err != -ENOENT)
		fprintf(stderr, "mcp-prefork: worker %ld: publish: %s\n",
			(long)getpid(), sesh_strerror(err));
	return resp;
}
