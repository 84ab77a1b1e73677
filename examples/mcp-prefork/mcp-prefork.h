/*
 * mcp-prefork.h - what the three parts of the prefork MCP server share.
 *
 * main.c is the master (options, listening socket, domain, workers, the
 * reaper), http.c is a worker (libmicrohttpd, the transport rules of MCP
 * Streamable HTTP, SSE), and mcp.c is the protocol (JSON-RPC messages,
 * the tools, and how a server message is framed in the sesh stream).
 */
#ifndef MCP_PREFORK_H
#define MCP_PREFORK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sesh.h>

/* Options of the server, set by the master before it forks. */
struct mcp_opts {
	const char *host;	/* --host, 127.0.0.1 */
	int port;		/* --port, 8080; 0 picks a free one */
	int workers;		/* --workers, the number of cores */
	const char *domain;	/* --domain, "mcp" */
	uint32_t idle_ttl_s;	/* --idle-ttl, 300 */
	size_t max_body;	/* --max-body, 1 MiB */
	size_t stream_bytes;	/* --stream-bytes, 256 KiB */
	unsigned max_conns;	/* --max-conns, connections per worker */
	bool unlink_at_exit;	/* --unlink-at-exit */
	bool log_streams;	/* --log-streams: which worker serves which
				 * SSE stream, on stderr */
	const char **origins;	/* --allow-origin, repeated */
	int norigins;
};

extern struct mcp_opts mcp_opts;
/* The domain, opened by the master and inherited by the workers. */
extern sesh_t *mcp_dom;
/* Set in a worker when it is told to stop: long waits give up. */
extern volatile sig_atomic_t mcp_stopping;

/* Longest stream id with its NUL: "g", or "r" and 16 hex digits. */
#define MCP_STREAM_MAX 20
/* Longest protocol version string with its NUL. */
#define MCP_VERSION_MAX 16

/* JSON-RPC error codes. */
#define RPC_PARSE_ERROR	     -32700
#define RPC_INVALID_REQUEST  -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS   -32602
#define RPC_INTERNAL_ERROR   -32603
#define RPC_SERVER_ERROR     -32000 /* transport errors, as the SDK does */
#define RPC_NO_SESSION	     -32001

/* http.c: serve MCP on @fd until SIGTERM; never returns. */
void __attribute__((noreturn)) worker_main(int fd);

/* mcp.c */
extern const char *const mcp_versions[]; /* newest first, NULL-ended */
bool mcp_version_ok(const char *v);
json_t *rpc_error(json_t *id, int code, const char *message);
bool mcp_valid_stream(const char *stream);
void mcp_new_stream(char stream[MCP_STREAM_MAX]);
int mcp_frame_parse(const void *data, size_t len,
		    char stream[MCP_STREAM_MAX], char *flag,
		    const char **json, size_t *json_len);
int mcp_publish(const char *sid, const char *stream, char flag,
		const json_t *msg);
json_t *mcp_initialize(json_t *req, char sid[SESH_ID_MAX + 1],
		       char version[MCP_VERSION_MAX], int *err);
bool mcp_plan(const json_t *req, unsigned *close_after);
json_t *mcp_run(const char *sid, const char *stream, json_t *req);

#endif /* MCP_PREFORK_H */
