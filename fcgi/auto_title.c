/*
 * Automatic titles (issue 11, AUTO_TITLE): after the first exchange of a chat that has no title,
 * the fast model is asked for a short one, in a request of its own made once the answer has gone to
 * the client (ac_after_response: after FCGX_Finish_r, or for a parked send once the loop has written
 * the answer out, on a pool thread).  The title is set only if the chat still has none: a title the
 * user set meanwhile stays.  Any failure (the provider, the database, an answer with no words)
 * leaves the chat untitled, and is logged.  The title call's tokens count against TOKENS_PER_DAY.
 */
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/repo_ops.h"
#include "../common/title.h"
#include "../common/util.h"
#include "handlers.h"
#include "server.h"

#define EXCERPT_BYTES 2000		/* of each message, for the model to name the chat from */
#define TITLE_MAX_TOKENS 512		/* the title call's completion (a reasoning model thinks first) */
#define TITLE_MAX_RESPONSE (64 * 1024)

static const char title_prompt[] =
    "You name conversations. Answer with a title for the conversation below: 3 to 6 words, at most "
    "80 characters, in the conversation's language, with no quotes and no punctuation at the end. "
    "Answer with the title alone.";

struct title_job {
	size_t chat_id_len;
	size_t user_id_len;
	char strs[];		/* chat_id, then user_id */
};

/* The first exchange, gathered: "User: ...\n\nAssistant: ..." (each cut short). */
static enum ac_err
take_exchange(void *arg, const struct ac_message *m)
{
	struct ac_buf *b = arg;
	size_t n = m->content.len;

	if (n > EXCERPT_BYTES) {
		n = EXCERPT_BYTES;
		while (n > 0 && ((unsigned char)m->content.ptr[n] & 0xc0) == 0x80)
			n--;	/* not inside a character */
	}
	ac_buf_adds(b, b->len > 0 ? "\n\n" : "");
	ac_buf_adds(b, m->role == AC_ROLE_ASSISTANT ? "Assistant: " : "User: ");
	ac_buf_add(b, m->content.ptr, n);
	return ac_buf_err(b);
}

static const struct ac_model *
title_model(const struct ac_config *cfg)
{
	const struct ac_model *m = ac_models_find(&cfg->models, "fast", 4);

	return m != NULL ? m : &cfg->models.m[0];
}

static void
title_run(struct ac_ctx *c, void *arg)
{
	struct title_job *j = arg;
	struct ac_str chat_id = { j->strs, j->chat_id_len };
	struct ac_str user_id = { j->strs + j->chat_id_len, j->user_id_len };
	struct ac_model model = *title_model(c->cfg);
	struct ac_llm_result res;
	struct ac_llm_msg msgs[2];
	struct ac_buf text;
	char title[AC_TITLE_BYTES];
	size_t len;
	bool set = false;
	enum ac_err err;

	ac_buf_init(&text, 2 * EXCERPT_BYTES + 64);
	ac_llm_result_init(&res, TITLE_MAX_RESPONSE);
	err = ac_repo_first_exchange(c->repo, chat_id, user_id, take_exchange, &text);
	if (err == AC_ENOTFOUND)
		goto out;	/* titled meanwhile, deleted, or more than one exchange by now */
	if (err != AC_OK) {
		ac_log(AC_LOG_WARN, "auto-title: chat %.*s: cannot read its first exchange (%s)", (int)chat_id.len,
		    chat_id.ptr, ac_strerror(err));
		goto out;
	}
	if (ac_server_stopping())
		goto out;	/* not worth holding up the process's exit */
	if (model.max_completion_tokens > TITLE_MAX_TOKENS)
		model.max_completion_tokens = TITLE_MAX_TOKENS;
	msgs[0].role = AC_LLM_SYSTEM;
	msgs[0].content = (struct ac_str){ title_prompt, sizeof(title_prompt) - 1 };
	msgs[1].role = AC_LLM_USER;
	msgs[1].content = (struct ac_str){ text.data, text.len };
	ac_provider_chat(c->provider, &model, msgs, 2, false, NULL, &res);
	ac_send_release(c, user_id, 0, res.prompt_tokens + res.completion_tokens);
	if (res.fail != AC_LLM_OK) {
		ac_log(AC_LOG_WARN, "auto-title: chat %.*s stays untitled: %s", (int)chat_id.len, chat_id.ptr,
		    res.detail);
		goto out;
	}
	len = ac_title_clean(res.text.data != NULL ? res.text.data : "", res.text.len, title);
	if (len == 0) {
		ac_log(AC_LOG_WARN, "auto-title: chat %.*s stays untitled: the model's answer holds no title",
		    (int)chat_id.len, chat_id.ptr);
		goto out;
	}
	err = ac_repo_chat_title_if_none(c->repo, chat_id, user_id, (struct ac_str){ title, len }, ac_now_us(), &set);
	if (err != AC_OK)
		ac_log(AC_LOG_WARN, "auto-title: chat %.*s stays untitled: %s", (int)chat_id.len, chat_id.ptr,
		    ac_strerror(err));
	else
		ac_log(AC_LOG_DEBUG, "auto-title: chat %.*s %s", (int)chat_id.len, chat_id.ptr,
		    set ? "titled" : "was titled meanwhile");
out:
	ac_buf_free(&text);
	ac_llm_result_free(&res);
	free(j);
}

void
ac_auto_title(struct ac_ctx *c, struct ac_str chat_id, struct ac_str user_id)
{
	struct title_job *j;

	if (!c->cfg->auto_title || c->cfg->api_key[0] == '\0')
		return;
	j = malloc(sizeof(*j) + chat_id.len + user_id.len);
	if (j == NULL)
		return;
	j->chat_id_len = chat_id.len;
	j->user_id_len = user_id.len;
	memcpy(j->strs, chat_id.ptr, chat_id.len);
	memcpy(j->strs + chat_id.len, user_id.ptr, user_id.len);
	if (!ac_after_response(c, title_run, j))
		free(j);
}
