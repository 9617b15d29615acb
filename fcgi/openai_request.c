/* The OpenAI-compatible routes' request (openai_impl.h): its members, its messages, its model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json.h"
#include "openai_impl.h"

#define STOP_MAX 4

/* Request members passed on to the provider as they are (Groq's; OpenAI's own). */
static const char *const passed_on[] = {
	"frequency_penalty", "presence_penalty", "seed", "response_format", "reasoning_effort",
	"reasoning_format", "include_reasoning", "service_tier", "metadata", "store", "logit_bias",
};
/* Members whose answer we could not pass back (tools, log probabilities, audio): a 400. */
static const char *const refused[] = {
	"tools", "tool_choice", "functions", "function_call", "parallel_tool_calls", "logprobs", "top_logprobs",
	"audio", "modalities", "prediction", "web_search_options",
};

/* The model by alias, else by the provider's id the registry lists. */
const struct ac_model *
ac_oai_find_model(const struct ac_models *ms, struct ac_str name)
{
	const struct ac_model *m = ac_models_find(ms, name.ptr, name.len);

	for (int i = 0; m == NULL && i < ms->count; i++) {
		if (strlen(ms->m[i].id) == name.len && memcmp(ms->m[i].id, name.ptr, name.len) == 0)
			m = &ms->m[i];
	}
	return m;
}

/* ---- the request ---- */

/* The messages: [{role, content}], content a string or text parts (joined into parts); NULL once
 * answered (a 400). */
struct ac_llm_msg *
ac_oai_read_messages(struct ac_ctx *c, struct json_object *arr, size_t *count, struct ac_buf *parts)
{
	size_t n = json_object_array_length(arr);
	struct ac_llm_msg *msgs;
	size_t *at;	/* where a message's joined parts start in parts; SIZE_MAX: a string */
	char param[64];

	if (n == 0) {
		ac_oai_invalid(c, "messages", "messages must hold at least one message");
		return NULL;
	}
	msgs = calloc(n, sizeof(*msgs));
	at = calloc(n, sizeof(*at));
	if (msgs == NULL || at == NULL) {
		free(msgs);
		free(at);
		ac_oai_error(c, 500, "api_error", NULL, NULL, "Out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(arr, i), *role, *content;
		const char *r;

		at[i] = SIZE_MAX;
		snprintf(param, sizeof(param), "messages[%zu]", i);
		if (!json_object_is_type(m, json_type_object) || !json_object_object_get_ex(m, "role", &role) ||
		    !json_object_is_type(role, json_type_string)) {
			ac_oai_invalid(c, param, "each message must be an object with a role");
			goto bad;
		}
		r = json_object_get_string(role);
		if (strcmp(r, "system") == 0 || strcmp(r, "developer") == 0) {
			msgs[i].role = AC_LLM_SYSTEM;
		} else if (strcmp(r, "user") == 0) {
			msgs[i].role = AC_LLM_USER;
		} else if (strcmp(r, "assistant") == 0) {
			msgs[i].role = AC_LLM_ASSISTANT;
		} else {
			snprintf(param, sizeof(param), "messages[%zu].role", i);
			ac_oai_invalid(c, param, "the role must be system, developer, user or assistant (tools are not supported)");
			goto bad;
		}
		snprintf(param, sizeof(param), "messages[%zu].content", i);
		if (!json_object_object_get_ex(m, "content", &content) || content == NULL) {
			msgs[i].content = AC_STR("");
			if (msgs[i].role != AC_LLM_ASSISTANT) {
				ac_oai_invalid(c, param, "the message has no content");
				goto bad;
			}
		} else if (json_object_is_type(content, json_type_string)) {
			msgs[i].content = ac_json_get_str(content);
		} else if (json_object_is_type(content, json_type_array)) {
			at[i] = parts->len;
			for (size_t k = 0; k < json_object_array_length(content); k++) {
				struct json_object *part = json_object_array_get_idx(content, k), *type, *text;

				if (!json_object_object_get_ex(part, "type", &type) || !json_object_is_type(type, json_type_string) ||
				    strcmp(json_object_get_string(type), "text") != 0 ||
				    !json_object_object_get_ex(part, "text", &text) || !json_object_is_type(text, json_type_string)) {
					ac_oai_invalid(c, param, "only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
					goto bad;
				}
				ac_buf_add(parts, json_object_get_string(text), (size_t)json_object_get_string_len(text));
			}
			msgs[i].content.len = parts->len - at[i];
		} else {
			ac_oai_invalid(c, param, "the content must be a string or an array of text parts");
			goto bad;
		}
	}
	if (ac_buf_err(parts) != AC_OK) {
		ac_oai_invalid(c, "messages", "the messages are too large");
		goto bad;
	}
	/* parts is whole now: its pointers stay put. */
	for (size_t i = 0; i < n; i++) {
		if (at[i] != SIZE_MAX)
			msgs[i].content.ptr = parts->data != NULL ? parts->data + at[i] : "";
	}
	free(at);
	*count = n;
	return msgs;
bad:
	free(msgs);
	free(at);
	return NULL;
}

static bool
listed(const char *key, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, list[i]) == 0)
			return true;
	return false;
}

static bool
is_number(struct json_object *v)
{
	return json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int);
}

/* ,"key":<value as sent> into the provider's request. */
static void
pass_on(struct ac_buf *x, const char *key, struct json_object *v)
{
	ac_buf_addc(x, ',');
	ac_json_cstr(x, key);
	ac_buf_addc(x, ':');
	ac_buf_adds(x, v != NULL ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN) : "null");
}

/* One member of the request; false once answered (a 400 or 404). */
bool
ac_oai_read_member(struct oai *o, const char *key, struct json_object *v, struct json_object **messages)
{
	struct ac_ctx *c = o->c;
	char msg[200];

	if (strcmp(key, "model") == 0) {
		if (v == NULL || !json_object_is_type(v, json_type_string)) {
			ac_oai_invalid(c, "model", "model must be a string");
			return false;
		}
		o->model = ac_oai_find_model(&c->cfg->models, ac_json_get_str(v));
		if (o->model == NULL) {
			snprintf(msg, sizeof(msg), "The model '%.100s' does not exist (GET /v1/models lists them)",
			    json_object_get_string(v));
			ac_oai_error(c, 404, "invalid_request_error", "model", "model_not_found", msg);
			return false;
		}
	} else if (strcmp(key, "messages") == 0) {
		if (v == NULL || !json_object_is_type(v, json_type_array)) {
			ac_oai_invalid(c, "messages", "messages must be an array of messages");
			return false;
		}
		*messages = v;
	} else if (strcmp(key, "stream") == 0) {
		if (v != NULL && !json_object_is_type(v, json_type_boolean)) {
			ac_oai_invalid(c, "stream", "stream must be a boolean");
			return false;
		}
		o->stream = v != NULL && json_object_get_boolean(v);
	} else if (strcmp(key, "stream_options") == 0) {
		struct json_object *u;

		if (v != NULL && !json_object_is_type(v, json_type_object)) {
			ac_oai_invalid(c, "stream_options", "stream_options must be an object");
			return false;
		}
		if (v != NULL && json_object_object_get_ex(v, "include_usage", &u)) {
			if (u != NULL && !json_object_is_type(u, json_type_boolean)) {
				ac_oai_invalid(c, "stream_options.include_usage", "include_usage must be a boolean");
				return false;
			}
			o->include_usage = u != NULL && json_object_get_boolean(u);
		}
	} else if (strcmp(key, "temperature") == 0) {
		if (v != NULL && (!is_number(v) || json_object_get_double(v) < 0 || json_object_get_double(v) > 2)) {
			ac_oai_invalid(c, "temperature", "temperature must be a number from 0 to 2");
			return false;
		}
		o->opts.has_temperature = v != NULL;
		o->opts.temperature = v != NULL ? json_object_get_double(v) : 0;
	} else if (strcmp(key, "top_p") == 0) {
		if (v != NULL && (!is_number(v) || json_object_get_double(v) < 0 || json_object_get_double(v) > 1)) {
			ac_oai_invalid(c, "top_p", "top_p must be a number from 0 to 1");
			return false;
		}
		if (v != NULL)
			pass_on(&o->extra, key, v);
	} else if (strcmp(key, "max_tokens") == 0 || strcmp(key, "max_completion_tokens") == 0) {
		if (v != NULL && (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1)) {
			snprintf(msg, sizeof(msg), "%s must be a positive integer", key);
			ac_oai_invalid(c, key, msg);
			return false;
		}
		if (v != NULL)
			o->opts.max_tokens = json_object_get_int64(v);
	} else if (strcmp(key, "stop") == 0) {
		bool ok = v == NULL || json_object_is_type(v, json_type_string);

		if (v != NULL && json_object_is_type(v, json_type_array) && json_object_array_length(v) <= STOP_MAX) {
			ok = true;
			for (size_t i = 0; i < json_object_array_length(v); i++)
				ok = ok && json_object_is_type(json_object_array_get_idx(v, i), json_type_string);
		}
		if (!ok) {
			ac_oai_invalid(c, "stop", "stop must be a string or an array of at most 4 strings");
			return false;
		}
		if (v != NULL)
			pass_on(&o->extra, key, v);
	} else if (strcmp(key, "user") == 0) {
		if (v != NULL && !json_object_is_type(v, json_type_string)) {
			ac_oai_invalid(c, "user", "user must be a string");
			return false;
		}
		if (v != NULL)
			pass_on(&o->extra, key, v);
	} else if (strcmp(key, "n") == 0) {
		if (v != NULL && (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 1)) {
			ac_oai_invalid(c, "n", "only n=1 is supported");
			return false;
		}
	} else if (listed(key, passed_on, sizeof(passed_on) / sizeof(passed_on[0]))) {
		pass_on(&o->extra, key, v);
		if (strcmp(key, "reasoning_effort") == 0)
			o->opts.own_reasoning_effort = true;
	} else if (listed(key, refused, sizeof(refused) / sizeof(refused[0]))) {
		snprintf(msg, sizeof(msg), "'%.60s' is not supported by this server", key);
		ac_oai_invalid(c, key, msg);
		return false;
	} else {
		snprintf(msg, sizeof(msg), "Unrecognized request argument supplied: %.60s", key);
		ac_oai_invalid(c, key, msg);
		return false;
	}
	return true;
}

/* An answer given in our {"detail"} shape (the body's checks, the user's), in OpenAI's instead. */
void
ac_oai_reshape(struct ac_ctx *c)
{
	int status = c->resp.status;
	struct json_object *o = NULL, *d;
	struct ac_json_error jerr;
	char message[512] = "The request could not be read";
	const char *type = "invalid_request_error", *code = NULL;
	struct ac_buf kept;

	if (c->resp.committed)
		return;
	if (c->resp.body.len > 0 && ac_json_parse(c->resp.body.data, c->resp.body.len, &o, &jerr) == AC_OK &&
	    json_object_object_get_ex(o, "detail", &d) && json_object_is_type(d, json_type_string))
		snprintf(message, sizeof(message), "%s", json_object_get_string(d));
	json_object_put(o);
	if (status == 401) {
		type = "authentication_error";
		code = "invalid_api_key";
	} else if (status == 403) {
		type = "permission_error";
	} else if (status == 429) {
		type = "rate_limit_error";
		code = "rate_limit_exceeded";
	} else if (status >= 500) {
		type = "api_error";
	}
	/* The headers it had (WWW-Authenticate, Retry-After) stay. */
	ac_buf_init(&kept, 8192);
	ac_buf_add(&kept, c->resp.headers.data != NULL ? c->resp.headers.data : "", c->resp.headers.len);
	ac_oai_error(c, status, type, NULL, code, message);
	if (ac_buf_err(&kept) == AC_OK)
		ac_buf_add(&c->resp.headers, kept.data != NULL ? kept.data : "", kept.len);
	ac_buf_free(&kept);
}
