/* A chat's automatic title, from what the model answered (fcgi/auto_title.c asks it). */
#ifndef AC_TITLE_H
#define AC_TITLE_H

#include <stddef.h>

#define AC_TITLE_MAX_WORDS 6
#define AC_TITLE_MAX_CHARS 80
#define AC_TITLE_BYTES (AC_TITLE_MAX_CHARS * 4 + 1)	/* room for the longest title, and its NUL */

/*
 * The title in the model's text: its first line that holds words, without a "Title:" prefix, quotes,
 * Markdown marks or end punctuation, white space collapsed, at most AC_TITLE_MAX_WORDS words and
 * AC_TITLE_MAX_CHARS characters (cut at a word where it can be).  Writes it, NUL-terminated, into
 * out (AC_TITLE_BYTES bytes) and returns its length; 0 when there is none.
 */
size_t ac_title_clean(const char *text, size_t len, char *out);

#endif
