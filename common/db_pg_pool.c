/* A process's PostgreSQL connections: see db_pg_pool.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db_pg_pool.h"

#define CONNECT_TIMEOUT_S "10"	/* libpq's connect_timeout unless the connection string sets one */
#define DEFAULT_POOL_SIZE 10

struct ac_pgpool {
	struct ac_pgpool *next;		/* in the process's list of pools */
	int refs;			/* struct ac_db connections using it */
	char *conninfo;
	char *password;			/* from the connection string, to keep it out of messages */
	bool pooler;
	int statement_timeout_ms;
	int size;
	int wait_ms;
	char set_local[128];		/* the timeouts for one transaction (pooler), or "" */
	int total;			/* connections open or being made */
	struct ac_pgconn *idle;
	pthread_mutex_t lock;
	pthread_cond_t freed;
};

/* Every pool of the process, one per database and settings; guarded by pools_lock. */
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ac_pgpool *pools;

static void
no_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

void
ac_pgpool_message(const struct ac_pgpool *p, const char *text, char *msg, size_t msg_size)
{
	size_t n = strcspn(text, "\n"), used = 0, plen;
	const char *from = text, *at;

	/* libpq's messages do not quote passwords, but a hostile server's could. */
	plen = p != NULL && p->password != NULL ? strlen(p->password) : 0;
	msg[0] = '\0';
	while (used + 1 < msg_size && from < text + n) {
		at = plen > 0 ? memmem(from, (size_t)(text + n - from), p->password, plen) : NULL;
		if (at == NULL)
			at = text + n;
		used += (size_t)snprintf(msg + used, msg_size - used, "%.*s%s", (int)(at - from), from,
		    at < text + n ? "***" : "");
		from = at < text + n ? at + plen : at;
	}
}

static bool
same_settings(const struct ac_pgpool *p, const struct ac_db_conf *conf)
{
	return strcmp(p->conninfo, conf->target) == 0 && p->pooler == !conf->prepared &&
	    p->statement_timeout_ms == conf->statement_timeout_ms && p->wait_ms == conf->busy_timeout_ms;
}

static enum ac_err
pool_new(const struct ac_db_conf *conf, struct ac_pgpool **out, char *msg, size_t msg_size)
{
	struct ac_pgpool *p = calloc(1, sizeof(*p));
	PQconninfoOption *opts;
	char *perr = NULL;
	pthread_condattr_t ca;

	*out = NULL;
	if (p == NULL)
		return AC_ENOMEM;
	opts = PQconninfoParse(conf->target, &perr);
	if (opts == NULL) {
		ac_pgpool_message(NULL, perr != NULL ? perr : "out of memory", msg, msg_size);
		PQfreemem(perr);
		free(p);
		return perr != NULL ? AC_EINVAL : AC_ENOMEM;
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL)
			p->password = strdup(o->val);
	}
	PQconninfoFree(opts);
	p->conninfo = strdup(conf->target);
	if (p->conninfo == NULL) {
		free(p->password);
		free(p);
		return AC_ENOMEM;
	}
	p->pooler = !conf->prepared;
	p->statement_timeout_ms = conf->statement_timeout_ms;
	p->size = conf->pool_size > 0 ? conf->pool_size : DEFAULT_POOL_SIZE;
	p->wait_ms = conf->busy_timeout_ms;
	if (p->pooler)
		snprintf(p->set_local, sizeof(p->set_local), "SET LOCAL statement_timeout = %d; "
		    "SET LOCAL lock_timeout = %d", p->statement_timeout_ms, p->wait_ms);
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->freed, &ca);
	pthread_condattr_destroy(&ca);
	*out = p;
	return AC_OK;
}

enum ac_err
ac_pgpool_get(const struct ac_db_conf *conf, struct ac_pgpool **out, char *msg, size_t msg_size)
{
	struct ac_pgpool *p;
	enum ac_err err = AC_OK;

	pthread_mutex_lock(&pools_lock);
	for (p = pools; p != NULL && !same_settings(p, conf); p = p->next)
		;
	if (p == NULL && (err = pool_new(conf, &p, msg, msg_size)) == AC_OK) {
		p->next = pools;
		pools = p;
	}
	if (p != NULL)
		p->refs++;
	pthread_mutex_unlock(&pools_lock);
	*out = p;
	return err;
}

static void
conn_close(struct ac_pgconn *c)
{
	PQfinish(c->conn);
	free(c);
}

void
ac_pgpool_put(struct ac_pgpool *p)
{
	struct ac_pgpool **at;

	if (p == NULL)
		return;
	pthread_mutex_lock(&pools_lock);
	if (--p->refs > 0) {
		pthread_mutex_unlock(&pools_lock);
		return;
	}
	for (at = &pools; *at != NULL && *at != p; at = &(*at)->next)
		;
	if (*at != NULL)
		*at = p->next;
	pthread_mutex_unlock(&pools_lock);
	/* The last user is gone: so is every connection (none is borrowed any more). */
	while (p->idle != NULL) {
		struct ac_pgconn *c = p->idle;

		p->idle = c->next;
		conn_close(c);
	}
	pthread_cond_destroy(&p->freed);
	pthread_mutex_destroy(&p->lock);
	free(p->conninfo);
	free(p->password);
	free(p);
}

bool
ac_pgpool_pooler(const struct ac_pgpool *p)
{
	return p->pooler;
}

const char *
ac_pgpool_set_local(const struct ac_pgpool *p)
{
	return p->set_local;
}

/*
 * A new connection.  Ours come first among the keywords so that the connection string (expanded from
 * dbname, processed last) overrides them.  Straight to the server, the timeouts (DB_STATEMENT_TIMEOUT_MS
 * for a statement, DB_BUSY_TIMEOUT_MS for a lock) are set once for the session; behind a transaction
 * pooler there is no session, and each transaction sets them (set_local).
 */
static enum ac_err
connect_one(struct ac_pgpool *p, struct ac_pgconn **out, char *msg, size_t msg_size)
{
	static const char *const keys[] = { "connect_timeout", "application_name", "client_encoding", "dbname",
		NULL };
	const char *values[] = { CONNECT_TIMEOUT_S, "ai-chat-fcgi", "UTF8", p->conninfo, NULL };
	struct ac_pgconn *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (c == NULL)
		return AC_ENOMEM;
	c->conn = PQconnectdbParams(keys, values, 1);
	if (c->conn == NULL) {
		free(c);
		return AC_ENOMEM;
	}
	if (PQstatus(c->conn) != CONNECTION_OK)
		goto fail;
	PQsetNoticeProcessor(c->conn, no_notices, NULL);
	if (!p->pooler) {
		char set[160];
		PGresult *r;
		bool ok;

		/* Our statements are short lookups by key, whose generic plan is the right one: planned
		 * once per connection, not at every execution (a page of messages: 0.55 ms, not 1.3). */
		snprintf(set, sizeof(set), "SET statement_timeout = %d; SET lock_timeout = %d; "
		    "SET plan_cache_mode = force_generic_plan", p->statement_timeout_ms, p->wait_ms);
		r = PQexec(c->conn, set);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (!ok)
			goto fail;
	}
	*out = c;
	return AC_OK;
fail:
	ac_pgpool_message(p, PQerrorMessage(c->conn), msg, msg_size);
	conn_close(c);
	return AC_EDB;
}

/* Where a wait of ms milliseconds from now ends, on the monotonic clock. */
static struct timespec
deadline(int ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

enum ac_err
ac_pgpool_borrow(struct ac_pgpool *p, struct ac_pgconn **out, char *msg, size_t msg_size)
{
	struct timespec until = deadline(p->wait_ms);
	enum ac_err err;

	*out = NULL;
	pthread_mutex_lock(&p->lock);
	while (p->idle == NULL && p->total >= p->size) {
		if (pthread_cond_timedwait(&p->freed, &p->lock, &until) == ETIMEDOUT && p->idle == NULL &&
		    p->total >= p->size) {
			pthread_mutex_unlock(&p->lock);
			snprintf(msg, msg_size, "no database connection was free within %d ms (DB_POOL_SIZE=%d)",
			    p->wait_ms, p->size);
			return AC_EBUSY;
		}
	}
	if (p->idle != NULL) {
		*out = p->idle;
		p->idle = (*out)->next;
		pthread_mutex_unlock(&p->lock);
		(*out)->next = NULL;
		return AC_OK;
	}
	p->total++;		/* a place kept while connecting, outside the lock */
	pthread_mutex_unlock(&p->lock);
	err = connect_one(p, out, msg, msg_size);
	if (err != AC_OK) {
		pthread_mutex_lock(&p->lock);
		p->total--;
		pthread_cond_signal(&p->freed);
		pthread_mutex_unlock(&p->lock);
	}
	return err;
}

void
ac_pgpool_give(struct ac_pgpool *p, struct ac_pgconn *c)
{
	bool keep;

	if (c == NULL)
		return;
	keep = PQstatus(c->conn) == CONNECTION_OK && PQtransactionStatus(c->conn) == PQTRANS_IDLE;
	if (!keep)
		conn_close(c);
	pthread_mutex_lock(&p->lock);
	if (keep) {
		c->reused = true;
		c->next = p->idle;
		p->idle = c;
	} else {
		p->total--;
	}
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->lock);
}
