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
#include "loop_impl.h"
#include "record.h"
#include "server.h"

#define TICK_MS 100		/* the timers' resolution */
#define EVENTS_MAX 256		/* epoll events taken at once */
#define MAXCONNECTS 512		/* idle provider connections kept for reuse */
#define STOP_MARGIN_US (5 * 1000000LL)	/* cancelled this long before the stop deadline: time to store */
#define LOOP_STACK (1024 * 1024)

struct ac_evloop ac_evloop = { .mu = PTHREAD_MUTEX_INITIALIZER, .wake_fd = -1, .ep = -1, .curl_due = -1 };

/* ---- the queue in ---- */

static void
enqueue(struct ac_park *k)
{
	uint64_t one = 1;

	k->qnext = NULL;
	pthread_mutex_lock(&ac_evloop.mu);
	if (ac_evloop.qtail != NULL)
		ac_evloop.qtail->qnext = k;
	else
		ac_evloop.qhead = k;
	ac_evloop.qtail = k;
	pthread_mutex_unlock(&ac_evloop.mu);
	while (write(ac_evloop.wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static struct ac_park *
dequeue_all(void)
{
	struct ac_park *k;
	uint64_t n;

	while (read(ac_evloop.wake_fd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&ac_evloop.mu);
	k = ac_evloop.qhead;
	ac_evloop.qhead = ac_evloop.qtail = NULL;
	pthread_mutex_unlock(&ac_evloop.mu);
	return k;
}

/* ---- the parked requests ---- */

void
ac_loop_list_add(struct ac_park *k)
{
	k->prev = NULL;
	k->next = ac_evloop.list;
	if (ac_evloop.list != NULL)
		ac_evloop.list->prev = k;
	ac_evloop.list = k;
}

void
ac_loop_list_remove(struct ac_park *k)
{
	if (k->prev != NULL)
		k->prev->next = k->next;
	else if (ac_evloop.list == k)
		ac_evloop.list = k->next;
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
	atomic_fetch_sub(&ac_evloop.parked, 1);
}

/* The transfer off the multi handle (not from inside one of curl's callbacks). */
void
ac_loop_transfer_remove(struct ac_park *k)
{
	if (k->easy != NULL) {
		curl_multi_remove_handle(ac_evloop.multi, k->easy);
		k->easy = NULL;
	}
}

/* The next attempt of the call on the multi handle; or, when its time is up, the finish. */
static void
attempt(struct ac_park *k)
{
	CURL *easy = ac_provider_attempt(k->p);

	if (easy == NULL) {
		ac_loop_to_pool(k);
		return;
	}
	curl_easy_setopt(easy, CURLOPT_PRIVATE, k);
	if (curl_multi_add_handle(ac_evloop.multi, easy) != CURLM_OK) {
		ac_provider_cancel(k->p, "the provider call could not be started");
		ac_loop_to_pool(k);
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
	ac_loop_list_add(k);
	ac_park_epoll_set(k);
	ac_park_flush(k);
	if (k->gone) {
		ac_provider_cancel(k->p, "the client went away");
		ac_loop_to_pool(k);
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

void
ac_loop_to_pool(struct ac_park *k)
{
	ac_park_epoll_forget(k);
	k->at_loop = false;
	k->state = P_AWAY;
	ac_loop_list_remove(k);
	if (!ac_server_post(finish_job, k)) {
		/* Out of memory for a job: the finish runs on no thread, the send stays locked until
		 * its deadline (as when a worker dies).  Not expected; said loudly. */
		ac_log(AC_LOG_ERROR, "event loop: cannot hand a finished chat to the pool (out of memory)");
	}
}

/* The end of a round of events: what was done with is let go. */
static void
bury(void)
{
	while (ac_evloop.done != NULL) {
		struct ac_park *k = ac_evloop.done;

		ac_evloop.done = k->qnext;
		if (k->after.count > 0 && ac_server_post_after(after_job, k))
			continue;
		park_free_now(k);
	}
	while (ac_evloop.dead != NULL) {
		struct curl_sock *cs = ac_evloop.dead;

		ac_evloop.dead = cs->dead_next;
		free(cs);
	}
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
		(void)epoll_ctl(ac_evloop.ep, EPOLL_CTL_DEL, fd, NULL);
		if (cs != NULL) {
			cs->fd = CURL_SOCKET_BAD;
			cs->dead_next = ac_evloop.dead;
			ac_evloop.dead = cs;
		}
		curl_multi_assign(ac_evloop.multi, fd, NULL);
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
		curl_multi_assign(ac_evloop.multi, fd, cs);
		ev.data.ptr = cs;
		if (epoll_ctl(ac_evloop.ep, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST)
			(void)epoll_ctl(ac_evloop.ep, EPOLL_CTL_MOD, fd, &ev);
		return 0;
	}
	ev.data.ptr = cs;
	if (epoll_ctl(ac_evloop.ep, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT)
		(void)epoll_ctl(ac_evloop.ep, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

static int
on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	(void)userp;
	ac_evloop.curl_due = timeout_ms < 0 ? -1 : ac_mono_us() + (int64_t)timeout_ms * 1000;
	return 0;
}

/* Transfers that ended: another attempt after a wait, or the finish. */
static void
transfers_done(void)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(ac_evloop.multi, &left)) != NULL) {
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
		ac_loop_transfer_remove(k);
		if (k->gone) {
			ac_provider_cancel(k->p, "the client went away");
			ac_loop_to_pool(k);
			continue;
		}
		wait = ac_provider_attempt_end(k->p, (int)rc);
		if (wait < 0) {
			ac_loop_to_pool(k);
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
	int64_t drain_at = atomic_load(&ac_evloop.drain_at);
	bool cancel = drain_at > 0 && now >= drain_at - STOP_MARGIN_US;
	struct ac_park *k = ac_evloop.list, *next;

	for (; k != NULL; k = next) {
		next = k->next;
		if (k->state == P_CLOSING && now >= k->close_by) {
			ac_log(AC_LOG_WARN, "the web server took no more of an answer for %lld s: its connection is "
			    "closed", CLOSE_GRACE_US / 1000000);
			k->gone = true;
			ac_park_close_fd(k);
			ac_park_close(k);
			continue;
		}
		if (k->state != P_RUNNING && k->state != P_WAITING)
			continue;
		if (cancel) {
			ac_loop_transfer_remove(k);
			ac_provider_cancel(k->p, "the server is stopping");
			ac_loop_to_pool(k);
			continue;
		}
		if (ac_provider_tick_due(k->p) <= now && !ac_provider_tick(k->p)) {
			ac_park_gone(k, false);
			continue;
		}
		if (k->gone) {
			ac_park_gone(k, false);
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
	ac_evloop.next_tick = ac_mono_us() + TICK_MS * 1000;
	while (!(atomic_load(&ac_evloop.stop) && atomic_load(&ac_evloop.parked) == 0)) {
		int64_t now = ac_mono_us(), due = ac_evloop.next_tick;
		int timeout, n;

		if (ac_evloop.curl_due >= 0 && ac_evloop.curl_due < due)
			due = ac_evloop.curl_due;
		timeout = due <= now ? 0 : (int)((due - now + 999) / 1000);
		n = epoll_wait(ac_evloop.ep, ev, EVENTS_MAX, timeout);
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
						ac_park_closing(k);
				}
			} else if (kind == K_CURL) {
				struct curl_sock *cs = ev[i].data.ptr;
				int flags = (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
				    (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
				    (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

				if (cs->fd == CURL_SOCKET_BAD)
					continue;	/* let go earlier in this round */
				curl_multi_socket_action(ac_evloop.multi, cs->fd, flags, &running);
				transfers_done();
			} else {
				struct ac_park *k = ev[i].data.ptr;

				/* An event of this round for a request handed on (or ended) earlier in it. */
				if (k->at_loop && k->state != P_DONE)
					ac_park_io(k, ev[i].events);
			}
		}
		now = ac_mono_us();
		if (ac_evloop.curl_due >= 0 && now >= ac_evloop.curl_due) {
			ac_evloop.curl_due = -1;
			curl_multi_socket_action(ac_evloop.multi, CURL_SOCKET_TIMEOUT, 0, &running);
			transfers_done();
		}
		if (now >= ac_evloop.next_tick) {
			ac_evloop.next_tick = now + TICK_MS * 1000;
			tick(now);
		}
		bury();
	}
	return NULL;
}

enum ac_err
ac_loop_start(const struct ac_config *cfg, int max_parked)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ac_evloop.wake_kind };
	pthread_attr_t attr;
	int rc;

	ac_evloop.cfg = cfg;
	ac_evloop.max_parked = max_parked;
	ac_evloop.wake_kind = K_WAKE;
	ac_evloop.ep = epoll_create1(EPOLL_CLOEXEC);
	ac_evloop.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ac_evloop.multi = curl_multi_init();
	if (ac_evloop.ep < 0 || ac_evloop.wake_fd < 0 || ac_evloop.multi == NULL ||
	    epoll_ctl(ac_evloop.ep, EPOLL_CTL_ADD, ac_evloop.wake_fd, &ev) != 0)
		goto fail;
	curl_multi_setopt(ac_evloop.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(ac_evloop.multi, CURLMOPT_TIMERFUNCTION, on_timer);
	/* HTTP/2 providers (Groq): transfers share connections; HTTP/1.1 ones get one each. */
	curl_multi_setopt(ac_evloop.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(ac_evloop.multi, CURLMOPT_MAXCONNECTS, (long)MAXCONNECTS);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, LOOP_STACK);
	rc = pthread_create(&ac_evloop.thread, &attr, run, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		goto fail;
	ac_evloop.running = true;
	return AC_OK;
fail:
	ac_log(AC_LOG_ERROR, "the event loop cannot start: %s", strerror(errno));
	if (ac_evloop.multi != NULL)
		curl_multi_cleanup(ac_evloop.multi);
	if (ac_evloop.wake_fd >= 0)
		close(ac_evloop.wake_fd);
	if (ac_evloop.ep >= 0)
		close(ac_evloop.ep);
	ac_evloop.multi = NULL;
	ac_evloop.wake_fd = ac_evloop.ep = -1;
	return AC_ESYS;
}

void
ac_loop_drain(int64_t deadline)
{
	atomic_store(&ac_evloop.drain_at, deadline);
}

int
ac_loop_parked(void)
{
	return atomic_load(&ac_evloop.parked);
}

void
ac_loop_stop(void)
{
	uint64_t one = 1;

	if (!ac_evloop.running)
		return;
	atomic_store(&ac_evloop.stop, 1);
	while (write(ac_evloop.wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(ac_evloop.thread, NULL);
	ac_evloop.running = false;
	curl_multi_cleanup(ac_evloop.multi);
	close(ac_evloop.wake_fd);
	close(ac_evloop.ep);
	ac_evloop.multi = NULL;
	ac_evloop.wake_fd = ac_evloop.ep = -1;
}

bool
ac_park(struct ac_ctx *c, struct ac_provider *p, const struct ac_park_ops *ops, void *arg,
    struct ac_park **out)
{
	struct ac_park *k;
	int flags;

	if (!ac_evloop.running || c->cgi || atomic_load(&ac_evloop.drain_at) != 0 || c->fcgi.ipcFd < 0)
		return false;
	if (atomic_fetch_add(&ac_evloop.parked, 1) >= ac_evloop.max_parked) {
		atomic_fetch_sub(&ac_evloop.parked, 1);
		return false;
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL || (c->req.origin != NULL && (k->origin = strdup(c->req.origin)) == NULL) ||
	    ac_io_flush(c) < 0) {
		/* Out of memory, or the client is gone already: the caller's call will find out. */
		if (k != NULL)
			free(k->origin);
		free(k);
		atomic_fetch_sub(&ac_evloop.parked, 1);
		return false;
	}
	flags = fcntl(c->fcgi.ipcFd, F_GETFL);
	if (flags < 0 || fcntl(c->fcgi.ipcFd, F_SETFL, flags | O_NONBLOCK) != 0) {
		free(k->origin);
		free(k);
		atomic_fetch_sub(&ac_evloop.parked, 1);
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
