/*
 * ai-chat-fcgi db backup PATH [--force] and ai-chat-fcgi db check [URL] (issue 16).
 *
 * backup: a consistent copy of the SQLite database of DATABASE_URL while the server runs, with
 * SQLite's online backup API: the whole copy is one step, inside one read transaction, so it is the
 * database as of one moment (in WAL mode the server's writers go on meanwhile; a copy made in steps
 * would start over at every write of another process).  Written to PATH.part, checked
 * (PRAGMA quick_check), made durable (fsync) and renamed to PATH: PATH is a whole copy or absent.
 * An existing PATH is refused unless --force.  For PostgreSQL it says to use pg_dump and fails.
 *
 * check: runs the integrity checks of the database of URL (else DATABASE_URL) without changing it:
 * SQLite's PRAGMA integrity_check and foreign_key_check, PostgreSQL's invalid indexes; on both,
 * messages without their chat and chats whose message_count disagrees with their messages; then
 * counts chats, messages (and users, when there is such a table).  Exit 0 when everything is ok,
 * 1 when a check found a problem or the database could not be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../common/db.h"
#include "cli_db.h"

#define PROBLEMS_SHOWN 10
#define PATH_MAX_LEN 4096

/* ---- check ---- */

enum {
	C_INTEGRITY, C_FOREIGN_KEYS, C_VERSION, C_ORPHANS, C_COUNTS_OFF, C_HAS_USERS, C_CHATS, C_MESSAGES,
	C_USERS, C_KEYS, C_COUNT
};

static const struct ac_sql check_sql[C_COUNT] = {
	[C_INTEGRITY] = { "PRAGMA integrity_check",
	    "SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE count(*) || ' invalid index(es): ' || "
	    "string_agg(indexrelid::regclass::text, ', ') END FROM pg_index WHERE NOT indisvalid OR NOT indisready" },
	/* PostgreSQL enforces its foreign keys itself. */
	[C_FOREIGN_KEYS] = { "PRAGMA foreign_key_check", "SELECT 1 WHERE false" },
	[C_VERSION] = { "PRAGMA user_version", "SELECT coalesce(max(version), 0) FROM schema_migrations" },
	[C_ORPHANS] = { "SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM chats c WHERE c.id = m.chat_id)",
	    NULL },
	[C_COUNTS_OFF] = { "SELECT count(*) FROM chats c WHERE c.message_count <> (SELECT count(*) FROM messages m "
	    "WHERE m.chat_id = c.id AND m.active = 1 AND m.state < 2)", NULL },
	[C_HAS_USERS] = { "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'users'",
	    "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'users'" },
	[C_CHATS] = { "SELECT count(*) FROM chats", NULL },
	[C_MESSAGES] = { "SELECT count(*) FROM messages", NULL },
	[C_USERS] = { "SELECT count(*) FROM users", NULL },
	[C_KEYS] = { "SELECT count(*) FROM idempotency_keys", NULL },
};

/* The first column of the statement's one row, as an integer. */
static enum ac_err
one_int(struct ac_db *db, int id, int64_t *out)
{
	struct ac_stmt *s;
	enum ac_err err;
	bool row = false;

	*out = 0;
	if ((err = ac_db_stmt(db, id, &check_sql[id], &s)) != AC_OK)
		return err;
	err = ac_db_step(s, &row);
	if (err == AC_OK && row)
		*out = ac_db_col_int(s, 0);
	ac_db_done(s);
	return err;
}

/* The integrity check's rows: "ok" alone, or the problems (shown, at most PROBLEMS_SHOWN). */
static enum ac_err
integrity(struct ac_db *db, int *problems)
{
	struct ac_stmt *s;
	enum ac_err err;
	bool row;

	*problems = 0;
	if ((err = ac_db_stmt(db, C_INTEGRITY, &check_sql[C_INTEGRITY], &s)) != AC_OK)
		return err;
	while ((err = ac_db_step(s, &row)) == AC_OK && row) {
		struct ac_str text = ac_db_col_str(s, 0);

		if (text.ptr != NULL && text.len == 2 && memcmp(text.ptr, "ok", 2) == 0)
			continue;
		if (++*problems <= PROBLEMS_SHOWN)
			printf("integrity: %.*s\n", (int)text.len, text.ptr != NULL ? text.ptr : "");
	}
	ac_db_done(s);
	return err;
}

/* Rows of PRAGMA foreign_key_check: each a row that names a missing parent. */
static enum ac_err
foreign_keys(struct ac_db *db, int64_t *violations)
{
	struct ac_stmt *s;
	enum ac_err err;
	bool row;

	*violations = 0;
	if ((err = ac_db_stmt(db, C_FOREIGN_KEYS, &check_sql[C_FOREIGN_KEYS], &s)) != AC_OK)
		return err;
	while ((err = ac_db_step(s, &row)) == AC_OK && row) {
		struct ac_str table = ac_db_col_str(s, 0);

		if (++*violations <= PROBLEMS_SHOWN)
			printf("foreign key: a row of %.*s (rowid %lld) names a missing row of %.*s\n", (int)table.len,
			    table.ptr != NULL ? table.ptr : "", (long long)ac_db_col_int(s, 1),
			    (int)ac_db_col_str(s, 2).len, ac_db_col_str(s, 2).ptr != NULL ? ac_db_col_str(s, 2).ptr : "");
	}
	ac_db_done(s);
	return err;
}

static int
check(const struct ac_config *base, const char *url)
{
	struct ac_config cfg = *base;
	struct ac_db_conf conf;
	struct ac_db *db = NULL;
	const struct ac_migration *m;
	size_t nm;
	int64_t version = 0, orphans = 0, off = 0, has_users = 0, chats = 0, messages = 0, users = 0, keys = 0;
	int64_t fk = 0;
	int problems = 0, newest = 0, status = 1;
	char msg[512];
	enum ac_err err;

	if (url != NULL && ac_config_database_url(&cfg, url, msg, sizeof(msg)) != AC_OK) {
		fprintf(stderr, "ai-chat-fcgi db check: %s\n", msg);
		return 2;
	}
	ac_config_db(&cfg, &conf);
	conf.create = false;
	if ((err = ac_db_open(&conf, &db)) != AC_OK) {
		fprintf(stderr, "ai-chat-fcgi db check: cannot open %s: %s\n", cfg.db_display,
		    db != NULL ? ac_db_errmsg(db) : ac_strerror(err));
		goto out;
	}
	m = ac_db_migrations(cfg.db_kind, &nm);
	for (size_t i = 0; i < nm; i++)
		newest = m[i].version > newest ? m[i].version : newest;
	if ((err = ac_db_begin(db, AC_TXN_READ)) != AC_OK)
		goto failed;
	if ((err = integrity(db, &problems)) != AC_OK || (err = foreign_keys(db, &fk)) != AC_OK ||
	    (err = one_int(db, C_VERSION, &version)) != AC_OK)
		goto failed;
	if (version < 3) {
		printf("schema version %lld, older than this program's %d: the worker migrates it when it starts; "
		    "the rows are checked once it has\n", (long long)version, newest);
	} else {
		if ((err = one_int(db, C_ORPHANS, &orphans)) != AC_OK || (err = one_int(db, C_COUNTS_OFF, &off)) != AC_OK ||
		    (err = one_int(db, C_CHATS, &chats)) != AC_OK || (err = one_int(db, C_MESSAGES, &messages)) != AC_OK ||
		    (err = one_int(db, C_KEYS, &keys)) != AC_OK || (err = one_int(db, C_HAS_USERS, &has_users)) != AC_OK)
			goto failed;
		if (has_users > 0 && (err = one_int(db, C_USERS, &users)) != AC_OK)
			goto failed;
		if (version != newest)
			printf("schema version %lld (this program's: %d)\n", (long long)version, newest);
	}
	if (orphans > 0)
		printf("messages without their chat: %lld\n", (long long)orphans);
	if (off > 0)
		printf("chats whose message_count disagrees with their messages: %lld\n", (long long)off);
	printf("%s: integrity %s, foreign keys %s, schema version %lld", cfg.db_display,
	    problems == 0 ? "ok" : "FAILED", fk == 0 && orphans == 0 ? "ok" : "FAILED", (long long)version);
	if (version >= 3) {
		printf(", chats %lld, messages %lld, idempotency keys %lld", (long long)chats, (long long)messages,
		    (long long)keys);
		if (has_users > 0)
			printf(", users %lld", (long long)users);
	}
	printf("\n");
	status = problems == 0 && fk == 0 && orphans == 0 && off == 0 ? 0 : 1;
	goto out;
failed:
	fprintf(stderr, "ai-chat-fcgi db check: %s: %s\n", cfg.db_display, ac_db_errmsg(db));
out:
	if (db != NULL) {
		ac_db_rollback(db);
		ac_db_close(db);
	}
	return status;
}

/* ---- backup ---- */

static int
lite_fail(const char *what, sqlite3 *db, int rc)
{
	fprintf(stderr, "ai-chat-fcgi db backup: %s: %s\n", what, db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	return 1;
}

/* Makes the file at path, and then its directory entry, durable. */
static int
sync_path(const char *path)
{
	char dir[PATH_MAX_LEN];
	const char *slash = strrchr(path, '/');
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	if (rc != 0)
		return -1;
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int
backup(const struct ac_config *cfg, const char *path, bool force)
{
	char part[PATH_MAX_LEN + 8];
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b;
	sqlite3_stmt *q = NULL;
	int rc, status = 1, pages = 0;
	int64_t waited_ms = 0;
	bool checked = false, keep_part = false;

	if (cfg->db_kind == AC_DB_PG) {
		fprintf(stderr, "ai-chat-fcgi db backup: DATABASE_URL (%s) is a PostgreSQL database: back it up with "
		    "PostgreSQL's own tool, pg_dump, for example\n"
		    "  pg_dump --format=custom --file=%s '%s'\n"
		    "and restore with\n"
		    "  pg_restore --clean --if-exists --no-owner --dbname='%s' %s\n"
		    "(README.md, \"Backups and upgrades\")\n", cfg->db_display, path, cfg->db_display, cfg->db_display,
		    path);
		return 3;
	}
	if (strlen(path) >= PATH_MAX_LEN || path[0] == '\0') {
		fprintf(stderr, "ai-chat-fcgi db backup: the path is empty or too long\n");
		return 2;
	}
	if (!force && access(path, F_OK) == 0) {
		fprintf(stderr, "ai-chat-fcgi db backup: %s exists: refused; --force replaces it\n", path);
		return 3;
	}
	snprintf(part, sizeof(part), "%s.part", path);
	(void)unlink(part);
	if ((rc = sqlite3_open_v2(cfg->db_path, &src, SQLITE_OPEN_READWRITE, NULL)) != SQLITE_OK) {
		status = lite_fail(cfg->db_display, src, rc);
		goto out;
	}
	sqlite3_busy_timeout(src, cfg->busy_timeout_ms);
	if ((rc = sqlite3_open_v2(part, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL)) != SQLITE_OK) {
		status = lite_fail(part, dst, rc);
		goto out;
	}
	if ((b = sqlite3_backup_init(dst, "main", src, "main")) == NULL) {
		status = lite_fail(part, dst, 0);
		goto out;
	}
	/* All pages in one step: one read transaction, one moment of the database.  Busy (a writer
	 * checkpointing, or a lock another process holds a moment): wait and try again. */
	while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
		if (waited_ms >= cfg->busy_timeout_ms)
			break;
		sqlite3_sleep(50);
		waited_ms += 50;
	}
	pages = sqlite3_backup_pagecount(b);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		status = lite_fail(cfg->db_display, NULL, rc);
		goto out;
	}
	/* A file of its own: no write-ahead log beside it. */
	if ((rc = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL)) != SQLITE_OK) {
		status = lite_fail(part, dst, rc);
		goto out;
	}
	if ((rc = sqlite3_prepare_v2(dst, "PRAGMA quick_check", -1, &q, NULL)) != SQLITE_OK) {
		status = lite_fail(part, dst, rc);
		goto out;
	}
	checked = sqlite3_step(q) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0;
	sqlite3_finalize(q);
	if (!checked) {
		fprintf(stderr, "ai-chat-fcgi db backup: the copy %s does not pass its check: kept for inspection\n", part);
		keep_part = true;
		goto out;
	}
	if (sqlite3_close(dst) != SQLITE_OK) {
		status = lite_fail(part, dst, 0);
		goto out;
	}
	dst = NULL;
	if (sync_path(part) != 0 || rename(part, path) != 0 || sync_path(path) != 0) {
		fprintf(stderr, "ai-chat-fcgi db backup: %s: %s\n", path, strerror(errno));
		goto out;
	}
	printf("backed up %s to %s: %d pages, checked\n", cfg->db_display, path, pages);
	status = 0;
out:
	if (dst != NULL)
		sqlite3_close(dst);
	if (src != NULL)
		sqlite3_close(src);
	if (status != 0 && !keep_part)
		(void)unlink(part);
	return status;
}

int
ac_cli_db_ops(const struct ac_config *cfg, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "backup") == 0 && (argc == 3 || argc == 4)) {
		bool force = argc == 4 && strcmp(argv[3], "--force") == 0;

		if (argc == 4 && !force)
			return -1;
		return backup(cfg, argv[2], force);
	}
	if (argc >= 2 && strcmp(argv[1], "check") == 0 && argc <= 3)
		return check(cfg, argc == 3 ? argv[2] : NULL);
	return -1;
}
