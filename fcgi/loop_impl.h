/*
 * The event loop's insides, shared by its two files: loop.c (the queues between the loop and the pool,
 * libcurl's side, the timers, the thread) and loop_wire.c (the parked FastCGI connections: their
 * queues of framed records, written as far as the connection takes them, and their ends).  Only the
 * loop's thread touches a parked request while at_loop is set; the queue in is under mu.
 */
#ifndef AC_LOOP_IMPL_H
#define AC_LOOP_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "../common/buf.h"
#include "loop.h"
#include "worker.h"

#define CLOSE_GRACE_US (60 * 1000000LL)	/* longest wait for the web server to take an answer's end */

enum kind {
	K_PARK = 1,
	K_CURL,
	K_WAKE,
};

enum state {
	P_NEW,		/* in the queue to the loop */
	P_RUNNING,	/* its transfer is on the multi handle */
	P_WAITING,	/* between two attempts */
	P_AWAY,		/* a pool thread finishes it */
	P_CLOSING,	/* answered: what is queued is written out, then the connection ends */
	P_DONE,		/* ended: freed at the end of the round of events */
};

struct ac_park {
	int kind;		/* K_PARK: first, as epoll's data */
	int fd;			/* -1 once closed */
	int request_id;
	bool keep;		/* the web server asked to keep the connection */
	bool gone;		/* the client left, or was dropped */
	bool abort;		/* the answer was cut short: end the connection, not the response */
	bool committed;		/* the head went out before parking (a stream) */
	bool in_epoll;
	bool want_out;		/* EPOLLOUT is asked for */
	bool at_loop;		/* the loop owns it (ac_park_write may write at once) */
	bool ended;		/* the end records are queued */
	enum state state;
	struct ac_buf wire;	/* framed records not yet written, from wire_off */
	size_t wire_off;
	struct ac_provider *p;
	CURL *easy;
	int64_t retry_at;	/* P_WAITING: when the next attempt starts */
	int64_t close_by;	/* P_CLOSING: a web server that takes no more by then is cut off */
	const struct ac_park_ops *ops;
	void *arg;
	struct ac_park *prev, *next;	/* the loop's list */
	struct ac_park *qnext;		/* the queue to the loop, or the loop's done list */

	/* The request, for its answer and its log line. */
	enum ac_method method;
	char method_name[16];
	char *origin;
	char raw_path[512];
	size_t raw_path_len;
	int64_t started;
	struct ac_logline log;
	struct ac_after after;
};

struct curl_sock {
	int kind;		/* K_CURL */
	curl_socket_t fd;	/* CURL_SOCKET_BAD once curl has let it go */
	struct curl_sock *dead_next;
};

struct ac_evloop {
	const struct ac_config *cfg;
	pthread_t thread;
	bool running;		/* set once at start, before any thread parks */
	int max_parked;
	atomic_int parked;	/* alive: from ac_park until freed */
	atomic_int stop;	/* ac_loop_stop: leave once nothing is parked */
	_Atomic int64_t drain_at;	/* 0, or when to cancel what still runs */

	/* The queue in (any thread); the rest is the loop thread's alone. */
	pthread_mutex_t mu;
	struct ac_park *qhead, *qtail;
	int wake_fd;
	int wake_kind;

	int ep;
	CURLM *multi;
	int64_t curl_due;	/* ac_mono_us() of curl's timer, -1: none */
	struct ac_park *list;
	int64_t next_tick;
	/* Done with during this round of events, freed once it is over: a later event of the same
	 * round may still name them. */
	struct ac_park *done;
	struct curl_sock *dead;
};


extern struct ac_evloop ac_evloop;

/* loop_wire.c: the parked connection. */
void ac_park_epoll_set(struct ac_park *k);
void ac_park_epoll_forget(struct ac_park *k);
void ac_park_close_fd(struct ac_park *k);
/* The client left or is dropped: true when the request went to the pool (not to be touched). */
bool ac_park_gone(struct ac_park *k, bool in_callback);
void ac_park_close(struct ac_park *k);
void ac_park_flush(struct ac_park *k);
void ac_park_closing(struct ac_park *k);
void ac_park_io(struct ac_park *k, uint32_t events);

/* loop.c: the loop's list, the multi handle, the hand-off to the pool. */
void ac_loop_list_add(struct ac_park *k);
void ac_loop_list_remove(struct ac_park *k);
void ac_loop_transfer_remove(struct ac_park *k);
void ac_loop_to_pool(struct ac_park *k);

#endif
