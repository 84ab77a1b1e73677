/*
 * http.c - a worker of the prefork MCP server: MCP Streamable HTTP on
 * libmicrohttpd, one endpoint (/mcp) for POST, GET and DELETE.
 *
 * Every worker runs its own libmicrohttpd daemon on the listening socket
 * the master bound (MHD_OPTION_LISTEN_SOCKET); the kernel hands each new
 * connection to one of the workers that poll the socket. The master set
 * the socket non-blocking, so the workers that lose the race for a
 * connection get EAGAIN from accept(), which libmicrohttpd ignores.
 *
 * Threads: one per connection (MHD_USE_THREAD_PER_CONNECTION, with the
 * internal polling thread that accepts), so the body of an SSE response
 * may block: its reader waits in sesh_stream_next() until the next
 * message. Each thread that calls sesh holds one of the 256 reader slots
 * a process has in the domain until it exits, which is why a worker
 * takes at most --max-conns connections at once (default 200; past the
 * limit libmicrohttpd accepts a connection and closes it at once), and
 * runs at most TOOL_THREADS long calls in threads of their own.
 *
 * A POSTed request gets an MCP stream of its own (see mcp.c for stream
 * ids and frames). The connection thread subscribes to the session's
 * sesh stream first, then runs the call: inline when it is quick, in a
 * detached thread when it takes a while (count), so that the response
 * forwards messages as they come, and the call finishes and publishes
 * everything even when the client goes away. The SSE body forwards the
 * messages of its own MCP stream only, each with the SSE id
 * "<stream>:<sesh event id>", and ends after the response. A GET with
 * Last-Event-ID "<stream>:<event id>", on any worker, subscribes after
 * that event id and forwards the rest of that MCP stream, live. A GET
 * without it is the standalone stream "g" (this server sends nothing on
 * it but keep-alive comments).
 *
 * 2025-11-25 sessions get a priming event first (an id and empty data:
 * the client can resume before the first message) and a retry field;
 * every version gets a retry field before the server ends a response
 * early (count's close_after).
 */
#define _GNU_SOURCE /* strcasestr */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "mcp-prefork.h"

#define ENDPOINT      "/mcp"
#define TOOL_THREADS  16	    /* long calls in threads of their own */
#define TICK_MS	      250   /* SSE readers look at mcp_stopping */
#define KEEPALIVE_MS  15000 /* comment line on an idle SSE stream */
#define REQ_IDLE_MS   300000 /* a request stream silent this long ends */
#define RETRY_MS      1000  /* SSE retry field */
#define IDLE_TIMEOUT  60    /* seconds an idle connection is kept */
#define META_MAX      4096  /* session metadata read back */

volatile sig_atomic_t mcp_stopping;
static atomic_int tool_threads; /* running long calls */

/* A request being received: its body, bounded by --max-body. */
struct req {
	char *body;
	size_t len, cap;
	bool too_big;
	bool replied; /* a response is queued */
};

/* ----------------------------------------------------------------------
 * Plain responses
 */

/* Queue @status with JSON @body (taken; NULL: no body) and, if @sid, an
 * Mcp-Session-Id header. */
static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status,
				  json_t *body, const char *sid)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *s = NULL;

	if (body) {
		s = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (s == NULL)
			return MHD_NO;
	}
	resp = MHD_create_response_from_buffer(s ? strlen(s) : 0, s,
					       MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(s);
		return MHD_NO;
	}
	if (s && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					 "application/json") != MHD_YES)
		goto fail;
	if (sid && MHD_add_response_header(resp, "Mcp-Session-Id", sid) !=
			   MHD_YES)
		goto fail;
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
				    "GET, POST, DELETE") != MHD_YES)
		goto fail;
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
fail:
	MHD_destroy_response(resp);
	return MHD_NO;
}

/* Queue @status with a JSON-RPC error (id null, or @id). */
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status,
				   json_t *id, int code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return reply_json(c, status, rpc_error(id, code, msg), NULL);
}

static const char *header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Whether the Accept header takes @type (absent takes everything). */
static bool accepts(struct MHD_Connection *c, const char *type)
{
	const char *a = header(c, MHD_HTTP_HEADER_ACCEPT);

	return a == NULL || strcasestr(a, type) || strstr(a, "*/*");
}

/* ----------------------------------------------------------------------
 * Origin
 */

/*
 * Whether @origin may talk to us. A request without Origin is not from a
 * browser and passes. A browser's is allowed when it names this machine
 * (localhost, 127.0.0.1, [::1], any port), the only place a local server
 * should be reached from (the DNS rebinding attack the spec warns of),
 * or equals an --allow-origin (which "*" opens to all).
 */
static bool origin_ok(const char *origin)
{
	static const char *const local[] = {"localhost", "127.0.0.1",
					    "[::1]"};
	const char *host;
	size_t n;

	if (origin == NULL)
		return true;
	for (int i = 0; i < mcp_opts.norigins; i++)
		if (strcmp(mcp_opts.origins[i], "*") == 0 ||
		    strcasecmp(mcp_opts.origins[i], origin) == 0)
			return true;
	if (strncasecmp(origin, "http://", 7) == 0)
		host = origin + 7;
	else if (strncasecmp(origin, "https://", 8) == 0)
		host = origin + 8;
	else
		return false;
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		n = strlen(local[i]);
		if (strncasecmp(host, local[i], n) != 0)
			continue;
		if (host[n] == 0)
			return true;
		if (host[n] != ':' || host[n + 1] == 0)
			continue;
		if (strspn(host + n + 1, "0123456789") ==
		    strlen(host + n + 1))
			return true;
	}
	return false;
}

/* ----------------------------------------------------------------------
 * Sessions
 */

/* What a request learns of its session. */
struct sess {
	char id[SESH_ID_MAX + 1];
	char version[MCP_VERSION_MAX]; /* negotiated at initialize */
	uint64_t last;		       /* newest event id of its stream */
};

/*
 * Check the session of a request that needs one: the Mcp-Session-Id
 * header (400 if missing), MCP-Protocol-Version if given (400 if we do
 * not speak it), the session itself (404, with the SDK's -32001 error, if
 * unknown, deleted or expired). Marks the session used. Returns 0 and
 * fills @s, or queues the error and returns its MHD result + 1.
 */
static int session_check(struct MHD_Connection *c, struct sess *s,
			 enum MHD_Result *ret)
{
	const char *id = header(c, "Mcp-Session-Id");
	const char *v = header(c, "MCP-Protocol-Version");
	char meta[META_MAX];
	sesh_session_t info;
	json_t *m;
	int err;

	if (id == NULL || id[0] == 0) {
		*ret = reply_error(c, MHD_HTTP_BAD_REQUEST, NULL,
				   RPC_SERVER_ERROR,
				   "Bad Request: Mcp-Session-Id header is "
				   "required");
		return 1;
	}
	if (v && !mcp_version_ok(v)) {
		*ret = reply_error(c, MHD_HTTP_BAD_REQUEST, NULL,
				   RPC_SERVER_ERROR,
				   "Bad Request: Unsupported protocol version "
				   "(supported versions: %s, %s, %s)",
				   mcp_versions[0], mcp_versions[1],
				   mcp_versions[2]);
		return 1;
	}
	/* An id sesh cannot hold (too long, not printable) is -EINVAL:
	 * such a session does not exist either. */
	err = sesh_session_get(mcp_dom, id, NULL, &info, meta,
			       sizeof(meta));
	if (err == 0)
		err = sesh_session_touch(mcp_dom, id);
	if (err == -ENOENT || err == -EINVAL) {
		*ret = reply_error(c, MHD_HTTP_NOT_FOUND, NULL, RPC_NO_SESSION,
				   "Session not found");
		return 1;
	}
	if (err) {
		fprintf(stderr, "mcp-prefork: worker %ld: session: %s\n",
			(long)getpid(), sesh_strerror(err));
		*ret = reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				   RPC_SERVER_ERROR, "Service Unavailable");
		return 1;
	}
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->last = info.last_event_id;
	/* The version negotiated at initialize; a session whose metadata
	 * we did not write is taken as the oldest version. */
	snprintf(s->version, sizeof(s->version), "%s", "2025-03-26");
	m = json_loadb(meta, info.meta_len < sizeof(meta) ? info.meta_len : 0,
		       0, NULL);
	v = json_string_value(json_object_get(m, "v"));
	if (v && mcp_version_ok(v))
		snprintf(s->version, sizeof(s->version), "%s", v);
	json_decref(m);
	return 0;
}

/* ----------------------------------------------------------------------
 * SSE responses
 */

/* The state of one SSE response body. */
struct sse {
	sesh_stream_t *s;
	char stream[MCP_STREAM_MAX]; /* the MCP stream forwarded */
	bool request;		     /* a request stream: ends at 'e' */
	unsigned close_after;	     /* end after so many notifications */
	unsigned notes;		     /* notifications sent */
	char *buf;		     /* the event being written */
	size_t len, off, cap;
	bool done;		     /* end once buf is written */
	int idle_ms, quiet_ms;	     /* since the last write, message */
};

/* Append to the pending event text. 0 or -ENOMEM. */
static int __attribute__((format(printf, 2, 3)))
sse_add(struct sse *x, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(x->buf + x->len, x->cap - x->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -ENOMEM;
		if ((size_t)n < x->cap - x->len)
			break;
		size_t cap = x->cap * 2 > x->len + (size_t)n + 1
				     ? x->cap * 2
				     : x->len + (size_t)n + 1;
		char *b = realloc(x->buf, cap);

		if (b == NULL)
			return -ENOMEM;
		x->buf = b;
		x->cap = cap;
	}
	x->len += (size_t)n;
	return 0;
}

/*
 * Wait for the next thing to write: a message of our MCP stream, a
 * keep-alive comment, or the end. Leaves it in x->buf, or sets x->done.
 * 0, or -1 to end the response with an error (the worker stops, or sesh
 * failed).
 */
static int sse_fill(struct sse *x)
{
	char stream[MCP_STREAM_MAX], flag;
	const char *json;
	size_t jlen;
	sesh_msg_t m;
	int err;

	x->len = x->off = 0;
	for (;;) {
		if (mcp_stopping)
			return -1;
		err = sesh_stream_next(x->s, &m, TICK_MS);
		if (err == -ETIMEDOUT) {
			x->idle_ms += TICK_MS;
			x->quiet_ms += TICK_MS;
			if (x->request && x->quiet_ms >= REQ_IDLE_MS) {
				x->done = true;
				return 0;
			}
			if (x->idle_ms >= KEEPALIVE_MS) {
				x->idle_ms = 0;
				return sse_add(x, ": keep-alive\n\n") ? -1 : 0;
			}
			continue;
		}
		if (err == -EOVERFLOW) {
			/* Lapped: what the ring dropped is lost to us. */
			fprintf(stderr,
				"mcp-prefork: worker %ld: stream lapped, "
				"resuming at %" PRIu64 "\n",
				(long)getpid(), m.event_id);
			continue;
		}
		if (err == -ENOENT) { /* the session ended */
			x->done = true;
			return 0;
		}
		if (err)
			return -1;
		if (mcp_frame_parse(m.data, m.len, stream, &flag, &json,
				    &jlen) ||
		    strcmp(stream, x->stream) != 0)
			continue;
		x->idle_ms = x->quiet_ms = 0;
		if (sse_add(x, "id: %s:%" PRIu64 "\ndata: %.*s\n\n", stream,
			    m.event_id, (int)jlen, json))
			return -1;
		if (flag == 'e' && x->request) {
			x->done = true;
		} else if (flag == 'm' && ++x->notes == x->close_after) {
			/* The demo's early end: tell the client how soon to
			 * come back, and stop; the call goes on. */
			x->done = true;
			return sse_add(x, "retry: %d\n\n", RETRY_MS) ? -1 : 0;
		}
		return 0;
	}
}

/* The reader of an SSE body: libmicrohttpd calls it from the connection's
 * own thread, so it may block. */
static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct sse *x = cls;
	size_t n;

	(void)pos;
	while (x->off == x->len) {
		if (x->done)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (sse_fill(x))
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	n = x->len - x->off < max ? x->len - x->off : max;
	memcpy(out, x->buf + x->off, n);
	x->off += n;
	return (ssize_t)n;
}

static void sse_free(void *cls)
{
	struct sse *x = cls;

	sesh_stream_close(x->s);
	free(x->buf);
	free(x);
}

/* A new SSE state, its first event the priming one when @prime. */
static struct sse *sse_new(const char *stream, bool request, bool prime,
			   uint64_t last)
{
	struct sse *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return NULL;
	x->cap = 4096;
	x->buf = malloc(x->cap);
	if (x->buf == NULL) {
		free(x);
		return NULL;
	}
	snprintf(x->stream, sizeof(x->stream), "%s", stream);
	x->request = request;
	/* Something at once, primed or not: libmicrohttpd sends the
	 * headers with the first bytes of the body. */
	if (prime ? sse_add(x, "id: %s:%" PRIu64 "\nretry: %d\ndata: \n\n",
			    stream, last, RETRY_MS)
		  : sse_add(x, ": %s\n\n", stream)) {
		free(x->buf);
		free(x);
		return NULL;
	}
	return x;
}

/* Queue the SSE response of @x (taken, freed by libmicrohttpd). */
static enum MHD_Result reply_sse(struct MHD_Connection *c, struct sse *x,
				 const char *sid)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
						 sse_read, x, sse_free);
	if (resp == NULL) {
		sse_free(x);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				    "text/event-stream") != MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				    "no-cache, no-transform") != MHD_YES ||
	    MHD_add_response_header(resp, "X-Accel-Buffering", "no") !=
		    MHD_YES ||
	    (sid && MHD_add_response_header(resp, "Mcp-Session-Id", sid) !=
			    MHD_YES)) {
		MHD_destroy_response(resp); /* frees x */
		return MHD_NO;
	}
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Subscribe @x to session @sid after event @last (0: all retained). */
static int sse_subscribe(struct sse *x, const char *sid, uint64_t last)
{
	return sesh_subscribe(mcp_dom, sid, last ? last : SESH_FROM_OLDEST,
			      &x->s);
}

/* ----------------------------------------------------------------------
 * POST
 */

struct job {
	char sid[SESH_ID_MAX + 1];
	char stream[MCP_STREAM_MAX];
	json_t *req;
};

static void *job_main(void *arg)
{
	struct job *j = arg;

	json_decref(mcp_run(j->sid, j->stream, j->req));
	json_decref(j->req);
	free(j);
	atomic_fetch_sub(&tool_threads, 1);
	return NULL;
}

/* Run a long call in a detached thread; 0, or -1 if none can be had
 * (the caller runs it inline). Takes a reference on @req if it works. */
static int job_start(const char *sid, const char *stream, json_t *req)
{
	pthread_attr_t attr;
	struct job *j;
	pthread_t t;
	int err;

	if (atomic_fetch_add(&tool_threads, 1) >= TOOL_THREADS)
		goto busy;
	j = malloc(sizeof(*j));
	if (j == NULL)
		goto busy;
	snprintf(j->sid, sizeof(j->sid), "%s", sid);
	snprintf(j->stream, sizeof(j->stream), "%s", stream);
	j->req = json_incref(req);
	if (pthread_attr_init(&attr)) {
		json_decref(req);
		free(j);
		goto busy;
	}
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	err = pthread_create(&t, &attr, job_main, j);
	pthread_attr_destroy(&attr);
	if (err) {
		json_decref(req);
		free(j);
		goto busy;
	}
	return 0;
busy:
	atomic_fetch_sub(&tool_threads, 1);
	return -1;
}

/*
 * Answer request @msg of session @s. With @sse, as an SSE stream: the
 * subscription is made before the call runs, so nothing of the call can
 * be missed. Else as one JSON body (the notifications are published,
 * and a GET with Last-Event-ID could fetch them, but not sent).
 */
static enum MHD_Result serve_request(struct MHD_Connection *c,
				     const struct sess *s, json_t *msg,
				     json_t *ready, bool sse)
{
	char stream[MCP_STREAM_MAX];
	unsigned close_after;
	struct sse *x;
	bool slow;
	int err;

	mcp_new_stream(stream);
	if (!sse) {
		json_t *resp = ready;

		if (resp == NULL)
			resp = mcp_run(s->id, stream, msg);
		else
			mcp_publish(s->id, stream, 'e', resp);
		if (resp == NULL)
			return MHD_NO;
		return reply_json(c, MHD_HTTP_OK, resp, ready ? s->id : NULL);
	}

	if (mcp_opts.log_streams)
		fprintf(stderr, "mcp-prefork: stream %s opened by %ld\n",
			stream, (long)getpid());
	x = sse_new(stream, true, strcmp(s->version, "2025-11-25") == 0,
		    s->last);
	if (x == NULL) {
		json_decref(ready);
		return MHD_NO;
	}
	err = sse_subscribe(x, s->id, s->last);
	if (err) {
		sse_free(x);
		json_decref(ready);
		if (err == -ENOENT)
			return reply_error(c, MHD_HTTP_NOT_FOUND, NULL,
					   RPC_NO_SESSION,
					   "Session not found");
		fprintf(stderr, "mcp-prefork: worker %ld: subscribe: %s\n",
			(long)getpid(), sesh_strerror(err));
		return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				   RPC_SERVER_ERROR, "Service Unavailable");
	}
	if (ready) { /* initialize: the answer is made */
		mcp_publish(s->id, stream, 'e', ready);
		json_decref(ready);
		return reply_sse(c, x, s->id);
	}
	slow = mcp_plan(msg, &close_after);
	x->close_after = close_after;
	if (!slow || job_start(s->id, stream, msg))
		json_decref(mcp_run(s->id, stream, msg));
	return reply_sse(c, x, NULL);
}

enum kind { INVALID, REQUEST, NOTIFICATION, RESPONSE };

/* What JSON-RPC message @m is. */
static enum kind classify(const json_t *m)
{
	const char *v = json_string_value(json_object_get(m, "jsonrpc"));
	json_t *id = json_object_get(m, "id");
	json_t *method = json_object_get(m, "method");

	if (!json_is_object(m) || v == NULL || strcmp(v, "2.0") != 0)
		return INVALID;
	if (id && !json_is_string(id) && !json_is_integer(id) &&
	    !(json_is_null(id) && !method))
		return INVALID;
	if (method) {
		if (!json_is_string(method))
			return INVALID;
		return id ? REQUEST : NOTIFICATION;
	}
	if (id && (json_object_get(m, "result") != NULL) !=
			  (json_object_get(m, "error") != NULL))
		return RESPONSE;
	return INVALID;
}

static enum MHD_Result do_post(struct MHD_Connection *c, struct req *r)
{
	const char *ct = header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *method;
	enum MHD_Result ret;
	json_error_t jerr;
	struct sess s;
	json_t *msg, *id;
	bool sse;
	enum kind k;

	if (r->too_big)
		return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
				   RPC_SERVER_ERROR,
				   "Payload Too Large: at most %zu bytes",
				   mcp_opts.max_body);
	if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
		return reply_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL,
				   RPC_SERVER_ERROR,
				   "Unsupported Media Type: Content-Type must "
				   "be application/json");
	sse = accepts(c, "text/event-stream");
	if (!sse && !accepts(c, "application/json"))
		return reply_error(c, MHD_HTTP_NOT_ACCEPTABLE, NULL,
				   RPC_SERVER_ERROR,
				   "Not Acceptable: Client must accept "
				   "application/json or text/event-stream");

	msg = json_loadb(r->body ? r->body : "", r->len,
			 JSON_REJECT_DUPLICATES, &jerr);
	if (msg == NULL)
		return reply_error(c, MHD_HTTP_BAD_REQUEST, NULL,
				   RPC_PARSE_ERROR, "Parse error: %s",
				   jerr.text);
	if (json_is_array(msg)) {
		json_decref(msg);
		return reply_error(c, MHD_HTTP_BAD_REQUEST, NULL,
				   RPC_INVALID_REQUEST,
				   "Invalid Request: batches are not "
				   "supported");
	}
	k = classify(msg);
	id = json_object_get(msg, "id");
	if (k == INVALID) {
		ret = reply_error(c, MHD_HTTP_BAD_REQUEST,
				  json_is_string(id) || json_is_integer(id)
					  ? id
					  : NULL,
				  RPC_INVALID_REQUEST, "Invalid Request");
		json_decref(msg);
		return ret;
	}
	method = json_string_value(json_object_get(msg, "method"));

	if (k == REQUEST && strcmp(method, "initialize") == 0) {
		json_t *resp;
		int status;

		resp = mcp_initialize(msg, s.id, s.version, &status);
		if (resp == NULL) {
			json_decref(msg);
			return reply_error(c, (unsigned)status, NULL,
					   RPC_INTERNAL_ERROR,
					   "Internal error: cannot create the "
					   "session");
		}
		if (json_object_get(resp, "error")) { /* bad params */
			json_decref(msg);
			return reply_json(c, MHD_HTTP_BAD_REQUEST, resp, NULL);
		}
		s.last = 0;
		ret = serve_request(c, &s, msg, resp, sse);
		json_decref(msg);
		return ret;
	}

	if (session_check(c, &s, &ret)) {
		json_decref(msg);
		return ret;
	}
	if (k != REQUEST) { /* notifications and responses: accepted */
		json_decref(msg);
		return reply_json(c, MHD_HTTP_ACCEPTED, NULL, NULL);
	}
	ret = serve_request(c, &s, msg, NULL, sse);
	json_decref(msg);
	return ret;
}

/* ----------------------------------------------------------------------
 * GET and DELETE
 */

/* Parse Last-Event-ID "<stream>:<event id>"; 0 or -1. */
static int parse_last_id(const char *v, char stream[MCP_STREAM_MAX],
			 uint64_t *event)
{
	const char *colon = strchr(v, ':');
	unsigned long long e;
	char *end;

	if (colon == NULL || colon - v >= MCP_STREAM_MAX || colon[1] < '0' ||
	    colon[1] > '9')
		return -1;
	memcpy(stream, v, (size_t)(colon - v));
	stream[colon - v] = 0;
	if (!mcp_valid_stream(stream))
		return -1;
	errno = 0;
	e = strtoull(colon + 1, &end, 10);
	if (errno || *end)
		return -1;
	*event = e;
	return 0;
}

static enum MHD_Result do_get(struct MHD_Connection *c)
{
	const char *last_id = header(c, "Last-Event-ID");
	char stream[MCP_STREAM_MAX] = "g";
	enum MHD_Result ret;
	struct sse *x;
	struct sess s;
	uint64_t after;
	bool resume;
	int err;

	if (!accepts(c, "text/event-stream"))
		return reply_error(c, MHD_HTTP_NOT_ACCEPTABLE, NULL,
				   RPC_SERVER_ERROR,
				   "Not Acceptable: Client must accept "
				   "text/event-stream");
	if (session_check(c, &s, &ret))
		return ret;
	resume = last_id != NULL;
	after = s.last;
	if (resume && parse_last_id(last_id, stream, &after))
		return reply_error(c, MHD_HTTP_BAD_REQUEST, NULL,
				   RPC_SERVER_ERROR,
				   "Bad Request: malformed Last-Event-ID");

	/* A resumed stream starts with its next message; a new GET stream
	 * is primed, so that it too can be resumed. */
	if (mcp_opts.log_streams && resume)
		fprintf(stderr, "mcp-prefork: stream %s resumed by %ld\n",
			stream, (long)getpid());
	x = sse_new(stream, stream[0] == 'r',
		    !resume && strcmp(s.version, "2025-11-25") == 0, after);
	if (x == NULL)
		return MHD_NO;
	err = sse_subscribe(x, s.id, after);
	if (err) {
		sse_free(x);
		if (err == -ENOENT)
			return reply_error(c, MHD_HTTP_NOT_FOUND, NULL,
					   RPC_NO_SESSION,
					   "Session not found");
		if (err == -EINVAL) /* an id this session never issued */
			return reply_error(c, MHD_HTTP_BAD_REQUEST, NULL,
					   RPC_SERVER_ERROR,
					   "Bad Request: unknown "
					   "Last-Event-ID");
		fprintf(stderr, "mcp-prefork: worker %ld: subscribe: %s\n",
			(long)getpid(), sesh_strerror(err));
		return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				   RPC_SERVER_ERROR, "Service Unavailable");
	}
	return reply_sse(c, x, NULL);
}

static enum MHD_Result do_delete(struct MHD_Connection *c)
{
	enum MHD_Result ret;
	struct sess s;
	int err;

	if (session_check(c, &s, &ret))
		return ret;
	/* Subscribers of the session, in every worker, drain what was
	 * published and end. */
	err = sesh_session_delete(mcp_dom, s.id);
	if (err == -ENOENT)
		return reply_error(c, MHD_HTTP_NOT_FOUND, NULL, RPC_NO_SESSION,
				   "Session not found");
	if (err && err != -EIO) /* -EIO: deleted, not yet durable */
		return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
				   RPC_SERVER_ERROR, "Service Unavailable");
	return reply_json(c, MHD_HTTP_OK, NULL, NULL);
}

/* ----------------------------------------------------------------------
 * The daemon
 */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct req *r = *con_cls;
	const char *cl;
	enum MHD_Result ret;

	(void)cls;
	(void)version;
	if (r == NULL) {
		/* First call: the headers are in; check what needs no
		 * body, and refuse early what would waste reading it. */
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return MHD_NO;
		*con_cls = r;
		if (strcmp(url, ENDPOINT) != 0) {
			r->replied = true;
			return reply_error(c, MHD_HTTP_NOT_FOUND, NULL,
					   RPC_SERVER_ERROR, "Not Found");
		}
		if (strcmp(method, "POST") && strcmp(method, "GET") &&
		    strcmp(method, "DELETE")) {
			r->replied = true;
			return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL,
					   RPC_SERVER_ERROR,
					   "Method not allowed.");
		}
		if (!origin_ok(header(c, "Origin"))) {
			r->replied = true;
			return reply_error(c, MHD_HTTP_FORBIDDEN, NULL,
					   RPC_SERVER_ERROR,
					   "Forbidden: Origin not allowed");
		}
		cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > mcp_opts.max_body) {
			r->replied = true;
			return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
					   RPC_SERVER_ERROR,
					   "Payload Too Large: at most %zu "
					   "bytes",
					   mcp_opts.max_body);
		}
		return MHD_YES;
	}
	if (r->replied) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;

		*upload_size = 0;
		if (r->too_big || strcmp(method, "POST") != 0)
			return MHD_YES; /* drained, ignored */
		if (n > mcp_opts.max_body - r->len) {
			r->too_big = true;
			free(r->body);
			r->body = NULL;
			r->len = r->cap = 0;
			return MHD_YES;
		}
		if (r->len + n > r->cap) {
			size_t cap = r->cap ? r->cap : 4096;
			char *b;

			while (cap < r->len + n)
				cap *= 2;
			if (cap > mcp_opts.max_body)
				cap = mcp_opts.max_body;
			b = realloc(r->body, cap);
			if (b == NULL)
				return MHD_NO;
			r->body = b;
			r->cap = cap;
		}
		memcpy(r->body + r->len, upload, n);
		r->len += n;
		return MHD_YES;
	}
	r->replied = true;
	if (strcmp(method, "POST") == 0)
		ret = do_post(c, r);
	else if (strcmp(method, "GET") == 0)
		ret = do_get(c);
	else
		ret = do_delete(c);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (r) {
		free(r->body);
		free(r);
		*con_cls = NULL;
	}
}

/*
 * The worker: SIGTERM and SIGINT are blocked in every thread (the master
 * blocked them before fork; threads inherit the mask), and the main
 * thread waits for them with sigwaitinfo(). The sesh handle is the one
 * the master opened: its first call here registers this process.
 */
void worker_main(int fd)
{
	struct MHD_Daemon *daemon;
	sigset_t set;
	int sig, i;

	prctl(PR_SET_NAME, "mcp-worker");
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);

	daemon = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD |
			MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_CONNECTION_LIMIT, mcp_opts.max_conns,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT,
		MHD_OPTION_END);
	if (daemon == NULL) {
		fprintf(stderr, "mcp-prefork: worker %ld: cannot start the "
				"HTTP daemon\n",
			(long)getpid());
		_exit(1);
	}

	do
		sig = sigwaitinfo(&set, NULL);
	while (sig < 0 && errno == EINTR);

	/* Readers see mcp_stopping within TICK_MS and end their
	 * responses, so that the daemon's threads can be joined. */
	mcp_stopping = 1;
	MHD_stop_daemon(daemon);
	for (i = 0; i < 40 && atomic_load(&tool_threads) > 0; i++)
		usleep(50000);
	/* A call still running uses the handle: leave it to the reaper. */
	if (atomic_load(&tool_threads) == 0)
		sesh_close(mcp_dom);
	_exit(0);
}
