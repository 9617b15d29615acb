/*
 * Accounts' cryptography and rules (common/auth.c): argon2id password hashes (libsodium), at most a
 * few at once per process; the dummy hash an unknown email is checked against, so that it takes as
 * long as a wrong password; access tokens (JWT HS256 by libjwt, only HS256 accepted); emails as stored.
 * Nothing here knows FastCGI or the database.
 */
#ifndef AC_AUTH_H
#define AC_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "err.h"

#define AC_AUTH_HASH_MAX 128		/* crypto_pwhash_STRBYTES */
#define AC_EMAIL_MAX 254
#define AC_PASSWORD_MIN 8		/* characters */
#define AC_PASSWORD_MAX 1024
#define AC_TOKEN_MAX 4096		/* an Authorization header's token, in bytes */
#define AC_SUB_MAX 255

/* Once per process before any other call (and before threads): libsodium, the hash limiter, the
 * dummy hash.  cfg must outlive every call. */
enum ac_err ac_auth_init(const struct ac_config *cfg);

/* out: the argon2id hash of password as libsodium's string, NUL-terminated.  Waits its turn among
 * the process's PASSWORD_HASH_CONCURRENCY. */
enum ac_err ac_auth_hash(const char *password, size_t len, char out[AC_AUTH_HASH_MAX]);

/* Whether password matches hash (ptr NULL: none, checked against the dummy hash, always false). */
bool ac_auth_verify(struct ac_str hash, const char *password, size_t len);

/* The email as stored and compared: trimmed, ASCII lower case.  false when it is no email address
 * (or longer than AC_EMAIL_MAX); out has room for AC_EMAIL_MAX + 1 bytes. */
bool ac_auth_email(struct ac_str in, char out[AC_EMAIL_MAX + 1], size_t *len);

/* A login name as stored (REMOTE_USER's, or an email to look up): trimmed, ASCII lower case, 1 to
 * AC_EMAIL_MAX bytes with no control character.  false otherwise. */
bool ac_auth_name(struct ac_str in, char out[AC_EMAIL_MAX + 1], size_t *len);

struct ac_claims {
	char sub[AC_SUB_MAX + 1];
	size_t sub_len;
	int64_t ver;
	int64_t iat;
	int64_t exp;
};

/* A signed access token for user id at token version ver, valid ACCESS_TOKEN_EXPIRE_MINUTES.
 * out gets at most out_size - 1 bytes and a NUL. */
enum ac_err ac_auth_token_issue(struct ac_str id, int64_t ver, char *out, size_t out_size);

/* The claims of a token this configuration signed: AC_EINVAL for a malformed token, another
 * algorithm (none included), a bad signature, no sub or ver, or one past its exp. */
enum ac_err ac_auth_token_check(const char *token, size_t len, struct ac_claims *out);

#endif
