/*
 * reap.h - the reaper's test hook. Internal to the library; sesh_reap()
 * and sesh_health() themselves are public (sesh.h).
 */
#ifndef SESH_GC_REAP_H
#define SESH_GC_REAP_H

/* Called at these points of a pass when set, so tests can kill or stop a
 * reaper there. NULL in normal use. */
enum reap_point {
	REAP_P_LEASED,	  /* lease taken, nothing done */
	REAP_P_RECOVERED, /* dead processes recovered */
	REAP_P_EXPIRED,	  /* expiry sweep done */
	REAP_P_SWEPT,	  /* memory swept, pass not counted */
	REAP_P_COUNT
};
extern void (*reap_test_hook)(enum reap_point p);

#endif /* SESH_GC_REAP_H */
