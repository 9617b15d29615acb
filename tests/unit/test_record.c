/* fcgi/record.c: the FastCGI records the event loop writes itself (FCGI_STDOUT, FCGI_END_REQUEST). */
#include <stdlib.h>

#include "test.h"

#include "../../fcgi/record.h"

/* Reads the records in b back: checks each header and padding, concatenates the stdout content. */
static void
parse_back(const struct ac_buf *b, int request_id, struct ac_buf *content, int *records, int *ended,
    int *app_status)
{
	size_t at = 0;

	*records = 0;
	*ended = 0;
	while (at < b->len) {
		const unsigned char *h = (const unsigned char *)b->data + at;
		size_t clen, plen;

		assert_true(at + 8 <= b->len);
		assert_int_equal(h[0], 1);					/* version */
		assert_int_equal((h[2] << 8) | h[3], request_id);
		clen = (size_t)((h[4] << 8) | h[5]);
		plen = h[6];
		assert_int_equal((clen + plen) % 8, 0);				/* aligned to 8 */
		assert_true(at + 8 + clen + plen <= b->len);
		for (size_t i = 0; i < plen; i++)
			assert_int_equal(h[8 + clen + i], 0);
		if (h[1] == 6) {						/* FCGI_STDOUT */
			assert_int_equal(*ended, 0);
			ac_buf_add(content, h + 8, clen);
		} else {
			assert_int_equal(h[1], 3);				/* FCGI_END_REQUEST */
			assert_int_equal(clen, 8);
			*app_status = (h[8] << 24) | (h[9] << 16) | (h[10] << 8) | h[11];
			assert_int_equal(h[12], 0);				/* FCGI_REQUEST_COMPLETE */
			(*ended)++;
		}
		(*records)++;
		at += 8 + clen + plen;
	}
}

static void
stdout_records_are_padded_and_split(void **state)
{
	static const size_t sizes[] = { 1, 7, 8, 9, 100, 65527, 65528, 65529, 65535, 65536, 200000 };

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct ac_buf b, content;
		char *data = malloc(sizes[i]);
		int records, ended, st = -1;

		for (size_t k = 0; k < sizes[i]; k++)
			data[k] = (char)('a' + k % 26);
		ac_buf_init(&b, 1 << 24);
		ac_buf_init(&content, 1 << 24);
		ac_fcgi_stdout(&b, 0x1234, data, sizes[i]);
		parse_back(&b, 0x1234, &content, &records, &ended, &st);
		assert_buf_equal(&content, data, sizes[i]);
		assert_int_equal(ended, 0);
		assert_int_equal(records, (int)((sizes[i] + 65527) / 65528));	/* a record holds 65528 */
		assert_true(b.len <= sizes[i] + 16 * (size_t)records);
		if (sizes[i] <= 65528)
			assert_int_equal(b.len, ac_fcgi_record_size(sizes[i]));
		ac_buf_free(&b);
		ac_buf_free(&content);
		free(data);
	}
}

static void
nothing_writes_no_record(void **state)
{
	struct ac_buf b;

	(void)state;
	ac_buf_init(&b, 1024);
	ac_fcgi_stdout(&b, 1, "", 0);	/* an empty FCGI_STDOUT would end the stream */
	assert_int_equal(b.len, 0);
	ac_buf_free(&b);
}

static void
end_is_empty_stdout_then_end_request(void **state)
{
	struct ac_buf b, content;
	int records, ended, st = -1;
	static const unsigned char want[] = {
		1, 6, 0, 1, 0, 0, 0, 0,
		1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	};

	(void)state;
	ac_buf_init(&b, 1024);
	ac_buf_init(&content, 1024);
	ac_fcgi_end(&b, 1, 0);
	assert_buf_equal(&b, want, sizeof(want));
	ac_buf_reset(&b, 1024);
	ac_fcgi_stdout(&b, 65535, "Status: 200 OK\r\n\r\nhi", 20);
	ac_fcgi_end(&b, 65535, 3);
	parse_back(&b, 65535, &content, &records, &ended, &st);
	assert_buf_str(&content, "Status: 200 OK\r\n\r\nhi");
	assert_int_equal(records, 3);
	assert_int_equal(ended, 1);
	assert_int_equal(st, 3);
	ac_buf_free(&b);
	ac_buf_free(&content);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stdout_records_are_padded_and_split),
		cmocka_unit_test(nothing_writes_no_record),
		cmocka_unit_test(end_is_empty_stdout_then_end_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
