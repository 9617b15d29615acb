/* The engine interface's front: dispatch to the engine, and the migration driver both engines share. */
#include <stdio.h>
#include <string.h>

#include "db_engine.h"
#include "metrics.h"

/* An operation's result, counted in db_errors_total when it failed (busy past the timeout, or an
 * engine error: not a unique key or a missing row, which are answers). */
static enum ac_err
counted(enum ac_err err)
{
	if (err == AC_EBUSY || err == AC_EDB)
		ac_metrics_db_error();
	return err;
}

static const struct ac_db_ops *
ops_of(enum ac_db_kind kind)
{
	return kind == AC_DB_PG ? &ac_db_pg_ops : &ac_db_sqlite_ops;
}

enum ac_err
ac_db_open(const struct ac_db_conf *conf, struct ac_db **out)
{
	return ops_of(conf->kind)->open(conf, out);
}

void
ac_db_close(struct ac_db *db)
{
	if (db != NULL)
		db->ops->close(db);
}

enum ac_db_kind
ac_db_kind(const struct ac_db *db)
{
	return db->ops->kind;
}

const char *
ac_db_errmsg(const struct ac_db *db)
{
	return db->ops->errmsg(db);
}

enum ac_err
ac_db_stmt(struct ac_db *db, int id, const struct ac_sql *sql, struct ac_stmt **out)
{
	if (id < 0 || id >= AC_DB_MAX_STMTS)
		return AC_EINVAL;
	return counted(db->ops->stmt(db, id, sql, out));
}

void
ac_db_bind_int(struct ac_stmt *s, int n, int64_t v)
{
	s->ops->bind_int(s, n, v);
}

void
ac_db_bind_str(struct ac_stmt *s, int n, struct ac_str v)
{
	s->ops->bind_str(s, n, v);
}

void
ac_db_bind_null(struct ac_stmt *s, int n)
{
	s->ops->bind_null(s, n);
}

enum ac_err
ac_db_step(struct ac_stmt *s, bool *row)
{
	return counted(s->ops->step(s, row));
}

int64_t
ac_db_col_int(struct ac_stmt *s, int i)
{
	return s->ops->col_int(s, i);
}

struct ac_str
ac_db_col_str(struct ac_stmt *s, int i)
{
	return s->ops->col_str(s, i);
}

bool
ac_db_col_null(struct ac_stmt *s, int i)
{
	return s->ops->col_null(s, i);
}

int64_t
ac_db_changes(struct ac_stmt *s)
{
	return s->ops->changes(s);
}

void
ac_db_done(struct ac_stmt *s)
{
	s->ops->done(s);
}

enum ac_err
ac_db_begin(struct ac_db *db, enum ac_db_txn mode)
{
	return counted(db->ops->begin(db, mode));
}

enum ac_err
ac_db_commit(struct ac_db *db)
{
	return counted(db->ops->commit(db));
}

void
ac_db_rollback(struct ac_db *db)
{
	db->ops->rollback(db);
}

void
ac_db_trim(struct ac_db *db)
{
	if (db != NULL && db->ops->trim != NULL && !db->ops->in_txn(db))
		db->ops->trim(db);
}

bool
ac_db_in_txn(const struct ac_db *db)
{
	return db->ops->in_txn(db);
}

const struct ac_migration *
ac_db_migrations(enum ac_db_kind kind, size_t *count)
{
	if (kind == AC_DB_PG) {
		*count = ac_migrations_pg_count;
		return ac_migrations_pg;
	}
	*count = ac_migrations_sqlite_count;
	return ac_migrations_sqlite;
}

enum ac_err
ac_db_migrate(const struct ac_db_conf *conf, char *msg, size_t msg_size)
{
	const struct ac_db_ops *ops = ops_of(conf->kind);
	struct ac_db_conf create = *conf;
	const struct ac_migration *m;
	struct ac_db *db = NULL;
	size_t count;
	int version = 0, newest = 0;
	const char *step = "open";
	enum ac_err err;

	msg[0] = '\0';
	m = ac_db_migrations(conf->kind, &count);
	for (size_t i = 0; i < count; i++) {
		if (m[i].version > newest)
			newest = m[i].version;
	}
	create.create = true;
	if ((err = ops->open(&create, &db)) != AC_OK)
		goto fail;
	/* The common case, and all a CGI request pays: one read finds the schema current. */
	step = "read the schema version";
	if ((err = ops->schema_version(db, &version)) != AC_OK)
		goto fail;
	if (version == newest)
		goto out;
	step = "lock the schema";
	if ((err = ops->schema_begin(db)) != AC_OK)
		goto fail;
	step = "read the schema version";
	if ((err = ops->schema_version(db, &version)) != AC_OK)
		goto fail;
	if (version > newest) {
		snprintf(msg, msg_size, "schema version %d is newer than this program's (%d)", version, newest);
		err = AC_EINVAL;
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		if (m[i].version <= version)
			continue;
		step = m[i].name;
		if ((err = ops->exec_script(db, m[i].sql)) != AC_OK)
			goto fail;
		if ((err = ops->schema_set_version(db, m[i].version)) != AC_OK)
			goto fail;
	}
	step = "commit";
	if ((err = ops->commit(db)) != AC_OK)
		goto fail;
	goto out;
fail:
	snprintf(msg, msg_size, "%s: %s", step, db != NULL ? ops->errmsg(db) : ac_strerror(err));
out:
	if (db != NULL) {
		ops->rollback(db);
		ops->close(db);
	}
	return err;
}
