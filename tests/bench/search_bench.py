#!/usr/bin/env python3
"""make bench, the search part: GET /search for a user with BENCH_SEARCH_MESSAGES (default 100,000)
messages in 100 chats, on SQLite and on PostgreSQL (a throwaway cluster, tests/pgcluster.py), one after
the other: latency p50 and p99 over several kinds of query (a rare word, a common word's prefix, two
words, a phrase), and the search index's size next to the data's.

The messages are written straight into the database (python3's sqlite3, psql COPY), as a restore
would: SQLite's triggers and PostgreSQL's generated columns index them as they go in, the same path a
send takes.  Their text is drawn from a vocabulary of 5,000 made-up words with a Zipf-like spread
(a few words very common, most rare), 10..80 words each.

Environment: BENCH_SEARCH_MESSAGES, BENCH_SEARCH_N (requests per kind of query, default 200),
BENCH_SEARCH_ENGINES (default "SQLite,PostgreSQL").
"""
import http.client
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlencode

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgcluster  # noqa: E402
from chat_bench import Stack, pct  # noqa: E402

USER = "bench-search"
CHATS = 100
VOCABULARY = 5000


def words():
    rnd = random.Random(15)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = sorted({"".join(rnd.choice(letters) for _ in range(rnd.randint(3, 10))) for _ in range(VOCABULARY * 2)})
    rnd.shuffle(vocab)
    return vocab[:VOCABULARY]


def messages(n, vocab):
    rnd = random.Random(16)
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    cum = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    for i in range(n):
        k = rnd.randint(10, 80)
        yield " ".join(rnd.choices(vocab, cum_weights=cum, k=k)).capitalize() + "."


def queries(vocab):
    """(kind, q) pairs: rare words, a common word's prefix, two words, a phrase."""
    rnd = random.Random(17)
    common, middle, rare = vocab[:20], vocab[20:500], vocab[2000:]
    return {
        "rare word": [rnd.choice(rare) for _ in range(50)],
        "common prefix": [rnd.choice(common)[:3] for _ in range(50)],
        "two words": ["%s %s" % (rnd.choice(middle), rnd.choice(common)) for _ in range(50)],
        "phrase": ['"%s %s"' % (rnd.choice(common), rnd.choice(common)) for _ in range(50)],
    }


def fill_sqlite(path, chat_ids, texts):
    conn = sqlite3.connect(path)
    conn.execute("BEGIN IMMEDIATE")
    t = 1_700_000_000_000_000
    for i, text in enumerate(texts):
        conn.execute("INSERT INTO messages (chat_id, role, content, created_at) VALUES (?, ?, ?, ?)",
                     (chat_ids[i % len(chat_ids)], ("user", "assistant")[i % 2], text, t + i))
    conn.execute("UPDATE chats SET message_count = (SELECT count(*) FROM messages WHERE chat_id = chats.id)")
    conn.commit()
    conn.close()


def sizes_sqlite(path):
    conn = sqlite3.connect(path)
    rows = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    conn.close()
    index = sum(v for k, v in rows.items() if k.startswith("search_"))
    data = sum(v for k, v in rows.items() if k in ("messages", "chats"))
    return index, data, "FTS5 tables (the index and its copy of the text)", "messages and chats tables"


def psql(pg, db, sql, stdin=None):
    return subprocess.run([os.path.join(pg.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
                           "-h", pg.socket_dir, "-p", str(pg.port), "-U", pgcluster.USER, "-d", db, "-c", sql],
                          input=stdin, check=True, stdout=subprocess.PIPE, text=True).stdout


def fill_pg(pg, db, chat_ids, texts):
    lines = []
    t = 1_700_000_000_000_000
    for i, text in enumerate(texts):
        lines.append("\\\\x%s\t%s\t\\\\x%s\t%d" % (chat_ids[i % len(chat_ids)].encode().hex(),
                                                  ("user", "assistant")[i % 2], text.encode().hex(), t + i))
    psql(pg, db, "COPY messages (chat_id, role, content, created_at) FROM STDIN", "\n".join(lines) + "\n")
    psql(pg, db, "UPDATE chats SET message_count = (SELECT count(*) FROM messages WHERE chat_id = chats.id)")
    psql(pg, db, "VACUUM ANALYZE messages")
    psql(pg, db, "VACUUM ANALYZE chats")


def sizes_pg(pg, db):
    out = psql(pg, db, "SELECT pg_relation_size('messages_search') + pg_relation_size('chats_search'), "
                       "(SELECT sum(pg_column_size(search)) FROM messages) + (SELECT sum(pg_column_size(search)) FROM chats), "
                       "pg_total_relation_size('messages') + pg_total_relation_size('chats')").split("|")
    gin, column, total = (int(x) for x in out)
    index = gin + column
    data = total - index
    return index, data, "GIN indexes and tsvector columns", "messages and chats (tables, TOAST, other indexes)"


def measure(stack, qs_by_kind, n):
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
    out = {}
    for kind, qs in qs_by_kind.items():
        times, hits = [], []
        for i in range(n):
            q = qs[i % len(qs)]
            t0 = time.perf_counter()
            conn.request("GET", "/search?" + urlencode({"user_id": USER, "q": q}))
            r = conn.getresponse()
            body = r.read()
            times.append(time.perf_counter() - t0)
            assert r.status == 200, body[:200]
            hits.append(json.loads(body)["total"])
        out[kind] = (times, statistics.median(hits))
    conn.close()
    return out


def run(work, engine, pg, n_messages, n):
    vocab = words()
    db = None
    if engine == "PostgreSQL":
        db = "search_%d" % os.getpid()
        psql(pg, "postgres", 'CREATE DATABASE "%s"' % db)
        url = pg.url(db)
    else:
        url = None
    stack = Stack(work, "search-" + engine.lower(), {"WORKER_PROCESSES": "1"}, url)
    try:
        chat_ids = []
        for i in range(CHATS):
            status, out = stack.request("POST", "/chats", {"user_id": USER, "title": "Chat %d about %s" % (i, vocab[i])})
            assert status == 201, out
            chat_ids.append(json.loads(out)["id"])
        t0 = time.perf_counter()
        texts = list(messages(n_messages, vocab))
        if engine == "SQLite":
            path = os.path.join(work, "search-sqlite.db")
            fill_sqlite(path, chat_ids, texts)
        else:
            fill_pg(pg, db, chat_ids, texts)
        fill = time.perf_counter() - t0
        results = measure(stack, queries(vocab), n)
        if engine == "SQLite":
            index, data, index_what, data_what = sizes_sqlite(path)
        else:
            index, data, index_what, data_what = sizes_pg(pg, db)
        every = [t for times, _ in results.values() for t in times]
        print("%s: GET /search, one user with %d messages in %d chats (written and indexed in %.1f s):"
              % (engine, n_messages, CHATS, fill))
        for kind, (times, hits) in results.items():
            print("  %-14s p50 %6.2f ms  p99 %6.2f ms  (median %d hits)"
                  % (kind, pct(times, 0.5) * 1000, pct(times, 0.99) * 1000, hits))
        print("  %-14s p50 %6.2f ms  p99 %6.2f ms  (%d requests, one at a time)"
              % ("all", pct(every, 0.5) * 1000, pct(every, 0.99) * 1000, len(every)))
        print("  index %.1f MiB (%s) next to the data's %.1f MiB (%s): %.2fx"
              % (index / 1048576, index_what, data / 1048576, data_what, index / data))
    finally:
        stack.stop()


def main():
    n_messages = int(os.environ.get("BENCH_SEARCH_MESSAGES", "100000"))
    n = int(os.environ.get("BENCH_SEARCH_N", "200"))
    with tempfile.TemporaryDirectory(prefix="ai-chat-searchbench.") as work, pgcluster.Cluster(fsync=True) as pg:
        for engine in os.environ.get("BENCH_SEARCH_ENGINES", "SQLite,PostgreSQL").split(","):
            run(work, engine, pg, n_messages, n)


if __name__ == "__main__":
    main()
