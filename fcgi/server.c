#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "listen_tcp.h"
#include "server.h"
#include "worker.h"

#define STOP_GRACE_SECONDS 60	/* longest wait for requests in flight at shutdown */
#define SCRATCH_KEEP (64 * 1024)	/* per-thread buffers shrink back to this after a large request */
#define THREAD_STACK (512 * 1024)	/* ample for this code, SQLite and libcurl; a thousand threads fit */
#define ACCEPT_TICK_MS 250	/* accept() gives up this often to see whether the process is stopping */
#define SWEEP_TICK_MS 100	/* how often the main thread looks for reads past their deadline */
#define FINISH_GRACE_MS 2000	/* closing a connection: libfcgi drains the web server's last bytes */

#define ACCEPTORS 2	/* threads waiting in accept at once; the others wait their turn, newest first */

/*
 * A connection's read deadline.  libfcgi reads the request's records (inside FCGX_Accept_r) and its
 * body with blocking reads that have no timeout; while a thread is in one of them its watch is armed,
 * and the main thread shuts the connection down once the deadline has passed, which ends the read at
 * once.  fd is a copy of the connection's descriptor, so that libfcgi closing its own (after a
 * protocol error) can never leave the main thread shutting down a number since given to another
 * connection.
 */
struct watch {
	pthread_mutex_t mu;
	int fd;			/* -1 between connections */
	bool armed;		/* in a read from the web server (or closing) */
	bool records;		/* the read is of the request's records: no request has begun yet */
	int64_t armed_at;	/* ac_mono_us() when the read began */
	int64_t deadline;	/* ac_mono_us() past which an armed read is cut */
	int64_t read_deadline;	/* the request's: FCGI_READ_TIMEOUT_S after its connection came */
};

struct thread {
	pthread_t id;
	struct ac_ctx ctx;
	struct watch watch;
	int listen_fd;
	atomic_int done;
	int started;
	pthread_cond_t turn;	/* signalled when this idle thread may accept */
	bool woken;
	struct thread *next;	/* in the idle stack */
};

/*
 * Few threads accept at a time, and an idle thread that is needed is the one idle the shortest
 * time.  The kernel hands connections to the threads blocked in accept in turn, so with all of a
 * large pool in accept every request would land on the thread with the coldest caches; this keeps
 * a small hot set busy under load while the rest of the pool is there for requests that wait on
 * the provider.  A thread leaves the gate as soon as accept() returns: reading the request happens
 * outside it, so a connection that stalls never keeps the others from being accepted.
 */
static struct {
	pthread_mutex_t mu;
	int acceptors;
	struct thread *idle;	/* a stack: the most recently idle on top */
} gate = { PTHREAD_MUTEX_INITIALIZER, 0, NULL };

static atomic_int stopping;

bool
ac_server_stopping(void)
{
	return atomic_load(&stopping) != 0;
}
static _Thread_local struct watch *my_watch;	/* the calling thread's (NULL: none) */

/* Waits for a turn to accept; false when the process is stopping. */
static bool
gate_enter(struct thread *t)
{
	bool ok;

	pthread_mutex_lock(&gate.mu);
	while (!atomic_load(&stopping) && gate.acceptors >= ACCEPTORS) {
		t->woken = false;
		t->next = gate.idle;
		gate.idle = t;
		while (!t->woken && !atomic_load(&stopping))
			pthread_cond_wait(&t->turn, &gate.mu);
	}
	ok = !atomic_load(&stopping);
	if (ok)
		gate.acceptors++;
	pthread_mutex_unlock(&gate.mu);
	return ok;
}

/* Wakes the most recently idle thread (the gate's lock held). */
static void
wake_newest(void)
{
	struct thread *t = gate.idle;

	gate.idle = t->next;
	t->woken = true;
	pthread_cond_signal(&t->turn);
}

/* Leaves accept; when nobody is left accepting, the most recently idle thread takes over. */
static void
gate_leave(void)
{
	pthread_mutex_lock(&gate.mu);
	gate.acceptors--;
	if (gate.acceptors == 0 && gate.idle != NULL)
		wake_newest();
	pthread_mutex_unlock(&gate.mu);
}

/* Wakes every idle thread (stopping). */
static void
gate_release_all(void)
{
	pthread_mutex_lock(&gate.mu);
	while (gate.idle != NULL)
		wake_newest();
	pthread_mutex_unlock(&gate.mu);
}

static void
watch_init(struct watch *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	w->fd = -1;
}

/* Watches a new connection; false if its descriptor cannot be copied (out of descriptors). */
static bool
watch_open(struct watch *w, int fd, int64_t read_deadline)
{
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	if (copy < 0)
		return false;
	pthread_mutex_lock(&w->mu);
	w->fd = copy;
	w->armed = false;
	w->read_deadline = read_deadline;
	pthread_mutex_unlock(&w->mu);
	return true;
}

static void
watch_arm(struct watch *w, int64_t deadline, bool records)
{
	int64_t now = ac_mono_us();

	pthread_mutex_lock(&w->mu);
	w->armed = true;
	w->records = records;
	w->armed_at = now;
	w->deadline = deadline;
	pthread_mutex_unlock(&w->mu);
}

static void
watch_disarm(struct watch *w)
{
	pthread_mutex_lock(&w->mu);
	w->armed = false;
	pthread_mutex_unlock(&w->mu);
}

static void
watch_close(struct watch *w)
{
	int fd;

	pthread_mutex_lock(&w->mu);
	fd = w->fd;
	w->fd = -1;
	w->armed = false;
	pthread_mutex_unlock(&w->mu);
	if (fd >= 0)
		close(fd);
}

/*
 * Shuts down the connections whose armed read is past its deadline (the main thread, every tick).  A
 * read that began late is given a tick first: what the web server sent long ago is read at once.
 * When the process stops, a connection that has not sent a whole request head yet is not a request
 * in flight: it is cut at once.
 */
static void
watch_sweep(struct thread *threads, int n)
{
	int64_t now = ac_mono_us();
	bool stop = atomic_load(&stopping);
	int cut = 0;

	for (int i = 0; i < n; i++) {
		struct watch *w = &threads[i].watch;

		pthread_mutex_lock(&w->mu);
		if (w->armed && w->fd >= 0 && ((now >= w->deadline && now - w->armed_at >= SWEEP_TICK_MS * 1000LL) ||
		    (stop && w->records))) {
			(void)shutdown(w->fd, SHUT_RDWR);
			w->armed = false;
			cut++;
		}
		pthread_mutex_unlock(&w->mu);
	}
	if (cut > 0 && !stop)
		ac_log(AC_LOG_WARN, "closed %d connection%s still sending the request at the deadline "
		    "(FCGI_READ_TIMEOUT_S)", cut, cut == 1 ? "" : "s");
}

int64_t
ac_server_read_begin(void)
{
	struct watch *w = my_watch;

	if (w == NULL)
		return 0;
	if (w->fd >= 0)
		watch_arm(w, w->read_deadline, false);
	return w->read_deadline;
}

void
ac_server_read_end(void)
{
	struct watch *w = my_watch;

	if (w != NULL && w->fd >= 0)
		watch_disarm(w);
}

/* The request line: method, path (no query), status, duration, user, model and tokens. */
static void
log_request(struct ac_ctx *c, int64_t started)
{
	struct ac_str path = c->req.raw_path;
	struct ac_buf *user = &c->scratch;	/* the request's decoded target is no longer needed */

	ac_buf_reset(user, SCRATCH_KEEP);
	if (c->log.user_id_len > 0)
		ac_json_str(user, c->log.user_id, c->log.user_id_len);
	ac_log(AC_LOG_INFO, "request method=%s path=%.*s status=%d ms=%.1f user_id=%s model=%s tokens=%lld+%lld%s",
	    c->req.method_name != NULL ? c->req.method_name : "-", (int)(path.len > 512 ? 512 : path.len),
	    path.ptr != NULL ? path.ptr : "", c->resp.status, (double)(ac_mono_us() - started) / 1000.0,
	    user->len > 0 ? user->data : "-", c->log.model != NULL ? c->log.model : "-",
	    (long long)c->log.prompt_tokens, (long long)c->log.completion_tokens,
	    c->resp.failed ? " client-gone" : "");
}

bool
ac_after_response(struct ac_ctx *c, void (*fn)(struct ac_ctx *c, void *arg), void *arg)
{
	if (c->after.count == AC_AFTER_MAX)
		return false;
	c->after.job[c->after.count].fn = fn;
	c->after.job[c->after.count].arg = arg;
	c->after.count++;
	return true;
}

void
ac_run_after(struct ac_ctx *c)
{
	for (int i = 0; i < c->after.count; i++)
		c->after.job[i].fn(c, c->after.job[i].arg);
	c->after.count = 0;
}

/*
 * An answer cut short after its head went out.  Ending the FastCGI request, or just closing, would
 * let the web server end the body as if it were whole (nginx takes the end of a FastCGI stream of
 * unknown length as the end of the response).  A record it cannot parse (FastCGI version 0, at a
 * record boundary: libfcgi writes whole records) makes it drop the client's connection instead, so
 * the client sees the response is incomplete.
 */
static void
abort_connection(struct ac_ctx *c)
{
	static const unsigned char bad_record[8] = { 0 };
	ssize_t n;

	do {
		n = write(c->fcgi.ipcFd, bad_record, sizeof(bad_record));
	} while (n < 0 && errno == EINTR);
	shutdown(c->fcgi.ipcFd, SHUT_RDWR);
}

static void
handle(struct ac_ctx *c)
{
	int64_t started = ac_mono_us();

	ac_buf_reset(&c->scratch, SCRATCH_KEEP);
	ac_buf_reset(&c->in, SCRATCH_KEEP);
	memset(&c->log, 0, sizeof(c->log));
	c->resp.committed = false;
	c->resp.failed = false;
	c->resp.abort = false;
	ac_resp_start(c, 500);
	if (ac_request_parse(c))
		ac_route(c);
	ac_resp_finish(c);
	if (c->resp.abort && !c->cgi)
		abort_connection(c);
	if (ac_log_enabled(AC_LOG_INFO))
		log_request(c, started);
}

/* The next connection; -1 when the process is stopping. */
static int
accept_one(int listen_fd)
{
	while (!atomic_load(&stopping)) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd >= 0 && !ac_listen_peer_allowed(fd)) {	/* FCGI_ALLOWED_PEERS (listen_tcp.c) */
			close(fd);
			continue;
		}
		if (fd >= 0)
			return fd;
		switch (errno) {
		case EAGAIN:		/* the listening socket's receive timeout: a tick */
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			break;
		default:		/* out of descriptors or memory: wait for some to come back */
			ac_log(AC_LOG_ERROR, "accept: %s", strerror(errno));
			usleep(10000);
			break;
		}
	}
	return -1;
}

/*
 * Serves the requests of one connection (one, unless the web server asked to keep it).  libfcgi
 * takes the connection we accepted as one it kept open: it reads from ipcFd when that is open, and
 * closes it at the start of FCGX_Accept_r unless keepConnection is set.  listen_sock is -1, so that
 * after a protocol error (or a deadline) libfcgi does not go back to accept() by itself.
 */
static void
serve(struct thread *t, int fd)
{
	struct ac_ctx *c = &t->ctx;
	int64_t timeout = (int64_t)c->cfg->read_timeout_s * 1000000;

	if (!watch_open(&t->watch, fd, ac_mono_us() + timeout)) {
		ac_log(AC_LOG_ERROR, "cannot watch a connection: %s", strerror(errno));
		close(fd);
		return;
	}
	c->fcgi.ipcFd = fd;
	for (;;) {
		int rc;

		c->fcgi.keepConnection = 1;
		watch_arm(&t->watch, t->watch.read_deadline, true);
		rc = FCGX_Accept_r(&c->fcgi);
		watch_disarm(&t->watch);
		if (rc < 0)
			break;	/* cut off, malformed or past its deadline: libfcgi has closed it */
		c->envp = c->fcgi.envp;
		handle(c);
		watch_arm(&t->watch, ac_mono_us() + FINISH_GRACE_MS * 1000LL, false);
		FCGX_Finish_r(&c->fcgi);
		watch_disarm(&t->watch);
		ac_run_after(c);
		if (c->fcgi.ipcFd < 0 || atomic_load(&stopping))
			break;
		/* A kept connection: the next request has the same time to arrive, from now. */
		pthread_mutex_lock(&t->watch.mu);
		t->watch.read_deadline = ac_mono_us() + timeout;
		pthread_mutex_unlock(&t->watch.mu);
	}
	if (c->fcgi.ipcFd >= 0)
		FCGX_Free(&c->fcgi, 1);
	c->fcgi.ipcFd = -1;
	watch_close(&t->watch);
}

static void *
run(void *arg)
{
	struct thread *t = arg;

	my_watch = &t->watch;
	for (;;) {
		int fd;

		if (!gate_enter(t))
			break;
		fd = accept_one(t->listen_fd);
		gate_leave();
		if (fd < 0)
			break;
		serve(t, fd);
	}
	atomic_store(&t->done, 1);
	return NULL;
}

static void
ctx_free(struct ac_ctx *c)
{
	ac_repo_close(c->repo);
	ac_provider_free(c->provider);
	ac_resp_free(&c->resp);
	ac_buf_free(&c->scratch);
	ac_buf_free(&c->in);
	FCGX_Free(&c->fcgi, c->fcgi.ipcFd >= 0);
}

/* Lets every thread finish its request, cutting reads past their deadline meanwhile; false if some
 * did not finish in time. */
static bool
stop_threads(struct thread *threads, int n)
{
	int64_t deadline = ac_mono_us() + STOP_GRACE_SECONDS * 1000000LL;
	int left;

	atomic_store(&stopping, 1);
	do {
		gate_release_all();
		watch_sweep(threads, n);
		left = 0;
		for (int i = 0; i < n; i++) {
			if (threads[i].started && !atomic_load(&threads[i].done))
				left++;
		}
		if (left > 0)
			usleep(20000);
	} while (left > 0 && ac_mono_us() < deadline);
	if (left > 0) {
		ac_log(AC_LOG_WARN, "%d requests still running after %d s; exiting", left, STOP_GRACE_SECONDS);
		return false;
	}
	for (int i = 0; i < n; i++) {
		if (threads[i].started)
			pthread_join(threads[i].id, NULL);
	}
	return true;
}

/*
 * Sets up one thread's context: its database connection and provider client.  Whatever it did is
 * undone by ctx_free, also when it failed half way.
 */
static bool
ctx_init(struct ac_ctx *c, const struct ac_config *cfg)
{
	struct ac_db_conf db;
	enum ac_err err;

	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	FCGX_InitRequest(&c->fcgi, -1, 0);
	ac_resp_init(&c->resp);
	ac_buf_init(&c->scratch, AC_TARGET_MAX + 64);
	ac_buf_init(&c->in, cfg->max_body + 2);
	ac_config_db(cfg, &db);
	err = ac_repo_open(&db, &c->repo);
	if (err != AC_OK) {
		ac_log(AC_LOG_ERROR, "cannot open the database %s: %s", cfg->db_display, ac_strerror(err));
		return false;
	}
	if (ac_provider_new(cfg, &c->provider) != AC_OK) {
		ac_log(AC_LOG_ERROR, "cannot set up the provider client");
		return false;
	}
	return true;
}

int
ac_serve_cgi(const struct ac_config *cfg)
{
	extern char **environ;
	struct ac_ctx c;
	struct watch w;
	int status = 1;

	/* No thread to watch: the deadline is only handed to the reads of stdin, which poll with it. */
	watch_init(&w);
	w.read_deadline = ac_mono_us() + (int64_t)cfg->read_timeout_s * 1000000;
	my_watch = &w;
	if (ctx_init(&c, cfg)) {
		c.cgi = true;
		c.envp = environ;
		handle(&c);
		/* The web server ends the response when our output closes, not when we exit. */
		fflush(stdout);
		close(STDOUT_FILENO);
		ac_run_after(&c);
		status = 0;
	}
	ctx_free(&c);
	my_watch = NULL;
	pthread_mutex_destroy(&w.mu);
	return status;
}

/* accept() on the shared socket returns every ACCEPT_TICK_MS, so a stopping thread notices. */
static bool
listen_setup(int listen_fd)
{
	struct timeval tick = { 0, ACCEPT_TICK_MS * 1000 };
	int flags = fcntl(listen_fd, F_GETFL);

	/* A listening socket handed over non-blocking would make accept() spin. */
	if (flags >= 0 && (flags & O_NONBLOCK) != 0)
		(void)fcntl(listen_fd, F_SETFL, flags & ~O_NONBLOCK);
	if (setsockopt(listen_fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick)) != 0) {
		ac_log(AC_LOG_ERROR, "the listening socket: SO_RCVTIMEO: %s", strerror(errno));
		return false;
	}
	return true;
}

int
ac_serve(const struct ac_config *cfg, int listen_fd)
{
	struct thread *threads = calloc((size_t)cfg->threads, sizeof(*threads));
	pthread_attr_t attr;
	sigset_t set;
	int sig, status = 1, i, ready = 0;

	if (threads == NULL) {
		ac_log(AC_LOG_ERROR, "out of memory for %d threads", cfg->threads);
		return 1;
	}
	if (!listen_setup(listen_fd))
		goto out;
	for (i = 0; i < cfg->threads; i++) {
		pthread_cond_init(&threads[i].turn, NULL);
		watch_init(&threads[i].watch);
		threads[i].listen_fd = listen_fd;
		ready = i + 1;	/* ctx_free undoes a half-done ctx_init too */
		if (!ctx_init(&threads[i].ctx, cfg))
			goto out;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	for (i = 0; i < cfg->threads; i++) {
		if (pthread_create(&threads[i].id, &attr, run, &threads[i]) != 0) {
			ac_log(AC_LOG_ERROR, "cannot start thread %d", i);
			break;
		}
		threads[i].started = 1;
	}
	pthread_attr_destroy(&attr);
	if (i == cfg->threads) {
		/* Every signal that means something is blocked in every thread (main() did it before
		 * any thread existed) and taken here, never by a handler that could interrupt a read. */
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGHUP);
		sigaddset(&set, SIGUSR1);
		for (;;) {
			struct timespec tick = { 0, SWEEP_TICK_MS * 1000000L };

			sig = sigtimedwait(&set, NULL, &tick);
			if (sig == SIGTERM || sig == SIGINT)
				break;
			if ((sig == SIGHUP || sig == SIGUSR1) && ac_log_reopen() != AC_OK)
				ac_log(AC_LOG_ERROR, "cannot reopen LOG_FILE: %s", strerror(errno));
			watch_sweep(threads, cfg->threads);
		}
		status = 0;
	}
	if (!stop_threads(threads, cfg->threads))
		return status;	/* threads still hold their contexts: leave them to exit() */
out:
	for (i = 0; i < ready; i++) {
		ctx_free(&threads[i].ctx);
		pthread_mutex_destroy(&threads[i].watch.mu);
		pthread_cond_destroy(&threads[i].turn);
	}
	free(threads);
	return status;
}
