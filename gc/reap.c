/*
 * reap.c - the reaper: one bounded housekeeping pass over a domain
 * (sesh_reap), and the health report that says whether one runs
 * (sesh_health).
 *
 * How it works. A pass holds a lease: an OFD lock on byte SHM_LOCK_REAPER
 * of the segment's file, which the kernel drops when the holder dies, so
 * a reaper killed mid-pass never keeps the next one out. What a pass has
 * done is in the segment, never in the reaper: its cursors and marks live
 * in the header's reaper line, and every step is one the library already
 * makes safe against a death at any instruction (a delete, a recovery, a
 * free of a retired word). The next pass, in any process, starts from the
 * stored cursors, so nothing is skipped and redoing a step is harmless.
 *
 * The steps:
 *
 *  1. Dead processes. Their registry slots are emptied (reader slots,
 *     pins and counters go with them). Emptying a dead slot first bumps
 *     the header's recover_req; the pass then walks the domain once
 *     (idx_recover) and stores the value it read in recover_done. So a
 *     death seen by anyone (a process that reused the slot, sesh_recover,
 *     an earlier pass killed half-way) is walked for at least once after.
 *  2. Expiry. The next REAP_BUDGET buckets from the stored cursor: a
 *     bucket is looked at under the read side and locked only if it holds
 *     a session idle past its TTL, which is then removed as a delete
 *     would (its stream closed, its subscribers woken).
 *  3. Memory. The epoch advances (in the sweeps' gc_oldest_reader); the
 *     next REAP_BUDGET block and ring state words are swept for retired
 *     ones past their grace period.
 *  4. Marks for health: every second or so the epoch is advanced and the
 *     value before is kept with the time, and the previous mark moves to
 *     `stuck_*`. A reader that still announces an epoch at or below
 *     stuck_epoch entered its read-side section before stuck_ns.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "gc/epoch.h"
#include "gc/reap.h"
#include "index/index.h"
#include "index/persist.h"
#include "ring/ring.h"

/* Buckets, block words and ring words a pass looks at in each sweep. At
 * a million sessions a pass takes some tens of milliseconds. */
#define REAP_BUDGET 262144u

/* Buckets the expiry sweep looks at in one read-side section. */
#define REAP_BATCH 256u

/* How far apart the epoch marks of stuck-reader detection are. */
#define MARK_NS 1000000000

/* Share of a capacity in use from which health says degraded. */
#define FULL_PERCENT 90u

void (*reap_test_hook)(enum reap_point p);

static inline void point(enum reap_point p)
{
	if (reap_test_hook != NULL)
		reap_test_hook(p);
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct shm_reaper *reaper_of(const struct shm_seg *s)
{
	return &shm_hdr(s)->reaper;
}

/* Take the lease: our threads apart by the handle's mutex, processes (and
 * other handles of ours, each with a description of its own) by the
 * byte. Returns 0, -EBUSY or -EIO. */
static int lease_take(struct sesh *d)
{
	int rc;

	if (pthread_mutex_trylock(&d->reap_lease) != 0)
		return -EBUSY;
	rc = shm_lock_byte(d->lock_fd, F_WRLCK, SHM_LOCK_REAPER, F_OFD_SETLK);
	if (rc == 0)
		return 0;
	pthread_mutex_unlock(&d->reap_lease);
	return rc == -EAGAIN ? -EBUSY : -EIO;
}

static void lease_drop(struct sesh *d)
{
	(void)shm_lock_byte(d->lock_fd, F_UNLCK, SHM_LOCK_REAPER, F_OFD_SETLK);
	pthread_mutex_unlock(&d->reap_lease);
}

/* Whether the reaper on record is not `owner` and no longer counts: none,
 * its process gone, or its last pass older than SESH_REAPER_STALE_S. */
static bool reaper_gone(const struct sesh *d, uint64_t owner, int64_t now)
{
	struct shm_reaper *rp = reaper_of(&d->seg);
	uint64_t cur = atomic_load_explicit(&rp->owner, memory_order_relaxed);
	int64_t last = atomic_load_explicit(&rp->last_ns, memory_order_relaxed);

	return cur == owner || cur == 0 || shm_owner_dead(d, cur, NULL) ||
	       now - last > (int64_t)SESH_REAPER_STALE_S * 1000000000;
}

/* Step 1: dead processes, and the walk their deaths ask for: REAP_BUDGET
 * blocks or rings of it a pass, from where the last pass left it. A
 * death during the walk asks for another, done after this one. */
static int reap_dead(struct sesh *d, sesh_reap_report_t *r)
{
	struct shm_header *h = shm_hdr(&d->seg);
	struct shm_reaper *rp = reaper_of(&d->seg);
	struct idx_recover_walk w;
	struct idx_recovery rec = {0};
	uint64_t req, target;
	uint32_t phase;
	int n, rc;

	n = shm_recover_procs(d);
	if (n < 0)
		return n;
	r->processes_recovered = (uint32_t)n;
	/* Seq-cst: pairs with the bump made before a dead slot is emptied,
	 * so a slot emptied before this load is covered by the walk. */
	req = atomic_load(&h->recover_req);
	target = atomic_load_explicit(&rp->rec_target, memory_order_relaxed);
	if (target == 0 || target > req ||
	    target <= atomic_load(&h->recover_done)) {
		if (req == atomic_load(&h->recover_done))
			return 0;
		/* A new walk. A writer may have died between its change
		 * and its note: the database is rewritten too. */
		target = req;
		atomic_store_explicit(&rp->rec_block, 0, memory_order_relaxed);
		atomic_store_explicit(&rp->rec_ring, 0, memory_order_relaxed);
		atomic_store_explicit(&rp->rec_phase, 0, memory_order_relaxed);
		atomic_store_explicit(&rp->rec_target, target,
				      memory_order_relaxed);
		persist_resync(&d->seg);
	}
	w.block = atomic_load_explicit(&rp->rec_block, memory_order_relaxed);
	w.ring = atomic_load_explicit(&rp->rec_ring, memory_order_relaxed);
	w.phase = atomic_load_explicit(&rp->rec_phase, memory_order_relaxed);
	if (w.phase > 2)
		w.phase = 0; /* scribbled: start over */
	r->recovery_walk = 1;
	/* At most REAP_BUDGET blocks, then REAP_BUDGET rings. */
	phase = w.phase;
	rc = idx_recover_step(d, &w, REAP_BUDGET, &rec);
	if (rc == 0 && phase == 0 && w.phase == 1)
		rc = idx_recover_step(d, &w, REAP_BUDGET, &rec);
	atomic_store_explicit(&rp->rec_block, w.block, memory_order_relaxed);
	atomic_store_explicit(&rp->rec_ring, w.ring, memory_order_relaxed);
	atomic_store_explicit(&rp->rec_phase, w.phase, memory_order_relaxed);
	r->holes_unblocked += (size_t)rec.holes;
	if (rc < 0)
		return rc;
	if (rc == 1) {
		idx_recover_done(&d->seg, target);
		atomic_store_explicit(&rp->rec_target, 0, memory_order_relaxed);
		r->recovery_done = 1;
	}
	return 0;
}

/* Step 2: the next share of the index, for sessions past their TTL; with
 * write-through, the sessions seen since the previous round are noted
 * for their last-seen times in *t. */
static int reap_expired(struct sesh *d, sesh_reap_report_t *r,
			struct persist_touches **t)
{
	struct shm_reaper *rp = reaper_of(&d->seg);
	uint64_t nb = d->seg.geom.nbuckets, b, i;
	int64_t now = shm_now_ns(), since;
	uint64_t next = 0;
	int k = 0;

	if (atomic_load_explicit(&rp->round_ns, memory_order_relaxed) == 0)
		atomic_store_explicit(&rp->round_ns, now, memory_order_relaxed);
	since = atomic_load_explicit(&rp->prev_round_ns, memory_order_relaxed);
	b = atomic_load_explicit(&rp->bucket, memory_order_relaxed);
	if (b >= nb)
		b = 0; /* scribbled: start over */
	for (i = 0; i < REAP_BUDGET && i < nb; i++) {
		/* Most buckets hold nothing expired: find the next that
		 * does, a batch of buckets per read-side section. */
		if (b >= next) {
			int64_t f = idx_expired_from(d, b, REAP_BATCH, now);

			if (f < 0) {
				k = (int)f;
				break;
			}
			next = (uint64_t)f;
		}
		if (b == next) {
			do {
				k = idx_expire_bucket(d, b, now);
				if (k > 0)
					r->sessions_expired += (size_t)k;
			} while (k == IDX_EXPIRE_MAX);
			if (k < 0)
				break;
		}
		persist_touch_bucket(d, t, b, since);
		if (++b == nb) {
			b = next = 0;
			r->sweep_wrapped = 1;
			atomic_store_explicit(
				&rp->prev_round_ns,
				atomic_load_explicit(&rp->round_ns,
						     memory_order_relaxed),
				memory_order_relaxed);
			atomic_store_explicit(&rp->round_ns, now,
					      memory_order_relaxed);
		}
	}
	r->buckets_scanned = (size_t)i;
	atomic_store_explicit(&rp->bucket, b, memory_order_relaxed);
	return k < 0 ? k : 0;
}

/* Step 3: what is past its grace period. */
static void reap_memory(struct sesh *d, sesh_reap_report_t *r)
{
	struct shm_reaper *rp = reaper_of(&d->seg);
	uint64_t from, next;

	r->blocks_freed += (size_t)gc_reclaim(&d->seg, &d->alloc);
	from = atomic_load_explicit(&rp->block, memory_order_relaxed);
	r->blocks_freed +=
		(size_t)gc_sweep_range(&d->seg, from, REAP_BUDGET, &next);
	atomic_store_explicit(&rp->block, next, memory_order_relaxed);
	from = atomic_load_explicit(&rp->ring, memory_order_relaxed);
	r->rings_freed += (size_t)ring_sweep_range(d, from, REAP_BUDGET, &next);
	atomic_store_explicit(&rp->ring, next, memory_order_relaxed);
}

/* Step 4: move the epoch marks on, at most once a second. */
static void reap_marks(const struct shm_seg *s, int64_t now)
{
	struct shm_reaper *rp = reaper_of(s);
	int64_t mark = atomic_load_explicit(&rp->mark_ns, memory_order_relaxed);
	uint64_t e;

	if (mark != 0 && now - mark < MARK_NS)
		return;
	atomic_store_explicit(
		&rp->stuck_epoch,
		atomic_load_explicit(&rp->mark_epoch, memory_order_relaxed),
		memory_order_relaxed);
	atomic_store_explicit(&rp->stuck_ns, mark, memory_order_relaxed);
	/* Readers that enter from now on announce more than e. */
	e = atomic_fetch_add(&shm_hdr(s)->epoch, 1);
	atomic_store_explicit(&rp->mark_epoch, e, memory_order_relaxed);
	atomic_store_explicit(&rp->mark_ns, now, memory_order_relaxed);
}

/* Write through what the pass found, then what writers noted. Waits for
 * a committer of another process a little, not longer. */
static void reap_persist(struct sesh *d, sesh_reap_report_t *r,
			 struct persist_touches **t)
{
	uint64_t rows = 0;
	int rc, tries;

	if (!persist_on(&d->seg))
		return;
	rc = persist_touch_flush(d, t, &rows);
	r->persist_rows += (size_t)rows;
	for (tries = 0; rc >= 0 || rc == -EBUSY; tries++) {
		rc = persist_flush(d, &rows);
		r->persist_rows += (size_t)rows;
		if (rc != -EBUSY || tries == 10)
			break;
		struct timespec ts = {0, 1000000};

		nanosleep(&ts, NULL);
	}
	if (rc < 0 && rc != -EBUSY)
		r->persist_error = -EIO;
}

int sesh_reap(sesh_t *d, sesh_reap_report_t *out)
{
	struct persist_touches *touches = NULL;
	sesh_reap_report_t r;
	struct shm_reaper *rp;
	struct shm_proc *p;
	uint64_t owner;
	int64_t t0;
	int rc, slot;

	if (d == NULL)
		return -EINVAL;
	rc = shm_owner_word(d, &owner);
	if (rc < 0)
		return rc;
	rc = lease_take(d);
	if (rc < 0)
		return rc;
	memset(&r, 0, sizeof(r));
	r.started_ns = shm_now_ns();
	t0 = mono_ns();
	rp = reaper_of(&d->seg);
	slot = atomic_load_explicit(&d->slot, memory_order_relaxed);
	p = shm_proc_slot(&d->seg, (uint32_t)slot);
	/* Who reaps, before the work, so health sees a first long pass. A
	 * pass run now and then by another process (`sesh reap` by hand)
	 * does not take the name from a reaper that is alive and recent. */
	if (reaper_gone(d, owner, r.started_ns)) {
		atomic_store_explicit(&rp->owner, owner, memory_order_relaxed);
		atomic_store_explicit(
			&rp->pid,
			p ? atomic_load_explicit(&p->pid, memory_order_relaxed)
			  : 0,
			memory_order_relaxed);
	}

	point(REAP_P_LEASED);
	rc = reap_dead(d, &r);
	point(REAP_P_RECOVERED);
	if (rc == 0)
		rc = reap_expired(d, &r, &touches);
	point(REAP_P_EXPIRED);
	if (rc == 0) {
		reap_memory(d, &r);
		reap_persist(d, &r, &touches);
		point(REAP_P_SWEPT);
		reap_marks(&d->seg, shm_now_ns());
		r.pass = atomic_fetch_add_explicit(&rp->passes, 1,
						   memory_order_relaxed) +
			 1;
		atomic_store_explicit(&rp->last_ns, shm_now_ns(),
				      memory_order_relaxed);
		shm_stat_add(d, SHM_ST_REAPS, 1);
	}
	if (touches != NULL) { /* the pass failed before writing them */
		uint64_t rows;

		(void)persist_touch_flush(d, &touches, &rows);
	}
	r.duration_ns = (uint64_t)(mono_ns() - t0);
	lease_drop(d);
	if (rc < 0)
		return rc;
	if (out != NULL)
		*out = r;
	return 0;
}

/* --- health ------------------------------------------------------------ */

/* Reader slots, of processes still registered, inside a section entered
 * at or below epoch `e` (0: none can be). */
static uint32_t count_stuck(const struct shm_seg *s, uint64_t e)
{
	uint32_t i, k, n = 0;

	if (e == 0)
		return 0;
	for (i = 0; i < s->geom.max_procs; i++) {
		struct shm_proc *p = shm_proc_slot(s, i);
		uint32_t used;

		if (p == NULL)
			break;
		if (atomic_load_explicit(&p->state, memory_order_relaxed) ==
		    SHM_PROC_FREE)
			continue;
		used = atomic_load_explicit(&p->readers_used,
					    memory_order_relaxed);
		if (used > SHM_READERS_PER_PROC)
			used = SHM_READERS_PER_PROC;
		for (k = 0; k < used; k++) {
			struct shm_reader *r = shm_reader_slot(s, i, k);
			uint64_t re =
				r ? atomic_load_explicit(&r->epoch,
							 memory_order_relaxed)
				  : 0;

			if (re != 0 && re <= e)
				n++;
		}
	}
	return n;
}

static void count_retired(_Atomic uint64_t *w, uint64_t v, unsigned c,
			  uint64_t k, void *arg)
{
	(void)w;
	(void)c;
	(void)k;
	if (SHM_BLK_STATE(v) == SHM_BLK_RETIRED)
		++*(uint64_t *)arg;
}

static bool over(uint64_t used, uint64_t cap)
{
	return cap > 0 && used * 100 >= cap * FULL_PERCENT;
}

static void degraded(sesh_health_t *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void degraded(sesh_health_t *h, const char *fmt, ...)
{
	va_list ap;

	if (h->status >= SESH_DEGRADED)
		return;
	h->status = SESH_DEGRADED;
	va_start(ap, fmt);
	vsnprintf(h->reason, sizeof(h->reason), fmt, ap);
	va_end(ap);
}

int sesh_health(sesh_t *d, sesh_health_t *h)
{
	const struct shm_seg *s;
	struct shm_reaper *rp;
	sesh_info_t info;
	char why[sizeof(h->reason)];
	uint64_t owner, retired = 0;
	int64_t now, last;
	int rc;

	if (d == NULL || h == NULL)
		return -EINVAL;
	rc = sesh_info(d, &info);
	if (rc < 0)
		return rc;
	s = &d->seg;
	rp = reaper_of(s);
	memset(h, 0, sizeof(*h));
	h->sessions = info.sessions;
	h->max_sessions = info.max_sessions;
	h->processes_alive = info.processes_alive;
	h->processes_dead = info.processes_dead;
	h->max_processes = info.max_processes;
	h->streams_open = info.streams_open;
	h->segment_bytes = info.segment_bytes;
	h->committed_bytes = info.committed_bytes;

	now = shm_now_ns();
	owner = atomic_load_explicit(&rp->owner, memory_order_relaxed);
	last = atomic_load_explicit(&rp->last_ns, memory_order_relaxed);
	h->reaper_passes =
		atomic_load_explicit(&rp->passes, memory_order_relaxed);
	h->reaper_last_ns = last;
	h->reaper_pid =
		owner ? atomic_load_explicit(&rp->pid, memory_order_relaxed)
		      : 0;
	h->reaper_alive =
		owner != 0 && !shm_owner_dead(d, owner, NULL) &&
		(last == 0 ||
		 now - last <= (int64_t)SESH_REAPER_STALE_S * 1000000000);
	h->stuck_readers =
		count_stuck(s, atomic_load_explicit(&rp->stuck_epoch,
						    memory_order_relaxed));
	shm_blk_each(s, -1, count_retired, &retired);
	h->retired_blocks = retired;

	if (!idx_valid(s)) {
		h->status = SESH_DOWN;
		snprintf(h->reason, sizeof(h->reason),
			 "the session index failed validation");
		return 0;
	}
	if (h->processes_dead > 0)
		degraded(h, "%u dead process%s awaiting recovery",
			 h->processes_dead, h->processes_dead == 1 ? "" : "es");
	if (!h->reaper_alive) {
		if (owner == 0)
			degraded(h, "no reaper has ever run");
		else if (shm_owner_dead(d, owner, NULL))
			degraded(h,
				 "reaper absent: the process of its last "
				 "pass (pid %d) is gone",
				 (int)h->reaper_pid);
		else
			degraded(h, "reaper stalled: no pass for over %d s",
				 SESH_REAPER_STALE_S);
	}
	if (h->stuck_readers > 0) {
		/* Inside since before the older mark at least. */
		int64_t since = atomic_load_explicit(&rp->stuck_ns,
						     memory_order_relaxed);
		int64_t secs = since > 0 && now > since
				       ? (now - since) / 1000000000
				       : 1;

		degraded(h,
			 "%u reader%s stuck in a read-side section for over "
			 "%lld s",
			 h->stuck_readers, h->stuck_readers == 1 ? "" : "s",
			 (long long)(secs > 0 ? secs : 1));
	}
	if (persist_health(d, h, why, sizeof(why)))
		degraded(h, "%s", why);
	if (over(h->sessions, h->max_sessions))
		degraded(h, "sessions: %zu of %zu in use", h->sessions,
			 h->max_sessions);
	if (over(h->processes_alive + h->processes_dead, h->max_processes))
		degraded(h, "process registry: %u of %u slots in use",
			 h->processes_alive + h->processes_dead,
			 h->max_processes);
	return 0;
}
