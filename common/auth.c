/* Passwords, emails and access tokens (common/auth.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <jwt.h>
#include <sodium.h>

#include "auth.h"
#include "util.h"

_Static_assert(crypto_pwhash_STRBYTES <= AC_AUTH_HASH_MAX, "AC_AUTH_HASH_MAX too small");

#define PUBLIC_KEY_MAX (16 * 1024)
#define TOKEN_CACHE 8		/* tokens a thread remembers having verified */

static const struct ac_config *conf;
static char dummy_hash[AC_AUTH_HASH_MAX];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

/*
 * A thread's last verified tokens, by a keyed hash of their text: a client sends the same token with
 * every request, and its signature (libjwt: base64, two JSON parses, an HMAC) cost a tenth of a short
 * GET.  What a token says never changes; its exp is checked again on every use.
 */
static unsigned char cache_key[crypto_generichash_KEYBYTES];
static __thread struct {
	unsigned char hash[crypto_generichash_BYTES];
	bool used;
	int64_t ver, iat, exp;
	size_t sub_len;
	char sub[AC_SUB_MAX + 1];
} token_cache[TOKEN_CACHE];	/* ours only (HS256): about 2.5 KiB a thread */
static __thread unsigned token_cache_next;
static unsigned char public_key[PUBLIC_KEY_MAX + 1];	/* JWT_PUBLIC_KEY_FILE's PEM */
static size_t public_key_len;

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

static enum ac_err
load_public_key(const char *path, char *msg, size_t msg_size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL) {
		snprintf(msg, msg_size, "JWT_PUBLIC_KEY_FILE: %s: %s", path, strerror(errno));
		return AC_EINVAL;
	}
	n = fread(public_key, 1, sizeof(public_key), f);
	fclose(f);
	if (n == 0 || n > PUBLIC_KEY_MAX || strstr((char *)public_key, "-----BEGIN ") == NULL) {
		snprintf(msg, msg_size, "JWT_PUBLIC_KEY_FILE: %s is not a PEM public key (of at most %d bytes)", path,
		    PUBLIC_KEY_MAX);
		return AC_EINVAL;
	}
	public_key[n] = '\0';
	public_key_len = n;
	return AC_OK;
}

/* A hash of a password nobody knows, made with the same parameters as real ones. */
static void
make_dummy(void)
{
	unsigned char random[32];
	char secret[sizeof(random) * 2 + 1];

	randombytes_buf(random, sizeof(random));
	sodium_bin2hex(secret, sizeof(secret), random, sizeof(random));
	if (hash(secret, strlen(secret), dummy_hash) != AC_OK)
		dummy_hash[0] = '\0';	/* verify then fails at once: still no account revealed */
}

enum ac_err
ac_auth_init(const struct ac_config *cfg, char *msg, size_t msg_size)
{
	enum ac_err err;

	conf = cfg;
	snprintf(msg, msg_size, "libsodium failed to initialise");
	if (sodium_init() < 0)
		return AC_ESYS;
	randombytes_buf(cache_key, sizeof(cache_key));
	if (cfg->jwt_public_key_file[0] != '\0' && (err = load_public_key(cfg->jwt_public_key_file, msg,
	    msg_size)) != AC_OK)
		return err;
	msg[0] = '\0';
	return AC_OK;
}

void
ac_auth_prepare(void)
{
	pthread_once(&dummy_once, make_dummy);
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
	if (real) {
		memcpy(h, stored.ptr, stored.len);
	} else {
		ac_auth_prepare();
		memcpy(h, dummy_hash, sizeof(h));
	}
	slot_take();
	rc = crypto_pwhash_str_verify(h, password, len);
	slot_give();
	return real && rc == 0;
}

static bool
local_char(char ch)
{
	/* (strchr finds the terminator too: NUL is tested apart) */
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	    (ch != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", ch) != NULL);
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

/* The algorithm the token's header names (a copy, NUL-terminated), or false for a malformed header. */
static bool
header_alg(const char *token, size_t len, char alg[16])
{
	const char *dot = memchr(token, '.', len);
	unsigned char head[512];
	size_t head_len = 0;
	struct json_object *obj, *a;
	bool ok = false;

	alg[0] = '\0';
	if (dot == NULL || (size_t)(dot - token) > 680)
		return false;
	if (sodium_base642bin(head, sizeof(head) - 1, token, (size_t)(dot - token), NULL, &head_len, NULL,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return false;
	head[head_len] = '\0';
	obj = json_tokener_parse((char *)head);
	if (obj != NULL && json_object_is_type(obj, json_type_object) && json_object_object_get_ex(obj, "alg", &a) &&
	    json_object_is_type(a, json_type_string) && json_object_get_string_len(a) < 16) {
		memcpy(alg, json_object_get_string(a), (size_t)json_object_get_string_len(a) + 1);
		ok = true;
	}
	json_object_put(obj);
	return ok;
}

/* Whether the token's aud (a string, or an array of them) holds want. */
static bool
audience_has(jwt_t *jwt, const char *want)
{
	const char *one = jwt_get_grant(jwt, "aud");
	char *all;
	struct json_object *arr;
	bool found = false;

	if (one != NULL)
		return strcmp(one, want) == 0;
	all = jwt_get_grants_json(jwt, "aud");
	if (all == NULL)
		return false;
	arr = json_tokener_parse(all);
	for (size_t i = 0; arr != NULL && json_object_is_type(arr, json_type_array) && i < json_object_array_length(arr);
	    i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);

		found = found || (json_object_is_type(e, json_type_string) && strcmp(json_object_get_string(e), want) == 0);
	}
	json_object_put(arr);
	free(all);
	return found;
}

/* The outside provider's claims: iss, aud, nbf; the subject and the email. */
static bool
outside_claims(jwt_t *jwt, const char *sub, int64_t now, struct ac_claims *out)
{
	const char *iss = jwt_get_grant(jwt, "iss"), *email = jwt_get_grant(jwt, "email");
	long nbf;
	int n;

	if (iss == NULL || strcmp(iss, conf->jwt_issuer) != 0 || !audience_has(jwt, conf->jwt_audience))
		return false;
	errno = 0;
	nbf = jwt_get_grant_int(jwt, "nbf");
	if (errno != ENOENT && nbf > now)
		return false;
	n = snprintf(out->subject, sizeof(out->subject), "%s %s", iss, sub);
	if (n < 0 || (size_t)n >= sizeof(out->subject))
		return false;
	out->subject_len = (size_t)n;
	if (email == NULL || !ac_auth_email((struct ac_str){ email, strlen(email) }, out->email, &out->email_len))
		out->email_len = 0;
	out->outside = true;
	return true;
}

static enum ac_err token_verify(const char *token, size_t len, struct ac_claims *out);

enum ac_err
ac_auth_token_check(const char *token, size_t len, struct ac_claims *out)
{
	unsigned char h[crypto_generichash_BYTES];
	int64_t now = ac_now_us() / 1000000;
	unsigned slot;

	if (len == 0 || len > AC_TOKEN_MAX)
		return AC_EINVAL;
	crypto_generichash(h, sizeof(h), (const unsigned char *)token, len, cache_key, sizeof(cache_key));
	for (int i = 0; i < TOKEN_CACHE; i++) {
		if (token_cache[i].used && sodium_memcmp(token_cache[i].hash, h, sizeof(h)) == 0) {
			if (token_cache[i].exp <= now) {
				token_cache[i].used = false;
				return AC_EINVAL;
			}
			memset(out, 0, sizeof(*out));
			out->ver = token_cache[i].ver;
			out->iat = token_cache[i].iat;
			out->exp = token_cache[i].exp;
			out->sub_len = token_cache[i].sub_len;
			memcpy(out->sub, token_cache[i].sub, out->sub_len + 1);
			return AC_OK;
		}
	}
	if (token_verify(token, len, out) != AC_OK)
		return AC_EINVAL;
	if (out->outside)
		return AC_OK;	/* an outside provider's: not kept (their claims are larger, and rarer) */
	slot = token_cache_next++ % TOKEN_CACHE;
	memcpy(token_cache[slot].hash, h, sizeof(h));
	token_cache[slot].ver = out->ver;
	token_cache[slot].iat = out->iat;
	token_cache[slot].exp = out->exp;
	token_cache[slot].sub_len = out->sub_len;
	memcpy(token_cache[slot].sub, out->sub, out->sub_len + 1);
	token_cache[slot].used = true;
	return AC_OK;
}

static enum ac_err
token_verify(const char *token, size_t len, struct ac_claims *out)
{
	jwt_t *jwt = NULL;
	char buf[AC_TOKEN_MAX + 1], alg[16];
	const char *sub;
	const unsigned char *key;
	int key_len;
	jwt_alg_t want;
	int64_t now = ac_now_us() / 1000000;
	enum ac_err err = AC_EINVAL;
	size_t dots = 0;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > AC_TOKEN_MAX)
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
	if (dots != 2 || token[len - 1] == '.' || !header_alg(token, len, alg))
		return AC_EINVAL;
	/* Each algorithm with its own key only (never the public key as an HMAC secret). */
	if (strcmp(alg, "HS256") == 0 && conf->jwt_secret[0] != '\0') {
		want = JWT_ALG_HS256;
		key = (const unsigned char *)conf->jwt_secret;
		key_len = (int)strlen(conf->jwt_secret);
	} else if ((strcmp(alg, "RS256") == 0 || strcmp(alg, "ES256") == 0) && public_key_len > 0) {
		want = alg[0] == 'R' ? JWT_ALG_RS256 : JWT_ALG_ES256;
		key = public_key;
		key_len = (int)public_key_len;
	} else {
		return AC_EINVAL;
	}
	memcpy(buf, token, len);
	buf[len] = '\0';
	if (jwt_decode(&jwt, buf, key, key_len) != 0)
		return AC_EINVAL;
	if (jwt_get_alg(jwt) != want)
		goto out;
	sub = jwt_get_grant(jwt, "sub");
	if (sub == NULL || sub[0] == '\0' || strlen(sub) > AC_SUB_MAX)
		goto out;
	errno = 0;
	out->exp = jwt_get_grant_int(jwt, "exp");
	if (errno == ENOENT || out->exp <= now)
		goto out;
	out->iat = jwt_get_grant_int(jwt, "iat");
	if (want == JWT_ALG_HS256) {
		errno = 0;
		out->ver = jwt_get_grant_int(jwt, "ver");
		if (errno == ENOENT)
			goto out;
	} else if (!outside_claims(jwt, sub, now, out)) {
		goto out;
	}
	out->sub_len = strlen(sub);
	memcpy(out->sub, sub, out->sub_len + 1);
	err = AC_OK;
out:
	jwt_free(jwt);
	return err;
}
