/*
 * GET /chats/{id}/export?format=json|markdown and GET /export?format=json: the user's chats as a
 * download (Content-Disposition: attachment), streamed as they are read.  One chat is read at a time
 * and its messages a page at a time, and the body goes out whenever its window fills (response.c),
 * so an export of any size takes the same memory.  The JSON is what POST /import takes back.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../common/json.h"
#include "../common/util.h"
#include "handlers.h"

#define EXPORT_PAGE 500		/* messages read at once */
#define EXPORT_FORMAT "ai-chat-fcgi-export"
#define EXPORT_VERSION 1

enum format {
	FORMAT_JSON,
	FORMAT_MARKDOWN,
};

struct out {
	struct ac_ctx *c;
	struct ac_buf *b;
	int64_t n;		/* messages written in this chat */
	int64_t last_id;	/* the page cursor */
	/* the chat just read: the cursor of the next one */
	char chat_id[AC_UUID_LEN + 1];
	int64_t chat_created;
	bool found;
	int64_t chats;		/* chats written */
};

static bool
parse_format(struct ac_verrs *v, const struct ac_str *value, bool markdown_ok, enum format *out)
{
	*out = FORMAT_JSON;
	if (value == NULL || (value->len == 4 && memcmp(value->ptr, "json", 4) == 0))
		return true;
	if (markdown_ok && value->len == 8 && memcmp(value->ptr, "markdown", 8) == 0) {
		*out = FORMAT_MARKDOWN;
		return true;
	}
	ac_verrs_add(v, "query", "format", markdown_ok ? "value is not a valid enumeration member; permitted: "
	    "'json', 'markdown'" : "value is not a valid enumeration member; permitted: 'json'", "type_error.enum",
	    false, 0);
	return false;
}

static void
json_nullable(struct ac_buf *b, struct ac_str s)
{
	if (s.ptr != NULL)
		ac_json_str(b, s.ptr, s.len);
	else
		ac_buf_adds(b, "null");
}

/* The export's head, up to the chats' opening bracket. */
static void
json_head(struct ac_buf *b, struct ac_str user_id)
{
	ac_buf_adds(b, "{\"format\":\"" EXPORT_FORMAT "\",\"version\":");
	ac_buf_addi(b, EXPORT_VERSION);
	ac_buf_adds(b, ",\"exported_at\":");
	ac_write_time(b, ac_now_us());
	ac_buf_adds(b, ",\"user_id\":");
	ac_json_str(b, user_id.ptr, user_id.len);
	ac_buf_adds(b, ",\"chats\":[");
}

/* A chat's members, up to its messages' opening bracket. */
static void
json_chat(struct ac_buf *b, const struct ac_chat *chat)
{
	ac_buf_adds(b, "{\"id\":");
	ac_json_str(b, chat->id.ptr, chat->id.len);
	ac_buf_adds(b, ",\"title\":");
	json_nullable(b, chat->title);
	ac_buf_adds(b, ",\"created_at\":");
	ac_write_time(b, chat->created_at);
	ac_buf_adds(b, ",\"updated_at\":");
	ac_write_time(b, chat->updated_at);
	ac_buf_adds(b, ",\"system_prompt\":");
	json_nullable(b, chat->system_prompt);
	ac_buf_adds(b, ",\"model\":");
	json_nullable(b, chat->model);
	ac_buf_adds(b, chat->pinned ? ",\"pinned\":true" : ",\"pinned\":false");
	ac_buf_adds(b, chat->archived ? ",\"archived\":true" : ",\"archived\":false");
	ac_buf_adds(b, ",\"messages\":[");
}

static enum ac_err
json_message(void *arg, const struct ac_export_message *m)
{
	struct out *o = arg;
	struct ac_buf *b = o->b;

	if (o->n++ > 0)
		ac_buf_addc(b, ',');
	o->last_id = m->id;
	ac_buf_adds(b, "{\"id\":");
	ac_buf_addi(b, m->id);
	ac_buf_adds(b, ",\"parent_id\":");
	if (m->parent_id > 0)
		ac_buf_addi(b, m->parent_id);
	else
		ac_buf_adds(b, "null");
	ac_buf_adds(b, m->role == AC_ROLE_ASSISTANT ? ",\"role\":\"assistant\",\"content\":" :
	    ",\"role\":\"user\",\"content\":");
	ac_json_str(b, m->content.ptr, m->content.len);
	ac_buf_adds(b, ",\"created_at\":");
	ac_write_time(b, m->created_at);
	ac_buf_adds(b, ",\"model\":");
	json_nullable(b, m->role == AC_ROLE_ASSISTANT ? m->model : (struct ac_str){ NULL, 0 });
	ac_buf_adds(b, m->incomplete ? ",\"incomplete\":true" : ",\"incomplete\":false");
	ac_buf_adds(b, m->active ? ",\"active\":true}" : ",\"active\":false}");
	return ac_buf_err(b) == AC_OK && !o->c->resp.failed ? AC_OK : AC_EIO;
}

static enum ac_err
markdown_message(void *arg, const struct ac_export_message *m)
{
	struct out *o = arg;
	struct ac_buf *b = o->b;
	char ts[AC_TIME_LEN + 1];

	o->n++;
	o->last_id = m->id;
	ac_time_format(m->created_at, ts);
	if (m->role == AC_ROLE_ASSISTANT) {
		ac_buf_adds(b, "### Assistant");
		if (m->model.ptr != NULL && m->model.len > 0) {
			ac_buf_adds(b, " (");
			ac_buf_add(b, m->model.ptr, m->model.len);
			ac_buf_addc(b, ')');
		}
	} else {
		ac_buf_adds(b, "### User");
	}
	ac_buf_adds(b, " · ");
	ac_buf_add(b, ts, AC_TIME_LEN);
	if (m->incomplete)
		ac_buf_adds(b, " · incomplete");
	ac_buf_adds(b, "\n\n");
	ac_buf_add(b, m->content.ptr, m->content.len);
	ac_buf_adds(b, "\n\n");
	return ac_buf_err(b) == AC_OK && !o->c->resp.failed ? AC_OK : AC_EIO;
}

/* Writes the chat's messages (every branch for JSON, the active path for Markdown), page by page. */
static enum ac_err
messages_out(struct out *o, struct ac_str chat_id, enum format f)
{
	enum ac_err err;
	int64_t rows;

	o->n = 0;
	o->last_id = 0;
	do {
		err = ac_repo_export_messages(o->c->repo, chat_id, o->last_id, EXPORT_PAGE, f == FORMAT_MARKDOWN,
		    &rows, f == FORMAT_MARKDOWN ? markdown_message : json_message, o);
	} while (err == AC_OK && rows == EXPORT_PAGE);
	return err;
}

static enum ac_err
chat_found(void *arg, const struct ac_chat *chat)
{
	struct out *o = arg;
	size_t n = chat->id.len < AC_UUID_LEN ? chat->id.len : AC_UUID_LEN;

	memcpy(o->chat_id, chat->id.ptr, n);
	o->chat_id[n] = '\0';
	o->chat_created = chat->created_at;
	o->found = true;
	if (o->chats++ > 0)
		ac_buf_addc(o->b, ',');
	json_chat(o->b, chat);
	return ac_buf_err(o->b);
}

static enum ac_err
markdown_head(void *arg, const struct ac_chat *chat)
{
	struct out *o = arg;
	struct ac_buf *b = o->b;
	char ts[AC_TIME_LEN + 1];

	o->found = true;
	ac_buf_adds(b, "# ");
	if (chat->title.ptr != NULL)
		ac_buf_add(b, chat->title.ptr, chat->title.len);
	else
		ac_buf_adds(b, "Untitled chat");
	ac_buf_adds(b, "\n\n- Chat: ");
	ac_buf_add(b, chat->id.ptr, chat->id.len);
	ac_time_format(chat->created_at, ts);
	ac_buf_adds(b, "\n- Created: ");
	ac_buf_add(b, ts, AC_TIME_LEN);
	ac_time_format(chat->updated_at, ts);
	ac_buf_adds(b, "\n- Updated: ");
	ac_buf_add(b, ts, AC_TIME_LEN);
	if (chat->model.ptr != NULL) {
		ac_buf_adds(b, "\n- Model: ");
		ac_buf_add(b, chat->model.ptr, chat->model.len);
	}
	if (chat->system_prompt.ptr != NULL) {
		ac_buf_adds(b, "\n- System prompt:\n\n  > ");
		for (size_t i = 0; i < chat->system_prompt.len; i++) {
			ac_buf_addc(b, chat->system_prompt.ptr[i]);
			if (chat->system_prompt.ptr[i] == '\n')
				ac_buf_adds(b, "  > ");
		}
	}
	ac_buf_adds(b, "\n\n---\n\n");
	return ac_buf_err(b);
}

/* Starts the download: status, type and name (before any of the body, which may stream at once). */
static void
download(struct ac_ctx *c, enum format f, const char *name)
{
	char disposition[128];

	ac_resp_start(c, 200);
	c->resp.content_type = f == FORMAT_MARKDOWN ? "text/markdown; charset=utf-8" : "application/json";
	snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s.%s\"", name,
	    f == FORMAT_MARKDOWN ? "md" : "json");
	ac_resp_header(c, "Content-Disposition", disposition);
	ac_resp_header(c, "Cache-Control", "no-store");
}

void
ac_h_chat_export(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct ac_str user_id;
	struct out o;
	enum format f = FORMAT_JSON;
	char name[64];
	enum ac_err err;

	memset(&o, 0, sizeof(o));
	o.c = c;
	o.b = &c->resp.body;
	ac_verrs_init(&v);
	ac_request_user(c, &v, NULL, &user_id);
	parse_format(&v, ac_query_get(&c->req.query, "format"), true, &f);
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	if (!ac_chat_id_ok(c, args[0]))
		goto out;
	snprintf(name, sizeof(name), "chat-%.*s", (int)args[0].len, args[0].ptr);
	download(c, f, name);
	if (f == FORMAT_JSON)
		json_head(o.b, user_id);
	err = ac_repo_chat_get(c->repo, args[0], user_id, f == FORMAT_JSON ? chat_found : markdown_head, &o);
	if (err == AC_OK)
		err = messages_out(&o, args[0], f);
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, args[0]);
		goto out;
	}
	if (f == FORMAT_JSON)
		ac_buf_adds(o.b, "]}]}");
out:
	ac_verrs_free(&v);
}

void
ac_h_export(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct ac_str user_id;
	struct out o;
	enum format f = FORMAT_JSON;
	enum ac_err err = AC_OK;

	(void)args;
	memset(&o, 0, sizeof(o));
	o.c = c;
	o.b = &c->resp.body;
	o.chat_created = INT64_MIN;
	ac_verrs_init(&v);
	ac_request_user(c, &v, NULL, &user_id);
	parse_format(&v, ac_query_get(&c->req.query, "format"), false, &f);
	if (v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	download(c, f, "chats");
	json_head(o.b, user_id);
	for (;;) {
		struct ac_str after = { o.chat_id, strlen(o.chat_id) };

		o.found = false;
		err = ac_repo_export_next_chat(c->repo, user_id, o.chat_created, after, chat_found, &o);
		if (err == AC_ENOTFOUND) {
			err = AC_OK;	/* past the last */
			break;
		}
		if (err == AC_OK) {
			struct ac_str id = { o.chat_id, strlen(o.chat_id) };

			err = messages_out(&o, id, f);
		}
		if (err != AC_OK)
			break;
		ac_buf_adds(o.b, "]}");
	}
	if (err != AC_OK) {
		ac_resp_repo_error(c, err, AC_STR(""));
		goto out;
	}
	ac_buf_adds(o.b, "]}");
out:
	ac_verrs_free(&v);
}
