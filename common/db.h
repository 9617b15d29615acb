/*
 * The storage engine under the repository: a connection, its statements and its transactions.
 * Two engines implement it, SQLite (db_sqlite.c) and PostgreSQL (db_pg.c); the repository (repo*.c)
 * is written once over it and never names an engine's types.
 *
 * Statements: the repository numbers its statements (0 .. AC_DB_MAX_STMTS-1) and gives the text
 * with each use; a connection prepares a statement on its first use and keeps it.  Parameters are
 * $1 .. $n in the text of both engines.  Where the dialects differ, struct ac_sql holds both texts
 * side by side.
 *
 * A statement is used like this: ac_db_stmt, ac_db_bind_* for every parameter, ac_db_step until it
 * says no row (reading columns while it says one), then ac_db_done, which resets it (bindings and
 * results gone) on every path, errors included.  Strings read from a row are valid until the next
 * step or done.
 *
 * Errors are enum ac_err: AC_EBUSY (locked past the busy timeout, a serialization failure, the
 * statement timeout: worth retrying soon), AC_ECONFLICT (a unique key taken), AC_ENOTFOUND (a
 * foreign key that names no row), AC_ENOMEM, AC_EDB (anything else, the connection lost included);
 * ac_db_errmsg then says what happened in the engine's words (never with a password).
 *
 * A struct ac_db is one connection: one thread uses it at a time.
 */
#ifndef AC_DB_H
#define AC_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define AC_DB_MAX_STMTS 288
#define AC_DB_MAX_PARAMS 16

enum ac_db_kind {
	AC_DB_SQLITE,
	AC_DB_PG,
};

/* Where the database is and how to use it (from DATABASE_URL and the DB_* settings). */
struct ac_db_conf {
	enum ac_db_kind kind;
	const char *target;		/* SQLite: the file's path; PostgreSQL: a libpq connection string */
	int busy_timeout_ms;		/* DB_BUSY_TIMEOUT_MS: longest wait for a lock */
	int statement_timeout_ms;	/* DB_STATEMENT_TIMEOUT_MS (PostgreSQL; 0: none) */
	bool prepared;			/* DB_PREPARED: named prepared statements (PostgreSQL) */
	int pool_size;			/* DB_POOL_SIZE: a process's connections (PostgreSQL; 0: 10) */
	bool create;			/* SQLite: make the file when it is missing (migrations do) */
};

/* One statement's text: pg NULL when PostgreSQL takes the SQLite text as it is. */
struct ac_sql {
	const char *sqlite;
	const char *pg;
};

enum ac_db_txn {
	AC_TXN_READ,		/* one consistent snapshot for several reads */
	AC_TXN_WRITE,		/* writes: SQLite takes its write lock at once (BEGIN IMMEDIATE); the
				 * commit returns once the write is on the disk */
	/* Writes whose loss in a power cut (not a crash of the process) costs nothing, such as counters:
	 * the commit does not wait for the disk (SQLite in WAL mode: not for the group commit's sync of
	 * the log; PostgreSQL: synchronous_commit off for it).  Otherwise as AC_TXN_WRITE. */
	AC_TXN_WRITE_LAZY,
};

struct ac_db;
struct ac_stmt;

/* Connects.  *out is set even on failure (for ac_db_errmsg): close it either way. */
enum ac_err ac_db_open(const struct ac_db_conf *conf, struct ac_db **out);
void ac_db_close(struct ac_db *db);
enum ac_db_kind ac_db_kind(const struct ac_db *db);

/* The engine's words for the last failure (never NULL, never a password). */
const char *ac_db_errmsg(const struct ac_db *db);

/* Statement id's statement (prepared on first use), ready to bind. */
enum ac_err ac_db_stmt(struct ac_db *db, int id, const struct ac_sql *sql, struct ac_stmt **out);
void ac_db_bind_int(struct ac_stmt *s, int n, int64_t v);
/* v.ptr NULL binds NULL; the bytes must stay valid until ac_db_done. */
void ac_db_bind_str(struct ac_stmt *s, int n, struct ac_str v);
void ac_db_bind_null(struct ac_stmt *s, int n);

/* Runs the statement (on the first call) and moves to its next row: *row false at the end. */
enum ac_err ac_db_step(struct ac_stmt *s, bool *row);
int64_t ac_db_col_int(struct ac_stmt *s, int i);
/* ptr NULL for SQL NULL. */
struct ac_str ac_db_col_str(struct ac_stmt *s, int i);
bool ac_db_col_null(struct ac_stmt *s, int i);
/* Rows the statement inserted, changed or deleted (after it has run). */
int64_t ac_db_changes(struct ac_stmt *s);
/* Resets the statement for its next use. */
void ac_db_done(struct ac_stmt *s);

/*
 * Transactions.  Every write runs inside one (AC_TXN_WRITE); ac_db_rollback is safe to call when
 * none is open.  SQLite: the writers of one process take turns before SQLite's own lock.
 */
enum ac_err ac_db_begin(struct ac_db *db, enum ac_db_txn mode);
enum ac_err ac_db_commit(struct ac_db *db);
void ac_db_rollback(struct ac_db *db);
bool ac_db_in_txn(const struct ac_db *db);
/* SQLite in WAL mode: syncs of the write-ahead log this process has made.  Concurrent durable commits
 * share one (group commit), so under load this grows slower than the commits. */
uint64_t ac_db_sqlite_syncs(void);
/* After a large request: the connection gives back the cache it grew for it (SQLite's page cache,
 * the search index's buffers); other engines keep nothing of the kind. */
void ac_db_trim(struct ac_db *db);

/* ---- schema ---- */

/* A migration script of sql/<engine>/NNN_name.sql, compiled in (build/migrations.c). */
struct ac_migration {
	int version;
	const char *name;
	const char *sql;
};

/* The engine's migrations, in order. */
const struct ac_migration *ac_db_migrations(enum ac_db_kind kind, size_t *count);

/*
 * Brings the database to the newest schema: in one transaction, holding a lock that keeps other
 * processes and hosts that start at once from migrating too.  msg says what failed (no password).
 */
enum ac_err ac_db_migrate(const struct ac_db_conf *conf, char *msg, size_t msg_size);

#endif
