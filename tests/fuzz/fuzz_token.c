/* Fuzz target: what a client sends for its identity: a bearer token (common/auth.c's checks before
 * and after libjwt), an email as register and login read it, a name as REMOTE_USER is read.  The
 * first byte picks which; the rest is the input. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/auth.h"
#include "../../common/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ac_config cfg;
static bool ready;

static void
setup(void)
{
	char msg[256];

	setenv("AUTH", "token", 1);
	setenv("JWT_SECRET", "fuzz-secret-0123456789abcdef0123456789", 1);
	unsetenv("JWT_PUBLIC_KEY_FILE");
	if (ac_config_load(&cfg, "/nonexistent/.env", msg, sizeof(msg)) != AC_OK ||
	    ac_auth_init(&cfg, msg, sizeof(msg)) != AC_OK)
		abort();
	ready = true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[AC_EMAIL_MAX + 1];
	struct ac_claims claims;
	struct ac_str in;
	size_t len;

	if (!ready)
		setup();
	if (size == 0)
		return 0;
	in = (struct ac_str){ (const char *)data + 1, size - 1 };
	switch (data[0] % 3) {
	case 0:
		if (ac_auth_email(in, out, &len) && (len == 0 || len > AC_EMAIL_MAX || strchr(out, '@') == NULL))
			abort();
		break;
	case 1:
		if (ac_auth_name(in, out, &len) && (len == 0 || len > AC_EMAIL_MAX))
			abort();
		break;
	default:
		/* Only this secret's tokens pass: the fuzzer cannot sign, so nothing should. */
		if (ac_auth_token_check(in.ptr, in.len, &claims) == AC_OK && claims.sub_len == 0)
			abort();
		break;
	}
	return 0;
}
