/* Accounts and failed logins (common/repo_users.h), once over db.h for both engines. */
#include <string.h>

#include "repo_impl.h"
#include "repo_users.h"
#include "util.h"

#define USER_COLUMNS "id, email, password_hash, role, token_version, created_at"

enum {
	S_USER_INSERT,
	S_USER_ENSURE,
	S_USER_BY_ID,
	S_USER_BY_EMAIL,
	S_USER_LIST,
	S_USER_ROLE,
	S_USER_LOGOUT,
	S_USER_DEL_KEYS,
	S_USER_DEL_CHATS,
	S_USER_DEL_ATTEMPTS,
	S_USER_DEL,
	S_USER_ADOPT_KEYS,
	S_USER_ADOPT,
	S_CHAT_OWNER,
	S_LOGIN_COUNT,
	S_LOGIN_INSERT,
	S_LOGIN_PRUNE,
	S_LOGIN_CLEAR,
	S_USER_BY_SUBJECT,
	S_USER_ENSURE_SUBJECT,
	S_USER_DEL_LIMITS,
	S_USER_DEL_SLOTS,
	S_COUNT
};

static const struct ac_sql sql[S_COUNT] = {
	[S_USER_INSERT] = { "INSERT INTO users (id, email, password_hash, role, created_at) "
	    "VALUES ($1, $2, $3, $4, $5) RETURNING " USER_COLUMNS, NULL },
	[S_USER_ENSURE] = { "INSERT INTO users (id, email, role, created_at) VALUES ($1, $2, 'user', $3) "
	    "ON CONFLICT (email) DO NOTHING", NULL },
	[S_USER_BY_ID] = { "SELECT " USER_COLUMNS " FROM users WHERE id = $1", NULL },
	[S_USER_BY_EMAIL] = { "SELECT " USER_COLUMNS " FROM users WHERE email = $1", NULL },
	[S_USER_LIST] = { "SELECT " USER_COLUMNS " FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2", NULL },
	[S_USER_ROLE] = { "UPDATE users SET role = $2 WHERE id = $1 RETURNING " USER_COLUMNS, NULL },
	[S_USER_LOGOUT] = { "UPDATE users SET token_version = token_version + 1 WHERE id = $1", NULL },
	[S_USER_DEL_KEYS] = { "DELETE FROM idempotency_keys WHERE user_id = $1", NULL },
	[S_USER_DEL_CHATS] = { "DELETE FROM chats WHERE user_id = $1", NULL },
	[S_USER_DEL_ATTEMPTS] = { "DELETE FROM login_attempts WHERE kind = 'email' AND key = "
	    "(SELECT email FROM users WHERE id = $1)", NULL },
	[S_USER_DEL] = { "DELETE FROM users WHERE id = $1", NULL },
	/* A key is remembered for a day to recognise a repeat: the old user's are dropped, not moved
	 * (they could collide with the account's own). */
	[S_USER_ADOPT_KEYS] = { "DELETE FROM idempotency_keys WHERE user_id = $1", NULL },
	[S_USER_ADOPT] = { "UPDATE chats SET user_id = $2 WHERE user_id = $1", NULL },
	[S_CHAT_OWNER] = { "SELECT user_id FROM chats WHERE id = $1", NULL },
	[S_LOGIN_COUNT] = { "SELECT count(*), coalesce(min(at), 0) FROM login_attempts "
	    "WHERE kind = $1 AND key = $2 AND at > $3", NULL },
	[S_LOGIN_INSERT] = { "INSERT INTO login_attempts (kind, key, at) VALUES ($1, $2, $3)", NULL },
	[S_LOGIN_PRUNE] = { "DELETE FROM login_attempts WHERE kind = $1 AND key = $2 AND at <= $3", NULL },
	[S_LOGIN_CLEAR] = { "DELETE FROM login_attempts WHERE kind = 'email' AND key = $1", NULL },
	[S_USER_BY_SUBJECT] = { "SELECT " USER_COLUMNS " FROM users WHERE subject = $1", NULL },
	/* Either key taken (the subject by a concurrent first sight, the email by another account):
	 * nothing inserted. */
	[S_USER_ENSURE_SUBJECT] = { "INSERT INTO users (id, email, role, subject, created_at) "
	    "VALUES ($1, $2, 'user', $3, $4) ON CONFLICT DO NOTHING", NULL },
	/* The per-user limits' counts (common/limits.c) go with the account. */
	[S_USER_DEL_LIMITS] = { "DELETE FROM user_limits WHERE user_id = $1", NULL },
	[S_USER_DEL_SLOTS] = { "DELETE FROM generation_slots WHERE user_id = $1", NULL },
};

static enum ac_err
stmt(struct ac_repo *r, int i, struct ac_stmt **out)
{
	return REPO_STMT(r, AC_SQL_ACCOUNTS, sql, i, out);
}

/* Steps a statement whose columns are USER_COLUMNS, handing each user to fn; AC_ENOTFOUND if none. */
static enum ac_err
each_user(struct ac_stmt *s, ac_user_fn fn, void *arg)
{
	enum ac_err err, ferr = AC_ENOTFOUND;
	bool row;

	while ((err = ac_db_step(s, &row)) == AC_OK && row) {
		struct ac_user u;
		struct ac_str role = ac_db_col_str(s, 3);

		u.id = ac_db_col_str(s, 0);
		u.email = ac_db_col_str(s, 1);
		u.password_hash = ac_db_col_str(s, 2);
		u.admin = role.len == 5 && memcmp(role.ptr, "admin", 5) == 0;
		u.token_version = ac_db_col_int(s, 4);
		u.created_at = ac_db_col_int(s, 5);
		ferr = fn != NULL ? fn(arg, &u) : AC_OK;
		if (ferr != AC_OK)
			break;
	}
	ac_db_done(s);
	return err != AC_OK ? err : ferr;
}

static struct ac_str
role_str(bool admin)
{
	return admin ? AC_STR("admin") : AC_STR("user");
}

enum ac_err
ac_repo_user_create(struct ac_repo *r, struct ac_str email, struct ac_str password_hash, bool admin,
    ac_user_fn fn, void *arg)
{
	char id[AC_UUID_LEN + 1];
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = ac_uuid4(id)) != AC_OK)
		return err;
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_USER_INSERT, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, (struct ac_str){ id, AC_UUID_LEN });
	ac_db_bind_str(s, 2, email);
	ac_db_bind_str(s, 3, password_hash);
	ac_db_bind_str(s, 4, role_str(admin));
	ac_db_bind_int(s, 5, ac_now_us());
	err = each_user(s, fn, arg);
	if (err == AC_ENOTFOUND)
		err = AC_EDB;
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_user_ensure(struct ac_repo *r, struct ac_str email, ac_user_fn fn, void *arg)
{
	char id[AC_UUID_LEN + 1];
	struct ac_stmt *s;
	enum ac_err err;

	/* The common case, an account seen before, is one read. */
	err = ac_repo_user_by_email(r, email, fn, arg);
	if (err != AC_ENOTFOUND)
		return err;
	if ((err = ac_uuid4(id)) != AC_OK)
		return err;
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_USER_ENSURE, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, (struct ac_str){ id, AC_UUID_LEN });
	ac_db_bind_str(s, 2, email);
	ac_db_bind_int(s, 3, ac_now_us());
	err = ac_repo_run(s, NULL);
out:
	err = ac_repo_end(r, err);
	if (err != AC_OK)
		return err;
	return ac_repo_user_by_email(r, email, fn, arg);
}

static enum ac_err user_by(struct ac_repo *r, int i, struct ac_str key, ac_user_fn fn, void *arg);

static enum ac_err
insert_subject(struct ac_repo *r, struct ac_str subject, struct ac_str email)
{
	char id[AC_UUID_LEN + 1];
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = ac_uuid4(id)) != AC_OK)
		return err;
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_USER_ENSURE_SUBJECT, &s)) == AC_OK) {
		ac_db_bind_str(s, 1, (struct ac_str){ id, AC_UUID_LEN });
		ac_db_bind_str(s, 2, email);
		ac_db_bind_str(s, 3, subject);
		ac_db_bind_int(s, 4, ac_now_us());
		err = ac_repo_run(s, NULL);
	}
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_user_ensure_subject(struct ac_repo *r, struct ac_str subject, struct ac_str email, ac_user_fn fn,
    void *arg)
{
	/* Never linked to an account by its email: the provider's email may be anyone's. */
	struct ac_str fallback = { subject.ptr, subject.len > 254 ? 254 : subject.len };
	enum ac_err err;

	err = user_by(r, S_USER_BY_SUBJECT, subject, fn, arg);
	if (err != AC_ENOTFOUND)
		return err;
	if (email.len > 0 && (err = insert_subject(r, subject, email)) != AC_OK)
		return err;
	err = user_by(r, S_USER_BY_SUBJECT, subject, fn, arg);
	if (err != AC_ENOTFOUND)
		return err;
	if ((err = insert_subject(r, subject, fallback)) != AC_OK)
		return err;
	return user_by(r, S_USER_BY_SUBJECT, subject, fn, arg);
}

static enum ac_err
user_by(struct ac_repo *r, int i, struct ac_str key, ac_user_fn fn, void *arg)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, i, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, key);
	return each_user(s, fn, arg);
}

enum ac_err
ac_repo_user_by_id(struct ac_repo *r, struct ac_str id, ac_user_fn fn, void *arg)
{
	return user_by(r, S_USER_BY_ID, id, fn, arg);
}

enum ac_err
ac_repo_user_by_email(struct ac_repo *r, struct ac_str email, ac_user_fn fn, void *arg)
{
	return user_by(r, S_USER_BY_EMAIL, email, fn, arg);
}

enum ac_err
ac_repo_user_list(struct ac_repo *r, int64_t limit, int64_t offset, ac_user_fn fn, void *arg)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_USER_LIST, &s)) != AC_OK)
		return err;
	ac_db_bind_int(s, 1, limit);
	ac_db_bind_int(s, 2, offset);
	err = each_user(s, fn, arg);
	return err == AC_ENOTFOUND ? AC_OK : err;
}

enum ac_err
ac_repo_user_set_role(struct ac_repo *r, struct ac_str id, bool admin, ac_user_fn fn, void *arg)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_USER_ROLE, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, id);
	ac_db_bind_str(s, 2, role_str(admin));
	err = each_user(s, fn, arg);
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_user_logout(struct ac_repo *r, struct ac_str id)
{
	return ac_repo_write_one(r, AC_SQL_ACCOUNTS, sql, S_USER_LOGOUT, id, (struct ac_str){ NULL, 0 });
}

/* Runs statement i with id as its one parameter; *changed may be NULL. */
static enum ac_err
run_id(struct ac_repo *r, int i, struct ac_str id, int64_t *changed)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, i, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, id);
	return ac_repo_run(s, changed);
}

enum ac_err
ac_repo_user_delete(struct ac_repo *r, struct ac_str id)
{
	static const int steps[] = { S_USER_DEL_KEYS, S_USER_DEL_CHATS, S_USER_DEL_ATTEMPTS, S_USER_DEL_LIMITS,
	    S_USER_DEL_SLOTS, S_USER_DEL };
	enum ac_err err;
	int64_t changed = 0;

	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && err == AC_OK; i++)
		err = run_id(r, steps[i], id, &changed);
	if (err == AC_OK && changed == 0)
		err = AC_ENOTFOUND;	/* nothing to undo: no such user had chats either */
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_user_adopt(struct ac_repo *r, struct ac_str old_user_id, struct ac_str new_user_id, int64_t *chats)
{
	struct ac_stmt *s;
	enum ac_err err;

	*chats = 0;
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = run_id(r, S_USER_ADOPT_KEYS, old_user_id, NULL)) != AC_OK)
		goto out;
	if ((err = stmt(r, S_USER_ADOPT, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, old_user_id);
	ac_db_bind_str(s, 2, new_user_id);
	err = ac_repo_run(s, chats);
out:
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_chat_owner(struct ac_repo *r, struct ac_str chat_id, char *out, size_t out_size, size_t *len)
{
	struct ac_stmt *s;
	enum ac_err err;
	bool row = false;

	*len = 0;
	if ((err = stmt(r, S_CHAT_OWNER, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	err = ac_db_step(s, &row);
	if (err == AC_OK && row) {
		struct ac_str u = ac_db_col_str(s, 0);

		if (u.len >= out_size)
			err = AC_ETOOBIG;
		else {
			memcpy(out, u.ptr, u.len);
			out[u.len] = '\0';
			*len = u.len;
		}
	}
	ac_db_done(s);
	if (err == AC_OK && !row)
		err = AC_ENOTFOUND;
	return err;
}

/* Failures of one key in the window: how many, and when the oldest was. */
static enum ac_err
login_count(struct ac_repo *r, struct ac_str kind, struct ac_str key, int64_t since, int64_t *n,
    int64_t *oldest)
{
	struct ac_stmt *s;
	enum ac_err err;
	bool row = false;

	*n = 0;
	*oldest = 0;
	if ((err = stmt(r, S_LOGIN_COUNT, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, kind);
	ac_db_bind_str(s, 2, key);
	ac_db_bind_int(s, 3, since);
	err = ac_db_step(s, &row);
	if (err == AC_OK && row) {
		*n = ac_db_col_int(s, 0);
		*oldest = ac_db_col_int(s, 1);
	}
	ac_db_done(s);
	return err;
}

enum ac_err
ac_repo_login_check(struct ac_repo *r, const struct ac_login_limits *l, struct ac_str email,
    struct ac_str addr, int64_t *retry_after_s)
{
	int64_t now = ac_now_us(), n, oldest, until = 0;
	enum ac_err err;

	*retry_after_s = 0;
	/* An attempt that names no valid email counts against its address only. */
	if (email.len > 0 && (err = login_count(r, AC_STR("email"), email, now - l->window_us, &n, &oldest)) != AC_OK)
		return err;
	if (email.len > 0 && l->max_per_email > 0 && n >= l->max_per_email)
		until = oldest + l->window_us;
	if (addr.len > 0) {
		if ((err = login_count(r, AC_STR("addr"), addr, now - l->window_us, &n, &oldest)) != AC_OK)
			return err;
		if (l->max_per_addr > 0 && n >= l->max_per_addr && oldest + l->window_us > until)
			until = oldest + l->window_us;
	}
	if (until == 0)
		return AC_OK;
	*retry_after_s = (until - now + 999999) / 1000000;
	if (*retry_after_s < 1)
		*retry_after_s = 1;
	return AC_ETOOBIG;
}

static enum ac_err
login_record(struct ac_repo *r, struct ac_str kind, struct ac_str key, int64_t now, int64_t window_us)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_LOGIN_PRUNE, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, kind);
	ac_db_bind_str(s, 2, key);
	ac_db_bind_int(s, 3, now - window_us);
	if ((err = ac_repo_run(s, NULL)) != AC_OK)
		return err;
	if ((err = stmt(r, S_LOGIN_INSERT, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, kind);
	ac_db_bind_str(s, 2, key);
	ac_db_bind_int(s, 3, now);
	return ac_repo_run(s, NULL);
}

enum ac_err
ac_repo_login_failed(struct ac_repo *r, const struct ac_login_limits *l, struct ac_str email,
    struct ac_str addr)
{
	int64_t now = ac_now_us();
	enum ac_err err;

	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	err = email.len > 0 ? login_record(r, AC_STR("email"), email, now, l->window_us) : AC_OK;
	if (err == AC_OK && addr.len > 0)
		err = login_record(r, AC_STR("addr"), addr, now, l->window_us);
	return ac_repo_end(r, err);
}

enum ac_err
ac_repo_login_succeeded(struct ac_repo *r, struct ac_str email)
{
	enum ac_err err;

	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	err = run_id(r, S_LOGIN_CLEAR, email, NULL);
	return ac_repo_end(r, err);
}
