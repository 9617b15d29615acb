/* What the account handlers share (h_auth.c, h_admin.c). */
#ifndef AC_H_AUTH_H
#define AC_H_AUTH_H

#include "../common/auth.h"
#include "../common/repo_users.h"
#include "worker.h"

/* The User object: {"id", "email", "role", "created_at"}. */
void ac_write_user(struct ac_buf *b, const struct ac_user *u);
/* An ac_user_fn writing the User into the struct ac_buf arg. */
enum ac_err ac_user_out(void *arg, const struct ac_user *u);
/* body's "email", as stored (422 entries in v otherwise). */
bool ac_valid_email(struct ac_verrs *v, struct json_object *body, char out[AC_EMAIL_MAX + 1], size_t *len);
/* Hashes password and stores the account; answers 201 User, 409, or 503. */
void ac_account_create(struct ac_ctx *c, struct ac_str email, struct ac_str password, bool admin);

#endif
