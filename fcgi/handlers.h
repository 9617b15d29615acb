/* The API's handlers: each turns a parsed request into calls on the repository and an answer. */
#ifndef AC_HANDLERS_H
#define AC_HANDLERS_H

#include "worker.h"

/* args holds the path's parameters ({chat_id}), in order. */
typedef void (*ac_handler)(struct ac_ctx *c, const struct ac_str *args);

void ac_h_root(struct ac_ctx *c, const struct ac_str *args);
void ac_h_health(struct ac_ctx *c, const struct ac_str *args);
void ac_h_chat_create(struct ac_ctx *c, const struct ac_str *args);
void ac_h_chat_list(struct ac_ctx *c, const struct ac_str *args);
void ac_h_chat_get(struct ac_ctx *c, const struct ac_str *args);
void ac_h_chat_rename(struct ac_ctx *c, const struct ac_str *args);
void ac_h_chat_delete(struct ac_ctx *c, const struct ac_str *args);
void ac_h_message_list(struct ac_ctx *c, const struct ac_str *args);
void ac_h_chat_send(struct ac_ctx *c, const struct ac_str *args);
void ac_h_chat_regenerate(struct ac_ctx *c, const struct ac_str *args);
void ac_h_message_edit(struct ac_ctx *c, const struct ac_str *args);
void ac_h_chat_active(struct ac_ctx *c, const struct ac_str *args);
void ac_h_models(struct ac_ctx *c, const struct ac_str *args);
void ac_h_openapi(struct ac_ctx *c, const struct ac_str *args);
/* openai.c: the OpenAI-compatible routes. */
void ac_h_v1_models(struct ac_ctx *c, const struct ac_str *args);
void ac_h_v1_chat_completions(struct ac_ctx *c, const struct ac_str *args);
/* A /v1 request refused before its handler (401, 403, ...): the answer again, in OpenAI's shape. */
void ac_v1_refused(struct ac_ctx *c);
/* monitor.c: GET /metrics (METRICS=1, from METRICS_ALLOW addresses; else a 404). */
void ac_h_metrics(struct ac_ctx *c, const struct ac_str *args);

/* h_auth.c: the /auth routes */
void ac_h_auth_register(struct ac_ctx *c, const struct ac_str *args);
void ac_h_auth_login(struct ac_ctx *c, const struct ac_str *args);
void ac_h_auth_token(struct ac_ctx *c, const struct ac_str *args);
void ac_h_auth_me(struct ac_ctx *c, const struct ac_str *args);
void ac_h_auth_delete_me(struct ac_ctx *c, const struct ac_str *args);
void ac_h_auth_logout(struct ac_ctx *c, const struct ac_str *args);
void ac_h_auth_config(struct ac_ctx *c, const struct ac_str *args);

/* h_admin.c: the /admin routes (the router lets admins only in) */
void ac_h_admin_users(struct ac_ctx *c, const struct ac_str *args);
void ac_h_admin_user_create(struct ac_ctx *c, const struct ac_str *args);
void ac_h_admin_user_role(struct ac_ctx *c, const struct ac_str *args);
void ac_h_admin_user_delete(struct ac_ctx *c, const struct ac_str *args);
void ac_h_admin_user_chats(struct ac_ctx *c, const struct ac_str *args);
void ac_h_admin_chat_messages(struct ac_ctx *c, const struct ac_str *args);

/* h_keys.c: personal API keys (AUTH=token): the account's own, and (admins) anyone's */
void ac_h_keys_create(struct ac_ctx *c, const struct ac_str *args);
void ac_h_keys_list(struct ac_ctx *c, const struct ac_str *args);
void ac_h_key_delete(struct ac_ctx *c, const struct ac_str *args);
void ac_h_admin_user_keys(struct ac_ctx *c, const struct ac_str *args);
void ac_h_admin_user_key_delete(struct ac_ctx *c, const struct ac_str *args);

/* handlers.c: the Chat and Message objects, as every route writes them. */
void ac_write_chat(struct ac_buf *b, const struct ac_chat *chat);
void ac_write_message(struct ac_buf *b, const struct ac_message *m);
void ac_write_time(struct ac_buf *b, int64_t t);

/*
 * identity.c: the request's user, for every route that acts on a user's chats.  From body's
 * "user_id" when body is not NULL, else from the query's; a problem is added to v (a 422).
 */
bool ac_request_user(struct ac_ctx *c, struct ac_verrs *v, struct json_object *body, struct ac_str *user_id);

/*
 * identity.c: authenticates the request (AUTH=token: its bearer token; remote-user: REMOTE_USER)
 * into c->who; admin: the account must be an admin.  false when it has answered (401 with
 * WWW-Authenticate: Bearer, 403, 503).  The router calls it for every route that is not open.
 */
bool ac_authenticate(struct ac_ctx *c, bool admin);
/* Answers 401 {"detail": detail} with WWW-Authenticate: Bearer. */
void ac_resp_unauthorized(struct ac_ctx *c, const char *detail);

/* handlers.c: whether a path's chat id can name a chat (else answered 404 without a lookup). */
bool ac_chat_id_ok(struct ac_ctx *c, struct ac_str id);

/* search.c, export.c, import.c */
void ac_h_search(struct ac_ctx *c, const struct ac_str *args);
void ac_h_chat_export(struct ac_ctx *c, const struct ac_str *args);
void ac_h_export(struct ac_ctx *c, const struct ac_str *args);
void ac_h_import(struct ac_ctx *c, const struct ac_str *args);

/* chat_routes.c: adds the 422 entry for a "model" that is no alias of the registry. */
void ac_models_invalid(struct ac_verrs *v, const struct ac_models *ms);

/*
 * send_limits.c: the per-user send limits.  ac_send_admit admits a send of user_id before it stores
 * anything (*slot: the generation slot it holds, 0 for none), or answers the 429 (or a 503) itself
 * and returns false.  ac_send_release, once at the admitted send's end, gives the slot back and
 * counts the provider's tokens.
 */
bool ac_send_admit(struct ac_ctx *c, struct ac_str user_id, int64_t slot_until, int64_t *slot);
void ac_send_release(struct ac_ctx *c, struct ac_str user_id, int64_t slot, int64_t tokens);

/*
 * auto_title.c: after a send's reply was stored, names the chat (AUTO_TITLE) once the answer has
 * gone, if this was its first exchange and it has no title.
 */
void ac_auto_title(struct ac_ctx *c, struct ac_str chat_id, struct ac_str user_id);

/* conf/docs/openapi.json, compiled in (build/openapi_doc.c). */
extern const char ac_openapi_doc[];
extern const size_t ac_openapi_doc_len;

#endif
