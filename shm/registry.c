/*
 * registry.c - the process registry: one slot per attached process, and
 * liveness that survives kill -9 and pid reuse.
 *
 * How it works. Slot i is owned by whoever holds an OFD write lock on byte
 * SHM_LOCK_PROC + i of the segment's file. OFD locks belong to an open file
 * description, not to a pid: the kernel drops them when the last descriptor
 * of that description is closed, which happens when the owning process
 * dies, however it dies. So "is slot i's owner alive?" is "does anyone hold
 * that byte?", answered by F_OFD_GETLK through a descriptor that holds no
 * locks itself; a recycled pid cannot pass for the dead process because the
 * pid is never consulted.
 *
 * The slot's `state` says whether it was claimed: LIVE with its byte held
 * is a live process; LIVE with its byte free is a process that died
 * without closing, whose leftovers await recovery. Claiming takes the lock
 * first, so two claimers can never share a slot, and only the lock holder
 * ever writes the slot.
 *
 * A descriptor inherited across fork() shares its description, and so its
 * locks, with the parent; domain.c therefore gives each process its own
 * description (see shm_ensure_registered()).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "shm/shm.h"

struct shm_proc *shm_proc_slot(const struct shm_seg *s, uint32_t i)
{
	uint64_t off;

	if (i >= s->geom.max_procs)
		return NULL;
	off = s->geom.region[SHM_R_REGISTRY].off +
	      (uint64_t)i * sizeof(struct shm_proc);
	return shm_ptr(s, SHM_R_REGISTRY, off, sizeof(struct shm_proc),
		       SHM_CACHELINE);
}

struct shm_reader *shm_reader_slot(const struct shm_seg *s, uint32_t p,
				   uint32_t k)
{
	uint64_t off;

	if (p >= s->geom.max_procs || k >= SHM_READERS_PER_PROC)
		return NULL;
	off = s->geom.region[SHM_R_READERS].off +
	      ((uint64_t)p * SHM_READERS_PER_PROC + k) *
		      sizeof(struct shm_reader);
	return shm_ptr(s, SHM_R_READERS, off, sizeof(struct shm_reader),
		       SHM_CACHELINE);
}

int shm_lock_byte(int fd, short type, off_t at, int cmd)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl)); /* l_pid must be 0 for OFD locks */
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = at;
	fl.l_len = 1;
	if (fcntl(fd, cmd, &fl) == 0)
		return cmd == F_OFD_GETLK ? fl.l_type != F_UNLCK : 0;
	if (errno == EAGAIN || errno == EACCES)
		return -EAGAIN;
	return -errno;
}

int shm_proc_alive(int query_fd, uint32_t i)
{
	return shm_lock_byte(query_fd, F_WRLCK, SHM_LOCK_PROC + (off_t)i,
			     F_OFD_GETLK);
}

int64_t shm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct shm_pins *shm_pins_of(const struct shm_seg *s, uint32_t i)
{
	const struct shm_region *r = &s->geom.region[SHM_R_PINS];

	if (i >= s->geom.max_procs)
		return NULL;
	return shm_ptr(s, SHM_R_PINS, r->off + (uint64_t)i * s->geom.pins_stride,
		       s->geom.pins_stride, 8);
}

uint64_t shm_pins_count(const struct shm_seg *s)
{
	uint64_t n = 0;
	uint32_t i, k, used;

	for (i = 0; i < s->geom.max_procs; i++) {
		struct shm_proc *p = shm_proc_slot(s, i);
		struct shm_pins *t = shm_pins_of(s, i);

		if (p == NULL || t == NULL ||
		    atomic_load_explicit(&p->state, memory_order_acquire) !=
			    SHM_PROC_LIVE)
			continue;
		used = atomic_load_explicit(&t->used, memory_order_relaxed);
		if (used > s->geom.max_subs)
			used = s->geom.max_subs;
		for (k = 0; k < used; k++)
			n += atomic_load_explicit(&t->ent[k],
						  memory_order_relaxed) != 0;
	}
	return n;
}

_Atomic uint64_t *shm_stats_line(const struct shm_seg *s, uint32_t i)
{
	const struct shm_region *r = &s->geom.region[SHM_R_STATS];

	if (i > s->geom.max_procs)
		return NULL;
	return shm_ptr(s, SHM_R_STATS, r->off + (uint64_t)i * SHM_STATS_LINE,
		       SHM_STATS_LINE, SHM_CACHELINE);
}

void shm_stat_add(struct sesh *d, enum shm_stat k, uint64_t n)
{
	int slot = atomic_load_explicit(&d->slot, memory_order_relaxed);
	_Atomic uint64_t *line;

	if (slot < 0)
		return;
	line = shm_stats_line(&d->seg, (uint32_t)slot);
	if (line != NULL)
		atomic_fetch_add_explicit(&line[k], n, memory_order_relaxed);
}

void shm_stats_fold(const struct shm_seg *s, uint32_t i)
{
	_Atomic uint64_t *from = shm_stats_line(s, i);
	_Atomic uint64_t *to = shm_stats_line(s, s->geom.max_procs);
	unsigned k;

	if (from == NULL || to == NULL || from == to)
		return;
	/* A fold cut short by death loses what was taken and not added:
	 * counters are statistics, not data. */
	for (k = 0; k < SHM_ST_COUNT; k++)
		atomic_fetch_add_explicit(
			&to[k],
			atomic_exchange_explicit(&from[k], 0,
						 memory_order_relaxed),
			memory_order_relaxed);
}

/*
 * Empty a slot: its owner closing, or a recoverer after the owner died
 * without closing. The caller holds the slot's lock, so nobody else works
 * on it at the same time. Per-process state in the segment is released
 * here before the slot is reused: the epoch reader slots are cleared, so a
 * reader killed inside its read-side section stops holding back
 * reclamation; the pins of its subscriptions are dropped, so their rings
 * can be reused; its counters are folded into those of the gone.
 */
/* Drop every pin of slot i: its subscriptions are gone with it. */
static void pins_clear(const struct shm_seg *s, uint32_t i)
{
	struct shm_pins *t = shm_pins_of(s, i);
	uint32_t k, used;

	if (t == NULL)
		return;
	used = atomic_load_explicit(&t->used, memory_order_relaxed);
	if (used > s->geom.max_subs)
		used = s->geom.max_subs; /* scribbled: clear them all */
	for (k = 0; k < used; k++)
		atomic_store_explicit(&t->ent[k], 0, memory_order_relaxed);
	atomic_store_explicit(&t->used, 0, memory_order_relaxed);
}

static void proc_clear(const struct shm_seg *s, uint32_t i, struct shm_proc *p)
{
	uint32_t k, used;

	used = atomic_load_explicit(&p->readers_used, memory_order_relaxed);
	if (used > SHM_READERS_PER_PROC)
		used = SHM_READERS_PER_PROC; /* scribbled: clear them all */
	for (k = 0; k < used; k++) {
		struct shm_reader *r = shm_reader_slot(s, i, k);

		/* Release: a reclaimer that sees 0 sees the slot cleared
		 * by us, after the owner's death. */
		if (r != NULL)
			atomic_store_explicit(&r->epoch, 0,
					      memory_order_release);
	}
	atomic_store_explicit(&p->readers_used, 0, memory_order_relaxed);
	pins_clear(s, i);
	shm_stats_fold(s, i);
	/* Release: the cleared reader and pin slots before FREE. */
	atomic_store_explicit(&p->state, SHM_PROC_FREE, memory_order_release);
}

/* Empty the slot of a process that died: first ask for a recovery walk,
 * since once the slot is free nothing in the registry says which blocks
 * and rings the dead process held. Seq-cst: the request is visible before
 * the slot is. */
static void proc_clear_dead(const struct shm_seg *s, uint32_t i,
			    struct shm_proc *p)
{
	atomic_fetch_add(&shm_hdr(s)->recover_req, 1);
	proc_clear(s, i, p);
}

/* Fill a slot we hold the lock of. The sequence lock lets readers copy
 * the descriptive fields whole. */
static void proc_fill(struct shm_proc *p)
{
	char comm[17] = {0};
	uint64_t seq, w[2];

	(void)prctl(PR_GET_NAME, comm, 0, 0, 0);
	memcpy(w, comm, sizeof(w));

	seq = atomic_load_explicit(&p->seq, memory_order_relaxed);
	seq += (seq & 1) ? 2 : 1; /* odd: being written (a dead writer may
				   * have left it odd already) */
	atomic_store_explicit(&p->seq, seq, memory_order_relaxed);
	/* Orders the odd sequence before the field stores below, for readers
	 * that check the sequence after copying. */
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&p->pid, (int32_t)getpid(), memory_order_relaxed);
	atomic_store_explicit(&p->attached_ns, shm_now_ns(),
			      memory_order_relaxed);
	atomic_store_explicit(&p->comm[0], w[0], memory_order_relaxed);
	atomic_store_explicit(&p->comm[1], w[1], memory_order_relaxed);
	atomic_fetch_add_explicit(&p->incarnation, 1, memory_order_relaxed);
	/* Release: the fields above are visible before the even sequence. */
	atomic_store_explicit(&p->seq, seq + 1, memory_order_release);
	/* Release: a reader that sees LIVE sees the filled slot. */
	atomic_store_explicit(&p->state, SHM_PROC_LIVE, memory_order_release);
}

uint32_t shm_procs_scan(const struct shm_seg *s)
{
	uint32_t hw = atomic_load(&shm_hdr(s)->procs_hw);

	return hw < s->geom.max_procs ? hw : s->geom.max_procs;
}

/* Raise the high-water mark of claimed slots to at least `n`. Seq-cst:
 * before the slot's owner stores anything a scan looks for. */
static void procs_raise(struct shm_seg *s, uint32_t n)
{
	_Atomic uint32_t *hw = &shm_hdr(s)->procs_hw;
	uint32_t v = atomic_load(hw);

	while (v < n && !atomic_compare_exchange_weak(hw, &v, n))
		;
}

int shm_proc_claim(struct shm_seg *s, int lock_fd)
{
	uint32_t i, n = s->geom.max_procs;
	int pass, rc;

	/* Pass 0 takes only free slots, leaving a dead process's slot to
	 * whoever recovers it; pass 1 recovers one when nothing is free. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < n; i++) {
			struct shm_proc *p = shm_proc_slot(s, i);
			uint32_t st;

			if (p == NULL)
				return -EUCLEAN;
			st = atomic_load_explicit(&p->state,
						  memory_order_relaxed);
			if (pass == 0 && st != SHM_PROC_FREE)
				continue;
			rc = shm_lock_byte(lock_fd, F_WRLCK,
					   SHM_LOCK_PROC + (off_t)i,
					   F_OFD_SETLK);
			if (rc == -EAGAIN)
				continue; /* a live owner */
			if (rc < 0)
				return rc;
			/* Acquire: pairs with the release of a previous
			 * owner's last store before it unlocked. */
			st = atomic_load_explicit(&p->state,
						  memory_order_acquire);
			if (st != SHM_PROC_FREE) {
				if (pass == 0) {
					(void)shm_lock_byte(lock_fd, F_UNLCK,
							    SHM_LOCK_PROC +
								    (off_t)i,
							    F_OFD_SETLK);
					continue;
				}
				/* Dead, or a scribbled state: nobody holds
				 * the lock, so nobody owns the slot. */
				proc_clear_dead(s, i, p);
			}
			procs_raise(s, i + 1);
			proc_fill(p);
			return (int)i;
		}
	}
	return -ENOSPC;
}

int shm_proc_reap(struct shm_seg *s, int lock_fd, uint32_t self)
{
	uint32_t i;
	int n = 0, rc;

	for (i = 0; i < s->geom.max_procs; i++) {
		struct shm_proc *p = shm_proc_slot(s, i);
		off_t at = SHM_LOCK_PROC + (off_t)i;

		if (p == NULL)
			return -EUCLEAN;
		/* Our own byte: our description holds it, so locking it
		 * again would succeed, and unlocking it would drop it. */
		if (i == self)
			continue;
		if (atomic_load_explicit(&p->state, memory_order_relaxed) ==
		    SHM_PROC_FREE)
			continue;
		rc = shm_lock_byte(lock_fd, F_WRLCK, at, F_OFD_SETLK);
		if (rc == -EAGAIN)
			continue; /* alive, or another reaper has it */
		if (rc < 0)
			return rc;
		/* Acquire: see the dead owner's last writes. Re-check: a
		 * process may have claimed and released it meanwhile. */
		if (atomic_load_explicit(&p->state, memory_order_acquire) !=
		    SHM_PROC_FREE) {
			proc_clear_dead(s, i, p);
			n++;
		}
		(void)shm_lock_byte(lock_fd, F_UNLCK, at, F_OFD_SETLK);
	}
	return n;
}

void shm_proc_release(struct shm_seg *s, int lock_fd, uint32_t slot)
{
	struct shm_proc *p = shm_proc_slot(s, slot);

	/* Clear our reader slots and mark the slot FREE (release: the next
	 * owner, which acquires after taking the lock, sees it all). If we
	 * die between this and the unlock, the slot is free with nothing to
	 * recover: harmless. */
	if (p != NULL)
		proc_clear(s, slot, p);
	(void)shm_lock_byte(lock_fd, F_UNLCK, SHM_LOCK_PROC + (off_t)slot,
			    F_OFD_SETLK);
}

bool shm_proc_read(const struct shm_proc *p, sesh_proc_t *out)
{
	int tries;

	for (tries = 0; tries < 1000; tries++) {
		uint64_t s1, s2, w[2];

		/* Acquire: the fields read below are at least as new as
		 * the sequence value. */
		s1 = atomic_load_explicit(&p->seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		if (atomic_load_explicit(&p->state, memory_order_relaxed) ==
		    SHM_PROC_FREE)
			return false;
		out->pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
		out->attached_ns = atomic_load_explicit(&p->attached_ns,
							memory_order_relaxed);
		out->incarnation = atomic_load_explicit(&p->incarnation,
							memory_order_relaxed);
		w[0] = atomic_load_explicit(&p->comm[0], memory_order_relaxed);
		w[1] = atomic_load_explicit(&p->comm[1], memory_order_relaxed);
		/* Orders the field loads before the re-check of seq. */
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&p->seq, memory_order_relaxed);
		if (s1 != s2)
			continue;
		memcpy(out->comm, w, sizeof(out->comm));
		out->comm[sizeof(out->comm) - 1] = '\0';
		return true;
	}
	return false;
}
