/* Routing: the path picks a route, the method picks its handler; CORS preflights come first. */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "worker.h"

#define MAX_ARGS 2

#define MAX_SEGS 5

/*
 * Who may call a route (every route says).  USER: AUTH=token and remote-user
 * authenticate the request before its handler runs (identity.c), AUTH=none lets it through as the
 * original API did.  Account routes (/auth/me, /admin/...) have no meaning without accounts.
 */
enum access {
	USER,
	OPEN,		/* anyone, in every mode */
	ACCOUNT,	/* AUTH=token and remote-user: a user's; AUTH=none: no such route */
	ADMIN,		/* AUTH=token and remote-user: an admin's; AUTH=none: no such route */
};

struct route {
	const char *name;			/* the template: the log's and the metrics' "route" */
	const char *segs[MAX_SEGS];		/* "{name}" matches any non-empty segment, passed to the handler */
	ac_handler on[AC_METHOD_OTHER];	/* by method; HEAD falls back to GET */
	enum access access;
};

static const struct route routes[] = {
	{ "/", { NULL }, { [AC_GET] = ac_h_root }, OPEN },
	{ "/health", { "health", NULL }, { [AC_GET] = ac_h_health }, OPEN },
	{ "/chats", { "chats", NULL }, { [AC_GET] = ac_h_chat_list, [AC_POST] = ac_h_chat_create } , USER },
	{ "/chats/{chat_id}", { "chats", "{chat_id}", NULL },
	    { [AC_GET] = ac_h_chat_get, [AC_PATCH] = ac_h_chat_rename, [AC_DELETE] = ac_h_chat_delete } , USER },
	{ "/chats/{chat_id}/messages", { "chats", "{chat_id}", "messages", NULL }, { [AC_GET] = ac_h_message_list } , USER },
	{ "/chats/{chat_id}/regenerate", { "chats", "{chat_id}", "regenerate", NULL }, { [AC_POST] = ac_h_chat_regenerate } , USER },
	{ "/chats/{chat_id}/active", { "chats", "{chat_id}", "active", NULL }, { [AC_PUT] = ac_h_chat_active } , USER },
	{ "/chats/{chat_id}/messages/{message_id}/edit", { "chats", "{chat_id}", "messages", "{message_id}", "edit" }, { [AC_POST] = ac_h_message_edit } , USER },
	{ "/chat", { "chat", NULL }, { [AC_POST] = ac_h_chat_send } , USER },
	{ "/models", { "models", NULL }, { [AC_GET] = ac_h_models }, OPEN },
	{ "/search", { "search", NULL }, { [AC_GET] = ac_h_search }, USER },
	{ "/chats/{chat_id}/export", { "chats", "{chat_id}", "export", NULL }, { [AC_GET] = ac_h_chat_export }, USER },
	{ "/export", { "export", NULL }, { [AC_GET] = ac_h_export }, USER },
	{ "/import", { "import", NULL }, { [AC_POST] = ac_h_import }, USER },
	{ "/openapi.json", { "openapi.json", NULL }, { [AC_GET] = ac_h_openapi }, OPEN },
	/* The account routes answer by mode themselves (h_auth.c). */
	{ "/auth/register", { "auth", "register", NULL }, { [AC_POST] = ac_h_auth_register }, OPEN },
	{ "/auth/login", { "auth", "login", NULL }, { [AC_POST] = ac_h_auth_login }, OPEN },
	{ "/auth/token", { "auth", "token", NULL }, { [AC_POST] = ac_h_auth_token }, OPEN },
	{ "/auth/config", { "auth", "config", NULL }, { [AC_GET] = ac_h_auth_config }, OPEN },
	{ "/auth/me", { "auth", "me", NULL }, { [AC_GET] = ac_h_auth_me, [AC_DELETE] = ac_h_auth_delete_me }, ACCOUNT },
	{ "/auth/logout", { "auth", "logout", NULL }, { [AC_POST] = ac_h_auth_logout }, ACCOUNT },
	{ "/auth/keys", { "auth", "keys", NULL }, { [AC_GET] = ac_h_keys_list, [AC_POST] = ac_h_keys_create }, ACCOUNT },
	{ "/auth/keys/{key_id}", { "auth", "keys", "{key_id}", NULL }, { [AC_DELETE] = ac_h_key_delete }, ACCOUNT },
	{ "/admin/users", { "admin", "users", NULL }, { [AC_GET] = ac_h_admin_users, [AC_POST] = ac_h_admin_user_create }, ADMIN },
	{ "/admin/users/{user_id}", { "admin", "users", "{user_id}", NULL }, { [AC_DELETE] = ac_h_admin_user_delete }, ADMIN },
	{ "/admin/users/{user_id}/role", { "admin", "users", "{user_id}", "role", NULL }, { [AC_PATCH] = ac_h_admin_user_role }, ADMIN },
	{ "/admin/users/{user_id}/chats", { "admin", "users", "{user_id}", "chats", NULL }, { [AC_GET] = ac_h_admin_user_chats }, ADMIN },
	{ "/admin/users/{user_id}/keys", { "admin", "users", "{user_id}", "keys", NULL }, { [AC_GET] = ac_h_admin_user_keys }, ADMIN },
	{ "/admin/users/{user_id}/keys/{key_id}", { "admin", "users", "{user_id}", "keys", "{key_id}" }, { [AC_DELETE] = ac_h_admin_user_key_delete }, ADMIN },
	{ "/admin/chats/{chat_id}/messages", { "admin", "chats", "{chat_id}", "messages", NULL }, { [AC_GET] = ac_h_admin_chat_messages }, ADMIN },
	{ "/metrics", { "metrics", NULL }, { [AC_GET] = ac_h_metrics }, OPEN },	/* METRICS_ALLOW (monitor.c) */
	/* OpenAI's routes: a refused credential is answered in OpenAI's shape (openai.c). */
	{ "/v1/models", { "v1", "models", NULL }, { [AC_GET] = ac_h_v1_models }, USER },
	{ "/v1/chat/completions", { "v1", "chat", "completions", NULL }, { [AC_POST] = ac_h_v1_chat_completions }, USER },
};

/* Authenticates the request as its route needs; false when it has answered. */
static bool
allowed(struct ac_ctx *c, enum access access)
{
	if (access == OPEN)
		return true;
	if (c->cfg->auth_mode == AC_AUTH_NONE) {
		if (access == USER)
			return true;
		ac_resp_error(c, 404, "Not available: there are no accounts (AUTH=none)");
		return false;
	}
	return ac_authenticate(c, access == ADMIN);
}

static const char *const method_names[AC_METHOD_OTHER] = {
	[AC_GET] = "GET", [AC_HEAD] = "HEAD", [AC_POST] = "POST", [AC_PUT] = "PUT",
	[AC_PATCH] = "PATCH", [AC_DELETE] = "DELETE", [AC_OPTIONS] = "OPTIONS",
};

static bool
match(const struct route *rt, const struct ac_path *p, struct ac_str *args)
{
	int n = 0, nargs = 0;

	while (n < MAX_SEGS && rt->segs[n] != NULL)
		n++;
	if (p->count != n)
		return false;
	for (int i = 0; i < n; i++) {
		const struct ac_str *seg = &p->seg[i];

		if (rt->segs[i][0] == '{') {
			if (seg->len == 0 || nargs == MAX_ARGS)
				return false;
			args[nargs++] = *seg;
		} else if (seg->len != strlen(rt->segs[i]) || memcmp(seg->ptr, rt->segs[i], seg->len) != 0) {
			return false;
		}
	}
	return true;
}

/* A header value we may echo: a list of header names. */
static bool
token_list(const char *s)
{
	for (; *s != '\0'; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		    *s == '-' || *s == '_' || *s == ',' || *s == ' '))
			return false;
	}
	return true;
}

static bool
origin_allowed(const struct ac_ctx *c)
{
	if (c->cfg->cors_any)
		return true;
	for (int i = 0; i < c->cfg->cors_count; i++) {
		if (strcmp(c->req.origin, c->cfg->cors_origins[i]) == 0)
			return true;
	}
	return false;
}

static void
preflight(struct ac_ctx *c)
{
	if (!origin_allowed(c)) {
		ac_resp_error(c, 400, "Disallowed CORS origin");
		return;
	}
	ac_resp_start(c, 200);
	ac_resp_header(c, "Access-Control-Allow-Methods", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT");
	if (c->req.acr_headers != NULL && token_list(c->req.acr_headers))
		ac_resp_header(c, "Access-Control-Allow-Headers", c->req.acr_headers);
	ac_resp_header(c, "Access-Control-Max-Age", "600");
	ac_buf_adds(&c->resp.body, "{}");
}

void
ac_route(struct ac_ctx *c)
{
	struct ac_str args[MAX_ARGS];
	enum ac_method m = c->req.method;

	memset(&c->who, 0, sizeof(c->who));
	if (m == AC_OPTIONS && c->req.origin != NULL && c->req.acr_method != NULL) {
		preflight(c);
		return;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *rt = &routes[i];
		ac_handler h;
		char allow[96];
		size_t n = 0;

		if (!match(rt, &c->req.path, args))
			continue;
		c->log.route = rt->name;
		h = m < AC_METHOD_OTHER ? rt->on[m] : NULL;
		if (h == NULL && m == AC_HEAD)
			h = rt->on[AC_GET];
		if (h != NULL) {
			if (allowed(c, rt->access))
				h(c, args);
			else if (strncmp(rt->name, "/v1/", 4) == 0)
				ac_v1_refused(c);	/* OpenAI's clients read OpenAI's errors */
			return;
		}
		for (int j = 0; j < AC_METHOD_OTHER; j++) {
			if (rt->on[j] != NULL && n < sizeof(allow))
				n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s%s", n > 0 ? ", " : "",
				    method_names[j], j == AC_GET ? ", HEAD" : "");
		}
		ac_resp_error(c, 405, "Method Not Allowed");
		ac_resp_header(c, "Allow", allow);
		return;
	}
	ac_resp_error(c, 404, "Not Found");
}

int
ac_routes_names(const char **out, int max)
{
	int n = 0;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && n < max; i++)
		out[n++] = routes[i].name;
	return n;
}

void
ac_routes_print(FILE *f)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		char path[128] = "";
		size_t n = 0;

		for (int k = 0; k < MAX_SEGS && routes[i].segs[k] != NULL; k++)
			n += (size_t)snprintf(path + n, sizeof(path) - n, "/%s", routes[i].segs[k]);
		for (int m = 0; m < AC_METHOD_OTHER; m++) {
			if (routes[i].on[m] != NULL)
				fprintf(f, "%s %s\n", method_names[m], n > 0 ? path : "/");
		}
	}
}
