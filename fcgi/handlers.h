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

/*
 * identity.c: the request's user, for every route that acts on a user's chats.  From body's
 * "user_id" when body is not NULL, else from the query's; a problem is added to v (a 422).
 */
bool ac_request_user(struct ac_ctx *c, struct ac_verrs *v, struct json_object *body, struct ac_str *user_id);

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
