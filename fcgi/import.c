/*
 * POST /import: chats from our own export (GET /export, GET /chats/{id}/export) or from a ChatGPT
 * data export's conversations.json, at most MAX_IMPORT_BYTES, all or nothing.
 *
 * The body is read twice over: once to check all of it (a 422 names where the first problems are,
 * as "chats[2].messages[5].role", and nothing is written), then again to write it, in one
 * transaction.  Ours keeps each chat's tree (every branch, the active path), its times and settings;
 * ChatGPT's keeps a conversation's path from its first message to current_node (the branch shown
 * there), its title and times.  Every chat gets a new id.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json.h"
#include "../common/util.h"
#include "handlers.h"

#define TITLE_MAX 200
#define PROMPT_MAX 8000
#define MODEL_MAX 64
#define ERRORS_MAX 20		/* problems named in one 422 */
#define WHERE_MAX 160

/* One import at a time in a process: the parsed file takes a few times its size in memory. */
static pthread_mutex_t import_lock = PTHREAD_MUTEX_INITIALIZER;

struct idmap {
	int64_t *key;		/* 0: empty */
	int64_t *val;
	size_t cap;		/* a power of two */
};

struct imp {
	struct ac_ctx *c;
	struct ac_verrs *v;
	bool write;		/* the second pass */
	struct ac_str user_id;
	enum ac_err err;	/* the writing pass's first failure */
	struct idmap map;
	struct ac_buf ids;	/* the new chats' ids, as JSON strings with commas */
	struct ac_buf text;	/* a ChatGPT message's parts, joined */
	int64_t imported;
};

/* ---- the id map: an old message id to its new one, within one chat ---- */

static bool
map_reset(struct idmap *m, size_t n)
{
	size_t cap = 16;

	while (cap < n * 2 + 1)
		cap *= 2;
	if (cap > m->cap) {
		int64_t *k = realloc(m->key, cap * sizeof(*k)), *v;

		if (k == NULL)
			return false;
		m->key = k;
		v = realloc(m->val, cap * sizeof(*v));
		if (v == NULL)
			return false;
		m->val = v;
		m->cap = cap;
	}
	memset(m->key, 0, m->cap * sizeof(*m->key));
	return true;
}

static size_t
map_slot(const struct idmap *m, int64_t key)
{
	size_t i = (size_t)((uint64_t)key * 0x9E3779B97F4A7C15ULL) & (m->cap - 1);

	while (m->key[i] != 0 && m->key[i] != key)
		i = (i + 1) & (m->cap - 1);
	return i;
}

/* ---- reading the JSON ---- */

static void
problem(struct imp *p, const char *where, const char *msg)
{
	if (p->v->count < ERRORS_MAX)
		ac_verrs_add(p->v, "body", where, msg, "value_error", false, 0);
}

static bool
too_many(const struct imp *p)
{
	return p->v->count >= ERRORS_MAX;
}

/* Characters (not bytes) of UTF-8 text. */
static size_t
chars(struct ac_str s)
{
	size_t n = 0;

	for (size_t i = 0; i < s.len; i++)
		n += ((unsigned char)s.ptr[i] & 0xC0) != 0x80;
	return n;
}

/* The first max characters' bytes. */
static size_t
prefix_bytes(struct ac_str s, size_t max)
{
	size_t n = 0, i;

	for (i = 0; i < s.len; i++) {
		if (((unsigned char)s.ptr[i] & 0xC0) != 0x80 && n++ == max)
			break;
	}
	return i;
}

/* A member that must be a string (or null when nullable); out ptr NULL for null or absent. */
static bool
get_str(struct imp *p, struct json_object *o, const char *key, const char *at, bool required, bool nullable,
    size_t max_chars, struct ac_str *out)
{
	struct json_object *m;
	char where[WHERE_MAX];

	out->ptr = NULL;
	out->len = 0;
	snprintf(where, sizeof(where), "%.100s%s%.40s", at, at[0] != '\0' ? "." : "", key);
	if (!json_object_object_get_ex(o, key, &m)) {
		if (required)
			problem(p, where, "field required");
		return !required;
	}
	if (m == NULL) {
		if (!nullable)
			problem(p, where, "none is not an allowed value");
		return nullable;
	}
	if (!json_object_is_type(m, json_type_string)) {
		problem(p, where, "str type expected");
		return false;
	}
	*out = ac_json_get_str(m);
	if (max_chars > 0 && chars(*out) > max_chars) {
		char msg[64];

		snprintf(msg, sizeof(msg), "ensure this value has at most %zu characters", max_chars);
		problem(p, where, msg);
		return false;
	}
	return true;
}

static bool
get_bool(struct imp *p, struct json_object *o, const char *key, const char *at, bool def, bool *out)
{
	struct json_object *m;
	char where[WHERE_MAX];

	*out = def;
	if (!json_object_object_get_ex(o, key, &m) || m == NULL)
		return true;
	if (!json_object_is_type(m, json_type_boolean)) {
		snprintf(where, sizeof(where), "%.100s.%s", at, key);
		problem(p, where, "value could not be parsed to a boolean");
		return false;
	}
	*out = json_object_get_boolean(m);
	return true;
}

/* A timestamp member as we write them ("2026-11-25T00:20:14.718833Z"). */
static bool
get_time(struct imp *p, struct json_object *o, const char *key, const char *at, int64_t *out)
{
	struct ac_str s;
	char where[WHERE_MAX];

	if (!get_str(p, o, key, at, true, false, 0, &s))
		return false;
	if (ac_time_parse(s.ptr, s.len, out) != AC_OK) {
		snprintf(where, sizeof(where), "%.100s.%s", at, key);
		problem(p, where, "invalid datetime format");
		return false;
	}
	return true;
}

/* A number of seconds since the epoch (ChatGPT's times) as microseconds; def when absent or null. */
static bool
get_seconds(struct imp *p, struct json_object *o, const char *key, const char *at, int64_t def, int64_t *out)
{
	struct json_object *m;
	char where[WHERE_MAX];
	double d;

	*out = def;
	if (!json_object_object_get_ex(o, key, &m) || m == NULL)
		return true;
	if (!json_object_is_type(m, json_type_double) && !json_object_is_type(m, json_type_int)) {
		snprintf(where, sizeof(where), "%.100s.%s", at, key);
		problem(p, where, "value is not a valid number");
		return false;
	}
	d = json_object_get_double(m);
	if (!isfinite(d) || d < 0 || d > 253402300799.0) {	/* up to the year 9999 */
		snprintf(where, sizeof(where), "%.100s.%s", at, key);
		problem(p, where, "not a time");
		return false;
	}
	*out = (int64_t)(d * 1e6 + 0.5);
	return true;
}

/* Notes a chat written, for the answer. */
static void
chat_written(struct imp *p, const char *id)
{
	if (p->imported++ > 0)
		ac_buf_addc(&p->ids, ',');
	ac_json_cstr(&p->ids, id);
}

/* ---- our export ---- */

static void
our_chat(struct imp *p, struct json_object *chat, size_t ci)
{
	char at[WHERE_MAX], mat[WHERE_MAX], id[AC_UUID_LEN + 1];
	struct ac_chat c;
	struct json_object *msgs = NULL;
	size_t n;
	bool ok = true;

	memset(&c, 0, sizeof(c));
	snprintf(at, sizeof(at), "chats[%zu]", ci);
	if (!json_object_is_type(chat, json_type_object)) {
		problem(p, at, "value is not a valid dict");
		return;
	}
	ok &= get_str(p, chat, "title", at, false, true, TITLE_MAX, &c.title);
	if (c.title.ptr != NULL && c.title.len == 0) {
		snprintf(mat, sizeof(mat), "%.100s.title", at);
		problem(p, mat, "ensure this value has at least 1 characters");
		ok = false;
	}
	ok &= get_time(p, chat, "created_at", at, &c.created_at);
	ok &= get_time(p, chat, "updated_at", at, &c.updated_at);
	ok &= get_str(p, chat, "system_prompt", at, false, true, PROMPT_MAX, &c.system_prompt);
	ok &= get_str(p, chat, "model", at, false, true, MODEL_MAX, &c.model);
	ok &= get_bool(p, chat, "pinned", at, false, &c.pinned);
	ok &= get_bool(p, chat, "archived", at, false, &c.archived);
	if (!json_object_object_get_ex(chat, "messages", &msgs) || msgs == NULL ||
	    !json_object_is_type(msgs, json_type_array)) {
		snprintf(mat, sizeof(mat), "%.100s.messages", at);
		problem(p, mat, msgs == NULL ? "field required" : "value is not a valid list");
		return;
	}
	n = json_object_array_length(msgs);
	if (!map_reset(&p->map, n)) {
		p->err = AC_ENOMEM;
		return;
	}
	if (p->write) {
		if ((p->err = ac_repo_import_chat(p->c->repo, p->user_id, &c, id)) != AC_OK)
			return;
	}
	for (size_t i = 0; i < n && !too_many(p) && p->err == AC_OK; i++) {
		struct json_object *m = json_object_array_get_idx(msgs, i), *f;
		struct ac_export_message em;
		struct ac_str role;
		int64_t old_id = 0, old_parent = 0;
		size_t slot;

		memset(&em, 0, sizeof(em));
		snprintf(mat, sizeof(mat), "%.100s.messages[%zu]", at, i);
		if (m == NULL || !json_object_is_type(m, json_type_object)) {
			problem(p, mat, "value is not a valid dict");
			continue;
		}
		if (!json_object_object_get_ex(m, "id", &f) || f == NULL || !json_object_is_type(f, json_type_int) ||
		    (old_id = json_object_get_int64(f)) < 1) {
			char w[WHERE_MAX];

			snprintf(w, sizeof(w), "%.100s.id", mat);
			problem(p, w, "value is not a valid integer (a message id, 1 or more)");
			continue;
		}
		if (json_object_object_get_ex(m, "parent_id", &f) && f != NULL) {
			if (!json_object_is_type(f, json_type_int) || (old_parent = json_object_get_int64(f)) < 1 ||
			    p->map.key[map_slot(&p->map, old_parent)] != old_parent) {
				char w[WHERE_MAX];

				snprintf(w, sizeof(w), "%.100s.parent_id", mat);
				problem(p, w, "not the id of a message before it in this chat");
				continue;
			}
		}
		slot = map_slot(&p->map, old_id);
		if (p->map.key[slot] == old_id) {
			char w[WHERE_MAX];

			snprintf(w, sizeof(w), "%.100s.id", mat);
			problem(p, w, "the id of another message of this chat");
			continue;
		}
		if (!get_str(p, m, "role", mat, true, false, 0, &role))
			continue;
		if (role.len == 4 && memcmp(role.ptr, "user", 4) == 0) {
			em.role = AC_ROLE_USER;
		} else if (role.len == 9 && memcmp(role.ptr, "assistant", 9) == 0) {
			em.role = AC_ROLE_ASSISTANT;
		} else {
			char w[WHERE_MAX];

			snprintf(w, sizeof(w), "%.100s.role", mat);
			problem(p, w, "value is not a valid enumeration member; permitted: 'user', 'assistant'");
			continue;
		}
		if (!get_str(p, m, "content", mat, true, false, 0, &em.content) ||
		    !get_time(p, m, "created_at", mat, &em.created_at) ||
		    !get_str(p, m, "model", mat, false, true, 128, &em.model) ||
		    !get_bool(p, m, "incomplete", mat, false, &em.incomplete) ||
		    !get_bool(p, m, "active", mat, true, &em.active))
			continue;
		p->map.key[slot] = old_id;
		p->map.val[slot] = 0;
		if (!p->write)
			continue;
		em.parent_id = old_parent > 0 ? p->map.val[map_slot(&p->map, old_parent)] : 0;
		if ((p->err = ac_repo_import_message(p->c->repo, (struct ac_str){ id, AC_UUID_LEN }, &em,
		    &p->map.val[slot])) != AC_OK)
			return;
	}
	if (p->write && p->err == AC_OK) {
		p->err = ac_repo_import_chat_done(p->c->repo, (struct ac_str){ id, AC_UUID_LEN });
		chat_written(p, id);
	}
}

static void
our_export(struct imp *p, struct json_object *chats)
{
	size_t n = json_object_array_length(chats);

	for (size_t i = 0; i < n && !too_many(p) && p->err == AC_OK; i++)
		our_chat(p, json_object_array_get_idx(chats, i), i);
}

/* ---- ChatGPT's conversations.json ---- */

/* A message's text: its content's string parts, joined by blank lines. */
static bool
gpt_text(struct imp *p, struct json_object *msg, struct ac_str *out)
{
	struct json_object *content, *parts;
	size_t n, kept = 0;

	out->ptr = NULL;
	out->len = 0;
	if (!json_object_object_get_ex(msg, "content", &content) || content == NULL ||
	    !json_object_object_get_ex(content, "parts", &parts) || parts == NULL ||
	    !json_object_is_type(parts, json_type_array))
		return true;	/* no text (a tool call, an image): left out */
	ac_buf_reset(&p->text, 65536);
	n = json_object_array_length(parts);
	for (size_t i = 0; i < n; i++) {
		struct json_object *part = json_object_array_get_idx(parts, i);
		struct ac_str s;

		if (part == NULL || !json_object_is_type(part, json_type_string))
			continue;
		s = ac_json_get_str(part);
		if (s.len == 0)
			continue;
		if (kept++ > 0)
			ac_buf_adds(&p->text, "\n\n");
		ac_buf_add(&p->text, s.ptr, s.len);
	}
	if (ac_buf_err(&p->text) != AC_OK) {
		p->err = ac_buf_err(&p->text);
		return false;
	}
	if (kept > 0) {
		out->ptr = p->text.data;
		out->len = p->text.len;
	}
	return true;
}

static void
gpt_conversation(struct imp *p, struct json_object *conv, size_t ci)
{
	char at[WHERE_MAX], w[WHERE_MAX], id[AC_UUID_LEN + 1];
	struct json_object *mapping, *node = NULL, *f;
	struct ac_chat c;
	struct ac_str current, title;
	struct json_object **path = NULL;
	size_t depth = 0, nodes;
	int64_t parent = 0, now = ac_now_us();

	memset(&c, 0, sizeof(c));
	snprintf(at, sizeof(at), "[%zu]", ci);
	if (!json_object_is_type(conv, json_type_object)) {
		problem(p, at, "value is not a valid dict");
		return;
	}
	if (!get_str(p, conv, "title", at, false, true, 0, &title) ||
	    !get_seconds(p, conv, "create_time", at, now, &c.created_at) ||
	    !get_seconds(p, conv, "update_time", at, c.created_at, &c.updated_at) ||
	    !get_str(p, conv, "current_node", at, true, false, 0, &current))
		return;
	if (title.ptr != NULL && title.len > 0)
		c.title = (struct ac_str){ title.ptr, prefix_bytes(title, TITLE_MAX) };
	if (!json_object_object_get_ex(conv, "mapping", &mapping) || mapping == NULL ||
	    !json_object_is_type(mapping, json_type_object)) {
		snprintf(w, sizeof(w), "%.100s.mapping", at);
		problem(p, w, "field required (an object of nodes)");
		return;
	}
	nodes = (size_t)json_object_object_length(mapping);
	path = calloc(nodes + 1, sizeof(*path));
	if (path == NULL) {
		p->err = AC_ENOMEM;
		return;
	}
	/* current_node up to the root. */
	for (struct ac_str key = current; key.ptr != NULL;) {
		char name[256];

		snprintf(name, sizeof(name), "%.*s", (int)(key.len < 200 ? key.len : 200), key.ptr);
		if (!json_object_object_get_ex(mapping, name, &node) || node == NULL ||
		    !json_object_is_type(node, json_type_object)) {
			snprintf(w, sizeof(w), "%.60s.mapping.%.60s", at, name);
			problem(p, w, depth == 0 ? "current_node names no node of mapping" :
			    "a node's parent names no node of mapping");
			goto out;
		}
		if (depth == nodes) {
			snprintf(w, sizeof(w), "%.100s.mapping", at);
			problem(p, w, "the parents of current_node run in a circle");
			goto out;
		}
		path[depth++] = node;
		key.ptr = NULL;
		if (json_object_object_get_ex(node, "parent", &f) && f != NULL) {
			if (!json_object_is_type(f, json_type_string)) {
				snprintf(w, sizeof(w), "%.60s.mapping.%.60s.parent", at, name);
				problem(p, w, "str type expected");
				goto out;
			}
			key = ac_json_get_str(f);
		}
	}
	if (p->write && (p->err = ac_repo_import_chat(p->c->repo, p->user_id, &c, id)) != AC_OK)
		goto out;
	for (size_t i = depth; i-- > 0;) {
		struct json_object *msg, *author, *role, *meta, *hidden;
		struct ac_export_message em;
		struct ac_str r;

		if (!json_object_object_get_ex(path[i], "message", &msg) || msg == NULL ||
		    !json_object_is_type(msg, json_type_object))
			continue;
		if (!json_object_object_get_ex(msg, "author", &author) || author == NULL ||
		    !json_object_object_get_ex(author, "role", &role) || role == NULL ||
		    !json_object_is_type(role, json_type_string))
			continue;
		r = ac_json_get_str(role);
		memset(&em, 0, sizeof(em));
		if (r.len == 4 && memcmp(r.ptr, "user", 4) == 0)
			em.role = AC_ROLE_USER;
		else if (r.len == 9 && memcmp(r.ptr, "assistant", 9) == 0)
			em.role = AC_ROLE_ASSISTANT;
		else
			continue;	/* system and tool messages are not the conversation's */
		if (json_object_object_get_ex(msg, "metadata", &meta) && meta != NULL &&
		    json_object_object_get_ex(meta, "is_visually_hidden_from_conversation", &hidden) &&
		    hidden != NULL && json_object_get_boolean(hidden))
			continue;
		snprintf(w, sizeof(w), "%.60s.mapping.<%zu from the root>.message", at, depth - 1 - i);
		if (!get_seconds(p, msg, "create_time", w, c.created_at, &em.created_at))
			continue;
		if (!gpt_text(p, msg, &em.content))
			goto out;
		if (em.content.ptr == NULL)
			continue;
		if (json_object_object_get_ex(msg, "metadata", &meta) && meta != NULL &&
		    json_object_object_get_ex(meta, "model_slug", &f) && f != NULL &&
		    json_object_is_type(f, json_type_string))
			em.model = ac_json_get_str(f);
		em.active = true;
		em.parent_id = parent;
		if (p->write && (p->err = ac_repo_import_message(p->c->repo, (struct ac_str){ id, AC_UUID_LEN }, &em,
		    &parent)) != AC_OK)
			goto out;
	}
	if (p->write) {
		if ((p->err = ac_repo_import_chat_done(p->c->repo, (struct ac_str){ id, AC_UUID_LEN })) == AC_OK)
			chat_written(p, id);
	}
out:
	free(path);
}

static void
gpt_export(struct imp *p, struct json_object *convs)
{
	size_t n = json_object_array_length(convs);

	for (size_t i = 0; i < n && !too_many(p) && p->err == AC_OK; i++)
		gpt_conversation(p, json_object_array_get_idx(convs, i), i);
}

/* One pass over the document. */
static void
pass(struct imp *p, struct json_object *doc)
{
	struct json_object *chats;

	if (json_object_is_type(doc, json_type_array))
		gpt_export(p, doc);
	else
		our_export(p, json_object_object_get_ex(doc, "chats", &chats) ? chats : NULL);
}

void
ac_h_import(struct ac_ctx *c, const struct ac_str *args)
{
	struct ac_verrs v;
	struct json_object *doc = NULL, *chats;
	struct imp p;
	enum ac_err err;

	(void)args;
	memset(&p, 0, sizeof(p));
	p.c = c;
	p.v = &v;
	ac_buf_init(&p.ids, c->cfg->max_import + 4096);
	ac_buf_init(&p.text, c->cfg->max_import + 16);
	ac_verrs_init(&v);
	if (pthread_mutex_trylock(&import_lock) != 0) {
		ac_resp_error(c, 503, "Another import is running in this worker process: try again shortly");
		ac_resp_header(c, "Retry-After", "5");
		goto done;
	}
	ac_request_user(c, &v, NULL, &p.user_id);
	if (!ac_request_json_max(c, &v, c->cfg->max_import, true, &doc))
		goto out;
	if (v.count == 0 && (doc == NULL || (!json_object_is_type(doc, json_type_array) &&
	    !(json_object_is_type(doc, json_type_object) && json_object_object_get_ex(doc, "chats", &chats) &&
	    chats != NULL && json_object_is_type(chats, json_type_array)))))
		ac_verrs_add(&v, "body", NULL, "neither our export (an object with a \"chats\" list) nor a ChatGPT "
		    "conversations.json (a list of conversations)", "value_error", false, 0);
	if (v.count == 0)
		pass(&p, doc);	/* checks all of it: nothing is written */
	if (p.err == AC_OK && v.count > 0) {
		ac_resp_invalid(c, &v);
		goto out;
	}
	if (p.err == AC_OK) {
		p.write = true;
		if ((p.err = ac_repo_import_begin(c->repo)) == AC_OK) {
			pass(&p, doc);
			p.err = ac_repo_import_end(c->repo, p.err != AC_OK ? p.err : v.count > 0 ? AC_EINVAL : AC_OK);
		}
	}
	err = p.err;
	if (err != AC_OK) {
		if (err == AC_EINVAL)
			ac_resp_invalid(c, &v);
		else
			ac_resp_repo_error(c, err == AC_ENOTFOUND ? AC_EDB : err, AC_STR(""));
		goto out;
	}
	ac_resp_start(c, 201);
	ac_buf_adds(&c->resp.body, "{\"imported\":");
	ac_buf_addi(&c->resp.body, p.imported);
	ac_buf_adds(&c->resp.body, ",\"chat_ids\":[");
	ac_buf_add(&c->resp.body, p.ids.data != NULL ? p.ids.data : "", p.ids.len);
	ac_buf_adds(&c->resp.body, "]}");
out:
	json_object_put(doc);
	ac_buf_reset(&c->in, 0);	/* the file's bytes too, before the lock goes */
	c->req.body.ptr = "";
	c->req.body.len = 0;
	pthread_mutex_unlock(&import_lock);
done:
	free(p.map.key);
	free(p.map.val);
	ac_buf_free(&p.ids);
	ac_buf_free(&p.text);
	ac_verrs_free(&v);
}
