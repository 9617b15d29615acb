/* The repository's operations side (repo_ops.h): automatic titles and retention. */
#include <string.h>

#include "repo_impl.h"
#include "repo_ops.h"

#define RETENTION_LEASE "retention"

enum {
	S_FIRST_EXCHANGE,
	S_TITLE_IF_NONE,
	S_LEASE_TAKE,
	S_OLD_MESSAGES,
	S_OLD_CHATS_DELETE,
	S_LIMITS_PRUNE,
	S_SLOTS_PRUNE,
	S_COUNT
};

/* The chats retention deletes: not updated since $1, oldest first, at most $2. */
#define OLD_CHATS "SELECT id FROM chats WHERE updated_at < $1 ORDER BY updated_at LIMIT $2"

static const struct ac_sql sql[S_COUNT] = {
	[S_FIRST_EXCHANGE] = { "SELECT m.id, m.role, m.content FROM chats c JOIN messages m ON m.chat_id = c.id "
	    "WHERE c.id = $1 AND c.user_id = $2 AND c.title IS NULL AND c.message_count = 2 "
	    "AND m.active = 1 AND m.state < 2 ORDER BY m.id LIMIT 2", NULL },
	[S_TITLE_IF_NONE] = { "UPDATE chats SET title = $3, updated_at = max($4, updated_at + 1) "
	    "WHERE id = $1 AND user_id = $2 AND title IS NULL",
	    "UPDATE chats SET title = $3, updated_at = greatest($4, updated_at + 1) "
	    "WHERE id = $1 AND user_id = $2 AND title IS NULL" },
	/* Taken when free, run out, or already this holder's; two takers at once: one waits for the
	 * other's commit and then finds it held. */
	[S_LEASE_TAKE] = { "INSERT INTO ops_leases (name, holder, until) VALUES ($1, $2, $3) "
	    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until "
	    "WHERE ops_leases.until <= $4 OR ops_leases.holder = excluded.holder", NULL },
	[S_OLD_MESSAGES] = { "SELECT count(*) FROM messages WHERE chat_id IN (" OLD_CHATS ")", NULL },
	[S_OLD_CHATS_DELETE] = { "DELETE FROM chats WHERE id IN (" OLD_CHATS ")", NULL },
	/* Per-user limit rows that hold nothing current (the rate's clock past, no tokens today), and
	 * the slots of processes that died: made again by the next send. */
	[S_LIMITS_PRUNE] = { "DELETE FROM user_limits WHERE rate_tat < $1 AND token_day < $2", NULL },
	[S_SLOTS_PRUNE] = { "DELETE FROM generation_slots WHERE until <= $1", NULL },
};

static enum ac_err
stmt(struct ac_repo *r, int i, struct ac_stmt **out)
{
	return REPO_STMT(r, AC_SQL_OPS, sql, i, out);
}

enum ac_err
ac_repo_first_exchange(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, ac_message_fn fn,
    void *arg)
{
	struct ac_stmt *s;
	enum ac_err err, ferr = AC_OK;
	struct ac_message m;
	bool row;
	int n = 0;

	if ((err = stmt(r, S_FIRST_EXCHANGE, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_str(s, 2, user_id);
	while (ferr == AC_OK && (err = ac_db_step(s, &row)) == AC_OK && row) {
		struct ac_str role = ac_db_col_str(s, 1);

		memset(&m, 0, sizeof(m));
		m.id = ac_db_col_int(s, 0);
		m.chat_id = chat_id;
		m.role = role.len == 9 && memcmp(role.ptr, "assistant", 9) == 0 ? AC_ROLE_ASSISTANT : AC_ROLE_USER;
		m.content = ac_db_col_str(s, 2);
		if (m.content.ptr == NULL)
			m.content = AC_STR("");
		n++;
		ferr = fn(arg, &m);
	}
	ac_db_done(s);
	if (err != AC_OK)
		return err;
	if (ferr != AC_OK)
		return ferr;
	return n == 2 ? AC_OK : AC_ENOTFOUND;
}

enum ac_err
ac_repo_chat_title_if_none(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, struct ac_str title,
    int64_t now, bool *set)
{
	struct ac_stmt *s;
	enum ac_err err;
	int64_t changes = 0;

	*set = false;
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_TITLE_IF_NONE, &s)) == AC_OK) {
		ac_db_bind_str(s, 1, chat_id);
		ac_db_bind_str(s, 2, user_id);
		ac_db_bind_str(s, 3, title);
		ac_db_bind_int(s, 4, now);
		err = ac_repo_run(s, &changes);
	}
	err = ac_repo_end(r, err);
	*set = err == AC_OK && changes > 0;
	return err;
}

enum ac_err
ac_repo_retention(struct ac_repo *r, const char *holder, int64_t now, int64_t lease_us, int64_t cutoff,
    int64_t batch, bool prune, bool *ran, int64_t *chats, int64_t *messages)
{
	struct ac_stmt *s;
	enum ac_err err;
	int64_t taken = 0;

	*ran = false;
	*chats = *messages = 0;
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = stmt(r, S_LEASE_TAKE, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, AC_STR(RETENTION_LEASE));
	ac_db_bind_str(s, 2, (struct ac_str){ holder, strlen(holder) });
	ac_db_bind_int(s, 3, now + lease_us);
	ac_db_bind_int(s, 4, now);
	if ((err = ac_repo_run(s, &taken)) != AC_OK || taken == 0)
		goto out;
	*ran = true;
	if (prune) {
		if ((err = stmt(r, S_LIMITS_PRUNE, &s)) != AC_OK)
			goto out;
		ac_db_bind_int(s, 1, now);
		ac_db_bind_int(s, 2, now / (86400LL * 1000000));
		if ((err = ac_repo_run(s, NULL)) != AC_OK || (err = stmt(r, S_SLOTS_PRUNE, &s)) != AC_OK)
			goto out;
		ac_db_bind_int(s, 1, now);
		if ((err = ac_repo_run(s, NULL)) != AC_OK)
			goto out;
	}
	if ((err = stmt(r, S_OLD_MESSAGES, &s)) != AC_OK)
		goto out;
	ac_db_bind_int(s, 1, cutoff);
	ac_db_bind_int(s, 2, batch);
	if ((err = ac_repo_one_int(s, messages)) != AC_OK)
		goto out;
	if ((err = stmt(r, S_OLD_CHATS_DELETE, &s)) != AC_OK)
		goto out;
	ac_db_bind_int(s, 1, cutoff);
	ac_db_bind_int(s, 2, batch);
	err = ac_repo_run(s, chats);
out:
	err = ac_repo_end(r, err);
	if (err != AC_OK) {
		*ran = false;
		*chats = *messages = 0;
	}
	return err;
}
