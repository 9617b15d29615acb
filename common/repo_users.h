/*
 * Accounts in the repository (common/repo_users.c): users, their roles and token versions, and the
 * failed logins the abuse limits count.  Written once over db.h, like the rest of the repository.
 * Emails are handed in as stored: trimmed and in lower case (ac_auth_email_normalize).
 */
#ifndef AC_REPO_USERS_H
#define AC_REPO_USERS_H

#include <stdbool.h>
#include <stdint.h>

#include "repo.h"

struct ac_user {
	struct ac_str id;
	struct ac_str email;
	struct ac_str password_hash;	/* ptr NULL: the account has no password */
	bool admin;
	int64_t token_version;
	int64_t created_at;		/* microseconds since the epoch */
};

typedef enum ac_err (*ac_user_fn)(void *arg, const struct ac_user *u);

/* A new account (password_hash ptr NULL: none).  AC_ECONFLICT when the email is taken. */
enum ac_err ac_repo_user_create(struct ac_repo *r, struct ac_str email, struct ac_str password_hash,
    bool admin, ac_user_fn fn, void *arg);
/* The account of email, made (with no password) when there is none: REMOTE_USER's. */
enum ac_err ac_repo_user_ensure(struct ac_repo *r, struct ac_str email, ac_user_fn fn, void *arg);
/* The account of an outside identity provider's subject ("<iss> <sub>"), made (with no password,
 * its email that of the token when free, else the subject) when there is none. */
enum ac_err ac_repo_user_ensure_subject(struct ac_repo *r, struct ac_str subject, struct ac_str email,
    ac_user_fn fn, void *arg);
/* AC_ENOTFOUND when there is no such account. */
enum ac_err ac_repo_user_by_id(struct ac_repo *r, struct ac_str id, ac_user_fn fn, void *arg);
enum ac_err ac_repo_user_by_email(struct ac_repo *r, struct ac_str email, ac_user_fn fn, void *arg);
/* Accounts, oldest first. */
enum ac_err ac_repo_user_list(struct ac_repo *r, int64_t limit, int64_t offset, ac_user_fn fn, void *arg);
enum ac_err ac_repo_user_set_role(struct ac_repo *r, struct ac_str id, bool admin, ac_user_fn fn, void *arg);
/* Ends every token of the account issued so far (its token version goes up by one). */
enum ac_err ac_repo_user_logout(struct ac_repo *r, struct ac_str id);
/* Deletes the account with its chats (their messages), idempotency keys and failed logins, in one
 * transaction. */
enum ac_err ac_repo_user_delete(struct ac_repo *r, struct ac_str id);
/* Gives every chat of old_user_id to the account new_user_id; *chats counts them. */
enum ac_err ac_repo_user_adopt(struct ac_repo *r, struct ac_str old_user_id, struct ac_str new_user_id,
    int64_t *chats);
/* The user_id of a chat, whoever it is (admin routes): AC_ENOTFOUND when there is no such chat.
 * out gets at most out_size - 1 bytes and a NUL. */
enum ac_err ac_repo_chat_owner(struct ac_repo *r, struct ac_str chat_id, char *out, size_t out_size,
    size_t *len);

/* ---- the login abuse limits: failed logins in the last window_us, per email and per address ---- */

struct ac_login_limits {
	int64_t window_us;
	int64_t max_per_email;
	int64_t max_per_addr;
};

/* AC_ETOOBIG when the email or the address has had too many failures; *retry_after_s then says
 * when the oldest of them leaves the window. */
enum ac_err ac_repo_login_check(struct ac_repo *r, const struct ac_login_limits *l, struct ac_str email,
    struct ac_str addr, int64_t *retry_after_s);
enum ac_err ac_repo_login_failed(struct ac_repo *r, const struct ac_login_limits *l, struct ac_str email,
    struct ac_str addr);
/* A success: the email's failures are forgotten. */
enum ac_err ac_repo_login_succeeded(struct ac_repo *r, struct ac_str email);

#endif
