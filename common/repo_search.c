/*
 * Search (GET /search): the user's chat titles and message contents, best match first.
 *
 * The index is the migration's (sql/<engine>/006_search_settings.sql): SQLite FTS5 (unicode61,
 * diacritics removed, BM25) kept by triggers, PostgreSQL tsvector columns under GIN indexes.  The
 * query text is read here once, for both engines, into terms: words (matched as prefixes) and
 * quoted phrases; each engine's query syntax for those terms is a table, as its SQL texts are.
 */
#include <string.h>

#include "repo_impl.h"
#include "util.h"

enum {
	S_COUNT_HITS,
	S_SEARCH,
	S_COUNT
};

/* SQLite: the user's entries only (their owner token), and the query's terms among them. */
#define OWNER_MATCH "('owner:u' || hex($1) || ' AND body:(' || $2 || ')')"

/* The snippet's marks around a matched word. */
#define MARK_OPEN "char(2)"
#define MARK_CLOSE "char(3)"

static const struct ac_sql sql[S_COUNT] = {
	[S_COUNT_HITS] = { "SELECT count(*) FROM search_index WHERE search_index MATCH " OWNER_MATCH " AND user_id = $1",
	    "SELECT (SELECT count(*) FROM chats WHERE user_id = $1 AND search @@ to_tsquery('ac_search', $2)) + "
	    "(SELECT count(*) FROM messages m JOIN chats c ON c.id = m.chat_id WHERE c.user_id = $1 AND m.state < 2 "
	    "AND m.search @@ to_tsquery('ac_search', $2))" },
	/* chat_id, chat title, message id (NULL: the title), role, snippet, created_at */
	[S_SEARCH] = { "SELECT search_index.chat_id, c.title, CASE WHEN search_index.rowid > 0 THEN search_index.rowid END, "
	    "search_index.role, snippet(search_index, 0, " MARK_OPEN ", " MARK_CLOSE ", '…', 24), "
	    "search_index.created_at FROM search_index JOIN chats c ON c.id = search_index.chat_id "
	    "WHERE search_index MATCH " OWNER_MATCH " AND search_index.user_id = $1 AND c.user_id = $1 "
	    "ORDER BY search_index.rank, search_index.created_at DESC, search_index.rowid DESC LIMIT $3 OFFSET $4",
	    /* The page first (ranks only), then the snippets of its rows alone. */
	    "WITH q AS (SELECT to_tsquery('ac_search', $2) AS q), "
	    "page AS (SELECT * FROM ("
	    "SELECT c.id AS chat_id, CAST(NULL AS bigint) AS message_id, CAST(NULL AS text) AS role, c.title AS body, "
	    "c.created_at, ts_rank(c.search, q.q) AS rank FROM chats c, q WHERE c.user_id = $1 AND c.search @@ q.q "
	    "UNION ALL "
	    "SELECT m.chat_id, m.id, m.role, m.content, m.created_at, ts_rank(m.search, q.q) FROM messages m "
	    "JOIN chats c ON c.id = m.chat_id, q WHERE c.user_id = $1 AND m.state < 2 AND m.search @@ q.q) u "
	    "ORDER BY rank DESC, created_at DESC, message_id DESC NULLS LAST LIMIT $3 OFFSET $4) "
	    "SELECT p.chat_id, c.title, p.message_id, p.role, ts_headline('ac_search', ac_search_text(p.body), q.q, "
	    "'StartSel=' || chr(2) || ', StopSel=' || chr(3) || ', MaxWords=24, MinWords=12'), p.created_at "
	    "FROM page p JOIN chats c ON c.id = p.chat_id, q "
	    "ORDER BY p.rank DESC, p.created_at DESC, p.message_id DESC NULLS LAST" },
};

/* How each engine's query language writes the terms. */
struct dialect {
	const char *word_open, *word_close;	/* a word, matched as a prefix */
	const char *phrase_open, *phrase_sep, *phrase_close;
	const char *and;
};

static const struct dialect dialects[] = {
	[AC_DB_SQLITE] = { "\"", "\"*", "\"", " ", "\"", " " },		/* FTS5: "word"* "a phrase" */
	[AC_DB_PG] = { "'", "':*", "('", "' <-> '", "')", " & " },	/* tsquery: 'word':* & ('a' <-> 'phrase') */
};

#define TERMS_MAX 32		/* words and phrases of a query; more are left out */
#define PHRASE_WORDS_MAX 32

static enum ac_err
stmt(struct ac_repo *r, int i, struct ac_stmt **out)
{
	return REPO_STMT(r, AC_SQL_SEARCH, sql, i, out);
}

/* A word's bytes: letters and digits (ASCII), and any byte of a multibyte UTF-8 character. */
static bool
word_byte(unsigned char ch)
{
	return ch >= 0x80 || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Appends the words of text[0..len) as one phrase (or one prefix word); *words counts them. */
static void
add_words(struct ac_buf *out, const struct dialect *d, const char *text, size_t len, bool phrase, int *terms)
{
	size_t i = 0;
	int n = 0;

	while (i < len && *terms < TERMS_MAX) {
		size_t start;

		while (i < len && !word_byte((unsigned char)text[i]))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && word_byte((unsigned char)text[i]))
			i++;
		if (phrase) {
			if (n == PHRASE_WORDS_MAX)
				break;
			if (n == 0 && *terms > 0)
				ac_buf_adds(out, d->and);
			ac_buf_adds(out, n == 0 ? d->phrase_open : d->phrase_sep);
			ac_buf_add(out, text + start, i - start);
			n++;
		} else {
			if ((*terms)++ > 0)
				ac_buf_adds(out, d->and);
			ac_buf_adds(out, d->word_open);
			ac_buf_add(out, text + start, i - start);
			ac_buf_adds(out, d->word_close);
		}
	}
	if (phrase && n > 0) {
		ac_buf_adds(out, d->phrase_close);
		(*terms)++;
	}
}

/*
 * The engine's query for the user's text: words outside quotes each matched as a prefix, the words
 * of a quoted part as a phrase, all of them required.  Empty when the text has no word.
 */
static void
build_query(const struct dialect *d, struct ac_str q, struct ac_buf *out)
{
	int terms = 0;
	size_t i = 0;

	while (i < q.len && terms < TERMS_MAX) {
		const char *quote = memchr(q.ptr + i, '"', q.len - i);
		size_t end = quote != NULL ? (size_t)(quote - q.ptr) : q.len;
		const char *close;
		size_t stop;

		add_words(out, d, q.ptr + i, end - i, false, &terms);
		if (quote == NULL)
			break;
		close = memchr(q.ptr + end + 1, '"', q.len - end - 1);
		stop = close != NULL ? (size_t)(close - q.ptr) : q.len;	/* an unclosed quote runs to the end */
		add_words(out, d, q.ptr + end + 1, stop - end - 1, true, &terms);
		i = stop < q.len ? stop + 1 : q.len;
	}
}

enum ac_err
ac_repo_search(struct ac_repo *r, struct ac_str user_id, struct ac_str q, int64_t limit, int64_t offset,
    int64_t *total, ac_search_fn fn, void *arg)
{
	enum ac_db_kind kind = ac_db_kind(r->db);
	struct ac_buf query;
	struct ac_stmt *s;
	enum ac_err err;
	bool row;

	*total = 0;
	ac_buf_init(&query, q.len * 4 + 256);
	build_query(&dialects[kind == AC_DB_PG ? AC_DB_PG : AC_DB_SQLITE], q, &query);
	if ((err = ac_buf_err(&query)) != AC_OK || query.len == 0)
		goto done;	/* no word to look for: nothing found */
	/* One snapshot, so that total and the page agree. */
	if ((err = ac_db_begin(r->db, AC_TXN_READ)) != AC_OK)
		goto done;
	if ((err = stmt(r, S_COUNT_HITS, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, user_id);
	ac_db_bind_str(s, 2, (struct ac_str){ query.data, query.len });
	if ((err = ac_repo_one_int(s, total)) != AC_OK)
		goto out;
	if (*total <= offset)
		goto out;
	if ((err = stmt(r, S_SEARCH, &s)) != AC_OK)
		goto out;
	ac_db_bind_str(s, 1, user_id);
	ac_db_bind_str(s, 2, (struct ac_str){ query.data, query.len });
	ac_db_bind_int(s, 3, limit);
	ac_db_bind_int(s, 4, offset);
	while ((err = ac_db_step(s, &row)) == AC_OK && row) {
		struct ac_search_hit h;
		struct ac_str role = ac_db_col_str(s, 3);

		h.chat_id = ac_db_col_str(s, 0);
		h.chat_title = ac_db_col_str(s, 1);
		h.message_id = ac_db_col_null(s, 2) ? 0 : ac_db_col_int(s, 2);
		h.has_role = role.ptr != NULL;
		h.role = role.len > 0 && role.ptr[0] == 'a' ? AC_ROLE_ASSISTANT : AC_ROLE_USER;
		h.snippet = ac_db_col_str(s, 4);
		if (h.snippet.ptr == NULL)
			h.snippet = AC_STR("");
		h.created_at = ac_db_col_int(s, 5);
		if ((err = fn(arg, &h)) != AC_OK)
			break;
	}
	ac_db_done(s);
out:
	err = ac_repo_end(r, err);
done:
	ac_buf_free(&query);
	return err;
}
