/*
 * The event loop (loop.h): epoll over the parked FastCGI connections and libcurl's sockets
 * (curl_multi_socket_action), an eventfd for the queue of requests handed in, and one tick that
 * walks the parked requests for their timers (heartbeats, retries, the stop deadline).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "../common/log.h"
#include "../common/util.h"
#include "loop.h"
#include "record.h"
#include "server.h"

#define TICK_MS 100		/* the timers' resolution */
#define EVENTS_MAX 256		/* epoll events taken at once */
#define DISCARD_MAX (64 * 1024)	/* bytes read (and dropped) from a parked connection per event */
#define WIRE_KEEP (16 * 1024)	/* a parked request's queue shrinks back to this once written */
#define MAXCONNECTS 512		/* idle provider connections kept for reuse */
#define STOP_MARGIN_US (5 * 1000000LL)	/* cancelled this long before the stop deadline: time to store */
#define LOOP_STACK (1024 * 1024)
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

static struct {
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
} loop = { .mu = PTHREAD_MUTEX_INITIALIZER, .wake_fd = -1, .ep = -1, .curl_due = -1 };

static void to_pool(struct ac_park *k);
static void flush_wire(struct ac_park *k);
static bool park_gone(struct ac_park *k, bool in_callback);

/* ---- the queue in ---- */

static void
enqueue(struct ac_park *k)
{
	uint64_t one = 1;

	k->qnext = NULL;
	pthread_mutex_lock(&loop.mu);
	if (loop.qtail != NULL)
		loop.qtail->qnext = k;
	else
		loop.qhead = k;
	loop.qtail = k;
	pthread_mutex_unlock(&loop.mu);
	while (write(loop.wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static struct ac_park *
dequeue_all(void)
{
	struct ac_park *k;
	uint64_t n;

	while (read(loop.wake_fd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&loop.mu);
	k = loop.qhead;
	loop.qhead = loop.qtail = NULL;
	pthread_mutex_unlock(&loop.mu);
	return k;
}

/* ---- the parked requests ---- */

static void
list_add(struct ac_park *k)
{
	k->prev = NULL;
	k->next = loop.list;
	if (loop.list != NULL)
		loop.list->prev = k;
	loop.list = k;
}

static void
list_remove(struct ac_park *k)
{
	if (k->prev != NULL)
		k->prev->next = k->next;
	else if (loop.list == k)
		loop.list = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	k->prev = k->next = NULL;
}

static void
park_free_now(struct ac_park *k)
{
	ac_buf_free(&k->wire);
	free(k->origin);
	free(k);
	atomic_fetch_sub(&loop.parked, 1);
}

static void
epoll_set(struct ac_park *k)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (k->want_out ? EPOLLOUT : 0), .data.ptr = k };

	if (k->fd < 0)
		return;
	if (epoll_ctl(loop.ep, k->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, k->fd, &ev) == 0)
		k->in_epoll = true;
	else
		ac_log(AC_LOG_ERROR, "event loop: epoll_ctl: %s", strerror(errno));
}

static void
epoll_forget(struct ac_park *k)
{
	if (k->in_epoll && k->fd >= 0)
		(void)epoll_ctl(loop.ep, EPOLL_CTL_DEL, k->fd, NULL);
	k->in_epoll = false;
	k->want_out = false;
}

static void
close_fd(struct ac_park *k)
{
	if (k->fd < 0)
		return;
	epoll_forget(k);
	close(k->fd);
	k->fd = -1;
}

/* The transfer off the multi handle (not from inside one of curl's callbacks). */
static void
transfer_remove(struct ac_park *k)
{
	if (k->easy != NULL) {
		curl_multi_remove_handle(loop.multi, k->easy);
		k->easy = NULL;
	}
}

/*
 * The client left (the connection closed, a write failed) or is dropped (past the queue's bound).
 * Its call is cancelled, and what came is stored by the finish.  From a hook inside curl's
 * callbacks only the connection is closed: the hook's error then stops the transfer itself.
 */
static bool
park_gone(struct ac_park *k, bool in_callback)
{
	if (!k->gone) {
		k->gone = true;
		close_fd(k);
	}
	if (in_callback)
		return false;
	if (k->state == P_RUNNING || k->state == P_WAITING) {
		transfer_remove(k);
		ac_provider_cancel(k->p, "the client went away");
		to_pool(k);
		return true;	/* the pool's now: not to be touched here */
	}
	return false;
}

/* The next attempt of the call on the multi handle; or, when its time is up, the finish. */
static void
attempt(struct ac_park *k)
{
	CURL *easy = ac_provider_attempt(k->p);

	if (easy == NULL) {
		to_pool(k);
		return;
	}
	curl_easy_setopt(easy, CURLOPT_PRIVATE, k);
	if (curl_multi_add_handle(loop.multi, easy) != CURLM_OK) {
		ac_provider_cancel(k->p, "the provider call could not be started");
		to_pool(k);
		return;
	}
	k->easy = easy;
	k->state = P_RUNNING;
}

/* A request handed in by a pool thread: watched, and its call started. */
static void
adopt(struct ac_park *k)
{
	k->at_loop = true;
	list_add(k);
	epoll_set(k);
	flush_wire(k);
	if (k->gone) {
		ac_provider_cancel(k->p, "the client went away");
		to_pool(k);
		return;
	}
	attempt(k);
}

/* The job a pool thread runs: the park's owner stores and answers, the answer queued here. */
static void
finish_job(struct ac_ctx *c, void *arg)
{
	struct ac_park *k = arg;

	ac_log_set_request_id(k->log.request_id);
	memset(&c->req, 0, sizeof(c->req));
	c->req.method = k->method;
	c->req.method_name = k->method_name;
	c->req.origin = k->origin;
	c->req.raw_path.ptr = k->raw_path;
	c->req.raw_path.len = k->raw_path_len;
	c->log = k->log;
	c->after.count = 0;
	c->park = k;
	ac_resp_resume(c, k->committed, k->gone);
	k->ops->finish(c, k->arg);
	ac_resp_finish(c);
	k->abort = c->resp.abort;
	if (c->resp.failed)
		k->gone = true;
	ac_log_request(c, k->started);
	/* Jobs for after the answer (deferred stores, and whatever else a send asked for) go with it. */
	for (int i = 0; i < c->after.count && k->after.count < AC_AFTER_MAX; i++)
		k->after.job[k->after.count++] = c->after.job[i];
	c->after.count = 0;
	c->park = NULL;
	memset(&c->req, 0, sizeof(c->req));
	k->ops->release(k->arg);
	k->arg = NULL;
	k->p = NULL;
	k->state = P_CLOSING;
	ac_log_set_request_id(NULL);
	enqueue(k);
}

static void
after_job(struct ac_ctx *c, void *arg)
{
	struct ac_park *k = arg;

	c->after = k->after;
	ac_log_set_request_id(k->log.request_id);
	ac_run_after(c);
	ac_log_set_request_id(NULL);
	park_free_now(k);
}

static void
to_pool(struct ac_park *k)
{
	epoll_forget(k);
	k->at_loop = false;
	k->state = P_AWAY;
	list_remove(k);
	if (!ac_server_post(finish_job, k)) {
		/* Out of memory for a job: the finish runs on no thread, the send stays locked until
		 * its deadline (as when a worker dies).  Not expected; said loudly. */
		ac_log(AC_LOG_ERROR, "event loop: cannot hand a finished chat to the pool (out of memory)");
	}
}

/* The connection's end: kept for the web server's next request, or closed. */
static void
park_close(struct ac_park *k)
{
	list_remove(k);
	if (k->fd >= 0) {
		if (k->abort) {
			/* A record nginx cannot parse: it drops the client's connection instead of ending the
			 * response as if it were whole (server.c's abort_connection; best effort here). */
			static const unsigned char bad_record[8] = { 0 };

			if (write(k->fd, bad_record, sizeof(bad_record)) != (ssize_t)sizeof(bad_record))
				ac_log(AC_LOG_DEBUG, "a cut-short answer's end did not fit its connection");
			(void)shutdown(k->fd, SHUT_RDWR);
			close_fd(k);
		} else if (k->keep && atomic_load(&loop.drain_at) == 0) {
			int fd = k->fd;

			epoll_forget(k);
			k->fd = -1;
			(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
			ac_server_keep(fd);
		} else {
			close_fd(k);
		}
	}
	k->state = P_DONE;
	k->at_loop = false;
	k->qnext = loop.done;
	loop.done = k;
}

/* The end of a round of events: what was done with is let go. */
static void
bury(void)
{
	while (loop.done != NULL) {
		struct ac_park *k = loop.done;

		loop.done = k->qnext;
		if (k->after.count > 0 && ac_server_post_after(after_job, k))
			continue;
		park_free_now(k);
	}
	while (loop.dead != NULL) {
		struct curl_sock *cs = loop.dead;

		loop.dead = cs->dead_next;
		free(cs);
	}
}

/* Writes what is queued, as far as the connection takes it. */
static void
flush_wire(struct ac_park *k)
{
	if (k->fd < 0)
		return;
	while (k->wire_off < k->wire.len) {
		ssize_t n = write(k->fd, k->wire.data + k->wire_off, k->wire.len - k->wire_off);

		if (n > 0) {
			k->wire_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!k->want_out && k->in_epoll) {
				k->want_out = true;
				epoll_set(k);
			}
			return;
		}
		park_gone(k, true);	/* EPIPE, ECONNRESET: the web server closed it */
		return;
	}
	k->wire_off = 0;
	ac_buf_reset(&k->wire, WIRE_KEEP);
	if (k->want_out) {
		k->want_out = false;
		epoll_set(k);
	}
}

/* Room for n more queued bytes: the queue's bound, past which a client that does not read is dropped. */
static bool
wire_room(struct ac_park *k, size_t n)
{
	if (k->gone)
		return false;
	if (k->wire_off > 0 && k->wire_off >= k->wire.len / 2) {
		memmove(k->wire.data, k->wire.data + k->wire_off, k->wire.len - k->wire_off);
		k->wire.len -= k->wire_off;
		k->wire_off = 0;
	}
	if (k->wire.len - k->wire_off + n > loop.cfg->client_queue_bytes) {
		ac_log(AC_LOG_WARN, "a client that stopped reading was dropped: %zu bytes waited for it "
		    "(CLIENT_QUEUE_BYTES)", k->wire.len - k->wire_off);
		k->gone = true;
		if (k->at_loop)
			close_fd(k);
		return false;
	}
	return true;
}

static enum ac_err
queued(struct ac_park *k)
{
	if (ac_buf_err(&k->wire) != AC_OK) {
		k->gone = true;
		return AC_EIO;
	}
	if (k->at_loop)
		flush_wire(k);
	return k->gone ? AC_EIO : AC_OK;
}

enum ac_err
ac_park_write(struct ac_park *k, const char *data, size_t len)
{
	if (len == 0)
		return k->gone ? AC_EIO : AC_OK;
	if (!wire_room(k, ac_fcgi_record_size(len) + AC_FCGI_HEADER_LEN * (len / AC_FCGI_CONTENT_MAX)))
		return AC_EIO;
	ac_fcgi_stdout(&k->wire, k->request_id, data, len);
	return queued(k);
}

enum ac_err
ac_park_sse(struct ac_park *k, const char *event, const char *data, size_t len)
{
	struct ac_buf *w = &k->wire;
	/* ": " a comment; "data: " an unnamed event; else "event: NAME\ndata: " */
	size_t pre = event == NULL ? 2 : event[0] == '\0' ? 6 : 7 + strlen(event) + 7;
	size_t n = pre + len + 2;
	size_t pad = ((n + 7) & ~(size_t)7) - n;
	unsigned char h[AC_FCGI_HEADER_LEN] = { 1, 6, 0, 0, 0, 0, 0, 0 };	/* FCGI_STDOUT */
	static const char zeros[8] = { 0 };

	if (n > AC_FCGI_CONTENT_MAX - 7) {
		/* A large event (a replayed reply, a large delta): as ordinary stdout, in several records. */
		struct ac_buf tmp;
		enum ac_err err;

		ac_buf_init(&tmp, n + 1);
		if (event == NULL) {
			ac_buf_adds(&tmp, ": ");
		} else if (event[0] == '\0') {
			ac_buf_adds(&tmp, "data: ");
		} else {
			ac_buf_adds(&tmp, "event: ");
			ac_buf_adds(&tmp, event);
			ac_buf_adds(&tmp, "\ndata: ");
		}
		ac_buf_add(&tmp, data, len);
		ac_buf_add(&tmp, "\n\n", 2);
		err = ac_buf_err(&tmp) == AC_OK ? ac_park_write(k, tmp.data, tmp.len) : AC_EIO;
		ac_buf_free(&tmp);
		return err;
	}
	if (!wire_room(k, AC_FCGI_HEADER_LEN + n + pad))
		return AC_EIO;
	h[2] = (unsigned char)((k->request_id >> 8) & 0xff);
	h[3] = (unsigned char)(k->request_id & 0xff);
	h[4] = (unsigned char)((n >> 8) & 0xff);
	h[5] = (unsigned char)(n & 0xff);
	h[6] = (unsigned char)pad;
	ac_buf_add(w, h, sizeof(h));
	if (event == NULL) {
		ac_buf_add(w, ": ", 2);
	} else if (event[0] == '\0') {
		ac_buf_add(w, "data: ", 6);
	} else {
		ac_buf_add(w, "event: ", 7);
		ac_buf_adds(w, event);
		ac_buf_add(w, "\ndata: ", 7);
	}
	ac_buf_add(w, data, len);	/* one line: JSON escapes newlines */
	ac_buf_add(w, "\n\n", 2);
	ac_buf_add(w, zeros, pad);
	return queued(k);
}

/* A request answered (back from the pool): written out, ended, closed. */
static void
closing(struct ac_park *k)
{
	k->at_loop = true;
	k->close_by = ac_mono_us() + CLOSE_GRACE_US;
	list_add(k);
	if (k->fd >= 0 && !k->gone && !k->abort && !k->ended) {
		ac_fcgi_end(&k->wire, k->request_id, 0);
		k->ended = true;
		if (ac_buf_err(&k->wire) != AC_OK)
			k->gone = true;
	}
	if (k->gone)
		close_fd(k);
	if (k->fd >= 0) {
		epoll_set(k);
		flush_wire(k);
	}
	if (k->fd < 0 || k->wire_off >= k->wire.len)
		park_close(k);
}

/* The parked connection is readable, writable or closed. */
static void
park_io(struct ac_park *k, uint32_t events)
{
	if (events & EPOLLIN) {
		/* Nothing more is expected of the web server on this connection (nginx never sends
		 * FCGI_ABORT_REQUEST, and the request's records were read): what comes is dropped, and the
		 * end of the stream means the client left. */
		char trash[4096];
		size_t total = 0;

		while (total < DISCARD_MAX && k->fd >= 0) {
			ssize_t n = read(k->fd, trash, sizeof(trash));

			if (n > 0) {
				total += (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (park_gone(k, false))
				return;
			break;
		}
	}
	if (k->fd >= 0 && (events & (EPOLLERR | EPOLLHUP)) && park_gone(k, false))
		return;
	if (k->fd >= 0 && (events & EPOLLOUT))
		flush_wire(k);
	if (k->gone && park_gone(k, false))
		return;
	if (k->state == P_CLOSING && (k->fd < 0 || k->wire_off >= k->wire.len))
		park_close(k);
}

/* ---- libcurl's side ---- */

static int
on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct curl_sock *cs = socketp;
	struct epoll_event ev;

	(void)easy;
	(void)userp;
	if (what == CURL_POLL_REMOVE) {
		(void)epoll_ctl(loop.ep, EPOLL_CTL_DEL, fd, NULL);
		if (cs != NULL) {
			cs->fd = CURL_SOCKET_BAD;
			cs->dead_next = loop.dead;
			loop.dead = cs;
		}
		curl_multi_assign(loop.multi, fd, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (cs == NULL) {
		cs = calloc(1, sizeof(*cs));
		if (cs == NULL)
			return -1;
		cs->kind = K_CURL;
		cs->fd = fd;
		curl_multi_assign(loop.multi, fd, cs);
		ev.data.ptr = cs;
		if (epoll_ctl(loop.ep, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST)
			(void)epoll_ctl(loop.ep, EPOLL_CTL_MOD, fd, &ev);
		return 0;
	}
	ev.data.ptr = cs;
	if (epoll_ctl(loop.ep, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT)
		(void)epoll_ctl(loop.ep, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

static int
on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	(void)userp;
	loop.curl_due = timeout_ms < 0 ? -1 : ac_mono_us() + (int64_t)timeout_ms * 1000;
	return 0;
}

/* Transfers that ended: another attempt after a wait, or the finish. */
static void
transfers_done(void)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(loop.multi, &left)) != NULL) {
		struct ac_park *k;
		char *priv = NULL;
		CURLcode rc = msg->data.result;
		long wait;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		k = (struct ac_park *)(void *)priv;
		if (k == NULL)
			continue;
		transfer_remove(k);
		if (k->gone) {
			ac_provider_cancel(k->p, "the client went away");
			to_pool(k);
			continue;
		}
		wait = ac_provider_attempt_end(k->p, (int)rc);
		if (wait < 0) {
			to_pool(k);
			continue;
		}
		k->state = P_WAITING;
		k->retry_at = ac_mono_us() + (int64_t)wait * 1000;
	}
}

/* The timers: heartbeats, retries, and at the stop deadline the cancelling of what still runs. */
static void
tick(int64_t now)
{
	int64_t drain_at = atomic_load(&loop.drain_at);
	bool cancel = drain_at > 0 && now >= drain_at - STOP_MARGIN_US;
	struct ac_park *k = loop.list, *next;

	for (; k != NULL; k = next) {
		next = k->next;
		if (k->state == P_CLOSING && now >= k->close_by) {
			ac_log(AC_LOG_WARN, "the web server took no more of an answer for %lld s: its connection is "
			    "closed", CLOSE_GRACE_US / 1000000);
			k->gone = true;
			close_fd(k);
			park_close(k);
			continue;
		}
		if (k->state != P_RUNNING && k->state != P_WAITING)
			continue;
		if (cancel) {
			transfer_remove(k);
			ac_provider_cancel(k->p, "the server is stopping");
			to_pool(k);
			continue;
		}
		if (ac_provider_tick_due(k->p) <= now && !ac_provider_tick(k->p)) {
			park_gone(k, false);
			continue;
		}
		if (k->gone) {
			park_gone(k, false);
			continue;
		}
		if (k->state == P_WAITING && now >= k->retry_at)
			attempt(k);
	}
}

static void *
run(void *arg)
{
	struct epoll_event ev[EVENTS_MAX];
	int running = 0;

	(void)arg;
	loop.next_tick = ac_mono_us() + TICK_MS * 1000;
	while (!(atomic_load(&loop.stop) && atomic_load(&loop.parked) == 0)) {
		int64_t now = ac_mono_us(), due = loop.next_tick;
		int timeout, n;

		if (loop.curl_due >= 0 && loop.curl_due < due)
			due = loop.curl_due;
		timeout = due <= now ? 0 : (int)((due - now + 999) / 1000);
		n = epoll_wait(loop.ep, ev, EVENTS_MAX, timeout);
		if (n < 0 && errno != EINTR) {
			ac_log(AC_LOG_ERROR, "event loop: epoll_wait: %s", strerror(errno));
			usleep(10000);
		}
		for (int i = 0; i < n; i++) {
			int kind = *(int *)ev[i].data.ptr;

			if (kind == K_WAKE) {
				struct ac_park *k = dequeue_all(), *next;

				for (; k != NULL; k = next) {
					next = k->qnext;
					if (k->state == P_NEW)
						adopt(k);
					else
						closing(k);
				}
			} else if (kind == K_CURL) {
				struct curl_sock *cs = ev[i].data.ptr;
				int flags = (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
				    (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
				    (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

				if (cs->fd == CURL_SOCKET_BAD)
					continue;	/* let go earlier in this round */
				curl_multi_socket_action(loop.multi, cs->fd, flags, &running);
				transfers_done();
			} else {
				struct ac_park *k = ev[i].data.ptr;

				/* An event of this round for a request handed on (or ended) earlier in it. */
				if (k->at_loop && k->state != P_DONE)
					park_io(k, ev[i].events);
			}
		}
		now = ac_mono_us();
		if (loop.curl_due >= 0 && now >= loop.curl_due) {
			loop.curl_due = -1;
			curl_multi_socket_action(loop.multi, CURL_SOCKET_TIMEOUT, 0, &running);
			transfers_done();
		}
		if (now >= loop.next_tick) {
			loop.next_tick = now + TICK_MS * 1000;
			tick(now);
		}
		bury();
	}
	return NULL;
}

enum ac_err
ac_loop_start(const struct ac_config *cfg, int max_parked)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &loop.wake_kind };
	pthread_attr_t attr;
	int rc;

	loop.cfg = cfg;
	loop.max_parked = max_parked;
	loop.wake_kind = K_WAKE;
	loop.ep = epoll_create1(EPOLL_CLOEXEC);
	loop.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	loop.multi = curl_multi_init();
	if (loop.ep < 0 || loop.wake_fd < 0 || loop.multi == NULL ||
	    epoll_ctl(loop.ep, EPOLL_CTL_ADD, loop.wake_fd, &ev) != 0)
		goto fail;
	curl_multi_setopt(loop.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(loop.multi, CURLMOPT_TIMERFUNCTION, on_timer);
	/* HTTP/2 providers (Groq): transfers share connections; HTTP/1.1 ones get one each. */
	curl_multi_setopt(loop.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(loop.multi, CURLMOPT_MAXCONNECTS, (long)MAXCONNECTS);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, LOOP_STACK);
	rc = pthread_create(&loop.thread, &attr, run, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		goto fail;
	loop.running = true;
	return AC_OK;
fail:
	ac_log(AC_LOG_ERROR, "the event loop cannot start: %s", strerror(errno));
	if (loop.multi != NULL)
		curl_multi_cleanup(loop.multi);
	if (loop.wake_fd >= 0)
		close(loop.wake_fd);
	if (loop.ep >= 0)
		close(loop.ep);
	loop.multi = NULL;
	loop.wake_fd = loop.ep = -1;
	return AC_ESYS;
}

void
ac_loop_drain(int64_t deadline)
{
	atomic_store(&loop.drain_at, deadline);
}

int
ac_loop_parked(void)
{
	return atomic_load(&loop.parked);
}

void
ac_loop_stop(void)
{
	uint64_t one = 1;

	if (!loop.running)
		return;
	atomic_store(&loop.stop, 1);
	while (write(loop.wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(loop.thread, NULL);
	loop.running = false;
	curl_multi_cleanup(loop.multi);
	close(loop.wake_fd);
	close(loop.ep);
	loop.multi = NULL;
	loop.wake_fd = loop.ep = -1;
}

bool
ac_park(struct ac_ctx *c, struct ac_provider *p, const struct ac_park_ops *ops, void *arg,
    struct ac_park **out)
{
	struct ac_park *k;
	int flags;

	if (!loop.running || c->cgi || atomic_load(&loop.drain_at) != 0 || c->fcgi.ipcFd < 0)
		return false;
	if (atomic_fetch_add(&loop.parked, 1) >= loop.max_parked) {
		atomic_fetch_sub(&loop.parked, 1);
		return false;
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL || (c->req.origin != NULL && (k->origin = strdup(c->req.origin)) == NULL) ||
	    ac_io_flush(c) < 0) {
		/* Out of memory, or the client is gone already: the caller's call will find out. */
		if (k != NULL)
			free(k->origin);
		free(k);
		atomic_fetch_sub(&loop.parked, 1);
		return false;
	}
	flags = fcntl(c->fcgi.ipcFd, F_GETFL);
	if (flags < 0 || fcntl(c->fcgi.ipcFd, F_SETFL, flags | O_NONBLOCK) != 0) {
		free(k->origin);
		free(k);
		atomic_fetch_sub(&loop.parked, 1);
		return false;
	}
	k->kind = K_PARK;
	k->state = P_NEW;
	k->fd = c->fcgi.ipcFd;
	k->request_id = c->fcgi.requestId;
	k->keep = c->fcgi.keepConnection != 0;
	k->committed = c->resp.committed;
	ac_buf_init(&k->wire, SIZE_MAX / 2);
	k->p = p;
	k->ops = ops;
	k->arg = arg;
	k->method = c->req.method;
	snprintf(k->method_name, sizeof(k->method_name), "%s", c->req.method_name != NULL ? c->req.method_name : "-");
	k->raw_path_len = c->req.raw_path.len < sizeof(k->raw_path) ? c->req.raw_path.len : sizeof(k->raw_path);
	if (k->raw_path_len > 0)
		memcpy(k->raw_path, c->req.raw_path.ptr, k->raw_path_len);
	k->started = c->started;
	k->log = c->log;
	k->after = c->after;
	c->after.count = 0;
	/* The connection is the loop's now: libfcgi's request keeps no hold on it. */
	c->fcgi.ipcFd = -1;
	c->parked = true;
	*out = k;
	enqueue(k);
	return true;
}
