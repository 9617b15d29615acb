/* Personal API keys (common/repo_keys.h): the keys themselves, and their rows, once over db.h. */
#include <string.h>

#include <sodium.h>

#include "repo_impl.h"
#include "repo_keys.h"
#include "util.h"

#define KEY_COLUMNS "id, user_id, name, prefix, created_at, last_used_at"
#define TOUCH_EVERY_US (60 * 1000000LL)	/* last_used_at's resolution: a write a minute at most */

enum {
	S_KEY_COUNT,
	S_KEY_INSERT,
	S_KEY_LIST,
	S_KEY_DELETE,
	S_KEY_USER,
	S_KEY_TOUCH,
	S_COUNT
};

static const struct ac_sql sql[S_COUNT] = {
	/* -1: no such account; else its keys */
	[S_KEY_COUNT] = { "SELECT CASE WHEN EXISTS (SELECT 1 FROM users WHERE id = $1) "
	    "THEN (SELECT count(*) FROM api_keys WHERE user_id = $1) ELSE -1 END", NULL },
	[S_KEY_INSERT] = { "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at) "
	    "VALUES ($1, $2, $3, $4, $5, $6) RETURNING " KEY_COLUMNS, NULL },
	[S_KEY_LIST] = { "SELECT " KEY_COLUMNS " FROM api_keys WHERE user_id = $1 ORDER BY created_at, id", NULL },
	[S_KEY_DELETE] = { "DELETE FROM api_keys WHERE id = $1 AND user_id = $2", NULL },
	/* The columns of repo_users.c's USER_COLUMNS, after the key's own two. */
	[S_KEY_USER] = { "SELECT k.id, k.last_used_at, u.id, u.email, u.password_hash, u.role, u.token_version, "
	    "u.created_at FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1", NULL },
	[S_KEY_TOUCH] = { "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 "
	    "AND (last_used_at IS NULL OR last_used_at < $3)", NULL },
};

static enum ac_err
stmt(struct ac_repo *r, int i, struct ac_stmt **out)
{
	return REPO_STMT(r, AC_SQL_KEYS, sql, i, out);
}

/* ---- the keys ---- */

bool
ac_key_like(const char *token, size_t len)
{
	return len >= 3 && memcmp(token, "sk-", 3) == 0;
}

bool
ac_key_valid(const char *token, size_t len)
{
	if (len != AC_KEY_LEN || !ac_key_like(token, len))
		return false;
	for (size_t i = 3; i < len; i++) {
		char ch = token[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '_'))
			return false;
	}
	return true;
}

void
ac_key_new(char out[AC_KEY_LEN + 1])
{
	unsigned char random[32];

	_Static_assert(AC_KEY_LEN == 3 + 43, "32 bytes are 43 base64 characters");
	randombytes_buf(random, sizeof(random));
	memcpy(out, "sk-", 3);
	sodium_bin2base64(out + 3, AC_KEY_LEN + 1 - 3, random, sizeof(random), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(random, sizeof(random));
}

void
ac_key_hash(const char *key, size_t len, char out[AC_KEY_HASH_LEN + 1])
{
	unsigned char h[AC_KEY_HASH_LEN / 2];

	crypto_generichash(h, sizeof(h), (const unsigned char *)key, len, NULL, 0);
	sodium_bin2hex(out, AC_KEY_HASH_LEN + 1, h, sizeof(h));
}

/* ---- their rows ---- */

/* Steps a statement whose columns are KEY_COLUMNS, handing each key to fn; AC_ENOTFOUND if none. */
static enum ac_err
each_key(struct ac_stmt *s, ac_api_key_fn fn, void *arg)
{
	enum ac_err err, ferr = AC_ENOTFOUND;
	bool row;

	while ((err = ac_db_step(s, &row)) == AC_OK && row) {
		struct ac_api_key k;

		k.id = ac_db_col_str(s, 0);
		k.user_id = ac_db_col_str(s, 1);
		k.name = ac_db_col_str(s, 2);
		k.prefix = ac_db_col_str(s, 3);
		k.created_at = ac_db_col_int(s, 4);
		k.last_used_at = ac_db_col_null(s, 5) ? 0 : ac_db_col_int(s, 5);
		ferr = fn != NULL ? fn(arg, &k) : AC_OK;
		if (ferr != AC_OK)
			break;
	}
	ac_db_done(s);
	return err != AC_OK ? err : ferr;
}

enum ac_err
ac_repo_key_create(struct ac_repo *r, struct ac_str user_id, struct ac_str name, struct ac_str prefix,
    struct ac_str hash, ac_api_key_fn fn, void *arg)
{
	char id[AC_UUID_LEN + 1];
	struct ac_stmt *s;
	int64_t n = 0;
	enum ac_err err;

	if ((err = ac_uuid4(id)) != AC_OK)
		return err;
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_KEY_COUNT, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, user_id);
	if ((err = ac_repo_one_int(s, &n)) != AC_OK)
		goto out;
	if (n < 0 || n >= AC_KEYS_PER_USER_MAX) {
		err = n < 0 ? AC_ENOTFOUND : AC_ETOOBIG;
		goto out;
	}
	if ((err = stmt(r, S_KEY_INSERT, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, (struct ac_str){ id, AC_UUID_LEN });
	ac_db_bind_str(s, 2, user_id);
	ac_db_bind_str(s, 3, name);
	ac_db_bind_str(s, 4, prefix);
	ac_db_bind_str(s, 5, hash);
	ac_db_bind_int(s, 6, ac_now_us());
	err = each_key(s, fn, arg);
	if (err == AC_ENOTFOUND)
		err = AC_EDB;	/* RETURNING gave no row */
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_key_list(struct ac_repo *r, struct ac_str user_id, ac_api_key_fn fn, void *arg)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_KEY_LIST, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, user_id);
	err = each_key(s, fn, arg);
	return err == AC_ENOTFOUND ? AC_OK : err;
}

enum ac_err
ac_repo_key_delete(struct ac_repo *r, struct ac_str user_id, struct ac_str key_id)
{
	return ac_repo_write_one(r, AC_SQL_KEYS, sql, S_KEY_DELETE, key_id, user_id);
}

/* Moves the key's last_used_at to now, unless it was moved in the last minute. */
static enum ac_err
touch(struct ac_repo *r, struct ac_str key_id, int64_t now)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_KEY_TOUCH, &s)) == AC_OK) {
		ac_db_bind_str(s, 1, key_id);
		ac_db_bind_int(s, 2, now);
		ac_db_bind_int(s, 3, now - TOUCH_EVERY_US);
		err = ac_repo_run(s, NULL);
	}
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_key_user(struct ac_repo *r, struct ac_str hash, ac_user_fn fn, void *arg)
{
	char key_id[AC_UUID_LEN + 1];
	size_t key_id_len = 0;
	int64_t now = ac_now_us(), last_used = 0;
	struct ac_stmt *s;
	enum ac_err err, ferr = AC_ENOTFOUND;
	bool row = false;

	if ((err = stmt(r, S_KEY_USER, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, hash);
	err = ac_db_step(s, &row);
	if (err == AC_OK && row) {
		struct ac_str id = ac_db_col_str(s, 0), role = ac_db_col_str(s, 5);
		struct ac_user u;

		if (id.len < sizeof(key_id)) {
			memcpy(key_id, id.ptr, id.len);
			key_id_len = id.len;
		}
		last_used = ac_db_col_null(s, 1) ? 0 : ac_db_col_int(s, 1);
		u.id = ac_db_col_str(s, 2);
		u.email = ac_db_col_str(s, 3);
		u.password_hash = ac_db_col_str(s, 4);
		u.admin = role.len == 5 && memcmp(role.ptr, "admin", 5) == 0;
		u.token_version = ac_db_col_int(s, 6);
		u.created_at = ac_db_col_int(s, 7);
		ferr = fn != NULL ? fn(arg, &u) : AC_OK;
	}
	ac_db_done(s);
	if (err != AC_OK || ferr != AC_OK)
		return err != AC_OK ? err : ferr;
	/* Only a note: a busy database does not refuse the request for it. */
	if (key_id_len > 0 && last_used < now - TOUCH_EVERY_US)
		(void)touch(r, (struct ac_str){ key_id, key_id_len }, now);
	return AC_OK;
}
