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
 * dummy hash, an outside provider's public key (JWT_PUBLIC_KEY_FILE).  cfg must outlive every call.
 * msg says what failed. */
enum ac_err ac_auth_init(const struct ac_config *cfg, char *msg, size_t msg_size);

/* Makes the dummy hash now (else the first unknown email does): a server calls it before its
 * workers fork, so that they share it; a CGI request never needs to. */
void ac_auth_prepare(void);

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

#define AC_SUBJECT_MAX 1024

struct ac_claims {
	char sub[AC_SUB_MAX + 1];
	size_t sub_len;
	int64_t ver;
	int64_t iat;
	int64_t exp;
	/* An outside identity provider's token (RS256 or ES256 with JWT_PUBLIC_KEY_FILE): its user is
	 * subject, "<iss> <sub>", and email its email claim (empty when it has none or not a valid one). */
	bool outside;
	char subject[AC_SUBJECT_MAX + 1];
	size_t subject_len;
	char email[AC_EMAIL_MAX + 1];
	size_t email_len;
};

/* A signed access token for user id at token version ver, valid ACCESS_TOKEN_EXPIRE_MINUTES.
 * out gets at most out_size - 1 bytes and a NUL. */
enum ac_err ac_auth_token_issue(struct ac_str id, int64_t ver, char *out, size_t out_size);

/* The claims of a token this configuration signed (HS256 with JWT_SECRET), or of the outside
 * provider's (RS256 or ES256 with JWT_PUBLIC_KEY_FILE, its iss JWT_ISSUER and JWT_AUDIENCE among its
 * aud): AC_EINVAL for a malformed token, any other algorithm (none included), a bad signature, no sub
 * (or ver, for ours), past its exp or before its nbf.  The two kinds of key are never mixed: an HS256
 * token is only checked with the secret, an RS256/ES256 one only with the public key. */
enum ac_err ac_auth_token_check(const char *token, size_t len, struct ac_claims *out);

#endif
