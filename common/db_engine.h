/*
 * What an engine provides to db.c (private to common/db*.c): the operations of db.h, through one
 * table per engine.  A connection and a statement start with the engine's table, so db.c can
 * dispatch without knowing more of them.
 */
#ifndef AC_DB_ENGINE_H
#define AC_DB_ENGINE_H

#include "db.h"

struct ac_db_ops {
	enum ac_db_kind kind;
	enum ac_err (*open)(const struct ac_db_conf *conf, struct ac_db **out);
	void (*close)(struct ac_db *db);
	const char *(*errmsg)(const struct ac_db *db);
	enum ac_err (*stmt)(struct ac_db *db, int id, const struct ac_sql *sql, struct ac_stmt **out);
	void (*bind_int)(struct ac_stmt *s, int n, int64_t v);
	void (*bind_str)(struct ac_stmt *s, int n, struct ac_str v);
	void (*bind_null)(struct ac_stmt *s, int n);
	enum ac_err (*step)(struct ac_stmt *s, bool *row);
	int64_t (*col_int)(struct ac_stmt *s, int i);
	struct ac_str (*col_str)(struct ac_stmt *s, int i);
	bool (*col_null)(struct ac_stmt *s, int i);
	int64_t (*changes)(struct ac_stmt *s);
	void (*done)(struct ac_stmt *s);
	enum ac_err (*begin)(struct ac_db *db, enum ac_db_txn mode);
	enum ac_err (*commit)(struct ac_db *db);
	void (*rollback)(struct ac_db *db);
	bool (*in_txn)(const struct ac_db *db);
	/* Gives back the memory the connection keeps for reuse beyond its needs; NULL: nothing to do. */
	void (*trim)(struct ac_db *db);

	/* Migrations: a write transaction that also holds the schema lock (other processes and hosts
	 * wait), the version recorded in the database, and running a whole script. */
	enum ac_err (*schema_begin)(struct ac_db *db);
	enum ac_err (*schema_version)(struct ac_db *db, int *version);
	enum ac_err (*schema_set_version)(struct ac_db *db, int version);
	enum ac_err (*exec_script)(struct ac_db *db, const char *sql);
};

/* The head of every engine's connection and statement. */
struct ac_db {
	const struct ac_db_ops *ops;
};

struct ac_stmt {
	const struct ac_db_ops *ops;
};

extern const struct ac_db_ops ac_db_sqlite_ops;
extern const struct ac_db_ops ac_db_pg_ops;

/* build/migrations.c: each engine's scripts, in order. */
extern const struct ac_migration ac_migrations_sqlite[];
extern const size_t ac_migrations_sqlite_count;
extern const struct ac_migration ac_migrations_pg[];
extern const size_t ac_migrations_pg_count;

#endif
