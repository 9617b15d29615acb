/*
 * Retention (issue 16, RETENTION_DAYS): a thread in each worker process that, every
 * RETENTION_INTERVAL_S, deletes the chats not updated for RETENTION_DAYS (their messages and
 * idempotency keys with them), in batches, and logs the counts.  One process at a time does it, on
 * every host: a run first takes the database's retention lease (common/repo_ops.c), which holds for
 * one interval; the others find it held and wait for their next turn.  A process that dies holding
 * it leaves it to run out.  With its own database connection, it never holds up a request's.
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/repo_ops.h"
#include "../common/util.h"
#include "retention.h"

#define BATCH 500		/* chats deleted in one transaction */
#define DAY_US (86400LL * 1000000)

static struct {
	const struct ac_config *cfg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	bool running;
	bool stop;
	char holder[128];	/* this process: host:pid */
} ret = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* One run: batches until the old chats are gone, the lease is another's, or the process stops. */
static void
run_once(struct ac_repo *repo)
{
	const struct ac_config *cfg = ret.cfg;
	int64_t now = ac_now_us(), lease = (int64_t)cfg->retention_interval_s * 1000000;
	int64_t cutoff = now - (int64_t)cfg->retention_days * DAY_US, chats = 0, messages = 0;
	bool ran = false, stop;
	enum ac_err err;

	for (;;) {
		int64_t c = 0, m = 0;
		bool held;

		err = ac_repo_retention(repo, ret.holder, ac_now_us(), lease, cutoff, BATCH, !ran, &held, &c, &m);
		if (err != AC_OK) {
			ac_log(AC_LOG_WARN, "retention: %s (%s); trying again in %d s", ac_strerror(err),
			    ac_repo_errmsg(repo), cfg->retention_interval_s);
			break;
		}
		if (!held)
			break;
		ran = true;
		chats += c;
		messages += m;
		pthread_mutex_lock(&ret.mu);
		stop = ret.stop;
		pthread_mutex_unlock(&ret.mu);
		if (c < BATCH || stop)
			break;
	}
	if (ran)
		ac_log(AC_LOG_INFO, "retention: deleted %lld chats and %lld messages not updated for %d days (%s)",
		    (long long)chats, (long long)messages, cfg->retention_days, ret.holder);
}

static void *
retention_thread(void *arg)
{
	struct ac_repo *repo = NULL;
	struct ac_db_conf conf;
	struct timespec at;

	(void)arg;
	ac_config_db(ret.cfg, &conf);
	pthread_mutex_lock(&ret.mu);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_sec += ret.cfg->retention_interval_s;
		while (!ret.stop && pthread_cond_timedwait(&ret.wake, &ret.mu, &at) == 0)
			;
		if (ret.stop)
			break;
		pthread_mutex_unlock(&ret.mu);
		if (repo == NULL && ac_repo_open(&conf, &repo) != AC_OK) {
			ac_log(AC_LOG_WARN, "retention: cannot open the database: %s",
			    repo != NULL ? ac_repo_errmsg(repo) : "out of memory");
			ac_repo_close(repo);
			repo = NULL;
		}
		if (repo != NULL)
			run_once(repo);
		pthread_mutex_lock(&ret.mu);
	}
	pthread_mutex_unlock(&ret.mu);
	ac_repo_close(repo);
	return NULL;
}

void
ac_retention_start(const struct ac_config *cfg)
{
	pthread_condattr_t ca;
	char host[64] = "";

	if (cfg->retention_days <= 0 || ret.running)
		return;
	ret.cfg = cfg;
	ret.stop = false;
	(void)gethostname(host, sizeof(host) - 1);
	snprintf(ret.holder, sizeof(ret.holder), "%s:%ld", host, (long)getpid());
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ret.wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&ret.thread, NULL, retention_thread, NULL) != 0) {
		ac_log(AC_LOG_ERROR, "retention: cannot start its thread: chats are not deleted by age");
		pthread_cond_destroy(&ret.wake);
		return;
	}
	ret.running = true;
}

void
ac_retention_stop(void)
{
	if (!ret.running)
		return;
	pthread_mutex_lock(&ret.mu);
	ret.stop = true;
	pthread_cond_signal(&ret.wake);
	pthread_mutex_unlock(&ret.mu);
	pthread_join(ret.thread, NULL);
	pthread_cond_destroy(&ret.wake);
	ret.running = false;
}
