#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "server.h"
#include "worker.h"

#define WAKE_SIGNAL SIGUSR2
#define STOP_GRACE_SECONDS 60	/* longest wait for requests in flight at shutdown */
#define SCRATCH_KEEP (64 * 1024)	/* per-thread buffers shrink back to this after a large request */
#define THREAD_STACK (512 * 1024)	/* ample for this code, SQLite and libcurl; a thousand threads fit */

#define ACCEPTORS 2	/* threads waiting in accept at once; the others wait their turn, newest first */

struct thread {
	pthread_t id;
	struct ac_ctx ctx;
	atomic_int accepting;	/* in or about to enter FCGX_Accept_r: safe to interrupt */
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
 * the provider.
 */
static struct {
	pthread_mutex_t mu;
	int acceptors;
	struct thread *idle;	/* a stack: the most recently idle on top */
} gate = { PTHREAD_MUTEX_INITIALIZER, 0, NULL };

static atomic_int stopping;

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
on_wake(int sig)
{
	(void)sig;	/* only there to interrupt accept() */
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
	    path.ptr != NULL ? path.ptr : "", c->resp.status, (double)(ac_now_us() - started) / 1000.0,
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
	int64_t started = ac_now_us();

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

static void *
run(void *arg)
{
	struct thread *t = arg;
	struct ac_ctx *c = &t->ctx;

	for (;;) {
		int rc;

		if (!gate_enter(t))
			break;
		atomic_store(&t->accepting, 1);
		if (atomic_load(&stopping)) {
			gate_leave();
			break;
		}
		rc = FCGX_Accept_r(&c->fcgi);
		atomic_store(&t->accepting, 0);
		gate_leave();
		if (rc < 0) {
			if (atomic_load(&stopping))
				break;
			if (errno != EINTR) {
				ac_log(AC_LOG_ERROR, "accept: %s", strerror(errno));
				usleep(10000);
			}
			continue;
		}
		c->envp = c->fcgi.envp;
		handle(c);
		FCGX_Finish_r(&c->fcgi);
		ac_run_after(c);
	}
	atomic_store(&t->accepting, 0);
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
	FCGX_Free(&c->fcgi, 1);
}

/* Wakes the threads idle in accept until every thread has finished; false if some did not in time. */
static bool
stop_threads(struct thread *threads, int n)
{
	time_t deadline = time(NULL) + STOP_GRACE_SECONDS;
	int left;

	atomic_store(&stopping, 1);
	do {
		gate_release_all();
		left = 0;
		for (int i = 0; i < n; i++) {
			if (!threads[i].started || atomic_load(&threads[i].done))
				continue;
			left++;
			if (atomic_load(&threads[i].accepting))
				pthread_kill(threads[i].id, WAKE_SIGNAL);
		}
		if (left > 0)
			usleep(20000);
	} while (left > 0 && time(NULL) < deadline);
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

/* Sets up one thread's context: its database connection and provider client. */
static bool
ctx_init(struct ac_ctx *c, const struct ac_config *cfg, int listen_fd)
{
	struct ac_db_conf db;
	enum ac_err err;

	c->cfg = cfg;
	ac_resp_init(&c->resp);
	ac_buf_init(&c->scratch, AC_TARGET_MAX + 64);
	ac_buf_init(&c->in, cfg->max_body + 2);
	FCGX_InitRequest(&c->fcgi, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR);
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
	int status = 1;

	memset(&c, 0, sizeof(c));
	if (ctx_init(&c, cfg, -1)) {
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
	return status;
}

int
ac_serve(const struct ac_config *cfg, int listen_fd)
{
	struct thread *threads = calloc((size_t)cfg->threads, sizeof(*threads));
	struct sigaction sa;
	pthread_attr_t attr;
	sigset_t stop_set;
	int sig, status = 1, i;

	if (threads == NULL) {
		fprintf(stderr, "ai-chat-fcgi: out of memory\n");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_wake;	/* no SA_RESTART: accept() returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(WAKE_SIGNAL, &sa, NULL);

	for (i = 0; i < cfg->threads; i++) {
		pthread_cond_init(&threads[i].turn, NULL);
		if (!ctx_init(&threads[i].ctx, cfg, listen_fd))
			goto out;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	for (i = 0; i < cfg->threads; i++) {
		if (pthread_create(&threads[i].id, &attr, run, &threads[i]) != 0) {
			fprintf(stderr, "ai-chat-fcgi: cannot start thread %d\n", i);
			break;
		}
		threads[i].started = 1;
	}
	pthread_attr_destroy(&attr);
	if (i == cfg->threads) {
		sigemptyset(&stop_set);
		sigaddset(&stop_set, SIGTERM);
		sigaddset(&stop_set, SIGINT);
		while (sigwait(&stop_set, &sig) != 0)
			;
		status = 0;
	}
	if (!stop_threads(threads, cfg->threads))
		return status;	/* threads still hold their contexts: leave them to exit() */
out:
	for (i = 0; i < cfg->threads; i++)
		ctx_free(&threads[i].ctx);
	free(threads);
	return status;
}
