/* GET /search: the user's chats and messages that match a query (common/repo_search.c). */
#include <stdint.h>

#include "../common/json.h"
#include "handlers.h"

#define SEARCH_LIMIT_MAX 100
#define SEARCH_LIMIT_DEFAULT 20
#define QUERY_MAX 1000		/* characters */

struct hits_out {
	struct ac_buf *b;
	int64_t n;
};

static enum ac_err
hit_out(void *arg, const struct ac_search_hit *h)
{
	struct hits_out *o = arg;
	struct ac_buf *b = o->b;

	if (o->n++ > 0)
		ac_buf_addc(b, ',');
	ac_buf_adds(b, "{\"chat_id\":");
	ac_json_str(b, h->chat_id.ptr, h->chat_id.len);
	ac_buf_adds(b, ",\"chat_title\":");
	if (h->chat_title.ptr != NULL)
		ac_json_str(b, h->chat_title.ptr, h->chat_title.len);
	else
		ac_buf_adds(b, "null");
	ac_buf_adds(b, ",\"message_id\":");
	if (h->message_id > 0)
		ac_buf_addi(b, h->message_id);
	else
		ac_buf_adds(b, "null");
	ac_buf_adds(b, ",\"role\":");
	if (!h->has_role)
		ac_buf_adds(b, "null");
	else
		ac_buf_adds(b, h->role == AC_ROLE_ASSISTANT ? "\"assistant\"" : "\"user\"");
	ac_buf_adds(b, ",\"snippet\":");
	ac_json_str(b, h->snippet.ptr, h->snippet.len);
	ac_buf_adds(b, ",\"created_at\":");
	ac_write_time(b, h->created_at);
	ac_buf_addc(b, '}');
	return ac_buf_err(b);
}

void
ac_h_search(struct ac_ctx *c, const struct ac_str *args)
{
	static const struct ac_strspec q_spec = { "q", true, false, 1, QUERY_MAX };
	const struct ac_query *query = &c->req.query;
	struct ac_verrs v;
	struct ac_str user_id, q = { NULL, 0 };
	int64_t limit, offset, total = 0;
	struct hits_out o = { &c->resp.body, 0 };
	enum ac_err err;

	(void)args;
	ac_verrs_init(&v);
	ac_request_user(c, &v, NULL, &user_id);
	ac_valid_str(&v, "query", &q_spec, ac_query_get(query, "q"), &q);
	ac_valid_int(&v, "limit", ac_query_get(query, "limit"), SEARCH_LIMIT_DEFAULT, 1, SEARCH_LIMIT_MAX, &limit);
	ac_valid_int(&v, "offset", ac_query_get(query, "offset"), 0, 0, INT64_MAX, &offset);
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	ac_resp_start(c, 200);
	ac_buf_adds(o.b, "{\"results\":[");
	err = ac_repo_search(c->repo, user_id, q, limit, offset, &total, hit_out, &o);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, AC_STR(""));
		goto out;
	}
	ac_buf_adds(o.b, "],\"total\":");
	ac_buf_addi(o.b, total);
	ac_buf_addc(o.b, '}');
out:
	ac_verrs_free(&v);
}
