/*
 * The message tree's active path: which of a chat's branches is shown and given to the model.
 * The path is the chat's rows with active = 1; along it ids grow (a message is always newer than
 * the one it follows), so it reads in id order from an index.
 */
#include <string.h>

#include "repo_impl.h"
#include "util.h"

enum {
	S_CLEAR,
	S_UP,
	S_SET,
	S_HAS_CHILDREN,
	S_RECOUNT,
	S_NEWEST_LEAF,
	S_COUNT
};

#define UP(start) "WITH RECURSIVE up (id) AS (SELECT " start " UNION ALL SELECT m.parent_id FROM messages m " \
	"JOIN up ON m.id = up.id WHERE m.parent_id IS NOT NULL) "
#define RECOUNT(greatest) "UPDATE chats SET message_count = (SELECT count(*) FROM messages " \
	"WHERE chat_id = $1 AND active = 1 AND state < 2), updated_at = " greatest "($2, updated_at + 1) WHERE id = $1"
#define DOWN(start) "WITH RECURSIVE down (id) AS (SELECT " start " UNION ALL SELECT m.id FROM messages m " \
	"JOIN down ON m.parent_id = down.id WHERE m.chat_id = $1) "
#define NEWEST_LEAF "SELECT max(d.id) FROM down d WHERE NOT EXISTS (SELECT 1 FROM messages c " \
	"WHERE c.chat_id = $1 AND c.parent_id = d.id)"

static const struct ac_sql sql[S_COUNT] = {
	[S_CLEAR] = { "UPDATE messages SET active = 0 WHERE chat_id = $1 AND active = 1", NULL },
	[S_UP] = { UP("$2") "UPDATE messages SET active = 1 WHERE chat_id = $1 AND id IN (SELECT id FROM up)",
	    UP("CAST($2 AS BIGINT)") "UPDATE messages SET active = 1 WHERE chat_id = $1 AND id IN (SELECT id FROM up)" },
	[S_SET] = { "UPDATE messages SET active = $2 WHERE id = $1", NULL },
	[S_HAS_CHILDREN] = { "SELECT 1 FROM messages WHERE chat_id = $1 AND parent_id = $2 LIMIT 1", NULL },
	[S_RECOUNT] = { RECOUNT("max"), RECOUNT("greatest") },
	/* The newest message under id (itself included) that nothing follows. */
	[S_NEWEST_LEAF] = { DOWN("$2") NEWEST_LEAF, DOWN("CAST($2 AS BIGINT)") NEWEST_LEAF },
};

static enum ac_err
stmt(struct ac_repo *r, int i, struct ac_stmt **out)
{
	return REPO_STMT(r, AC_SQL_TREE, sql, i, out);
}

/* Runs one of this file's statements that takes the chat and maybe a message id. */
static enum ac_err
run_on(struct ac_repo *r, int i, struct ac_str chat_id, int64_t id, int64_t *changes)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, i, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	if (id != 0)
		ac_db_bind_int(s, 2, id);
	return ac_repo_run(s, changes);
}

enum ac_err
ac_repo_path_clear(struct ac_repo *r, struct ac_str chat_id)
{
	return run_on(r, S_CLEAR, chat_id, 0, NULL);
}

enum ac_err
ac_repo_path_up(struct ac_repo *r, struct ac_str chat_id, int64_t id)
{
	return run_on(r, S_UP, chat_id, id, NULL);
}

enum ac_err
ac_repo_recount(struct ac_repo *r, struct ac_str chat_id, int64_t now)
{
	return run_on(r, S_RECOUNT, chat_id, now, NULL);
}

enum ac_err
ac_repo_set_row_active(struct ac_repo *r, int64_t id, bool active)
{
	struct ac_stmt *s;
	enum ac_err err;

	if ((err = stmt(r, S_SET, &s)) != AC_OK)
		return err;
	ac_db_bind_int(s, 1, id);
	ac_db_bind_int(s, 2, active);
	return ac_repo_run(s, NULL);
}

enum ac_err
ac_repo_has_children(struct ac_repo *r, struct ac_str chat_id, int64_t id, bool *out)
{
	struct ac_stmt *s;
	enum ac_err err;
	int64_t one;

	*out = false;
	if ((err = stmt(r, S_HAS_CHILDREN, &s)) != AC_OK)
		return err;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_int(s, 2, id);
	err = ac_repo_one_int(s, &one);
	*out = err == AC_OK;
	return err == AC_ENOTFOUND ? AC_OK : err;
}

enum ac_err
ac_repo_set_active(struct ac_repo *r, struct ac_str chat_id, struct ac_str user_id, int64_t message_id,
    bool *found, ac_chat_fn fn, void *arg)
{
	struct ac_stmt *s;
	struct ac_info m;
	int64_t leaf = 0;
	enum ac_err err;

	*found = false;
	if ((err = ac_db_begin(r->db, AC_TXN_WRITE)) != AC_OK)
		return err;
	if ((err = ac_repo_chat_lock(r, chat_id, user_id)) != AC_OK)
		goto out;
	err = ac_repo_info(r, chat_id, message_id, &m);
	if (err == AC_ENOTFOUND || (err == AC_OK && m.state >= AC_STATE_GENERATING)) {
		err = AC_OK;
		goto out;
	}
	if (err != AC_OK)
		goto out;
	*found = true;
	if ((err = stmt(r, S_NEWEST_LEAF, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, chat_id);
	ac_db_bind_int(s, 2, message_id);
	if ((err = ac_repo_one_int(s, &leaf)) != AC_OK)
		goto out;
	if (leaf <= 0)
		leaf = message_id;
	if ((err = ac_repo_path_clear(r, chat_id)) != AC_OK)
		goto out;
	if ((err = ac_repo_path_up(r, chat_id, leaf)) != AC_OK)
		goto out;
	if ((err = ac_repo_recount(r, chat_id, ac_now_us())) != AC_OK)
		goto out;
	err = ac_repo_chat_get(r, chat_id, user_id, fn, arg);
out:
	return ac_repo_end(r, err);
}
