/* Passwords, emails and access tokens (common/auth.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <sodium.h>

#include "auth.h"
#include "util.h"

_Static_assert(crypto_pwhash_STRBYTES <= AC_AUTH_HASH_MAX, "AC_AUTH_HASH_MAX too small");

static const struct ac_config *conf;
static char dummy_hash[AC_AUTH_HASH_MAX];

/* At most PASSWORD_HASH_CONCURRENCY hashes at once: each holds PASSWORD_HASH_MEMORY_KIB. */
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slots_free = PTHREAD_COND_INITIALIZER;
static int slots_used;

static void
slot_take(void)
{
	pthread_mutex_lock(&slots_lock);
	while (slots_used >= conf->password_hash_concurrency)
		pthread_cond_wait(&slots_free, &slots_lock);
	slots_used++;
	pthread_mutex_unlock(&slots_lock);
}

static void
slot_give(void)
{
	pthread_mutex_lock(&slots_lock);
	slots_used--;
	pthread_cond_signal(&slots_free);
	pthread_mutex_unlock(&slots_lock);
}

static enum ac_err
hash(const char *password, size_t len, char out[AC_AUTH_HASH_MAX])
{
	int rc;

	slot_take();
	rc = crypto_pwhash_str_alg(out, password, len, (unsigned long long)conf->password_hash_passes,
	    (size_t)conf->password_hash_memory_kib * 1024, crypto_pwhash_ALG_ARGON2ID13);
	slot_give();
	return rc == 0 ? AC_OK : AC_ENOMEM;
}

enum ac_err
ac_auth_init(const struct ac_config *cfg)
{
	unsigned char random[32];
	char secret[sizeof(random) * 2 + 1];

	conf = cfg;
	if (sodium_init() < 0)
		return AC_ESYS;
	/* A hash of a password nobody knows, made with the same parameters as real ones. */
	randombytes_buf(random, sizeof(random));
	sodium_bin2hex(secret, sizeof(secret), random, sizeof(random));
	return hash(secret, strlen(secret), dummy_hash);
}

enum ac_err
ac_auth_hash(const char *password, size_t len, char out[AC_AUTH_HASH_MAX])
{
	return hash(password, len, out);
}

bool
ac_auth_verify(struct ac_str stored, const char *password, size_t len)
{
	char h[AC_AUTH_HASH_MAX];
	bool real = stored.ptr != NULL && stored.len > 0 && stored.len < sizeof(h);
	int rc;

	memset(h, 0, sizeof(h));
	if (real)
		memcpy(h, stored.ptr, stored.len);
	else
		memcpy(h, dummy_hash, sizeof(h));
	slot_take();
	rc = crypto_pwhash_str_verify(h, password, len);
	slot_give();
	return real && rc == 0;
}

static bool
local_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-/=?^_`{|}~.", ch) != NULL;
}

static bool
domain_ok(const char *d, size_t len)
{
	size_t label = 0, dots = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = d[i];

		if (ch == '.') {
			if (label == 0 || d[i - 1] == '-')
				return false;
			label = 0;
			dots++;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-') {
			if (label == 0 && ch == '-')
				return false;
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return dots > 0 && label >= 2 && d[len - 1] != '-';
}

bool
ac_auth_email(struct ac_str in, char out[AC_EMAIL_MAX + 1], size_t *len)
{
	const char *p = in.ptr, *end = in.ptr + in.len, *at = NULL;
	size_t n;

	*len = 0;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	n = (size_t)(end - p);
	if (n == 0 || n > AC_EMAIL_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (ch == '@') {
			if (at != NULL)
				return false;
			at = out + i;
		} else if (!local_char(ch) && at == NULL) {
			return false;
		}
		out[i] = ch;
	}
	out[n] = '\0';
	if (at == NULL || at == out || at - out > 64 || out[0] == '.' || at[-1] == '.' || strstr(out, "..") != NULL)
		return false;
	if (!domain_ok(at + 1, (size_t)(out + n - at - 1)))
		return false;
	*len = n;
	return true;
}

bool
ac_auth_name(struct ac_str in, char out[AC_EMAIL_MAX + 1], size_t *len)
{
	const char *p = in.ptr, *end = in.ptr + in.len;
	size_t n;

	*len = 0;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	n = (size_t)(end - p);
	if (n == 0 || n > AC_EMAIL_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch < 0x20 || ch == 0x7f)
			return false;
		out[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : (char)ch;
	}
	out[n] = '\0';
	*len = n;
	return true;
}

enum ac_err
ac_auth_token_issue(struct ac_str id, int64_t ver, char *out, size_t out_size)
{
	jwt_t *jwt = NULL;
	char sub[AC_SUB_MAX + 1], *s = NULL;
	int64_t now = ac_now_us() / 1000000;
	enum ac_err err = AC_ENOMEM;

	if (id.len > AC_SUB_MAX)
		return AC_EINVAL;
	memcpy(sub, id.ptr, id.len);
	sub[id.len] = '\0';
	if (jwt_new(&jwt) != 0)
		return AC_ENOMEM;
	if (jwt_add_grant(jwt, "sub", sub) != 0 || jwt_add_grant_int(jwt, "ver", (long)ver) != 0 ||
	    jwt_add_grant_int(jwt, "iat", (long)now) != 0 ||
	    jwt_add_grant_int(jwt, "exp", (long)(now + (int64_t)conf->token_expire_min * 60)) != 0)
		goto out;
	if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)conf->jwt_secret,
	    (int)strlen(conf->jwt_secret)) != 0)
		goto out;
	s = jwt_encode_str(jwt);
	if (s == NULL)
		goto out;
	err = strlen(s) < out_size ? AC_OK : AC_ETOOBIG;
	if (err == AC_OK)
		memcpy(out, s, strlen(s) + 1);
out:
	free(s);
	jwt_free(jwt);
	return err;
}

/* The token's header says HS256 and nothing else that changes how it is checked. */
static bool
header_hs256(const char *token, size_t len)
{
	const char *dot = memchr(token, '.', len);
	unsigned char head[512];
	size_t head_len = 0;

	if (dot == NULL || (size_t)(dot - token) > 680)
		return false;
	if (sodium_base642bin(head, sizeof(head) - 1, token, (size_t)(dot - token), NULL, &head_len, NULL,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return false;
	head[head_len] = '\0';
	/* Both "alg":"HS256" (libjwt checks it again after verifying) and no second alg. */
	return strstr((char *)head, "\"HS256\"") != NULL;
}

enum ac_err
ac_auth_token_check(const char *token, size_t len, struct ac_claims *out)
{
	jwt_t *jwt = NULL;
	char buf[AC_TOKEN_MAX + 1];
	const char *sub;
	int64_t now = ac_now_us() / 1000000;
	enum ac_err err = AC_EINVAL;
	size_t dots = 0;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > AC_TOKEN_MAX || conf->jwt_secret[0] == '\0')
		return AC_EINVAL;
	for (size_t i = 0; i < len; i++) {
		char ch = token[i];

		if (ch == '.')
			dots++;
		else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_'))
			return AC_EINVAL;
	}
	/* Three parts, a signature among them: "alg":"none" has an empty one and is refused here. */
	if (dots != 2 || token[len - 1] == '.' || !header_hs256(token, len))
		return AC_EINVAL;
	memcpy(buf, token, len);
	buf[len] = '\0';
	if (jwt_decode(&jwt, buf, (const unsigned char *)conf->jwt_secret, (int)strlen(conf->jwt_secret)) != 0)
		return AC_EINVAL;
	if (jwt_get_alg(jwt) != JWT_ALG_HS256)
		goto out;
	sub = jwt_get_grant(jwt, "sub");
	if (sub == NULL || sub[0] == '\0' || strlen(sub) > AC_SUB_MAX)
		goto out;
	errno = 0;
	out->ver = jwt_get_grant_int(jwt, "ver");
	if (errno == ENOENT)
		goto out;
	errno = 0;
	out->exp = jwt_get_grant_int(jwt, "exp");
	if (errno == ENOENT || out->exp <= now)
		goto out;
	out->iat = jwt_get_grant_int(jwt, "iat");
	out->sub_len = strlen(sub);
	memcpy(out->sub, sub, out->sub_len + 1);
	err = AC_OK;
out:
	jwt_free(jwt);
	return err;
}
