#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "../common/json.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../common/util.h"
#include "loop.h"
#include "pages.h"
#include "listen_tcp.h"
#include "retention.h"
#include "server.h"
#include "watch.h"
#include "worker.h"

#define STOP_GRACE_SECONDS 60	/* longest wait for requests in flight at shutdown */
#define SCRATCH_KEEP (64 * 1024)	/* per-thread buffers shrink back to this after a large request */
#define THREAD_STACK (512 * 1024)	/* ample for this code, SQLite and libcurl; a thousand threads fit */
#define ACCEPT_TICK_MS 250	/* accept() gives up this often to see whether the process is stopping */
#define SWEEP_TICK_MS 100	/* how often the main thread looks for reads past their deadline */
#define FINISH_GRACE_MS 2000	/* closing a connection: libfcgi drains the web server's last bytes */

#define ACCEPTORS 2	/* threads waiting in accept at once; the others wait their turn, newest first */
#define FDS_RESERVED 256	/* descriptors kept for the pool (connections, databases, logs) */
#define FDS_PER_THREAD 6
#define FDS_PER_PARKED 2	/* a parked chat's FastCGI connection and its provider connection */
/* Jobs (the loop's finishes: a short write each) run on at most this many threads at once: the
 * database takes its writers one at a time anyway, and the rest of the pool stays free for requests
 * while thousands of replies are stored at once. */
#define JOB_LANES 4

struct thread {
	pthread_t id;
	struct ac_ctx ctx;
	struct ac_watch watch;
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
/* Work for the pool that is not a request (ac_server_post): the event loop's finishes. */
struct job {
	void (*fn)(struct ac_ctx *c, void *arg);
	void *arg;
	bool lane;		/* counted against JOB_LANES (a kept connection's next request is not) */
	struct job *next;
};

static struct {
	pthread_mutex_t mu;
	int acceptors;
	struct thread *idle;	/* a stack: the most recently idle on top */
	struct job *jobs, *jobs_tail;	/* first in, first out */
	int jobs_running;	/* at most JOB_LANES */
	int job_fd;		/* an eventfd, readable while a job may start and no idle thread was woken for it */
	pthread_cond_t stop_cv;	/* stopping: threads wait here for the last jobs */
} gate = { PTHREAD_MUTEX_INITIALIZER, 0, NULL, NULL, NULL, 0, -1, PTHREAD_COND_INITIALIZER };

enum turn {
	T_ACCEPT,
	T_JOB,
	T_STOP,
};

static atomic_int stopping;

bool
ac_server_stopping(void)
{
	return atomic_load(&stopping) != 0;
}

/* The oldest job that may start (a lane free, or it needs none), the gate's lock held (NULL: none). */
static struct job *
job_pop(void)
{
	struct job *j = NULL, *prev = NULL;
	bool startable = false;

	for (struct job *it = gate.jobs; it != NULL; prev = it, it = it->next) {
		if (!it->lane || gate.jobs_running < JOB_LANES) {
			j = it;
			break;
		}
	}
	if (j != NULL) {
		if (prev != NULL)
			prev->next = j->next;
		else
			gate.jobs = j->next;
		if (gate.jobs_tail == j)
			gate.jobs_tail = prev;
		if (j->lane)
			gate.jobs_running++;
	}
	for (struct job *it = gate.jobs; it != NULL && !startable; it = it->next)
		startable = !it->lane || gate.jobs_running < JOB_LANES;
	if (!startable && gate.job_fd >= 0) {
		uint64_t n;

		if (read(gate.job_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)	/* nothing to start: not readable */
			ac_log(AC_LOG_ERROR, "eventfd: %s", strerror(errno));
	}
	return j;
}

/*
 * Waits for something to do: a job (*job set), a turn to accept, or T_STOP once the process is
 * stopping and nothing parked or queued is left to finish.
 */
static enum turn
gate_enter(struct thread *t, struct job **job)
{
	enum turn turn;

	pthread_mutex_lock(&gate.mu);
	for (;;) {
		if ((*job = job_pop()) != NULL) {
			turn = T_JOB;
			break;
		}
		if (atomic_load(&stopping)) {
			struct timespec until;

			if (ac_loop_parked() == 0) {
				turn = T_STOP;
				break;
			}
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 20 * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&gate.stop_cv, &gate.mu, &until);
			continue;
		}
		if (gate.acceptors < ACCEPTORS) {
			gate.acceptors++;
			turn = T_ACCEPT;
			break;
		}
		t->woken = false;
		t->next = gate.idle;
		gate.idle = t;
		while (!t->woken && !atomic_load(&stopping))
			pthread_cond_wait(&t->turn, &gate.mu);
	}
	pthread_mutex_unlock(&gate.mu);
	return turn;
}

static bool
post(void (*fn)(struct ac_ctx *c, void *arg), void *arg, bool lane)
{
	struct job *j = malloc(sizeof(*j));
	uint64_t one = 1;

	if (j == NULL)
		return false;
	j->fn = fn;
	j->arg = arg;
	j->lane = lane;
	j->next = NULL;
	pthread_mutex_lock(&gate.mu);
	if (gate.jobs_tail != NULL)
		gate.jobs_tail->next = j;
	else
		gate.jobs = j;
	gate.jobs_tail = j;
	/* With every lane busy, the thread that ends a job takes the next. */
	if ((!lane || gate.jobs_running < JOB_LANES) && gate.idle != NULL) {
		struct thread *t = gate.idle;

		gate.idle = t->next;
		t->woken = true;
		pthread_cond_signal(&t->turn);
	} else if ((!lane || gate.jobs_running < JOB_LANES) && gate.job_fd >= 0) {
		if (write(gate.job_fd, &one, sizeof(one)) < 0)	/* the threads in accept() see it */
			ac_log(AC_LOG_ERROR, "eventfd: %s", strerror(errno));
	}
	pthread_cond_signal(&gate.stop_cv);
	pthread_mutex_unlock(&gate.mu);
	return true;
}

bool
ac_server_post(void (*fn)(struct ac_ctx *c, void *arg), void *arg)
{
	return post(fn, arg, true);
}

bool
ac_server_post_after(void (*fn)(struct ac_ctx *c, void *arg), void *arg)
{
	return post(fn, arg, false);
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
	pthread_cond_broadcast(&gate.stop_cv);
	pthread_mutex_unlock(&gate.mu);
}

/*
 * Shuts down the connections whose armed read is past its deadline (the main thread, every tick).  A
 * read that began late is given a tick first: what the web server sent long ago is read at once.
 * When the process stops, a connection that has not sent a whole request head yet is not a request
 * in flight: it is cut at once.
 */
static void
sweep(struct thread *threads, int n)
{
	int64_t now = ac_mono_us();
	bool stop = atomic_load(&stopping);
	int cut = 0;

	for (int i = 0; i < n; i++)
		cut += ac_watch_cut(&threads[i].watch, now, SWEEP_TICK_MS * 1000LL, stop);
	if (cut > 0 && !stop)
		ac_log(AC_LOG_WARN, "closed %d connection%s still sending the request at the deadline "
		    "(FCGI_READ_TIMEOUT_S)", cut, cut == 1 ? "" : "s");
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

/*
 * After a large request (its body, or its answer, past SCRATCH_KEEP): the thread's database
 * connection gives back what it grew for it, as the thread's own buffers do (SQLite's page cache
 * and the search index's buffers held about 0.9 MiB a connection after 200 KiB messages).
 */
static void
trim_after(struct ac_ctx *c)
{
	if (c->in.cap > SCRATCH_KEEP || c->resp.body.cap > SCRATCH_KEEP)
		ac_repo_trim(c->repo);
}

static void
handle(struct ac_ctx *c)
{
	int64_t started = ac_mono_us();

	ac_buf_reset(&c->scratch, SCRATCH_KEEP);
	ac_buf_reset(&c->in, SCRATCH_KEEP);
	memset(&c->log, 0, sizeof(c->log));
	c->started = started;
	c->parked = false;
	c->resp.committed = false;
	c->resp.failed = false;
	c->resp.abort = false;
	ac_resp_start(c, 500);
	if (ac_request_parse(c))
		ac_route(c);
	if (c->parked) {
		trim_after(c);
		return;	/* the event loop answers it, and logs it once answered */
	}
	ac_resp_finish(c);
	if (c->resp.abort && !c->cgi)
		abort_connection(c);
	ac_log_request(c, started);
	trim_after(c);
}

/*
 * The calling thread's epoll instance over the listening socket and the jobs' eventfd, both
 * EPOLLEXCLUSIVE: a new connection (or job) wakes one waiting thread, not every thread of every
 * process waiting for one (poll() would).  -1 if it cannot be made (then poll()).
 */
static _Thread_local int my_ep = -1;

static int
accept_ep(int listen_fd)
{
	struct epoll_event ev;

	if (my_ep >= 0)
		return my_ep;
	my_ep = epoll_create1(EPOLL_CLOEXEC);
	if (my_ep < 0)
		return -1;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ev.data.u32 = 0;
	if (epoll_ctl(my_ep, EPOLL_CTL_ADD, listen_fd, &ev) != 0)
		goto fail;
	ev.data.u32 = 1;
	if (gate.job_fd >= 0 && epoll_ctl(my_ep, EPOLL_CTL_ADD, gate.job_fd, &ev) != 0)
		goto fail;
	return my_ep;
fail:
	close(my_ep);
	my_ep = -1;
	return -1;
}

/* The next connection; -1 when the process is stopping, or when *job was taken instead (a job came
 * while no thread was idle to take it). */
static bool small_pool;	/* WORKER_THREADS <= ACCEPTORS (set once, before the threads) */

static int
accept_one(int listen_fd, struct job **job)
{
	*job = NULL;
	while (!atomic_load(&stopping)) {
		struct pollfd pfd[2] = { { listen_fd, POLLIN, 0 }, { gate.job_fd, POLLIN, 0 } };
		int ep = small_pool ? accept_ep(listen_fd) : -1, fd;
		bool conn = !small_pool, jobs = false;

		/* A pool larger than its acceptors always has a thread coming back for the jobs: accept()
		 * alone (one wake-up per connection, no other call).  A pool that may be all in accept()
		 * (mod_fcgid's one thread) waits for a job as well. */
		if (!small_pool) {
			;
		} else if (ep >= 0) {
			struct epoll_event ev[2];
			int n = epoll_wait(ep, ev, 2, ACCEPT_TICK_MS);

			for (int i = 0; i < n; i++) {
				conn |= ev[i].data.u32 == 0;
				jobs |= ev[i].data.u32 == 1;
			}
		} else if (poll(pfd, gate.job_fd >= 0 ? 2 : 1, ACCEPT_TICK_MS) > 0) {
			conn = pfd[0].revents != 0;
			jobs = pfd[1].revents != 0;
		}
		if (jobs) {
			pthread_mutex_lock(&gate.mu);
			*job = job_pop();
			pthread_mutex_unlock(&gate.mu);
			if (*job != NULL)
				return -1;
		}
		if (!conn)
			continue;
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0 && !ac_listen_peer_allowed(fd)) {	/* FCGI_ALLOWED_PEERS (listen_tcp.c) */
			close(fd);
			continue;
		}
		if (fd >= 0)
			return fd;
		if (errno == EAGAIN && !small_pool) {
			/* The tick: a job that found no thread free (all of them held by slow requests)
			 * waits no longer than this. */
			pthread_mutex_lock(&gate.mu);
			*job = job_pop();
			pthread_mutex_unlock(&gate.mu);
			if (*job != NULL)
				return -1;
		}
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
 * Whether the connection may simply be closed once the answer is out, instead of libfcgi's lingering
 * close: shutdown, then waiting up to FINISH_GRACE_MS for the web server to close its end, which
 * costs the thread a sleep and a wake-up on every request.  The lingering close keeps the kernel from
 * answering data that comes after the close with a reset, which would make the web server drop the
 * answer.  When the web server does not keep the connection and has sent the whole request (its input
 * ended and nothing is left unread in the socket), nothing more can come: a close sends no reset.  A
 * request that declared no body has its end read here: the web servers send it with the parameters.
 */
static bool
input_finished(struct ac_ctx *c)
{
	int unread = -1;
	char b;

	if (c->fcgi.keepConnection || c->resp.abort || c->fcgi.in == NULL)
		return false;
	if (FCGX_HasSeenEOF(c->fcgi.in) != EOF) {
		if (c->req.content_length > 0 || FCGX_GetParam("HTTP_TRANSFER_ENCODING", c->fcgi.envp) != NULL)
			return false;	/* a body left unread (a 413, say): the lingering close drains it */
		if (ac_io_read(c, &b, 1) != 0)
			return false;
	}
	if (!ac_io_read_complete(c))
		return false;
	return ioctl(c->fcgi.ipcFd, FIONREAD, &unread) == 0 && unread == 0;
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

	if (!ac_watch_open(&t->watch, fd, ac_mono_us() + timeout)) {
		ac_log(AC_LOG_ERROR, "cannot watch a connection: %s", strerror(errno));
		close(fd);
		return;
	}
	c->fcgi.ipcFd = fd;
	for (;;) {
		int rc;

		c->fcgi.keepConnection = 1;
		ac_watch_arm(&t->watch, t->watch.read_deadline, true);
		rc = FCGX_Accept_r(&c->fcgi);
		ac_watch_disarm(&t->watch);
		if (rc < 0)
			break;	/* cut off, malformed or past its deadline: libfcgi has closed it */
		c->envp = c->fcgi.envp;
		handle(c);
		if (c->parked) {
			/* The loop has the connection: only libfcgi's buffers and parameters are freed. */
			FCGX_Free(&c->fcgi, 0);
			c->parked = false;
			ac_log_set_request_id(NULL);
			break;
		}
		/* libfcgi closes without lingering a connection it takes as detached. */
		c->fcgi.detached = input_finished(c);
		ac_watch_arm(&t->watch, ac_mono_us() + FINISH_GRACE_MS * 1000LL, false);
		FCGX_Finish_r(&c->fcgi);
		c->fcgi.detached = 0;
		ac_watch_disarm(&t->watch);
		if (c->fcgi.ipcFd < 0)	/* the watch's copy too: the web server sees the end now, not after the jobs */
			ac_watch_close(&t->watch);
		ac_run_after(c);
		ac_log_set_request_id(NULL);
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
	ac_watch_close(&t->watch);
}

static _Thread_local struct thread *my_thread;

/* A kept connection handed back by the loop: its next request is read here. */
static void
keep_job(struct ac_ctx *c, void *arg)
{
	(void)c;
	serve(my_thread, (int)(intptr_t)arg);
}

void
ac_server_keep(int fd)
{
	/* Not in a lane: reading the next request may wait up to FCGI_READ_TIMEOUT_S. */
	if (!post(keep_job, (void *)(intptr_t)fd, false))
		close(fd);
}

static void
run_job(struct thread *t, struct job *j)
{
	bool lane = j->lane;

	j->fn(&t->ctx, j->arg);
	trim_after(&t->ctx);
	free(j);
	if (lane) {
		pthread_mutex_lock(&gate.mu);
		gate.jobs_running--;
		pthread_mutex_unlock(&gate.mu);
	}
}

static void *
run(void *arg)
{
	struct thread *t = arg;
	struct job *job;

	ac_my_watch = &t->watch;
	my_thread = t;
	for (;;) {
		int fd;
		enum turn turn = gate_enter(t, &job);

		if (turn == T_STOP)
			break;
		if (turn == T_JOB) {
			run_job(t, job);
			continue;
		}
		fd = accept_one(t->listen_fd, &job);
		gate_leave();
		if (job != NULL)
			run_job(t, job);
		else if (fd >= 0)
			serve(t, fd);
	}
	if (my_ep >= 0) {
		close(my_ep);
		my_ep = -1;
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
	ac_loop_drain(deadline);
	do {
		gate_release_all();
		sweep(threads, n);
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
	ac_loop_stop();
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
	struct ac_watch w;
	int status = 1;

	/* No thread to watch: the deadline is only handed to the reads of stdin, which poll with it. */
	ac_watch_init(&w);
	w.read_deadline = ac_mono_us() + (int64_t)cfg->read_timeout_s * 1000000;
	ac_my_watch = &w;
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
	ac_my_watch = NULL;
	pthread_mutex_destroy(&w.mu);
	return status;
}

/* How many chats the loop may hold: what the open-files limit leaves after the pool's own. */
static int
max_parked(const struct ac_config *cfg)
{
	struct rlimit rl;
	long long n = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		n = ((long long)rl.rlim_cur - FDS_RESERVED - (long long)cfg->threads * FDS_PER_THREAD) / FDS_PER_PARKED;
	if (n < 16)
		n = 16;
	if (n > 1000000)
		n = 1000000;
	ac_log(AC_LOG_DEBUG, "the event loop holds at most %lld chats", n);
	return (int)n;
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
	if (cfg->processes == 1)
		ac_metrics_process_add(getpid());	/* else the supervisor registers its workers */
	small_pool = cfg->threads <= ACCEPTORS;
	gate.job_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (gate.job_fd < 0) {
		ac_log(AC_LOG_ERROR, "eventfd: %s", strerror(errno));
		goto out;
	}
	for (i = 0; i < cfg->threads; i++) {
		pthread_cond_init(&threads[i].turn, NULL);
		ac_watch_init(&threads[i].watch);
		threads[i].listen_fd = listen_fd;
		ready = i + 1;	/* ctx_free undoes a half-done ctx_init too */
		if (!ctx_init(&threads[i].ctx, cfg))
			goto out;
	}
	ac_pages_init(cfg->page_cache_bytes);
	if (cfg->event_loop && ac_loop_start(cfg, max_parked(cfg)) != AC_OK)
		goto out;
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
	ac_retention_start(cfg);
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
			sweep(threads, cfg->threads);
		}
		status = 0;
	}
	ac_retention_stop();
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
