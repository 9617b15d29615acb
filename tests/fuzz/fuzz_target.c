/* Fuzz target: the request target as the worker parses it: path segments and query parameters with
 * percent-decoding, the integer and boolean query values, and the Content-Type check.  The input is
 * "<path>?<query>\n<content type>". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/valid.h"
#include "../../fcgi/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	const char *nl = memchr(in, '\n', size);
	size_t target = nl != NULL ? (size_t)(nl - in) : size;
	const char *q = memchr(in, '?', target);
	size_t path_len = q != NULL ? (size_t)(q - in) : target;
	char *scratch = malloc(size + 1), *ct;
	struct ac_path path;
	struct ac_query query;
	struct ac_verrs v;

	if (scratch == NULL)
		return 0;
	(void)ac_path_parse(in, path_len, scratch, &path);
	ac_verrs_init(&v);
	if (q != NULL && ac_query_parse(q + 1, target - path_len - 1, scratch + path_len, &query) == AC_OK) {
		static const struct ac_strspec user = { "user_id", true, false, 1, 255 };
		struct ac_str s;
		int64_t n;
		bool b;

		ac_valid_str(&v, "query", &user, ac_query_get(&query, "user_id"), &s);
		ac_valid_int(&v, "limit", ac_query_get(&query, "limit"), 50, 1, 100, &n);
		ac_valid_int(&v, "before", ac_query_get(&query, "before"), 0, 0, INT64_MAX, &n);
		ac_valid_bool(&v, "newest", ac_query_get(&query, "newest"), false, &b);
	}
	ac_verrs_free(&v);
	if (nl != NULL) {
		ct = malloc(size - target);
		if (ct != NULL) {
			memcpy(ct, nl + 1, size - target - 1);
			ct[size - target - 1] = '\0';
			(void)ac_http_is_json(ct);
			free(ct);
		}
	}
	free(scratch);
	return 0;
}
