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

/* handlers.c: a timestamp as a JSON string ("2026-11-25T00:20:14.718833Z"). */
void ac_write_time(struct ac_buf *b, int64_t t);

/* handlers.c: whether a path's chat id can name a chat (else answered 404 without a lookup). */
bool ac_chat_id_ok(struct ac_ctx *c, struct ac_str id);

void ac_h_search(struct ac_ctx *c, const struct ac_str *args);
void ac_h_chat_export(struct ac_ctx *c, const struct ac_str *args);
void ac_h_export(struct ac_ctx *c, const struct ac_str *args);
void ac_h_import(struct ac_ctx *c, const struct ac_str *args);

/* chat.c: adds the 422 entry for a "model" that is no alias of the registry. */
void ac_models_invalid(struct ac_verrs *v, const struct ac_models *ms);

/* conf/docs/openapi.json, compiled in (build/openapi_doc.c). */
extern const char ac_openapi_doc[];
extern const size_t ac_openapi_doc_len;

#endif
