#ifndef AC_WATCH_H
#define AC_WATCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * A connection's read deadline.  libfcgi reads the request's records (inside FCGX_Accept_r) and its
 * body with blocking reads that have no timeout; while a thread is in one of them its watch is armed,
 * and the main thread shuts the connection down once the deadline has passed, which ends the read at
 * once.  fd is a copy of the connection's descriptor, so that libfcgi closing its own (after a
 * protocol error) can never leave the main thread shutting down a number since given to another
 * connection.
 */
struct ac_watch {
	pthread_mutex_t mu;
	int fd;			/* -1 between connections */
	bool armed;		/* in a read from the web server (or closing) */
	bool records;		/* the read is of the request's records: no request has begun yet */
	int64_t armed_at;	/* ac_mono_us() when the read began */
	int64_t deadline;	/* ac_mono_us() past which an armed read is cut */
	int64_t read_deadline;	/* the request's: FCGI_READ_TIMEOUT_S after its connection came */
};

/* The calling thread's watch (NULL: none): ac_server_read_begin/end arm it around a body's read. */
extern _Thread_local struct ac_watch *ac_my_watch;

void ac_watch_init(struct ac_watch *w);
/* Watches a new connection; false if its descriptor cannot be copied (out of descriptors). */
bool ac_watch_open(struct ac_watch *w, int fd, int64_t read_deadline);
void ac_watch_arm(struct ac_watch *w, int64_t deadline, bool records);
void ac_watch_disarm(struct ac_watch *w);
void ac_watch_close(struct ac_watch *w);
/* Shuts the connection down if its armed read is past its deadline (and armed for a tick at least),
 * or, when stopping, still reading the request's records; true if it was. */
bool ac_watch_cut(struct ac_watch *w, int64_t now, int64_t tick_us, bool stop);

#endif
