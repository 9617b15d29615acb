/*
 * Who the request's user is: the one place every chat, message and model route asks.
 *
 * Today (AUTH=none, the original API) the user is the user_id the request names, in its query or
 * its JSON body, validated like any other field.  The account modes (a bearer token, or the web
 * server's REMOTE_USER) answer here too, so that no handler decides for itself.
 */
#include "handlers.h"

#define USER_ID_MAX 255

static const struct ac_strspec user_id_spec = { "user_id", true, false, 1, USER_ID_MAX };

bool
ac_request_user(struct ac_ctx *c, struct ac_verrs *v, struct json_object *body, struct ac_str *user_id)
{
	bool present, ok;

	user_id->ptr = NULL;
	user_id->len = 0;
	if (body != NULL)
		ok = ac_valid_body_str(v, body, &user_id_spec, user_id, &present);
	else
		ok = ac_valid_str(v, "query", &user_id_spec, ac_query_get(&c->req.query, "user_id"), user_id);
	if (ok)
		ac_log_user(c, *user_id);
	return ok;
}
