/*
 * persist.h - write-through of sessions to SQLite: the journal of changes
 * in shared memory, the commits, the restore. Internal to the library.
 */
#ifndef SESH_INDEX_PERSIST_H
#define SESH_INDEX_PERSIST_H

#include "index/index.h"

/* Whether the domain writes through to a database. */
static inline bool persist_on(const struct shm_seg *s)
{
	return s->geom.sqlite_path[0] != '\0';
}

/* Initialise the journal of a segment being created. 0 or -errno. */
int persist_format(const struct shm_seg *s);

/* Restore the sessions of the database into a segment being created,
 * through a handle of its creator's (every namespace). Nothing to do
 * without a database file. Returns 0, or -EIO (the database cannot be
 * read), -EPROTO (not a sesh database, or a newer schema), -ENOSPC (it
 * holds more live sessions than the domain can), -ENOTSUP (built without
 * SQLite). */
int persist_restore(struct sesh *d);

/* Note that session (ns, id) changed (created, updated, deleted,
 * expired): it is written to the database with the next commit. Returns
 * the note's LSN (when the journal was full, a rewrite is asked for), or
 * PERSIST_NO_LSN if nothing could be noted (a rewrite is asked for). */
#define PERSIST_NO_LSN UINT64_MAX
uint64_t persist_note(struct sesh *d, uint16_t ns, const char *id, size_t len);

/* What a create, update or delete calls once its change is visible: the
 * note, then in synchronous mode the wait for a commit that covers it
 * (-EIO if the database fails it), in asynchronous mode a commit of our
 * own when the lag is past its bound. */
int persist_after_write(struct sesh *d, uint16_t ns, const char *id,
			size_t len);

/* Commit what the journal holds (or, when one is due, a rewrite of the
 * whole database from the index). *rows gets the rows written. Returns 0,
 * -EBUSY (another process or thread is committing), -EIO (the database
 * failed: the journal keeps the changes for the next try). */
int persist_flush(struct sesh *d, uint64_t *rows);

/* The reaper's sweep of bucket b: sessions seen since `since_ns` get
 * their last-seen time and last event id written (touches are not
 * journaled). Collected here, written by persist_touch_flush(). */
struct persist_touches;
void persist_touch_bucket(struct sesh *d, struct persist_touches **t,
			  uint64_t b, int64_t since_ns);
int persist_touch_flush(struct sesh *d, struct persist_touches **t,
			uint64_t *rows);

/* Ask for a rewrite of the whole database at the next commit (after a
 * death: a writer may have died between its change and its note). */
void persist_resync(const struct shm_seg *s);

/* Fill the persistence fields of a health report; 1 if it is degraded
 * (with the reason written), 0 if not. */
int persist_health(struct sesh *d, sesh_health_t *h, char *why, size_t n);

/* Drop this process's connection (sesh_close). */
void persist_close(struct sesh *d);

#endif /* SESH_INDEX_PERSIST_H */
