/*
 * The PostgreSQL engine (libpq).  A struct ac_db borrows a connection of the process's pool
 * (db_pg_pool.c) for each transaction, or for one statement outside a transaction, and gives it back
 * at once; so a thread waiting for the model holds none.
 *
 * Statements: with DB_PREPARED=1 each is prepared once per server connection (named "ac_<id>");
 * with DB_PREPARED=0 (a transaction pooler such as PgBouncer in between) every statement goes with
 * PQexecParams, the unnamed statement, and nothing is kept in the session.
 *
 * Strings go in binary format and results come back in binary format: a string is its bytes, with
 * its length, both ways.  The tables keep user text (ids, titles, contents, keys) as bytea, so NUL
 * bytes round-trip exactly as in SQLite, and the server infers each parameter's type from the column
 * it meets, which lets most statements be one text for both engines.
 *
 * Timeouts (DB_STATEMENT_TIMEOUT_MS as statement_timeout, DB_BUSY_TIMEOUT_MS as lock_timeout):
 * straight to the server, set once per session; behind a pooler, SET LOCAL in every transaction (a
 * statement outside one is wrapped in a transaction of its own).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db_engine.h"
#include "db_pg_pool.h"

/* Type oids (pg_type.h) of the columns read as integers. */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23

#define SCHEMA_LOCK_KEY "7089068753353418093"	/* pg_advisory_xact_lock's key for migrations */

struct pg_stmt {
	struct ac_stmt base;
	struct pg *db;
	int id;
	const char *sql;
	bool read_only;		/* a SELECT: safe to send again on a new connection */
	int nparams;		/* the highest $n of the text */
	const char *values[AC_DB_MAX_PARAMS];
	int lengths[AC_DB_MAX_PARAMS];
	int formats[AC_DB_MAX_PARAMS];
	char ints[AC_DB_MAX_PARAMS][24];
	PGresult *res;
	int row;		/* the current row; -1 before the first step */
};

struct pg {
	struct ac_db base;
	struct ac_pgpool *pool;
	struct ac_pgconn *c;	/* borrowed: inside a transaction, or while one statement runs */
	bool txn;
	struct pg_stmt *stmt[AC_DB_MAX_STMTS];
	char errmsg[AC_PG_ERRMSG];
};

/* The engine's error for a failed result (res may be NULL), its message in p->errmsg. */
static enum ac_err
fail(struct pg *p, const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *text = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (text == NULL)
		text = p->c != NULL ? PQerrorMessage(p->c->conn) : "no connection";
	ac_pgpool_message(p->pool, text[0] != '\0' ? text : "unknown error", p->errmsg, sizeof(p->errmsg));
	if (p->c == NULL || PQstatus(p->c->conn) != CONNECTION_OK || state == NULL)
		return res == NULL && p->c != NULL && PQstatus(p->c->conn) == CONNECTION_OK ? AC_ENOMEM : AC_EDB;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "57014") == 0 ||
	    strcmp(state, "55P03") == 0)
		return AC_EBUSY;	/* serialization failure, deadlock, statement timeout, lock timeout */
	if (strcmp(state, "23505") == 0)
		return AC_ECONFLICT;
	if (strcmp(state, "23503") == 0)
		return AC_ENOTFOUND;
	if (strcmp(state, "53200") == 0)
		return AC_ENOMEM;
	return AC_EDB;		/* class 08 (connection), 57P01 (shut down), 53300 (too many), ... */
}

static bool
result_ok(const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);

	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* A connection that waited in the pool and turns out dead: worth one more try on a new one. */
static bool
stale(const struct pg *p, bool first)
{
	return first && p->c != NULL && p->c->reused && PQstatus(p->c->conn) != CONNECTION_OK;
}

static enum ac_err
borrow(struct pg *p)
{
	return ac_pgpool_borrow(p->pool, &p->c, p->errmsg, sizeof(p->errmsg));
}

static void
give_back(struct pg *p)
{
	ac_pgpool_give(p->pool, p->c);
	p->c = NULL;
	p->txn = false;
}

/* Runs a statement without parameters on the borrowed connection. */
static enum ac_err
simple(struct pg *p, const char *sql)
{
	PGresult *r = PQexec(p->c->conn, sql);
	enum ac_err err = result_ok(r) ? AC_OK : fail(p, r);

	PQclear(r);
	return err;
}

/* BEGIN (and the statement timeout behind a pooler) on the borrowed connection, in one round trip. */
static enum ac_err
begin_on(struct pg *p, const char *begin)
{
	const char *set = ac_pgpool_set_local(p->pool);
	char sql[256];

	snprintf(sql, sizeof(sql), "%s%s%s", begin, set[0] != '\0' ? "; " : "", set);
	return simple(p, sql);
}

/* Borrows a connection and begins a transaction on it, once more on a new connection if it was stale. */
static enum ac_err
begin_txn(struct pg *p, const char *begin)
{
	enum ac_err err;

	for (int attempt = 0;; attempt++) {
		if ((err = borrow(p)) != AC_OK)
			return err;
		if ((err = begin_on(p, begin)) == AC_OK) {
			p->txn = true;
			return AC_OK;
		}
		if (!stale(p, attempt == 0)) {
			give_back(p);
			return err;
		}
		give_back(p);
	}
}

static enum ac_err
pg_open(const struct ac_db_conf *conf, struct ac_db **out)
{
	struct pg *p = calloc(1, sizeof(*p));
	enum ac_err err;

	*out = NULL;
	if (p == NULL)
		return AC_ENOMEM;
	p->base.ops = &ac_db_pg_ops;
	*out = &p->base;	/* even on failure, for its errmsg */
	/* Connections are made on first use: a worker starts while the server is away, and recovers. */
	err = ac_pgpool_get(conf, &p->pool, p->errmsg, sizeof(p->errmsg));
	return err;
}

static void
pg_rollback(struct ac_db *d)
{
	struct pg *p = (struct pg *)d;

	if (p->c == NULL)
		return;
	if (PQstatus(p->c->conn) == CONNECTION_OK && PQtransactionStatus(p->c->conn) != PQTRANS_IDLE) {
		PGresult *r = PQexec(p->c->conn, "ROLLBACK");

		PQclear(r);
	}
	give_back(p);
}

static void
pg_close(struct ac_db *d)
{
	struct pg *p = (struct pg *)d;

	pg_rollback(d);
	for (int i = 0; i < AC_DB_MAX_STMTS; i++) {
		if (p->stmt[i] != NULL) {
			PQclear(p->stmt[i]->res);
			free(p->stmt[i]);
		}
	}
	ac_pgpool_put(p->pool);
	free(p);
}

static const char *
pg_errmsg(const struct ac_db *d)
{
	const struct pg *p = (const struct pg *)d;

	return p->errmsg[0] != '\0' ? p->errmsg : "unknown error";
}

/* The highest $n in a statement's text (quoted strings in our statements hold no '$'). */
static int
count_params(const char *sql)
{
	int n = 0;

	for (const char *c = strchr(sql, '$'); c != NULL; c = strchr(c + 1, '$')) {
		int v = 0;

		for (const char *d = c + 1; *d >= '0' && *d <= '9' && v <= AC_DB_MAX_PARAMS; d++)
			v = v * 10 + (*d - '0');
		if (v > n)
			n = v;
	}
	return n;
}

static enum ac_err
pg_stmt(struct ac_db *d, int id, const struct ac_sql *sql, struct ac_stmt **out)
{
	struct pg *p = (struct pg *)d;
	struct pg_stmt *s = p->stmt[id];

	*out = NULL;
	if (s == NULL) {
		const char *text = sql->pg != NULL ? sql->pg : sql->sqlite;

		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return AC_ENOMEM;
		s->base.ops = &ac_db_pg_ops;
		s->db = p;
		s->id = id;
		s->sql = text;
		s->nparams = count_params(text);
		s->read_only = strncasecmp(text, "SELECT", 6) == 0;
		s->row = -1;
		if (s->nparams > AC_DB_MAX_PARAMS) {
			free(s);
			snprintf(p->errmsg, sizeof(p->errmsg), "statement %d has more than %d parameters", id,
			    AC_DB_MAX_PARAMS);
			return AC_EINVAL;
		}
		p->stmt[id] = s;
	}
	*out = &s->base;
	return AC_OK;
}

static int
slot(struct pg_stmt *s, int n)
{
	return n >= 1 && n <= s->nparams ? n - 1 : -1;
}

static void
pg_bind_int(struct ac_stmt *st, int n, int64_t v)
{
	struct pg_stmt *s = (struct pg_stmt *)st;
	int i = slot(s, n);

	if (i < 0)
		return;
	snprintf(s->ints[i], sizeof(s->ints[i]), "%lld", (long long)v);
	s->values[i] = s->ints[i];
	s->lengths[i] = 0;
	s->formats[i] = 0;
}

static void
pg_bind_null(struct ac_stmt *st, int n)
{
	struct pg_stmt *s = (struct pg_stmt *)st;
	int i = slot(s, n);

	if (i >= 0)
		s->values[i] = NULL;
}

static void
pg_bind_str(struct ac_stmt *st, int n, struct ac_str v)
{
	struct pg_stmt *s = (struct pg_stmt *)st;
	int i = slot(s, n);

	if (i < 0)
		return;
	if (v.ptr == NULL || v.len > (size_t)1 << 30) {
		s->values[i] = NULL;
		return;
	}
	s->values[i] = v.ptr;
	s->lengths[i] = (int)v.len;
	s->formats[i] = 1;
}

/* Sends the statement on the borrowed connection: prepared once per connection, or unnamed. */
static PGresult *
send_stmt(struct pg_stmt *s)
{
	struct ac_pgconn *c = s->db->c;
	char name[16];

	if (ac_pgpool_pooler(s->db->pool))
		return PQexecParams(c->conn, s->sql, s->nparams, NULL, s->values, s->lengths, s->formats, 1);
	snprintf(name, sizeof(name), "ac_%d", s->id);
	if (c->prepared[s->id] != s->sql) {
		PGresult *r;

		/* The same number with another text (tests do that): the old one goes first. */
		if (c->prepared[s->id] != NULL) {
			char sql[32];

			snprintf(sql, sizeof(sql), "DEALLOCATE %s", name);
			PQclear(PQexec(c->conn, sql));
			c->prepared[s->id] = NULL;
		}
		r = PQprepare(c->conn, name, s->sql, 0, NULL);
		if (!result_ok(r))
			return r;
		PQclear(r);
		c->prepared[s->id] = s->sql;
	}
	return PQexecPrepared(c->conn, name, s->nparams, s->values, s->lengths, s->formats, 1);
}

/* A statement outside a transaction: on a connection of its own, in a transaction of its own behind
 * a pooler (for SET LOCAL statement_timeout). */
static enum ac_err
run_alone(struct pg_stmt *s)
{
	struct pg *p = s->db;
	bool wrap = ac_pgpool_set_local(p->pool)[0] != '\0';
	enum ac_err err;

	for (int attempt = 0;; attempt++) {
		if ((err = borrow(p)) != AC_OK)
			return err;
		err = wrap ? begin_on(p, "BEGIN") : AC_OK;
		if (err == AC_OK) {
			s->res = send_stmt(s);
			err = result_ok(s->res) ? AC_OK : fail(p, s->res);
		}
		if (err == AC_OK && wrap)
			err = simple(p, "COMMIT");
		if (err == AC_OK || !stale(p, attempt == 0) || (!s->read_only && s->res != NULL)) {
			if (err != AC_OK && PQstatus(p->c->conn) == CONNECTION_OK && wrap)
				(void)simple(p, "ROLLBACK");
			give_back(p);
			return err;
		}
		PQclear(s->res);
		s->res = NULL;
		give_back(p);
	}
}

static enum ac_err
pg_step(struct ac_stmt *st, bool *row)
{
	struct pg_stmt *s = (struct pg_stmt *)st;
	enum ac_err err;

	*row = false;
	if (s->row < 0) {
		if (s->db->txn) {
			s->res = send_stmt(s);
			err = result_ok(s->res) ? AC_OK : fail(s->db, s->res);
		} else {
			err = run_alone(s);
		}
		if (err != AC_OK)
			return err;
	}
	s->row++;
	*row = s->row < PQntuples(s->res);
	return AC_OK;
}

static bool
has_row(const struct pg_stmt *s, int i)
{
	return s->res != NULL && s->row >= 0 && s->row < PQntuples(s->res) && i >= 0 && i < PQnfields(s->res);
}

static int64_t
big_endian(const unsigned char *b, int len)
{
	uint64_t v = (len > 0 && (b[0] & 0x80)) ? UINT64_MAX : 0;

	for (int i = 0; i < len; i++)
		v = (v << 8) | b[i];
	return (int64_t)v;
}

static int64_t
pg_col_int(struct ac_stmt *st, int i)
{
	struct pg_stmt *s = (struct pg_stmt *)st;
	const unsigned char *v;
	int len;

	if (!has_row(s, i) || PQgetisnull(s->res, s->row, i))
		return 0;
	v = (const unsigned char *)PQgetvalue(s->res, s->row, i);
	len = PQgetlength(s->res, s->row, i);
	switch (PQftype(s->res, i)) {
	case OID_BOOL:
		return len == 1 && v[0] != 0;
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
		return len <= 8 ? big_endian(v, len) : 0;
	default:
		return 0;
	}
}

static struct ac_str
pg_col_str(struct ac_stmt *st, int i)
{
	struct pg_stmt *s = (struct pg_stmt *)st;
	struct ac_str v = { NULL, 0 };

	if (!has_row(s, i) || PQgetisnull(s->res, s->row, i))
		return v;
	/* In binary format text, varchar and bytea are all their bytes. */
	v.ptr = PQgetvalue(s->res, s->row, i);
	v.len = (size_t)PQgetlength(s->res, s->row, i);
	return v;
}

static bool
pg_col_null(struct ac_stmt *st, int i)
{
	struct pg_stmt *s = (struct pg_stmt *)st;

	return !has_row(s, i) || PQgetisnull(s->res, s->row, i);
}

static int64_t
pg_changes(struct ac_stmt *st)
{
	struct pg_stmt *s = (struct pg_stmt *)st;
	const char *n = s->res != NULL ? PQcmdTuples(s->res) : "";
	int64_t v = 0;

	for (; *n >= '0' && *n <= '9'; n++)
		v = v * 10 + (*n - '0');
	return v;
}

static void
pg_done(struct ac_stmt *st)
{
	struct pg_stmt *s = (struct pg_stmt *)st;

	PQclear(s->res);
	s->res = NULL;
	s->row = -1;
	for (int i = 0; i < s->nparams; i++)
		s->values[i] = NULL;
}

static enum ac_err
pg_begin(struct ac_db *d, enum ac_db_txn mode)
{
	struct pg *p = (struct pg *)d;

	if (p->txn) {
		snprintf(p->errmsg, sizeof(p->errmsg), "a transaction is already open");
		return AC_EDB;
	}
	/* Writers: READ COMMITTED, the unique keys decide races.  Readers: one snapshot. */
	if (mode == AC_TXN_WRITE_LAZY)
		return begin_txn(p, "BEGIN; SET LOCAL synchronous_commit = off");
	return begin_txn(p, mode == AC_TXN_READ ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN");
}

static enum ac_err
pg_commit(struct ac_db *d)
{
	struct pg *p = (struct pg *)d;
	PGresult *r;
	enum ac_err err = AC_OK;

	if (!p->txn)
		return AC_OK;
	r = PQexec(p->c->conn, "COMMIT");
	if (!result_ok(r)) {
		err = fail(p, r);
	} else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		/* COMMIT of a transaction that had failed answers ROLLBACK. */
		snprintf(p->errmsg, sizeof(p->errmsg), "the transaction was rolled back");
		err = AC_EDB;
	}
	PQclear(r);
	pg_rollback(d);
	return err;
}

static bool
pg_in_txn(const struct ac_db *d)
{
	return ((const struct pg *)d)->txn;
}

/* Migrations: a write transaction holding the schema's advisory lock (released with it), and the
 * table that records the versions applied. */
static enum ac_err
pg_schema_begin(struct ac_db *d)
{
	struct pg *p = (struct pg *)d;
	enum ac_err err;

	if ((err = pg_begin(d, AC_TXN_WRITE)) != AC_OK)
		return err;
	err = simple(p, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_KEY "); "
	    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
	    "applied_at timestamptz NOT NULL DEFAULT now())");
	if (err != AC_OK)
		pg_rollback(d);
	return err;
}

/* Runs a one-value query (inside the transaction, or on a connection of its own). */
static enum ac_err
query_int(struct pg *p, const char *sql, bool *null, int *out)
{
	bool alone = !p->txn;
	PGresult *r;
	enum ac_err err;

	if (alone && (err = borrow(p)) != AC_OK)
		return err;
	r = PQexec(p->c->conn, sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1) {
		*null = PQgetisnull(r, 0, 0);
		*out = *null ? 0 : (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
		err = AC_OK;
	} else {
		err = fail(p, r);
	}
	PQclear(r);
	if (alone)
		give_back(p);
	return err;
}

static enum ac_err
pg_schema_version(struct ac_db *d, int *version)
{
	struct pg *p = (struct pg *)d;
	enum ac_err err;
	bool null;
	int unused;

	*version = 0;
	if ((err = query_int(p, "SELECT to_regclass('schema_migrations')::oid", &null, &unused)) != AC_OK || null)
		return err;
	return query_int(p, "SELECT coalesce(max(version), 0) FROM schema_migrations", &null, version);
}

static enum ac_err
pg_schema_set_version(struct ac_db *d, int version)
{
	char sql[96];

	snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations (version) VALUES (%d)", version);
	return simple((struct pg *)d, sql);
}

static enum ac_err
pg_exec_script(struct ac_db *d, const char *sql)
{
	return simple((struct pg *)d, sql);
}

const struct ac_db_ops ac_db_pg_ops = {
	.kind = AC_DB_PG,
	.open = pg_open,
	.close = pg_close,
	.errmsg = pg_errmsg,
	.stmt = pg_stmt,
	.bind_int = pg_bind_int,
	.bind_str = pg_bind_str,
	.bind_null = pg_bind_null,
	.step = pg_step,
	.col_int = pg_col_int,
	.col_str = pg_col_str,
	.col_null = pg_col_null,
	.changes = pg_changes,
	.done = pg_done,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.in_txn = pg_in_txn,
	.schema_begin = pg_schema_begin,
	.schema_version = pg_schema_version,
	.schema_set_version = pg_schema_set_version,
	.exec_script = pg_exec_script,
};
