/* Fuzz target: the provider's answer: a stream of server-sent events fed in pieces of varying size
 * (the first byte picks them), each event parsed as a chat.completion.chunk; and the same bytes as a
 * complete (not streamed) chat completion. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/provider.h"
#include "../../common/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct state {
	struct ac_llm_result res;
	bool done;
};

static enum ac_err
event(void *arg, const char *data, size_t len)
{
	struct state *st = arg;
	size_t at;

	return ac_llm_parse_event(&st->res, data, len, &st->done, &at);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ac_sse sse;
	struct state st;
	size_t step, i;
	char *text;

	if (size == 0)
		return 0;
	step = (size_t)data[0] % 17 + 1;
	ac_sse_init(&sse, 64 * 1024);
	ac_llm_result_init(&st.res, 1 << 20);
	st.done = false;
	for (i = 1; i < size; i += step) {
		size_t n = size - i < step ? size - i : step;

		if (ac_sse_feed(&sse, (const char *)data + i, n, event, &st) != AC_OK)
			break;
	}
	ac_llm_result_free(&st.res);
	ac_sse_free(&sse);

	text = malloc(size);
	if (text != NULL) {
		memcpy(text, data + 1, size - 1);
		text[size - 1] = '\0';
		ac_llm_result_init(&st.res, 1 << 20);
		ac_llm_parse_completion(&st.res, text, size - 1);
		ac_llm_result_free(&st.res);
		free(text);
	}
	return 0;
}
