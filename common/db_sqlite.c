/*
 * The SQLite engine: one connection per struct ac_db, statements prepared once and kept, WAL mode,
 * foreign keys on, durable commits.  Writers of one process take turns on a mutex before they ask
 * SQLite for its lock: a thousand threads polling the file's lock would starve the one holding it.
 *
 * Group commit (WAL mode): a connection runs with synchronous = NORMAL, so its COMMIT writes the WAL
 * without waiting for the disk; a durable write then gives up the locks and waits for a sync of the
 * WAL file that began after its COMMIT returned, before it reports success.  One of the waiting
 * threads syncs for all of them: a burst of concurrent writers shares one fdatasync instead of
 * each holding the lock through its own (which was most of a send's time under load).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db_engine.h"
#include "util.h"

struct lite_stmt {
	struct ac_stmt base;
	struct lite *db;
	sqlite3_stmt *s;
	int param[AC_DB_MAX_PARAMS + 1];	/* $n's index in s, 0 when the text has no $n */
};

struct lite {
	struct ac_db base;
	sqlite3 *db;
	struct lite_stmt *stmt[AC_DB_MAX_STMTS];
	char errmsg[256];
	int64_t busy_timeout_us;
	int64_t busy_since;
	bool writer;		/* holds the process's writer mutex */
	bool wal;		/* the file is in WAL mode: synchronous = NORMAL and group commit */
	bool durable;		/* the open transaction writes and must reach the disk before it ends */
	int64_t changes_at_begin;	/* sqlite3_total_changes64 when it began; -1: sync whatever it did */
	bool lazy;		/* not WAL: an AC_TXN_WRITE_LAZY transaction, synchronous = NORMAL until it ends */
};

static pthread_mutex_t writer = PTHREAD_MUTEX_INITIALIZER;

/* The group commit's state: commits counted, and how many of them a finished sync covers. */
static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_done = PTHREAD_COND_INITIALIZER;
static uint64_t commits_made;		/* durable commits of this process, under sync_mu */
static uint64_t commits_synced;		/* the first this many are on the disk, under sync_mu */
static bool syncing;			/* a thread is syncing the WAL, under sync_mu */
static atomic_uint_fast64_t syncs_done;	/* for tests and figures */

/*
 * Waiting for another process's writer: short sleeps growing from 50 us to 2 ms.  SQLite's own
 * handler sleeps up to 100 ms a time, which with many concurrent writers turns millisecond
 * transactions into waits of tenths of a second.
 */
static int
on_busy(void *arg, int count)
{
	struct lite *l = arg;
	int64_t now = ac_mono_us();

	if (count == 0)
		l->busy_since = now;
	if (now - l->busy_since >= l->busy_timeout_us)
		return 0;
	usleep(count < 6 ? 50u << count : 2000u);
	return 1;
}

static enum ac_err
fail(struct lite *l, int rc)
{
	snprintf(l->errmsg, sizeof(l->errmsg), "%s", l->db != NULL ? sqlite3_errmsg(l->db) : sqlite3_errstr(rc));
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return AC_EBUSY;
	case SQLITE_NOMEM:
		return AC_ENOMEM;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			return AC_ENOTFOUND;
		if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return AC_ECONFLICT;
		return AC_EDB;
	default:
		return AC_EDB;
	}
}

/* Whether the file is in WAL mode (a new file is not until its first migration sets it). */
static bool
journal_is_wal(struct lite *l)
{
	sqlite3_stmt *s = NULL;
	bool wal = false;

	if (sqlite3_prepare_v2(l->db, "PRAGMA journal_mode", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		const char *mode = (const char *)sqlite3_column_text(s, 0);

		wal = mode != NULL && strcmp(mode, "wal") == 0;
	}
	sqlite3_finalize(s);
	return wal;
}

/* WAL mode: commits do not wait for the disk, wait_synced does (group commit).  Otherwise every
 * commit waits for the disk itself (FULL). */
static enum ac_err
set_wal(struct lite *l, bool wal)
{
	l->wal = wal;
	if (sqlite3_exec(l->db, wal ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL", NULL, NULL,
	    NULL) != SQLITE_OK)
		return fail(l, sqlite3_errcode(l->db));
	return AC_OK;
}

/* This connection's handle on the WAL file, synced: fdatasync covers what every connection wrote. */
static enum ac_err
sync_wal(struct lite *l)
{
	sqlite3_file *f = NULL;
	int rc = sqlite3_file_control(l->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f);

	if (rc == SQLITE_OK && (f == NULL || f->pMethods == NULL))
		rc = SQLITE_MISUSE;	/* no WAL open: cannot happen after a commit in WAL mode */
	if (rc == SQLITE_OK)
		rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
	if (rc != SQLITE_OK) {
		snprintf(l->errmsg, sizeof(l->errmsg), "sync of the write-ahead log: %s", sqlite3_errstr(rc));
		return AC_EDB;
	}
	atomic_fetch_add(&syncs_done, 1);
	return AC_OK;
}

/*
 * After a durable COMMIT (counted as commit number seq, once it had returned): returns when a sync
 * that began after it has finished.  The first waiter to find no sync running does it, for every
 * commit counted by then; the others sleep until one covers them.  A failed sync is the failing
 * waiter's error; those it would have covered try again themselves.
 */
static enum ac_err
wait_synced(struct lite *l, uint64_t seq)
{
	enum ac_err err = AC_OK;

	pthread_mutex_lock(&sync_mu);
	while (commits_synced < seq) {
		uint64_t upto;

		if (syncing) {
			pthread_cond_wait(&sync_done, &sync_mu);
			continue;
		}
		syncing = true;
		upto = commits_made;
		pthread_mutex_unlock(&sync_mu);
		err = sync_wal(l);
		pthread_mutex_lock(&sync_mu);
		syncing = false;
		if (err == AC_OK && upto > commits_synced)
			commits_synced = upto;
		pthread_cond_broadcast(&sync_done);
		if (err != AC_OK)
			break;
	}
	pthread_mutex_unlock(&sync_mu);
	return err;
}

uint64_t
ac_db_sqlite_syncs(void)
{
	return atomic_load(&syncs_done);
}

static enum ac_err
configure(struct lite *l, int busy_timeout_ms)
{
	/* The busy handler first: even the first PRAGMA may meet another process's lock (a CGI process
	 * opening the file while the one before it checkpoints on its way out). */
	l->busy_timeout_us = (int64_t)busy_timeout_ms * 1000;
	sqlite3_busy_handler(l->db, on_busy, l);
	sqlite3_extended_result_codes(l->db, 1);
	/* Foreign keys are per connection (cascade delete needs them); a small page cache each, as there
	 * is a connection per thread. */
	if (sqlite3_exec(l->db, "PRAGMA foreign_keys = ON; PRAGMA cache_size = -1024;", NULL, NULL, NULL) != SQLITE_OK)
		return fail(l, sqlite3_errcode(l->db));
	return set_wal(l, journal_is_wal(l));
}

static void
lite_close(struct ac_db *d)
{
	struct lite *l = (struct lite *)d;

	for (int i = 0; i < AC_DB_MAX_STMTS; i++) {
		if (l->stmt[i] != NULL) {
			sqlite3_finalize(l->stmt[i]->s);
			free(l->stmt[i]);
		}
	}
	sqlite3_close(l->db);
	if (l->writer)
		pthread_mutex_unlock(&writer);
	free(l);
}

static enum ac_err
lite_open(const struct ac_db_conf *conf, struct ac_db **out)
{
	struct lite *l = calloc(1, sizeof(*l));
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;	/* a connection belongs to one thread */
	enum ac_err err;

	*out = NULL;
	if (l == NULL)
		return AC_ENOMEM;
	l->base.ops = &ac_db_sqlite_ops;
	if (conf->create)
		flags |= SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(conf->target, &l->db, flags, NULL) != SQLITE_OK) {
		snprintf(l->errmsg, sizeof(l->errmsg), "%s: %s", conf->target,
		    l->db != NULL ? sqlite3_errmsg(l->db) : "out of memory");
		err = AC_EDB;
		goto fail;
	}
	if ((err = configure(l, conf->busy_timeout_ms)) != AC_OK)
		goto fail;
	*out = &l->base;
	return AC_OK;
fail:
	*out = &l->base;	/* for its errmsg; the caller closes it */
	return err;
}

static const char *
lite_errmsg(const struct ac_db *d)
{
	const struct lite *l = (const struct lite *)d;

	return l->errmsg[0] != '\0' ? l->errmsg : "unknown error";
}

static enum ac_err
lite_stmt(struct ac_db *d, int id, const struct ac_sql *sql, struct ac_stmt **out)
{
	struct lite *l = (struct lite *)d;
	struct lite_stmt *ls = l->stmt[id];
	int rc;

	*out = NULL;
	if (ls == NULL) {
		ls = calloc(1, sizeof(*ls));
		if (ls == NULL)
			return AC_ENOMEM;
		rc = sqlite3_prepare_v3(l->db, sql->sqlite, -1, SQLITE_PREPARE_PERSISTENT, &ls->s, NULL);
		if (rc != SQLITE_OK) {
			free(ls);
			return fail(l, rc);
		}
		ls->base.ops = &ac_db_sqlite_ops;
		ls->db = l;
		/* $n names a parameter in SQLite: find where each one is. */
		for (int n = 1; n <= AC_DB_MAX_PARAMS; n++) {
			char name[8];

			snprintf(name, sizeof(name), "$%d", n);
			ls->param[n] = sqlite3_bind_parameter_index(ls->s, name);
		}
		l->stmt[id] = ls;
	}
	*out = &ls->base;
	return AC_OK;
}

static int
param(struct lite_stmt *ls, int n)
{
	return n >= 1 && n <= AC_DB_MAX_PARAMS ? ls->param[n] : 0;
}

static void
lite_bind_int(struct ac_stmt *s, int n, int64_t v)
{
	struct lite_stmt *ls = (struct lite_stmt *)s;

	sqlite3_bind_int64(ls->s, param(ls, n), v);
}

static void
lite_bind_null(struct ac_stmt *s, int n)
{
	struct lite_stmt *ls = (struct lite_stmt *)s;

	sqlite3_bind_null(ls->s, param(ls, n));
}

static void
lite_bind_str(struct ac_stmt *s, int n, struct ac_str v)
{
	struct lite_stmt *ls = (struct lite_stmt *)s;

	if (v.ptr == NULL)
		sqlite3_bind_null(ls->s, param(ls, n));
	else
		sqlite3_bind_text64(ls->s, param(ls, n), v.ptr, v.len, SQLITE_STATIC, SQLITE_UTF8);
}

static enum ac_err
lite_step(struct ac_stmt *s, bool *row)
{
	struct lite_stmt *ls = (struct lite_stmt *)s;
	int rc = sqlite3_step(ls->s);

	*row = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return AC_OK;
	return fail(ls->db, rc);
}

static int64_t
lite_col_int(struct ac_stmt *s, int i)
{
	return sqlite3_column_int64(((struct lite_stmt *)s)->s, i);
}

static struct ac_str
lite_col_str(struct ac_stmt *s, int i)
{
	sqlite3_stmt *st = ((struct lite_stmt *)s)->s;
	struct ac_str v = { NULL, 0 };

	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return v;
	v.ptr = (const char *)sqlite3_column_text(st, i);
	v.len = (size_t)sqlite3_column_bytes(st, i);
	if (v.ptr == NULL)
		v.ptr = "";
	return v;
}

static bool
lite_col_null(struct ac_stmt *s, int i)
{
	return sqlite3_column_type(((struct lite_stmt *)s)->s, i) == SQLITE_NULL;
}

static int64_t
lite_changes(struct ac_stmt *s)
{
	return sqlite3_changes64(((struct lite_stmt *)s)->db->db);
}

static void
lite_done(struct ac_stmt *s)
{
	struct lite_stmt *ls = (struct lite_stmt *)s;

	sqlite3_reset(ls->s);
	sqlite3_clear_bindings(ls->s);
}

/* The process's writer mutex, waited for at most the busy timeout (on the monotonic clock). */
static enum ac_err
writer_lock(struct lite *l)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)(l->busy_timeout_us / 1000000);
	until.tv_nsec += (long)(l->busy_timeout_us % 1000000) * 1000;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	if (pthread_mutex_clocklock(&writer, CLOCK_MONOTONIC, &until) != 0) {
		snprintf(l->errmsg, sizeof(l->errmsg), "database is locked");
		return AC_EBUSY;
	}
	l->writer = true;
	return AC_OK;
}

static void
writer_unlock(struct lite *l)
{
	if (l->writer) {
		l->writer = false;
		pthread_mutex_unlock(&writer);
	}
}

static enum ac_err
exec(struct lite *l, const char *sql)
{
	int rc = sqlite3_exec(l->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? AC_OK : fail(l, rc);
}

/* After an AC_TXN_WRITE_LAZY transaction: commits wait for the disk again (should the PRAGMA fail,
 * the next transaction's end tries again). */
static void
lazy_end(struct lite *l)
{
	if (!l->lazy)
		return;
	l->lazy = false;
	if (sqlite3_exec(l->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL) != SQLITE_OK)
		l->lazy = true;
}

static enum ac_err
lite_begin(struct ac_db *d, enum ac_db_txn mode)
{
	struct lite *l = (struct lite *)d;
	enum ac_err err;

	if (mode == AC_TXN_READ)
		return exec(l, "BEGIN");
	if ((err = writer_lock(l)) != AC_OK)
		return err;
	l->durable = mode == AC_TXN_WRITE;
	l->changes_at_begin = sqlite3_total_changes64(l->db);
	if (mode == AC_TXN_WRITE_LAZY && !l->wal) {
		/* Set outside the transaction, for its commit; back to FULL when it ends (lazy_end). */
		if ((err = exec(l, "PRAGMA synchronous = NORMAL")) != AC_OK) {
			writer_unlock(l);
			return err;
		}
		l->lazy = true;
	}
	if ((err = exec(l, "BEGIN IMMEDIATE")) != AC_OK) {
		lazy_end(l);
		writer_unlock(l);
	}
	return err;
}

static void
lite_rollback(struct ac_db *d)
{
	struct lite *l = (struct lite *)d;

	if (!sqlite3_get_autocommit(l->db))
		(void)sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
	l->durable = false;
	lazy_end(l);
	writer_unlock(l);
}

static enum ac_err
lite_commit(struct ac_db *d)
{
	struct lite *l = (struct lite *)d;
	enum ac_err err = exec(l, "COMMIT");
	/* Group commit for a durable transaction that changed something (in WAL mode). */
	bool wait = err == AC_OK && l->wal && l->durable &&
	    (l->changes_at_begin < 0 || sqlite3_total_changes64(l->db) != l->changes_at_begin);
	uint64_t seq = 0;

	if (err != AC_OK)
		lite_rollback(d);
	l->durable = false;
	lazy_end(l);
	writer_unlock(l);
	if (!wait)
		return err;
	pthread_mutex_lock(&sync_mu);
	seq = ++commits_made;
	pthread_mutex_unlock(&sync_mu);
	return wait_synced(l, seq);
}

static bool
lite_in_txn(const struct ac_db *d)
{
	return !sqlite3_get_autocommit(((const struct lite *)d)->db);
}

static enum ac_err
lite_schema_begin(struct ac_db *d)
{
	struct lite *l = (struct lite *)d;
	enum ac_err err;

	/* WAL lets readers go on while one process writes; it cannot be set inside a transaction. */
	if ((err = exec(l, "PRAGMA journal_mode = WAL")) != AC_OK)
		return err;
	if ((err = set_wal(l, journal_is_wal(l))) != AC_OK)
		return err;
	l->durable = true;
	l->changes_at_begin = -1;	/* a migration's DDL changes no rows: its commit syncs anyway */
	return exec(l, "BEGIN IMMEDIATE");
}

static enum ac_err
lite_schema_version(struct ac_db *d, int *version)
{
	struct lite *l = (struct lite *)d;
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(l->db, "PRAGMA user_version", -1, &s, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
		*version = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? AC_OK : fail(l, rc);
}

static enum ac_err
lite_schema_set_version(struct ac_db *d, int version)
{
	char pragma[64];

	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version);
	return exec((struct lite *)d, pragma);
}

static void
lite_trim(struct ac_db *d)
{
	(void)sqlite3_db_release_memory(((struct lite *)d)->db);
}

static enum ac_err
lite_exec_script(struct ac_db *d, const char *sql)
{
	return exec((struct lite *)d, sql);
}

const struct ac_db_ops ac_db_sqlite_ops = {
	.kind = AC_DB_SQLITE,
	.open = lite_open,
	.close = lite_close,
	.errmsg = lite_errmsg,
	.stmt = lite_stmt,
	.bind_int = lite_bind_int,
	.bind_str = lite_bind_str,
	.bind_null = lite_bind_null,
	.step = lite_step,
	.col_int = lite_col_int,
	.col_str = lite_col_str,
	.col_null = lite_col_null,
	.changes = lite_changes,
	.done = lite_done,
	.begin = lite_begin,
	.commit = lite_commit,
	.rollback = lite_rollback,
	.in_txn = lite_in_txn,
	.trim = lite_trim,
	.schema_begin = lite_schema_begin,
	.schema_version = lite_schema_version,
	.schema_set_version = lite_schema_set_version,
	.exec_script = lite_exec_script,
};
