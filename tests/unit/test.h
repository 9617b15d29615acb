/* What every unit test includes: cmocka and the string helpers the assertions use. */
#ifndef AC_TEST_H
#define AC_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/buf.h"

/* The buffer holds exactly the n bytes of s. */
#define assert_buf_equal(b, s, n) do {					\
	assert_int_equal(ac_buf_err(b), AC_OK);				\
	assert_int_equal((b)->len, (n));				\
	assert_memory_equal((b)->data, (s), (n));			\
} while (0)

#define assert_buf_str(b, lit) assert_buf_equal(b, lit, sizeof(lit) - 1)

#endif
