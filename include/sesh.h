/*
 * sesh.h - sessions and resumable message streams shared by the processes
 * of one host through POSIX shared memory.
 *
 * This header is the whole public API and its manual. Every function that
 * can fail returns 0 on success or a negative errno value; sesh_strerror()
 * names any value returned. Handles are opaque and constructors fill an
 * out-parameter.
 *
 * A domain is one shared-memory object, /dev/shm/sesh.NAME (the directory
 * can be changed with the SESH_SHM_DIR environment variable), created once
 * and attached by any number of processes. Every attached handle owns a
 * slot in the domain's process registry (two handles of one process take
 * two slots) and is known alive or dead through an open file description
 * lock that the kernel drops when the process dies.
 *
 * Times are int64_t nanoseconds since the Epoch, of CLOCK_REALTIME.
 *
 * SESH_SHM_DIR names the directory of the objects (read with
 * secure_getenv; unset or empty means /dev/shm). A missing directory makes
 * sesh_open() fail with -ENOENT, even with SESH_CREATE.
 *
 * Copyright (c) 2026 the sesh authors. MIT licence.
 */
#ifndef SESH_H
#define SESH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SESH_BUILDING_LIBRARY)
#define SESH_API __attribute__((visibility("default")))
#else
#define SESH_API
#endif

#define SESH_VERSION_MAJOR 0
#define SESH_VERSION_MINOR 1
#define SESH_VERSION_PATCH 0
/** Version of this header: major * 10000 + minor * 100 + patch. */
#define SESH_VERSION                                                           \
	(SESH_VERSION_MAJOR * 10000 + SESH_VERSION_MINOR * 100 +               \
	 SESH_VERSION_PATCH)

/** Longest domain or namespace name, in bytes, without the NUL. */
#define SESH_NAME_MAX 64

/** Opaque handle on an attached domain, bound to one namespace. */
typedef struct sesh sesh_t;

/**
 * Capacities and permissions of a domain, used when a call creates it.
 *
 * Fill it with sesh_config_init() and change what you need. An attaching
 * process learns the real values from the segment (see sesh_info()).
 */
typedef struct sesh_config {
	/** Sessions the domain can hold; 1..SESH_MAX_SESSIONS.
	 * Default 65536. */
	size_t max_sessions;
	/** Per-session stream capacity in bytes; a power of two from 4096 to
	 * 2^30. Default 65536. */
	size_t stream_bytes;
	/** Largest message; 1..stream_bytes/2, or 0 for stream_bytes/4.
	 * Default 0. */
	size_t max_message;
	/** Largest metadata blob of a session; 0..2^20. Default 1024. */
	size_t max_metadata;
	/** Idle TTL, in seconds, of sessions created with ttl_s == 0;
	 * at least 1. Default 1800. */
	uint32_t idle_ttl_s;
	/** Permissions of the shared-memory object; owner read and write
	 * (0600) are required, only permission bits (0777) are allowed.
	 * Applied exactly, whatever the umask. Default 0600. */
	mode_t mode;
	/** Slots in the process registry: how many processes can be
	 * attached at once; 1..SESH_MAX_PROCESSES. Default 1024. */
	uint32_t max_processes;
	/** How long a stream waits for a publisher that claimed space and
	 * has not committed before treating the space as lost, in
	 * milliseconds; 1..60000. A publisher known to be dead is not
	 * waited for at all. Default 1000. */
	uint32_t unblock_ms;
	/** Streams (subscriptions) one process can have open at once;
	 * 1..SESH_MAX_SUBSCRIPTIONS. Default 4096. */
	uint32_t max_subscriptions;
	/** SQLite database that sessions are written through to, or NULL
	 * for none (the default). An absolute path of at most
	 * SESH_SQLITE_PATH_MAX bytes; kept in the segment, so every
	 * process of the domain writes to the same file. Creating a domain
	 * whose database exists restores its sessions: see "Persistence"
	 * below. */
	const char *sqlite_path;
	/** SESH_SQLITE_SYNC (the default) or SESH_SQLITE_ASYNC. */
	uint32_t sqlite_mode;
	/** Asynchronous mode: how long, in milliseconds, a change may wait
	 * before a writer commits it (with the changes of others) while
	 * writes go on; 1..3600000, or 0 for the default, 1000. */
	uint32_t sqlite_lag_ms;
	/** Synchronous mode: how long, in milliseconds, a create, update
	 * or delete may wait, while other processes commit, for a commit
	 * that covers its change (it commits itself whenever nobody else
	 * is); past it, -EIO. 1..600000, or 0 for the default, 5000. */
	uint32_t sqlite_wait_ms;
} sesh_config_t;

/** Longest sesh_config_t.sqlite_path, in bytes, without the NUL. */
#define SESH_SQLITE_PATH_MAX 1023
/** sesh_config_t.sqlite_mode: a create, update or delete returns once the
 * change is committed to the database. */
#define SESH_SQLITE_SYNC 0u
/** sesh_config_t.sqlite_mode: changes are committed in the background,
 * with a bounded lag. */
#define SESH_SQLITE_ASYNC 1u

/** Upper bound of sesh_config_t.max_sessions. */
#define SESH_MAX_SESSIONS ((size_t)1 << 26)
/** Upper bound of sesh_config_t.max_processes. */
#define SESH_MAX_PROCESSES 65536u
/** Upper bound of sesh_config_t.max_subscriptions. */
#define SESH_MAX_SUBSCRIPTIONS 1048576u

/**
 * Fill a configuration with the defaults.
 *
 * @param[out] cfg  configuration to fill; ignored when NULL.
 *
 * Context: any thread; async-signal-safe.
 */
SESH_API void sesh_config_init(sesh_config_t *cfg);

/** sesh_open() flag: create the domain if it does not exist. */
#define SESH_CREATE 0x1u
/** sesh_open() flag, with SESH_CREATE: fail with -EEXIST if it exists. */
#define SESH_EXCL 0x2u

/**
 * Attach to a domain, creating it if asked, and register this process.
 *
 * Creation is race-free: the segment is built under a private name and
 * published atomically, so any number of processes may call this at once
 * and none sees a half-initialised segment. A creator killed half-way
 * leaves only a private file, which the next creator removes. The segment
 * is sized once from the capacities (pages are committed when touched).
 *
 * A handle opened before fork() keeps working in the children: each child
 * registers as its own process on its first call on the handle.
 *
 * @param[in]  name   domain name: 1..SESH_NAME_MAX bytes of [A-Za-z0-9._-].
 * @param[in]  ns     namespace the handle is bound to, same rules;
 *                    NULL means "default".
 * @param[in]  cfg    capacities used if this call creates the domain;
 *                    NULL means the defaults. Checked whenever
 *                    SESH_CREATE is given.
 * @param[in]  flags  0, SESH_CREATE, or SESH_CREATE | SESH_EXCL.
 * @param[out] out    the new handle; set only on success.
 *
 * A process takes a dead process's registry slot only when no slot is
 * free, so "registry full" means every slot belongs to a live process.
 *
 * @return 0 on success, or:
 *   -EINVAL  a NULL name or out, a bad name or namespace, unknown flags,
 *            SESH_EXCL without SESH_CREATE, or a configuration value out
 *            of its range;
 *   -ENOENT  the domain does not exist and SESH_CREATE was not given,
 *            or the directory (SESH_SHM_DIR) does not exist;
 *   -EEXIST  the domain exists and SESH_CREATE | SESH_EXCL was given;
 *   -EPROTO  the object is not a sesh domain (a foreign file, a
 *            directory, a symbolic link, ...), or has another layout
 *            version, byte order or word size;
 *   -EUCLEAN the segment failed validation (corrupt or truncated);
 *   -EACCES  the permissions of the object, or of the directory when
 *            creating, refuse this process;
 *   -ENOSPC  the capacities need a segment larger than the limit
 *            (2^46 bytes) or than the file system allows, or the
 *            process registry is full;
 *   -ENOMEM  out of memory or address space;
 *   -EMFILE, -ENFILE  out of file descriptors;
 *   -ENOTSUP the domain writes through to SQLite (or would, created
 *            with sqlite_path) and this library was built without it;
 *   -EIO     an unexpected system error, or (creating, with sqlite_path)
 *            the database cannot be opened, created or read;
 *   and, creating with sqlite_path: -EPROTO (the file is not a sesh
 *   database, or has a newer schema), -ENOSPC (it holds more live
 *   sessions than max_sessions), -E2BIG (a session's metadata is over
 *   max_metadata).
 *
 * Context: any thread; blocking (file system calls); not
 * async-signal-safe.
 */
SESH_API int sesh_open(const char *name, const char *ns,
		       const sesh_config_t *cfg, unsigned flags, sesh_t **out);

/**
 * Detach from a domain and release this process's registry slot.
 *
 * The handle is freed. In a child that inherited the handle, only the
 * child's own registration is released. With write-through to SQLite,
 * the changes still waiting (asynchronous mode) are committed first, if
 * the database allows. The domain itself stays until
 * sesh_unlink().
 *
 * @param[in] d  handle to close; NULL is ignored.
 *
 * Context: any thread, once no other thread uses @p d; not
 * async-signal-safe.
 */
SESH_API void sesh_close(sesh_t *d);

/**
 * Remove a domain's name, and the private files of creators that died.
 *
 * Processes already attached keep working on their mapping; the memory is
 * released when the last one closes. A later sesh_open() with SESH_CREATE
 * makes a new, empty domain.
 *
 * @param[in] name  domain name, as for sesh_open().
 *
 * Dead creators' private files are removed even when the call then fails
 * with -ENOENT.
 *
 * @return 0 on success, or:
 *   -EINVAL  a NULL or bad name;
 *   -ENOENT  no such domain (or no such directory);
 *   -EACCES  the directory refuses this process (its permissions, the
 *            sticky bit of /dev/shm for another user's object, or a
 *            read-only file system);
 *   -EIO     an unexpected system error.
 *
 * Context: any thread; blocking; not async-signal-safe.
 */
SESH_API int sesh_unlink(const char *name);

/**
 * Name an error value returned by this library.
 *
 * @param[in] err  a value returned by a sesh function (negative errno,
 *                 or 0); a positive errno is accepted too.
 *
 * @return a static, NUL-terminated description; never NULL.
 *
 * Context: any thread; async-signal-safe.
 */
SESH_API const char *sesh_strerror(int err);

/** What sesh_info() reports about a domain. */
typedef struct sesh_info {
	char name[SESH_NAME_MAX + 1]; /**< domain name */
	char ns[SESH_NAME_MAX + 1];   /**< namespace of the handle */
	uint32_t layout_version;      /**< segment layout version */
	uint64_t domain_id;	      /**< random id of this incarnation */
	int64_t created_ns;	      /**< creation, CLOCK_REALTIME */
	size_t max_sessions;	      /**< capacities as created */
	size_t stream_bytes;
	size_t max_message; /**< effective: never 0 */
	size_t max_metadata;
	uint32_t idle_ttl_s;
	uint32_t max_processes;
	mode_t mode;		  /**< current permissions of the
				   * object (fstat), 0777 bits */
	uint64_t segment_bytes;	  /**< virtual size of the segment */
	uint64_t committed_bytes; /**< memory the pages now use */
	uint32_t processes_alive; /**< registered and alive */
	uint32_t processes_dead;  /**< died, awaiting recovery */
	int32_t self_slot;	  /**< this handle's slot */
	size_t sessions;	  /**< sessions stored, all namespaces */
	uint32_t unblock_ms;	  /**< as created */
	uint32_t max_subscriptions; /**< per process, as created */
	size_t streams_open;	  /**< subscriptions open, all processes */
	char sqlite_path[SESH_SQLITE_PATH_MAX + 1]; /**< write-through
						     * database, "" = none */
	uint32_t sqlite_mode;	  /**< SESH_SQLITE_SYNC or _ASYNC */
	uint32_t sqlite_lag_ms;	  /**< as created */
	uint32_t sqlite_wait_ms;  /**< as created */
} sesh_info_t;

/**
 * Describe the domain: layout, capacities, sizes and registry counts.
 *
 * @param[in]  d    handle.
 * @param[out] out  filled on success.
 *
 * @return 0 on success, or:
 *   -EINVAL  @p d or @p out is NULL;
 *   -ENOSPC, -ENOMEM, -EMFILE, -ENFILE, -EACCES, -ENOENT
 *            this process is a child whose first call had to register it,
 *            and registering failed (registry full; out of memory or
 *            descriptors; the object refused a new descriptor; it was
 *            removed and /proc is not mounted);
 *   -EIO     the segment could not be examined.
 *
 * Context: any thread; blocking (one fcntl per registry slot in use);
 * not async-signal-safe.
 */
SESH_API int sesh_info(sesh_t *d, sesh_info_t *out);

/** One entry of the process registry, as sesh_proc_list() reports it. */
typedef struct sesh_proc {
	uint32_t slot;	      /**< registry slot */
	pid_t pid;	      /**< pid recorded when the slot was claimed */
	int alive;	      /**< 1 alive, 0 dead (awaiting recovery) */
	int self;	      /**< 1 if this is the calling handle's slot */
	int64_t attached_ns;  /**< when it registered, CLOCK_REALTIME */
	uint64_t incarnation; /**< bumped each time the slot is claimed */
	char comm[16];	      /**< process name when it registered, as
			       * prctl(PR_GET_NAME) gave it: at most 15
			       * bytes, NUL-terminated, any bytes */
} sesh_proc_t;

/**
 * Visitor of sesh_proc_list(); a non-zero return stops the walk and is
 * returned by sesh_proc_list().
 */
typedef int (*sesh_proc_fn)(const sesh_proc_t *p, void *arg);

/**
 * Visit every occupied slot of the process registry, alive or dead.
 *
 * The entry passed to @p fn is valid only during the call. Its pid is as
 * seen in the pid namespace of the process that registered.
 *
 * Liveness is what the kernel says now: a process killed with SIGKILL is
 * dead at once, and a recycled pid cannot pass for it. The walk is weakly
 * consistent: a process that registers or leaves during it may or may not
 * be seen.
 *
 * @param[in] d    handle.
 * @param[in] fn   visitor, called once per occupied slot, in slot order.
 * @param[in] arg  passed to @p fn.
 *
 * @return 0 after a full walk, the visitor's non-zero value if it stopped
 * the walk (use a positive value to tell it apart from the errors), or:
 *   -EINVAL  @p d or @p fn is NULL;
 *   -ENOSPC, -ENOMEM, -EMFILE, -ENFILE, -EACCES, -ENOENT
 *            as for sesh_info(): registering a forked child failed;
 *   -EIO     a liveness query failed.
 *
 * Context: any thread; blocking (one fcntl per occupied slot); not
 * async-signal-safe. @p fn may call sesh functions on @p d.
 */
SESH_API int sesh_proc_list(sesh_t *d, sesh_proc_fn fn, void *arg);

/* ------------------------------------------------------------------------
 * Sessions
 *
 * A session lives in the namespace of the handle that created it and is
 * seen only through handles bound to that namespace. A domain holds up to
 * 256 namespaces; one takes its entry with its first session (or quota). Ids and user ids are
 * 1..128 bytes of printable ASCII (0x21-0x7E). Times are nanoseconds of
 * CLOCK_REALTIME; last-seen times are kept at the resolution of
 * CLOCK_REALTIME_COARSE (a few milliseconds).
 */

#define SESH_ID_MAX   128 /**< longest session id, in bytes */
#define SESH_USER_MAX 128 /**< longest user id, in bytes */

/** A session, as sesh_session_get() and the visitors see it. */
typedef struct sesh_session {
	char id[SESH_ID_MAX + 1];     /**< session id */
	char user[SESH_USER_MAX + 1]; /**< owning user id ("" = none) */
	int64_t created_ns;	      /**< creation time */
	int64_t last_seen_ns;	      /**< last create, touch or update */
	uint32_t ttl_s;		      /**< idle TTL in seconds */
	uint64_t last_event_id;	      /**< newest event id published;
				       * 0 = none */
	size_t meta_len;	      /**< full length of the metadata */
} sesh_session_t;

/**
 * Create a session in the handle's namespace.
 *
 * The record is built off-table and published with one atomic store, so
 * other processes see the whole session or none of it. A session with the
 * same id that is idle past its TTL (expired, not yet removed) is replaced.
 *
 * @param[in]  d         handle.
 * @param[in]  id        session id, or NULL to generate one: 128 random
 *                       bits from getrandom(2), as 32 lower-case hex
 *                       digits.
 * @param[in]  user      owning user id, or NULL for none.
 * @param[in]  meta      opaque metadata; may be NULL when @p meta_len is 0.
 * @param[in]  meta_len  bytes of metadata, at most the domain's
 *                       max_metadata.
 * @param[in]  ttl_s     idle TTL in seconds; 0 takes the domain's
 *                       idle_ttl_s.
 * @param[out] id_out    receives the id (generated or given); may be NULL
 *                       when @p id is given.
 *
 * @return 0 on success, or:
 *   -EINVAL  @p d NULL; @p id or @p user empty, longer than 128 bytes or
 *            not printable; @p meta NULL with @p meta_len > 0; @p id and
 *            @p id_out both NULL;
 *   -EEXIST  a live session with this id exists in the namespace;
 *   -E2BIG   @p meta_len is over the domain's max_metadata;
 *   -ENOSPC  the domain holds max_sessions sessions, the namespace is at
 *            its quota (sesh_ns_set_quota()), the namespace table is
 *            full, or the record allocator stayed out of blocks for
 *            0.25 s: retired blocks wait for a reader that does not
 *            leave its read-side section (a process stopped, or killed
 *            and not yet recovered: see sesh_recover());
 *   -EUCLEAN the index is corrupt;
 *   -EIO     getrandom(2) failed; or, writing through to SQLite in
 *            synchronous mode, the database did not commit the change
 *            (it is made and stays noted: see "Persistence");
 *   or an error of registering a forked child (see sesh_info()).
 *
 * Context: any thread; blocking (takes a process-shared lock of one bucket
 * stripe for a few hundred nanoseconds; with synchronous write-through, a
 * database commit); not async-signal-safe.
 */
SESH_API int sesh_session_create(sesh_t *d, const char *id, const char *user,
				 const void *meta, size_t meta_len,
				 uint32_t ttl_s, char id_out[SESH_ID_MAX + 1]);

/**
 * Look a session up and copy it out.
 *
 * @param[in]  d         handle.
 * @param[in]  id        session id.
 * @param[in]  user      the authenticated user: a session owned by another
 *                       user is -ENOENT. NULL skips the check (tools).
 * @param[out] out       receives the session; may be NULL.
 * @param[out] meta      receives at most @p meta_cap bytes of metadata;
 *                       may be NULL.
 * @param[in]  meta_cap  capacity of @p meta. out->meta_len is always the
 *                       full length.
 *
 * @return 0 on success, or:
 *   -EINVAL  @p d or @p id NULL; @p id or @p user not a valid id;
 *   -ENOENT  no such session in the namespace, it is idle past its TTL,
 *            or it belongs to another user (never revealed which);
 *   -EUCLEAN the index is corrupt;
 *   -ENOSPC  the calling thread is past the 256 threads per process that
 *            can read a domain at once;
 *   or an error of registering a forked child (see sesh_info()).
 *
 * Context: any thread; wait-free (no lock, no read-modify-write of a
 * shared word, no system call) once the thread has read the domain
 * before; not async-signal-safe.
 */
SESH_API int sesh_session_get(sesh_t *d, const char *id, const char *user,
			      sesh_session_t *out, void *meta,
			      size_t meta_cap);

/**
 * Mark a session used now: sets its last-seen time, which holds off idle
 * expiry. A store is skipped when the coarse clock has not moved since
 * the last one, so calling this on every request is cheap.
 *
 * @param[in] d   handle.
 * @param[in] id  session id.
 *
 * @return 0 on success, or -EINVAL, -ENOENT (missing or idle past its
 * TTL), -EUCLEAN, -ENOSPC, as for sesh_session_get().
 *
 * Context: any thread; wait-free; not async-signal-safe.
 */
SESH_API int sesh_session_touch(sesh_t *d, const char *id);

/**
 * Replace a session's metadata atomically (copy-on-write): a reader sees
 * the old or the new metadata, never a mix. Also sets last-seen to now.
 * A touch that races with the update may be lost (the update's own time
 * replaces it).
 *
 * @param[in] d         handle.
 * @param[in] id        session id.
 * @param[in] meta      new metadata; may be NULL when @p meta_len is 0.
 * @param[in] meta_len  its length, at most max_metadata.
 *
 * @return 0 on success, or:
 *   -EINVAL  bad @p d, @p id or @p meta;
 *   -ENOENT  no such session, or idle past its TTL;
 *   -E2BIG   @p meta_len over max_metadata;
 *   -ENOSPC  the record allocator stayed out of blocks for 0.25 s (as
 *            for sesh_session_create());
 *   -EAGAIN  while the update ran, the session was deleted and created
 *            again with another user id, 16 times over; nothing changed;
 *   -EUCLEAN the index is corrupt;
 *   -EIO     synchronous write-through: the database did not commit the
 *            change (made, and committed later: see "Persistence");
 *   or an error of registering a forked child (see sesh_info()).
 *
 * Context: any thread; blocking (one bucket-stripe lock, and waits for
 * readers when blocks run short; with synchronous write-through, a
 * database commit); not async-signal-safe.
 */
SESH_API int sesh_session_update(sesh_t *d, const char *id, const void *meta,
				 size_t meta_len);

/**
 * Remove a session (an expired one too). Its memory is reclaimed once no
 * reader can still see it; the caller does nothing more.
 *
 * @param[in] d   handle.
 * @param[in] id  session id.
 *
 * @return 0 on success, or -EINVAL, -ENOENT (no such session in the
 * namespace), -EUCLEAN, -EIO (synchronous write-through: the database did
 * not commit the removal, which is made and committed later: see
 * "Persistence"), or an error of registering a forked child.
 *
 * Context: any thread; blocking (one bucket-stripe lock; with synchronous
 * write-through, a database commit); not async-signal-safe.
 */
SESH_API int sesh_session_delete(sesh_t *d, const char *id);

/**
 * Count the sessions of the handle's namespace, including those idle past
 * their TTL that no one has removed yet (sesh_session_expired() finds
 * them).
 *
 * @param[in]  d    handle.
 * @param[out] out  the count.
 *
 * @return 0 on success, or -EINVAL (NULL argument), -EUCLEAN, or an error
 * of registering a forked child.
 *
 * Context: any thread; lock-free, O(1), unless a writer died inside its
 * critical section since the last call: then the counts are rebuilt first
 * (blocking, O(sessions)).
 */
SESH_API int sesh_session_count(sesh_t *d, size_t *out);

/**
 * Visitor of sesh_session_list() and sesh_session_expired(). @p s and
 * @p meta (s->meta_len bytes) are private copies, valid during the call.
 * A non-zero return stops the walk and is returned by the walker. The
 * visitor may call any sesh function, sesh_session_delete() included.
 */
typedef int (*sesh_visit_fn)(const sesh_session_t *s, const void *meta,
			     void *arg);

/**
 * Visit the sessions of the handle's namespace that are not idle past
 * their TTL: all of them, or one user's.
 *
 * Weakly consistent: each session that lives through the whole walk is
 * seen exactly once; one created or removed during it may or may not be
 * seen; none is seen twice. Writers are never blocked.
 *
 * @param[in] d     handle.
 * @param[in] user  only this user's sessions; NULL for all.
 * @param[in] fn    visitor.
 * @param[in] arg   passed to @p fn.
 *
 * @return 0 after a full walk, the visitor's non-zero value if it stopped
 * (use a positive value to tell it apart from errors), or -EINVAL,
 * -ENOMEM, -EUCLEAN, -ENOSPC (as for sesh_session_get()).
 *
 * Context: any thread; lock-free; not async-signal-safe.
 */
SESH_API int sesh_session_list(sesh_t *d, const char *user, sesh_visit_fn fn,
			       void *arg);

/**
 * Visit the sessions of the handle's namespace idle for more than
 * @p idle_s seconds, or, with @p idle_s 0, those idle past their own TTL
 * (what a reaper removes). Consistency, return values and context as for
 * sesh_session_list().
 */
SESH_API int sesh_session_expired(sesh_t *d, uint32_t idle_s,
				  sesh_visit_fn fn, void *arg);

/**
 * Limit how many sessions the handle's namespace may hold. Creating past
 * it is -ENOSPC; sessions already stored are kept.
 *
 * @param[in] d      handle.
 * @param[in] quota  the limit; 0 removes it (the domain's max_sessions
 *                   still applies).
 *
 * @return 0 on success, or -EINVAL (@p d NULL), -ENOSPC (the namespace
 * table of the domain is full), or an error of registering a forked
 * child.
 *
 * Context: any thread; blocking; not async-signal-safe.
 */
SESH_API int sesh_ns_set_quota(sesh_t *d, size_t quota);

/**
 * Recover what processes that died without closing left behind: their
 * registry slots, their epoch reader slots (so a reader killed inside its
 * read-side section stops holding back reclamation), records they had
 * claimed and not published, locks they held (the counts are rebuilt),
 * and retired records whose grace period is over.
 *
 * Each sesh_reap() pass runs this walk when a process died since the
 * last one; a prefork master that calls sesh_reap() needs nothing more.
 * It may run at the same time as a pass, or as another recovery. Live
 * processes are never disturbed.
 *
 * @param[in] d  handle.
 *
 * @return the number of dead processes whose slots were recovered (0 or
 * more), or -EINVAL (@p d NULL), -EUCLEAN (the index is corrupt), -EIO (a
 * liveness query failed), -ENOMEM, or an error of registering a forked
 * child.
 *
 * Context: any thread; blocking (takes every stripe lock in turn, one
 * fcntl per registry slot); not async-signal-safe.
 */
SESH_API int sesh_recover(sesh_t *d);

/** What sesh_check() found. */
typedef struct sesh_check {
	size_t sessions;       /**< records linked in the index */
	size_t namespaces;     /**< namespaces in use */
	size_t blocks_live;    /**< allocator blocks holding a record */
	size_t blocks_retired; /**< waiting for their grace period */
	size_t blocks_owned;   /**< claimed by a live writer, not
				* published */
	size_t blocks_dead;    /**< claimed by a dead process: sesh_recover()
				* reclaims them */
	size_t blocks_free;    /**< free, all size classes */
	size_t problems;       /**< broken invariants found */
	char first_problem[160]; /**< description of the first one, or "" */
} sesh_check_t;

/**
 * Validate the whole index: every chain, record, count and allocator block
 * of every namespace, against the invariants the library keeps. Writers
 * of the domain wait while it runs (it holds every stripe lock); readers
 * never do.
 *
 * @param[in]  d    handle.
 * @param[out] out  what was found.
 *
 * @return 0 if no invariant is broken, -EUCLEAN if some is (out says
 * which), or -EINVAL (a NULL argument), -ENOMEM, or an error of
 * registering a forked child.
 *
 * Context: any thread; blocking, O(sessions + blocks); not
 * async-signal-safe.
 */
SESH_API int sesh_check(sesh_t *d, sesh_check_t *out);

/* --- streams ------------------------------------------------------------- */

/*
 * Every session has a stream: a ring of messages in shared memory, of the
 * domain's stream_bytes. Any process may publish to it; any number of
 * subscribers, in any processes, read it from any message still retained.
 * When the ring is full the oldest messages are overwritten; a subscriber
 * that had not read them is told (-EOVERFLOW), never left with a silent
 * gap or a torn message.
 *
 * Event ids are 64-bit and strictly increase within a session, in the
 * order subscribers see the messages: within one incarnation of a session
 * they are consecutive. They are never reused for a session id: a
 * session deleted (or expired and replaced) and created again starts
 * above every id its previous incarnation issued. A stream's first id is
 * its creation time in nanoseconds, and never at or below the highest id
 * any closed stream of the domain issued; across a removal and re-creation
 * of the whole domain, ids rest on CLOCK_REALTIME not going back. Treat
 * ids as opaque, ordered tokens (an SSE "id:" field, sent back as
 * Last-Event-ID).
 *
 * A ring of stream_bytes retains at most stream_bytes / 128 messages,
 * however small, and at most stream_bytes of payload. Once full, it
 * gives up its oldest messages a sixteenth of the ring at a time, so it
 * always retains at least fifteen sixteenths of either bound, less the
 * last batch published.
 *
 * A session's stream ends when the session is deleted or expires: its
 * subscribers get what was committed, then -ENOENT. A subscriber waiting
 * on a session that nobody touches wakes when the session's TTL runs out,
 * looks, and ends the stream; neither publishing nor subscribing counts as
 * use of the session (a server touches it on each request).
 *
 * A subscription belongs to the process that opened it. After fork(), a
 * child may go on using its copy: its first call pins the ring anew for
 * the child (counted against the child's max_subscriptions), or returns
 * -ENOENT if the ring was reused meanwhile.
 */

/** An opaque subscription: a read position in one session's stream. */
typedef struct sesh_stream sesh_stream_t;

/** A message, as sesh_stream_next() returns it. */
typedef struct sesh_msg {
	uint64_t event_id;    /**< id of the message (or, with -EOVERFLOW,
			       * where reading resumes) */
	int64_t published_ns; /**< when it was published, CLOCK_REALTIME */
	const void *data;     /**< the bytes; valid until the next call on
			       * the stream (NULL when len is 0) */
	size_t len;	      /**< length of data */
} sesh_msg_t;

/** One message of a batch, for sesh_publish_batch(). */
typedef struct sesh_buf {
	const void *data; /**< may be NULL when len is 0 */
	size_t len;
} sesh_buf_t;

/** sesh_subscribe() @p after: every message the stream still retains. */
#define SESH_FROM_OLDEST ((uint64_t)0)
/** sesh_subscribe() @p after: only messages published from now on. */
#define SESH_FROM_LATEST UINT64_MAX

/**
 * Append a message to a session's stream.
 *
 * Space is claimed with one compare-and-swap, the message is copied once,
 * into the ring, and committed by itself: publishers never wait for each
 * other. Sleeping subscribers are woken; when none sleeps, no system call
 * is made.
 *
 * @param[in]  d         handle.
 * @param[in]  id        session id, in the handle's namespace.
 * @param[in]  msg       the bytes; may be NULL when @p len is 0.
 * @param[in]  len       0..max_message.
 * @param[out] event_id  the message's event id; may be NULL.
 *
 * @return 0 on success (the message is committed: every subscriber will
 * be given it unless the ring laps it first), or:
 *   -EINVAL     @p d or @p id NULL, a bad id, or @p msg NULL with @p len
 *               not 0;
 *   -ENOENT     no such session, or it expired or was deleted;
 *   -E2BIG      @p len is larger than the domain's max_message;
 *   -ENOSPC     the file system holding the domain cannot supply the
 *               stream's memory (it is reserved on the first publish),
 *               or the calling thread is past the 256 threads per
 *               process that can read the index at once;
 *   -EAGAIN     the ring cannot advance: a publisher a whole ring behind
 *               (stopped, not dead) has held its space for longer than
 *               unblock_ms, which this call waited. Nothing was
 *               published;
 *   -ETIMEDOUT  this call was itself stalled for longer than unblock_ms
 *               between claiming and committing, and its space was given
 *               up by a subscriber. Nothing was published;
 *   -EUCLEAN    the index or the stream is corrupt;
 *   or an error of registering a forked child (see sesh_info()).
 *
 * Context: any thread; lock-free, except that a publisher that needs the
 * space of one a whole ring behind waits for it to finish (at most
 * unblock_ms); not async-signal-safe.
 */
SESH_API int sesh_publish(sesh_t *d, const char *id, const void *msg,
			  size_t len, uint64_t *event_id);

/**
 * Append several messages to a session's stream. They are claimed
 * together, up to 64 messages and half the ring's bytes and slots at a
 * time, so each such part takes consecutive event ids with nothing of
 * other publishers between them; larger batches are claimed in parts that
 * others may come between. Each message is committed by itself.
 *
 * @param[in]  d          handle.
 * @param[in]  id         session id.
 * @param[in]  msgs       @p n messages, each 0..max_message bytes.
 * @param[in]  n          how many; 0 does nothing.
 * @param[out] event_ids  the ids, @p n of them; may be NULL.
 *
 * @return 0 when all @p n are committed, or the errors of sesh_publish()
 * (-EINVAL also for @p msgs NULL with @p n not 0). On an error, the
 * messages before the one that failed may have been published: their ids
 * are in @p event_ids, the rest are set to 0.
 *
 * Context: any thread; lock-free; not async-signal-safe.
 */
SESH_API int sesh_publish_batch(sesh_t *d, const char *id,
				const sesh_buf_t *msgs, size_t n,
				uint64_t *event_ids);

/**
 * Open a subscription to a session's stream.
 *
 * @param[in]  d      handle. It must stay open while the stream is.
 * @param[in]  id     session id, in the handle's namespace.
 * @param[in]  after  start right after this event id (an SSE
 *                    Last-Event-ID), or SESH_FROM_OLDEST (everything
 *                    retained) or SESH_FROM_LATEST (only what comes
 *                    next). An id older than anything retained, or from
 *                    an earlier incarnation of the session (lower than
 *                    this one's first id), is accepted: the first
 *                    sesh_stream_next() returns -EOVERFLOW.
 * @param[out] out    the subscription; set only on success.
 *
 * @return 0 on success, or:
 *   -EINVAL  a NULL argument, a bad id, or @p after is an id this
 *            incarnation of the stream never issued (at or above its first
 *            id and newer than its newest: on a stream with no message
 *            yet, any id from its first on);
 *   -ENOENT  no such session, or it expired or was deleted;
 *   -ENOSPC  this process already has max_subscriptions streams open,
 *            or the calling thread is past the 256 threads per process
 *            that can read the index at once (see sesh_session_get());
 *   -ENOMEM  out of memory;
 *   -EUCLEAN the index or the stream is corrupt;
 *   or an error of registering a forked child.
 *
 * Context: any thread; blocking (takes a process-local lock); not
 * async-signal-safe.
 */
SESH_API int sesh_subscribe(sesh_t *d, const char *id, uint64_t after,
			    sesh_stream_t **out);

/**
 * Read the next message of a subscription, waiting for it if needed.
 *
 * Messages come in event-id order, each exactly once. The bytes are
 * copied out of the ring into the stream's own buffer, so they stay
 * valid (and intact) until the next call on the stream.
 *
 * Waiting spins briefly, then sleeps on a futex in shared memory that
 * publishers wake. A publisher that died between claiming space and
 * committing holds the stream up not at all once its death is seen, and
 * for at most unblock_ms otherwise.
 *
 * When the session is deleted or expires, the subscriber still gets
 * every message committed before that, then -ENOENT; a sleeping
 * subscriber is woken for it.
 *
 * @param[in]  s           the subscription.
 * @param[out] msg         the message, or with -EOVERFLOW the id where
 *                         reading resumes.
 * @param[in]  timeout_ms  -1 waits for ever, 0 does not wait, N waits at
 *                         most N milliseconds.
 *
 * @return 0 with a message, or:
 *   -EINVAL     @p s or @p msg NULL, or @p timeout_ms below -1;
 *   -EAGAIN     nothing to read and @p timeout_ms is 0;
 *   -ETIMEDOUT  nothing arrived within @p timeout_ms;
 *   -EOVERFLOW  messages this subscriber had not read were overwritten
 *               (or the @p after it subscribed with was older than what
 *               is retained). msg->event_id is where reading resumes:
 *               the next message returned has that id or a higher one.
 *               The subscription goes on from there;
 *   -ENOENT     the session was deleted or expired and every message
 *               committed before that has been returned (returned again
 *               by later calls);
 *   -ENOMEM     no memory for a message larger than any before;
 *   -EUCLEAN    the stream is corrupt.
 *
 * With @p timeout_ms 0 the call never sleeps: it returns -EAGAIN when
 * the next message is not committed yet, even if a publisher is writing
 * it.
 *
 * Context: the thread using @p s (one at a time); with @p timeout_ms 0,
 * wait-free but for the copy buffer's growth (malloc); blocking
 * otherwise; not async-signal-safe.
 */
SESH_API int sesh_stream_next(sesh_stream_t *s, sesh_msg_t *msg,
			      int timeout_ms);

/**
 * Like sesh_stream_next(), without the copy: msg->data points into the
 * ring itself. A publisher that laps this subscriber may overwrite the
 * bytes while they are being used, so whatever is made of them counts
 * only if sesh_stream_zc_valid() then returns 0.
 *
 * @return as sesh_stream_next(), without -ENOMEM.
 *
 * Context: as sesh_stream_next().
 */
SESH_API int sesh_stream_next_zc(sesh_stream_t *s, sesh_msg_t *msg,
				 int timeout_ms);

/**
 * Tell whether the message the last sesh_stream_next_zc() returned was
 * intact from then until now.
 *
 * @param[in] s  the subscription.
 *
 * @return 0 if it was, -EOVERFLOW if a publisher may have overwritten it
 * (discard what was made of it; the next read says where reading
 * resumes), -EINVAL if @p s is NULL or its last call did not return a
 * message from sesh_stream_next_zc().
 *
 * Context: the thread using @p s; wait-free; async-signal-safe.
 */
SESH_API int sesh_stream_zc_valid(sesh_stream_t *s);

/**
 * Close a subscription and free it.
 *
 * @param[in] s  the subscription; NULL is ignored.
 *
 * Context: the thread using @p s; not async-signal-safe.
 */
SESH_API void sesh_stream_close(sesh_stream_t *s);

/** Counters of a domain, summed over every process that ever attached. */
typedef struct sesh_stats {
	uint64_t published;	  /**< messages committed */
	uint64_t published_bytes; /**< their payload bytes */
	uint64_t publish_failed;  /**< publishes that lost their claim
				   * (-ETIMEDOUT) or found the ring
				   * blocked (-EAGAIN) */
	uint64_t delivered;	  /**< messages returned to subscribers */
	uint64_t delivered_bytes; /**< their payload bytes */
	uint64_t lapped;	  /**< -EOVERFLOW returned to subscribers */
	uint64_t holes_unblocked; /**< claims of dead or stalled publishers
				   * turned into padding */
	uint64_t futex_waits;	  /**< subscribers that went to sleep */
	uint64_t futex_wakes;	  /**< wake-up calls made by publishers and
				   * by deletes */
	uint64_t subscriptions;	  /**< streams opened */
	uint64_t sessions_created; /**< sessions created (replacing an
				    * expired one counts) */
	uint64_t sessions_deleted; /**< sessions removed by
				    * sesh_session_delete() (past their
				    * TTL or not) */
	uint64_t sessions_expired; /**< sessions removed by the reaper,
				    * or replaced by a create, after
				    * their idle TTL */
	uint64_t reaper_passes;	   /**< sesh_reap() passes completed */
	uint64_t persist_rows;	   /**< rows written to the SQLite
				    * database (or removed from it) */
	uint64_t persist_commits;  /**< transactions committed there */
	uint64_t persist_errors;   /**< attempts that failed (the changes
				    * stay noted and are retried) */
} sesh_stats_t;

/**
 * Read the domain's counters: those of live processes, of dead ones not
 * yet recovered, and of every process that has left.
 *
 * @param[in]  d    handle.
 * @param[out] out  filled on success.
 *
 * @return 0, or -EINVAL (a NULL argument).
 *
 * Context: any thread; wait-free (one pass over the registry);
 * async-signal-safe.
 */
SESH_API int sesh_stats(sesh_t *d, sesh_stats_t *out);

/* --- Persistence: write-through to SQLite -------------------------------
 *
 * A domain created with sqlite_path writes its sessions through to that
 * SQLite database (WAL mode): id, namespace, user, metadata, creation and
 * last-seen times, TTL, and the last event id of the stream. Message
 * bodies are not written: streams start empty after a restore.
 *
 * Creates, updates and deletes (and removals of expired sessions) are
 * noted in a journal in shared memory and committed in batches: many
 * changes, of many processes, share one transaction. Touches are not
 * noted: each sesh_reap() pass writes the last-seen times of the sessions
 * its sweep finds used since its previous round, so the database's
 * last-seen times trail by up to a round of the sweep. Without a reaper
 * they stay as the last create or update wrote them.
 *
 * Synchronous mode (SESH_SQLITE_SYNC): sesh_session_create(), _update()
 * and _delete() return 0 once their change is committed (fsync'd,
 * PRAGMA synchronous = FULL). A writer commits the changes noted so far
 * itself, or, while another process is committing, waits up to
 * sqlite_wait_ms for that commit to cover it (group commit). When the
 * database fails (locked past 100 ms, full, removed, corrupt, not
 * writable), the call returns -EIO: the change is made in shared memory
 * and visible, but not acknowledged as durable; it stays noted and is
 * committed when the database works again.
 *
 * Asynchronous mode (SESH_SQLITE_ASYNC): the calls return once the change
 * is noted. A writer commits itself when the oldest change waiting is
 * sqlite_lag_ms old, or the journal is half full (but not within a
 * second of a failed attempt: a database that is down must not slow
 * every writer); each reaper pass and each sesh_close() commits too.
 * sesh_health() reports the changes waiting and their age.
 *
 * What a failure leaves: the shared-memory store keeps serving, health
 * says degraded with the database's error, and every commit retries. A
 * database removed while in use is created anew. When changes were lost
 * to the journal (it holds 8192; it overflowed during a long outage),
 * when a process died (it may have died between its change and its
 * note), and after a restore, the next commit rewrites the whole database
 * from shared memory instead, so nothing the index holds is missing from
 * the database once a commit works again.
 *
 * Restore: sesh_open() with SESH_CREATE that creates the domain opens the
 * database (creating it, and failing with -EIO if it cannot) and, before
 * anyone can attach, restores its sessions, skipping those idle past
 * their TTL, with their namespaces, owners, metadata, times and TTLs. The
 * domain's event ids then continue above every id the database recorded
 * (a stream's first id is never below the restore time either, as for
 * any new stream). A database that is not a sesh database, or has a
 * newer schema, makes the open fail with -EPROTO; one holding more live
 * sessions than the domain's capacity, with -ENOSPC. The schema carries a
 * version (PRAGMA user_version) that later versions migrate from.
 */

/* --- housekeeping: the reaper and health ------------------------------- */

/*
 * The library keeps working without a reaper: an idle session is gone for
 * every call the moment its TTL runs out (lazy expiry), and each process
 * frees what it retired itself. A reaper adds what no single call does:
 * it removes expired sessions and their streams for good, frees memory
 * whose owners went quiet, and recovers what dead processes left behind.
 * Run seshd(8), or call sesh_reap() now and then from a process that lives
 * as long as the domain is used (a prefork master).
 *
 * Without a reaper, a session idle past its TTL is invisible but still
 * stored until a create of the same id replaces it: it counts against
 * max_sessions (and namespace quotas) and in sesh_session_count().
 */

/** What one sesh_reap() pass did. */
typedef struct sesh_reap_report {
	uint64_t pass;		      /**< passes completed in the domain,
				       * this one included */
	int64_t started_ns;	      /**< CLOCK_REALTIME at the start */
	uint64_t duration_ns;	      /**< how long the pass took */
	uint32_t processes_recovered; /**< dead processes whose registry
				       * slots were freed */
	uint32_t recovery_walk;	      /**< 1 if the pass took part in a
				       * recovery walk (after a death) */
	uint32_t recovery_done;	      /**< 1 if that walk finished in this
				       * pass */
	size_t sessions_expired;      /**< idle sessions removed, with
				       * their streams */
	size_t buckets_scanned;	      /**< index buckets the expiry sweep
				       * looked at */
	uint32_t sweep_wrapped;	      /**< 1 if the expiry sweep finished a
				       * round of the whole index */
	size_t blocks_freed;	      /**< record blocks given back */
	size_t rings_freed;	      /**< rings of gone sessions given
				       * back by the pass's sweeps (the
				       * library also frees them in
				       * batches as sessions end) */
	size_t holes_unblocked;	      /**< stream claims of dead publishers
				       * turned into padding */
	size_t persist_rows;	      /**< rows written to the SQLite
				       * database: pending changes, and
				       * the last-seen times of the
				       * sessions swept */
	int persist_error;	      /**< 0, or -EIO if writing to the
				       * database failed (sesh_health()
				       * says why; retried next pass) */
} sesh_reap_report_t;

/**
 * Run one reaper pass over the domain.
 *
 * In order: (1) dead processes are found through their liveness locks and
 * their registry slots, epoch reader slots and subscriptions are freed;
 * when any died since the last complete recovery, the pass also takes the
 * next share of a walk of the domain that repairs stripe locks they held,
 * frees the record blocks they had claimed and not linked, settles the
 * rings they were creating or freeing, retires rings whose sessions they
 * were removing, and turns their half-written stream messages into
 * padding; (2) the next share of
 * the index is swept for sessions idle past their TTL, which are removed
 * with their streams (subscribers drain what was committed, then get
 * -ENOENT); (3) the epoch is advanced and retired record blocks and rings
 * past their grace period are freed; (4) with write-through to SQLite,
 * the last-seen times of the sessions the sweep found used since its
 * previous round are written, then the changes waiting in the journal
 * (see "Persistence"); a database that fails sets persist_error in the
 * report, not an error of the call.
 *
 * Work per pass is bounded: the recovery walk of step (1), the sweep of
 * step (2) and the frees of step (3) each look at most at 262144 record
 * blocks, rings, buckets or state words, from where the previous pass
 * stopped. A domain has two buckets or more per session, so one of 131072
 * sessions is covered in each pass, one of a million in eight.
 *
 * One pass runs at a time in a domain: the pass holds a lease (a lock
 * the kernel drops if the process dies), and a call that finds it held
 * returns -EBUSY at once. A pass killed at any instruction leaves nothing
 * to repair by hand; the next pass, in any process, redoes what it did
 * not finish. Running passes more often than needed is harmless.
 *
 * sesh_health() reports the reaper alive while the reaper on record lives
 * and the last pass ended at most SESH_REAPER_STALE_S seconds ago (a
 * first pass still running counts): run passes well within that. A pass
 * puts its process on record unless the one there is alive and has run
 * a pass within SESH_REAPER_STALE_S, so a pass run by hand next to
 * seshd(8) does not make seshd look absent once it exits.
 *
 * @param[in]  d  handle (any namespace: the pass covers them all).
 * @param[out] r  what the pass did, filled when the call returns 0; may
 *                be NULL. A pass that fails is not counted.
 *
 * @return 0 on success, or:
 *   -EINVAL  @p d is NULL;
 *   -EBUSY   another pass is running (in this or another process);
 *   -EUCLEAN the index is corrupt;
 *   -ENOMEM  out of memory for the recovery walk;
 *   -EIO     a liveness query failed;
 *   or an error of registering a forked child (see sesh_info()).
 *
 * Context: any thread; blocking (fcntl per registry slot; a stripe lock
 * per bucket with expired sessions; every stripe lock in turn during a
 * recovery walk); not async-signal-safe.
 */
SESH_API int sesh_reap(sesh_t *d, sesh_reap_report_t *r);

/** Age past which the last reaper pass no longer counts as a reaper. */
#define SESH_REAPER_STALE_S 30

/** sesh_health_t.status values. */
#define SESH_HEALTHY  0 /**< nothing to report */
#define SESH_DEGRADED 1 /**< works, but something needs attention */
#define SESH_DOWN     2 /**< the domain cannot be used */

/** What sesh_health() reports. */
typedef struct sesh_health {
	int status;	  /**< SESH_HEALTHY, SESH_DEGRADED or SESH_DOWN */
	char reason[160]; /**< why not healthy (the first reason), or "" */
	size_t sessions;  /**< stored, all namespaces */
	size_t max_sessions;
	uint32_t processes_alive;
	uint32_t processes_dead; /**< died, awaiting recovery */
	uint32_t max_processes;
	size_t streams_open;	  /**< subscriptions, all processes */
	uint64_t segment_bytes;	  /**< virtual size of the segment */
	uint64_t committed_bytes; /**< memory its pages use now */
	int reaper_alive;	  /**< 1 if a reaper is running: the
				   * process of the last pass lives and
				   * the pass is recent */
	pid_t reaper_pid;	  /**< pid of the reaper on record (see
				   * sesh_reap()), as seen in its pid
				   * namespace; 0 if no pass ever ran */
	uint64_t reaper_passes;	  /**< passes completed */
	int64_t reaper_last_ns;	  /**< end of the last pass; 0 = never */
	uint32_t stuck_readers;	  /**< threads (of registered processes)
				   * inside one read-side section since
				   * before the epoch mark of an earlier
				   * pass, a second or more ago: with
				   * passes N s apart, inside for about
				   * N to 2N s at least. A stopped or
				   * looping process; they hold memory
				   * back. 0 until passes run. */
	uint64_t retired_blocks;  /**< record blocks awaiting their grace
				   * period */
	int persist;		  /**< write-through: 0 none, 1
				   * synchronous, 2 asynchronous */
	int persist_ok;		  /**< 1 if the last attempt to write to
				   * the database worked */
	int persist_resync;	  /**< 1 while a rewrite of the whole
				   * database from memory is due */
	uint64_t persist_pending; /**< changes noted, not yet committed */
	uint64_t persist_lag_ns;  /**< age of the oldest of them; 0 if
				   * none */
	int64_t persist_last_ns;  /**< last commit that worked; 0 = none */
	char persist_error[128];  /**< why the last attempt failed; "" if
				   * it worked */
} sesh_health_t;

/**
 * Report the domain's health: capacity in use, the reaper, stuck
 * readers and dead processes awaiting cleanup.
 *
 * The status is SESH_DOWN if the index header fails validation (for a
 * full validation see sesh_check()); SESH_DEGRADED if a dead process
 * awaits recovery, no reaper is alive, a reader is stuck, the last
 * attempt to write to the SQLite database failed (or, asynchronous, its
 * oldest change has waited over 10 x sqlite_lag_ms), or sessions or
 * registry slots (alive or dead) are 90% or more in use; otherwise
 * SESH_HEALTHY. @p h->reason names the first of these, in the order
 * listed. A domain nobody has run a pass on is degraded.
 *
 * @param[in]  d  handle.
 * @param[out] h  filled on success.
 *
 * @return 0 on success (whatever the status), or -EINVAL (a NULL
 * argument), -EIO (a liveness query failed), or an error of registering
 * a forked child.
 *
 * Context: any thread; blocking (one fcntl per registry slot in use, a
 * walk of the allocator's state words); not async-signal-safe.
 */
SESH_API int sesh_health(sesh_t *d, sesh_health_t *h);

#ifdef __cplusplus
}
#endif

#endif /* SESH_H */
