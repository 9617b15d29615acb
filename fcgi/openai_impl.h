/* What fcgi/openai.c (the answer) and fcgi/openai_request.c (the request) share. */
#ifndef AC_OPENAI_IMPL_H
#define AC_OPENAI_IMPL_H

#include "handlers.h"

#define EVENT_KEEP (64 * 1024)

/* One completion: its settings, its call (parked or not), its answer, and what it stores. */
struct oai {
	struct ac_ctx *c;
	const struct ac_model *model;
	bool stream;
	bool include_usage;
	bool head_sent;			/* the stream's head went out */
	bool role_sent;			/* the first chunk (the role) went out */
	struct ac_buf head;		/* a parked stream's head, rendered before parking */
	struct ac_buf event;
	struct ac_buf extra;		/* opts.extra */
	struct ac_llm_opts opts;
	struct ac_llm_result res;
	struct ac_llm_hooks hooks;
	struct ac_provider *call;	/* a parked call's own */
	struct ac_park *park;
	char id[AC_REQUEST_ID_MAX + 16];	/* "chatcmpl-<request id>" */
	long long created;

	/* X-Chat-Id: the exchange is stored into the chat. */
	bool store;
	bool stored;
	char *owned;
	struct ac_str chat_id, user_id;
	struct ac_send state;

	/* The per-user send limits (send_limits.c): admitted like a POST /chat, released at the end. */
	bool admitted;
	int64_t slot;
	char *limit_user;
	size_t limit_user_len;
};

/* Answers {"error": {message, type, param, code}} with status (cuts a committed answer short). */
void ac_oai_error(struct ac_ctx *c, int status, const char *type, const char *param, const char *code,
    const char *message);
/* A 400 invalid_request_error about param. */
void ac_oai_invalid(struct ac_ctx *c, const char *param, const char *message);
/* An answer given in our {"detail"} shape (the body's checks, the user's), in OpenAI's instead. */
void ac_oai_reshape(struct ac_ctx *c);
/* The model by alias, else by a provider id the registry lists; NULL: none. */
const struct ac_model *ac_oai_find_model(const struct ac_models *ms, struct ac_str name);
/* One member of the request into o (messages: *messages); false once answered (a 400 or 404). */
bool ac_oai_read_member(struct oai *o, const char *key, struct json_object *v, struct json_object **messages);
/* The messages (contents point into the request, or into parts); NULL once answered. */
struct ac_llm_msg *ac_oai_read_messages(struct ac_ctx *c, struct json_object *arr, size_t *count,
    struct ac_buf *parts);

#endif
