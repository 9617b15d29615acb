/*
 * A process's PostgreSQL connections (private to common/db_pg*.c).  The threads of a worker share a
 * pool of at most DB_POOL_SIZE connections per database: a thread holds one only while a transaction
 * or a single statement runs, never while it waits for the model, so a few connections serve
 * hundreds of threads.  A connection found broken is closed when it is given back; the next borrow
 * makes a new one, so connections come back by themselves once the server does.
 */
#ifndef AC_DB_PG_POOL_H
#define AC_DB_PG_POOL_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "db.h"

#define AC_PG_ERRMSG 256

/* One server connection. */
struct ac_pgconn {
	PGconn *conn;
	struct ac_pgconn *next;		/* in the pool's idle list */
	bool reused;			/* has waited idle in the pool (it may have gone stale there) */
	const char *prepared[AC_DB_MAX_STMTS];	/* the text each statement number is prepared with */
};

struct ac_pgpool;

/* The pool for conf (shared by every connection of the process to the same database). */
enum ac_err ac_pgpool_get(const struct ac_db_conf *conf, struct ac_pgpool **out, char *msg, size_t msg_size);
void ac_pgpool_put(struct ac_pgpool *p);

/* A connection, made if none is idle and the pool has room; AC_EBUSY when none was free in time. */
enum ac_err ac_pgpool_borrow(struct ac_pgpool *p, struct ac_pgconn **out, char *msg, size_t msg_size);
/* Gives it back: a broken one, or one left inside a transaction, is closed instead. */
void ac_pgpool_give(struct ac_pgpool *p, struct ac_pgconn *c);

/* Settings the pool was made with. */
bool ac_pgpool_pooler(const struct ac_pgpool *p);	/* DB_PREPARED=0: a transaction pooler in between */
/* Behind a pooler, what sets the timeouts in a transaction ("SET LOCAL ..."); else "". */
const char *ac_pgpool_set_local(const struct ac_pgpool *p);

/* Copies a libpq message into msg: its first line, with the connection's password (if any) hidden. */
void ac_pgpool_message(const struct ac_pgpool *p, const char *text, char *msg, size_t msg_size);

#endif
