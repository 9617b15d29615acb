/* Fuzz target: a request body, as POST /chat, POST /chats and PATCH read it (bytes to typed fields or
 * a 422 list), and the JSON writer on the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/json.h"
#include "../../common/valid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct ac_strspec specs[] = {
		{ "chat_id", true, false, 1, 64 }, { "user_id", true, false, 1, 255 },
		{ "title", false, true, 1, 200 }, { "message", true, false, 1, SIZE_MAX },
	};
	char *text = malloc(size + 1);
	struct json_object *obj = NULL;
	struct ac_json_error jerr;
	struct ac_verrs v;
	struct ac_buf out;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';	/* callers always hold NUL-terminated bodies */
	ac_verrs_init(&v);
	ac_buf_init(&out, 1 << 24);
	if (ac_json_parse(text, size, &obj, &jerr) != AC_OK) {
		ac_verrs_add_decode(&v, &jerr);
	} else if (json_object_is_type(obj, json_type_object)) {
		for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
			struct ac_str s;
			bool present;

			if (ac_valid_body_str(&v, obj, &specs[i], &s, &present))
				ac_json_str(&out, s.ptr, s.len);
		}
	}
	ac_verrs_write(&v, &out);
	ac_json_str(&out, text, size);
	json_object_put(obj);
	ac_buf_free(&out);
	ac_verrs_free(&v);
	free(text);
	return 0;
}
