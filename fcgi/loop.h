/*
 * The event loop: one thread per worker process that owns the chats waiting on the model.
 *
 * A thread of the pool reads a POST /chat (or regenerate, edit), begins the send and builds its
 * context as before, then parks it here: the request's FastCGI connection and its provider call
 * (a transfer on the loop's curl multi handle) belong to the loop from then on, and the thread goes
 * back to accept.  A parked chat costs its connection's descriptor, its share of the provider's
 * connections, and a few kilobytes; no thread.
 *
 * The loop never blocks.  It writes to the web server only when the connection is writable, from
 * a bounded queue (a client that stops reading past CLIENT_QUEUE_BYTES is dropped, its reply stored
 * incomplete); heartbeats and the waits between retries are its timers; it frames what it writes
 * itself (record.h: libfcgi's writes block).  When the call is over, storing the reply is handed
 * to a pool thread (ac_server_post: the database is never touched here), which answers into the
 * queue and gives the request back to be written out and closed.  Exactly one thread owns a parked
 * request at a time; it changes hands through one queue each way.
 *
 *   pool thread:  begin, context, ac_park            ──> loop: transfer, deltas, heartbeats, retries
 *   pool thread:  ops->finish (store, answer), log   <──      (the call is over, or the client left)
 *                                                     ──> loop: write out, end, close
 *   pool thread:  the after-response jobs, if any    <──
 */
#ifndef AC_LOOP_H
#define AC_LOOP_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/config.h"
#include "../common/provider.h"
#include "worker.h"

/* What a parked request's owner does with it, on a pool thread. */
struct ac_park_ops {
	/* The call is over (or cancelled: the client left, the process is stopping): store what came
	 * and answer it through c (c->park is set, so the answer is queued for the loop). */
	void (*finish)(struct ac_ctx *c, void *arg);
	/* After finish: frees arg (and the provider call it holds). */
	void (*release)(void *arg);
};

/* Starts the process's loop; max_parked bounds the requests it holds (descriptors). */
enum ac_err ac_loop_start(const struct ac_config *cfg, int max_parked);
/* The process is stopping: parked calls still running at deadline (ac_mono_us()) are cancelled and
 * finished, so that none is left unstored. */
void ac_loop_drain(int64_t deadline);
/* Parked requests not yet done with (for the pool, which must finish them before it exits). */
int ac_loop_parked(void);
/* Once nothing is parked: stops the loop's thread and frees it. */
void ac_loop_stop(void);

/*
 * Parks the request of c (a pool thread, FastCGI): p is its provider call, begun.  True: the loop
 * owns the connection and the call now (*out is set first: the hooks may run at once, on the loop),
 * c->parked is set, and ops->finish will run later on some pool thread.  False: the loop is not
 * running, is stopping or is full; nothing changed, and the caller makes the call itself.
 */
bool ac_park(struct ac_ctx *c, struct ac_provider *p, const struct ac_park_ops *ops, void *arg,
    struct ac_park **out);

/* Queues bytes of the response (its CGI-style stdout) on the parked request, on its owning thread;
 * AC_EIO when the client has gone, or was dropped past the queue's bound. */
enum ac_err ac_park_write(struct ac_park *k, const char *data, size_t len);
/* The same for one server-sent event (event "": an unnamed one, only "data: ..."), or a comment
 * (event NULL: ": text"), written as one record. */
enum ac_err ac_park_sse(struct ac_park *k, const char *event, const char *data, size_t len);

#endif
