"""A battery of hostile input: each case names its request, the status and JSON detail it must get (exact
where README defines it), the rows the test's user must then have in the database (nothing stored half)
and, after every case, the stack must still answer /health with the same worker processes (a crash would
otherwise hide behind the supervisor's restart).

Cases run against the shared stacks: default_stack() ("plain", no provider) and provider.shared()
("model", the fake provider). Some requests go through nginx as raw bytes, some straight to the worker's
FastCGI socket (fastcgi_client.py), to reach what nginx never passes on.
"""

import http.client
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from api import (METHOD_NOT_ALLOWED, NOT_FOUND, UNSUPPORTED_MEDIA_TYPE, chat_not_found, check_chat_stored,
                 create_chat, missing, new_user, not_a_dict, not_ge, not_le,
                 str_expected, too_large, too_long)
from fastcgi_client import fastcgi_request, socket_path
from harness import (Response, add_test, check_schema, command_line, default_stack, encode_json,
                     read_response)
from provider import deltas_text, rows, shared, stream_chat, tag

BAD_REQUEST = {"detail": "Bad request"}                     # nginx's 400
TARGET_TOO_LONG = {"detail": "Request target too long"}
MALFORMED_PATH = {"detail": "Malformed request path"}         # the worker's own 400s
MALFORMED_QUERY = {"detail": "Malformed query string"}
TOO_MANY_PARAMS = {"detail": "Too many query parameters"}
INVALID_LENGTH = {"detail": "Invalid Content-Length"}
SHORT_BODY = {"detail": "Request body shorter than its Content-Length"}
LIMIT = 1048576
BIG = "99999999999999999999"                                   # beyond 64 bits
INT64_MAX = 9223372036854775807


# --------------------------------------------------------------------------------------------------
# The stacks and what "still up" means


def plain():
    return default_stack()


def model():
    return shared()[1]


STACKS = {"plain": plain, "model": model}


def worker_pids(s):
    return sorted(pid for pid in s.leftover_processes() if "ai-chat-fcgi" in command_line(pid))


def crash_lines(s, since):
    with open(s.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", "replace")
    return [line for line in text.splitlines() if "killed by signal" in line or "exited with status" in line]


def log_size(s):
    try:
        return s.log_path.stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------------------------------
# Per case


class Ctx:
    """One case's world: the stack, a fresh user, maybe a chat of theirs, the body actually sent."""

    def __init__(self, s, with_chat):
        self.s = s
        self.user = new_user("battery")
        self.chat = create_chat(s, self.user, "battery") if with_chat else None
        self.body = b""

    def fill(self, value):
        """Replaces __USER__ and __CHAT__ (str or bytes)."""
        chat_id = self.chat["id"] if self.chat else "no-chat"
        if isinstance(value, bytes):
            return value.replace(b"__USER__", self.user.encode()).replace(b"__CHAT__", chat_id.encode())
        return value.replace("__USER__", self.user).replace("__CHAT__", chat_id)

    def counts(self):
        """(the user's chats, their messages)."""
        chats = self.s.sql("SELECT count(*) FROM chats WHERE user_id = ?", (self.user,))[0][0]
        messages = self.s.sql("SELECT count(*) FROM messages WHERE chat_id IN"
                              " (SELECT id FROM chats WHERE user_id = ?)", (self.user,))[0][0]
        return chats, messages


def raw_http(s, data, timeout=10):
    """Sends raw bytes to nginx; the Response, or None when the connection closed without one."""
    with s.connect(timeout) as sock:
        sock.sendall(data)
        try:
            return read_response(sock, data.split(b" ", 1)[0].decode("ascii"))
        except socket.timeout:
            raise AssertionError(f"no answer within {timeout} s to {data[:200]!r}") from None
        except (http.client.BadStatusLine, ConnectionError):   # RemoteDisconnected is both
            return None


# Request kinds: each returns (method, path for the schema check or None, Response or None).

def J(method, path, body=None, headers=None, ctype="application/json"):
    """Through nginx with http.client; body bytes (placeholders filled) or a value sent as JSON."""
    def send(ctx):
        hdrs = dict(headers or {})
        if ctype is not None:
            hdrs.setdefault("Content-Type", ctype)
        raw = None if body is None else ctx.fill(body if isinstance(body, bytes) else encode_json(body))
        ctx.body = raw or b""
        target = ctx.fill(path)
        return method, target, ctx.s.request(method, target, body=raw, headers=hdrs, validate=False, timeout=20)
    return send


def RAW(data):
    """Raw bytes through nginx (a request head ending the headers, maybe a body); or a function that
    makes them from the filled CHATS_OK body (when lengths depend on it)."""
    def send(ctx):
        raw = data(ctx.fill(CHATS_OK)) if callable(data) else ctx.fill(data)
        line = raw.split(b"\r\n", 1)[0].split(b" ")
        ctx.body = raw.split(b"\r\n\r\n", 1)[-1]
        return line[0].decode(), line[1].decode("latin-1") if len(line) == 3 else None, raw_http(ctx.s, raw)
    return send


def FCGI(method, target, body=b"", **kwargs):
    """Straight to the worker's FastCGI socket."""
    def send(ctx):
        raw_target = ctx.fill(target.encode("latin-1") if isinstance(target, str) else target)
        ctx.body = ctx.fill(body)
        got = fastcgi_request(socket_path(ctx.s), method, raw_target, body=ctx.body, **kwargs)
        if got is None:
            time.sleep(1)   # what the worker makes of the cut-off request, it has done by now
            return method, None, None
        status, headers, data = got
        return method, raw_target.decode("latin-1"), Response(status, headers, data)
    return send


def head(method, path, *lines):
    """A raw request head (Connection: close), the lines given, as bytes ready for a body."""
    text = f"{method} {path} HTTP/1.1\r\nHost: battery\r\nConnection: close\r\n"
    return text.encode("latin-1") + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


# Expected bodies: a dict (exact), or a check(data, ctx).

def check_has_detail(data):
    assert isinstance(data, dict) and isinstance(data.get("detail"), str) and data["detail"], data


def jsondecode(at=None, plus=0):
    """A 422 with one value_error.jsondecode entry; at: the bytes whose first occurrence in the body sent
    is the offset loc must name (exactly), else any offset inside the body."""
    def check(data, ctx):
        detail = data.get("detail") if isinstance(data, dict) else None
        assert isinstance(detail, list) and len(detail) == 1, f"want one 422 entry: {data!r}"
        entry = detail[0]
        assert entry.get("type") == "value_error.jsondecode" and isinstance(entry.get("msg"), str) \
            and entry["msg"], f"not a JSON decoding error: {entry!r}"
        loc = entry.get("loc")
        assert isinstance(loc, list) and len(loc) == 2 and loc[0] == "body" and type(loc[1]) is int, entry
        if at is not None:
            want = ctx.body.index(at) + plus
            assert loc[1] == want, f"offset {loc[1]}, wanted {want} (the first {at!r}): {entry!r}"
        else:
            assert 0 <= loc[1] <= len(ctx.body), f"offset outside the body: {entry!r}"
    return check


def entries(*items):
    """A 422 listing exactly these entries (any order)."""
    def check(data, ctx):
        key = lambda e: json.dumps(e, sort_keys=True, ensure_ascii=False)  # noqa: E731
        assert isinstance(data, dict) and set(data) == {"detail"}, data
        got = sorted(map(key, data["detail"]))
        want = sorted(key(ctx_fill_entry(ctx, e)) for e in items)
        assert got == want, f"422 detail\n  {data['detail']!r}\nwanted\n  {list(items)!r}"
    return check


def ctx_fill_entry(ctx, entry):
    return json.loads(ctx.fill(json.dumps(entry)))


def exact_filled(want):
    def check(data, ctx):
        filled = json.loads(ctx.fill(json.dumps(want)))
        assert data == filled, f"body\n  {data!r}\nwanted\n  {filled!r}"
    return check


def chat_created(user_suffix="", title=None):
    """A 201 Chat for the case's user (+ suffix), stored exactly as returned."""
    def check(data, ctx):
        assert data["user_id"] == ctx.user + user_suffix and data["title"] == title, data
        check_chat_stored(ctx.s, data)
    return check


# --------------------------------------------------------------------------------------------------
# The cases


class Case:
    def __init__(self, name, send, status, want=None, rows=(0, 0), stack="plain", chat=False, extra=None,
                 schema=True):
        self.name, self.send, self.status, self.want = name, send, status, want
        self.rows, self.stack, self.chat, self.extra, self.schema = rows, stack, chat, extra, schema


CASES = []


def case(*args, **kwargs):
    CASES.append(Case(*args, **kwargs))


def chats_body(**fields):
    return encode_json({"user_id": "__USER__", **fields})


CHATS_OK = b'{"user_id": "__USER__"}'

# -- Content-Length, through nginx
case("content_length_missing_body_is_ignored",      # HTTP/1.1 without a length has no body: nginx
     RAW(head("POST", "/chats", b"Content-Type: application/json") + CHATS_OK),   # answers at once
     422, entries(missing("body")))
case("content_length_zero_with_a_body",
     RAW(head("POST", "/chats", b"Content-Length: 0") + CHATS_OK), 422, entries(missing("body")))
case("content_length_negative",
     RAW(head("POST", "/chats", b"Content-Length: -5") + CHATS_OK), 400, BAD_REQUEST)
case("content_length_plus_sign",
     RAW(head("POST", "/chats", b"Content-Length: +23") + CHATS_OK), 400, BAD_REQUEST)
case("content_length_not_a_number",
     RAW(head("POST", "/chats", b"Content-Length: ab") + CHATS_OK), 400, BAD_REQUEST)
case("content_length_twice_differing",
     RAW(head("POST", "/chats", b"Content-Length: 23", b"Content-Length: 24") + CHATS_OK), 400, BAD_REQUEST)
case("content_length_beyond_64_bits",
     RAW(head("POST", "/chats", b"Content-Length: " + BIG.encode() * 2) + CHATS_OK), 400, BAD_REQUEST)
case("content_length_smaller_than_body_rest_ignored",
     RAW(lambda body: head("POST", "/chats", b"Content-Length: %d" % len(body)) + body + b"GARBAGE GARBAGE"),
     201, chat_created(), rows=(1, 0))
case("content_length_over_limit_with_small_body",
     RAW(head("POST", "/chats", b"Content-Length: %d" % (LIMIT + 1)) + CHATS_OK), 413, too_large(LIMIT))

# -- Content-Length, straight to the worker (nginx never passes these on)
case("worker_content_length_negative", FCGI("POST", "/chats", CHATS_OK, content_length="-5"),
     400, INVALID_LENGTH)
case("worker_content_length_not_a_number", FCGI("POST", "/chats", CHATS_OK, content_length="12ab"),
     400, INVALID_LENGTH)
case("worker_content_length_beyond_64_bits", FCGI("POST", "/chats", CHATS_OK, content_length=BIG * 2),
     400, INVALID_LENGTH)
case("worker_body_shorter_than_content_length", FCGI("POST", "/chats", CHATS_OK, content_length="500"),
     400, SHORT_BODY)
case("worker_content_length_over_limit", FCGI("POST", "/chats", CHATS_OK, content_length=str(LIMIT + 1)),
     413, too_large(LIMIT))
case("worker_body_abandoned_midway",     # the front end goes away with the body unfinished
     FCGI("POST", "/chats", CHATS_OK[:10], content_length="500", close_stdin=False), None)
case("worker_body_without_length_abandoned",   # a whole object, but the input stream never ended
     FCGI("POST", "/chats", CHATS_OK, content_length=None, close_stdin=False), None)

# -- Transfer-Encoding: chunked
case("chunked_one_byte_chunks_with_extensions_and_trailer",
     RAW(lambda body: head("POST", "/chats", b"Transfer-Encoding: chunked", b"Content-Type: application/json")
         + b"".join(b"1;ext=%d\r\n%s\r\n" % (i, bytes([c])) for i, c in enumerate(body))
         + b"0\r\nX-Trailer: yes\r\n\r\n"),
     201, chat_created(), rows=(1, 0))
case("chunked_over_limit_in_small_chunks",
     RAW(head("POST", "/chats", b"Transfer-Encoding: chunked")
         + b"".join(b"400\r\n" + b" " * 1024 + b"\r\n" for _ in range(LIMIT // 1024 + 1)) + b"0\r\n\r\n"),
     413, too_large(LIMIT))
case("chunked_size_not_hex",
     RAW(head("POST", "/chats", b"Transfer-Encoding: chunked") + b"zz\r\n" + CHATS_OK + b"\r\n0\r\n\r\n"),
     400, BAD_REQUEST)
case("chunked_size_negative",
     RAW(head("POST", "/chats", b"Transfer-Encoding: chunked") + b"-17\r\n" + CHATS_OK + b"\r\n0\r\n\r\n"),
     400, BAD_REQUEST)
case("chunked_size_beyond_64_bits",
     RAW(head("POST", "/chats", b"Transfer-Encoding: chunked") + b"f" * 20 + b"\r\n" + CHATS_OK + b"\r\n0\r\n\r\n"),
     400, BAD_REQUEST)
case("chunked_with_content_length_too",   # request smuggling's classic: refused
     RAW(head("POST", "/chats", b"Transfer-Encoding: chunked", b"Content-Length: 3")
         + b"%x\r\n" % len(CHATS_OK) + CHATS_OK + b"\r\n0\r\n\r\n"), 400, BAD_REQUEST)
case("transfer_encoding_unknown_is_json",   # nginx's 501: README says every body is JSON
     RAW(head("POST", "/chats", b"Transfer-Encoding: gzip") + CHATS_OK), 501,
     lambda data, ctx: check_has_detail(data))

# -- invalid UTF-8, in strings and in keys (offset: the first bad byte)
for _name, _bad in [("overlong_2_byte_slash", b"\xc0\xaf"), ("overlong_3_byte", b"\xe0\x80\xaf"),
                    ("overlong_4_byte", b"\xf0\x80\x80\xaf"), ("surrogate_d800", b"\xed\xa0\x80"),
                    ("surrogate_dfff", b"\xed\xbf\xbf"), ("truncated_sequence", b"\xe2\x82"),
                    ("lone_continuation_byte", b"\x80"), ("byte_ff", b"\xff"), ("byte_fe", b"\xfe"),
                    ("beyond_u10ffff", b"\xf4\x90\x80\x80")]:
    case(f"utf8_{_name}_in_title",
         J("POST", "/chats", b'{"user_id": "__USER__", "title": "ok ' + _bad + b' ok"}'), 422, jsondecode(_bad))
for _name, _bad in [("overlong_nul", b"\xc0\x80"), ("byte_ff", b"\xff"), ("surrogate", b"\xed\xb0\x80")]:
    case(f"utf8_{_name}_in_key",
         J("POST", "/chats", b'{"user_id": "__USER__", "k' + _bad + b'": 1}'), 422, jsondecode(_bad))
case("utf8_truncated_at_end_of_body",
     J("POST", "/chats", b'{"user_id": "__USER__", "title": "\xf0\x9f\x98'), 422, jsondecode(b"\xf0"))
case("utf8_invalid_in_chat_message",
     J("POST", "/chat", b'{"chat_id": "__CHAT__", "user_id": "__USER__", "message": "hi \xc0\x80"}'),
     422, jsondecode(b"\xc0"), stack="model", chat=True, rows=(1, 0))
case("escaped_lone_surrogate_becomes_replacement_character",   # "\ud800" escaped: U+FFFD, stored so
     J("POST", "/chats", b'{"user_id": "__USER__\\ud800"}'), 201, chat_created("\ufffd"), rows=(0, 0))

# -- \u0000 in the string fields of POST /chat (POST /chats and PATCH: test_unicode)
case("nul_in_chat_message_round_trips",
     J("POST", "/chat", {"chat_id": "__CHAT__", "user_id": "__USER__", "message": "a\u0000b __USER__"}),
     200, lambda data, ctx: check_echo(ctx, data, "a\u0000b " + ctx.user), stack="model", chat=True,
     rows=(1, 2))
case("nul_in_chat_user_id_is_another_user",
     J("POST", "/chat", {"chat_id": "__CHAT__", "user_id": "__USER__\u0000", "message": "hi"}),
     404, exact_filled(chat_not_found("__CHAT__")), stack="model", chat=True, rows=(1, 0))
case("nul_in_chat_id",
     J("POST", "/chat", {"chat_id": "x\u0000y", "user_id": "__USER__", "message": "hi"}),
     404, chat_not_found("x\u0000y"), stack="model", chat=True, rows=(1, 0))
case("nul_in_model_alias",
     J("POST", "/chat", {"chat_id": "__CHAT__", "user_id": "__USER__", "message": "hi", "model": "fast\u0000"}),
     422, lambda data, ctx: check_enum(data), stack="model", chat=True, rows=(1, 0))

# -- raw control characters (JSON forbids them in strings; DEL is not one)
case("raw_nul_byte_in_string", J("POST", "/chats", b'{"user_id": "__USER__", "title": "a\x00b"}'),
     422, jsondecode(b"\x00"))
case("raw_nul_byte_outside_strings", J("POST", "/chats", b'{"user_id": "__USER__"}\x00'), 422, jsondecode(b"\x00"))
case("raw_unit_separator_in_title", J("POST", "/chats", b'{"user_id": "__USER__", "title": "a\x1fb"}'),
     422, jsondecode(b"\x1f"))
case("raw_tab_in_key", J("POST", "/chats", b'{"user_id": "__USER__", "a\tb": 1}'), 422, jsondecode(b"\t"))
case("raw_escape_in_chat_message",
     J("POST", "/chat", b'{"chat_id": "__CHAT__", "user_id": "__USER__", "message": "\x1b[31mred"}'),
     422, jsondecode(b"\x1b"), stack="model", chat=True, rows=(1, 0))
case("raw_del_is_allowed", J("POST", "/chats", b'{"user_id": "__USER__", "title": "a\x7fb"}'),
     201, chat_created(title="a\x7fb"), rows=(1, 0))

# -- nesting
case("nesting_10000_arrays", J("POST", "/chats", b'{"user_id": "__USER__", "x": ' + b"[" * 10000 + b"]" * 10000 + b"}"),
     422, jsondecode())
case("nesting_10000_objects", J("POST", "/chats", b'{"user_id": "__USER__", "x": ' + b'{"a":' * 10000 + b"1"
                                 + b"}" * 10001), 422, jsondecode())
case("nesting_a_whole_mib_of_brackets", J("POST", "/chats", b"[" * LIMIT), 422, jsondecode())
case("nesting_65_objects", J("POST", "/chats", b'{"user_id": "__USER__", "x": ' + b'{"a":' * 63 + b"1" + b"}" * 64),
     422, jsondecode())
case("nesting_64_objects", J("POST", "/chats", b'{"user_id": "__USER__", "x": ' + b'{"a":' * 62 + b"1" + b"}" * 63),
     201, chat_created(), rows=(1, 0))

# -- duplicate keys: the last wins, for validation too
case("duplicate_key_last_one_invalid", J("POST", "/chats", b'{"user_id": "__USER__", "user_id": 5}'),
     422, entries(str_expected("body", "user_id")))
case("duplicate_key_first_one_invalid", J("POST", "/chats", b'{"user_id": 5, "user_id": "__USER__"}'),
     201, chat_created(), rows=(1, 0))
case("duplicate_title_in_patch", J("PATCH", "/chats/__CHAT__?user_id=__USER__", b'{"title": "a", "title": "b"}'),
     200, lambda data, ctx: check_title(ctx, data, "b"), chat=True, rows=(1, 0))
case("duplicate_message_in_chat",
     J("POST", "/chat", b'{"chat_id": "__CHAT__", "user_id": "__USER__", "message": "first", "message": "last"}'),
     200, lambda data, ctx: check_echo(ctx, data, "last"), stack="model", chat=True, rows=(1, 2))

# -- trailing data and framing
case("two_objects_back_to_back", J("POST", "/chats", b'{"user_id": "__USER__"}{"user_id": "__USER__"}'),
     422, jsondecode(b"}{", plus=1))
case("trailing_whitespace_is_fine", J("POST", "/chats", b'{"user_id": "__USER__"} \r\n\t '),
     201, chat_created(), rows=(1, 0))
case("leading_byte_order_mark", J("POST", "/chats", b'\xef\xbb\xbf{"user_id": "__USER__"}'), 422, jsondecode())

# -- numbers where they do not belong
case("integer_beyond_64_bits_for_user_id", J("POST", "/chats", b'{"user_id": ' + BIG.encode() * 2 + b"}"),
     422, entries(str_expected("body", "user_id")))
case("float_overflowing_to_infinity_for_title", J("POST", "/chats", b'{"user_id": "__USER__", "title": 1e999}'),
     422, entries(str_expected("body", "title")))
case("integer_beyond_64_bits_for_stream",
     J("POST", "/chat", b'{"chat_id": "__CHAT__", "user_id": "__USER__", "message": "x", "stream": ' + BIG.encode() + b"}"),
     422, entries({"loc": ["body", "stream"], "msg": "value could not be parsed to a boolean",
                   "type": "type_error.bool"}), stack="model", chat=True, rows=(1, 0))
case("query_limit_beyond_64_bits", J("GET", f"/chats/__CHAT__/messages?user_id=__USER__&limit={BIG}"),
     422, entries(not_le(500, "query", "limit")), chat=True, rows=(1, 0))
case("query_limit_below_minus_64_bits", J("GET", f"/chats?user_id=__USER__&limit=-{BIG}"),
     422, entries(not_ge(1, "query", "limit")))
case("query_before_beyond_64_bits", J("GET", f"/chats/__CHAT__/messages?user_id=__USER__&before={BIG}"),
     422, entries(not_le(INT64_MAX, "query", "before")), chat=True, rows=(1, 0))
case("query_offset_beyond_64_bits", J("GET", f"/chats?user_id=__USER__&offset={BIG}"),
     422, entries(not_le(INT64_MAX, "query", "offset")))

# -- keys
case("key_of_100_kib_is_ignored", J("POST", "/chats", b'{"' + b"k" * 102400 + b'": 1, "user_id": "__USER__"}'),
     201, chat_created(), rows=(1, 0))
case("key_filling_the_body_limit", J("POST", "/chats", b'{"user_id": "__USER__", "' + b"k" * (LIMIT - 200) + b'": 1}'),
     201, chat_created(), rows=(1, 0))

# -- bodies that are not objects
for _name, _body in [("true", b"true"), ("false", b"false"), ("null", b"null"), ("string", b'"__USER__"'),
                     ("number", b"-0.5e3"), ("array_of_the_object", b'[{"user_id": "__USER__"}]')]:
    case(f"body_{_name}_for_new_chat", J("POST", "/chats", _body), 422, entries(not_a_dict("body")))
case("body_null_for_rename", J("PATCH", "/chats/__CHAT__?user_id=__USER__", b"null"), 422,
     entries(not_a_dict("body")), chat=True, rows=(1, 0))
case("body_number_for_rename", J("PATCH", "/chats/__CHAT__?user_id=__USER__", b"7"), 422,
     entries(not_a_dict("body")), chat=True, rows=(1, 0))
case("body_null_for_chat", J("POST", "/chat", b" null "), 422, entries(not_a_dict("body")),
     stack="model", chat=True, rows=(1, 0))
case("body_string_for_chat", J("POST", "/chat", b'"hello"'), 422, entries(not_a_dict("body")),
     stack="model", chat=True, rows=(1, 0))

# -- Content-Type
case("text_plain_for_chat", J("POST", "/chat", {"chat_id": "__CHAT__", "user_id": "__USER__", "message": "x"},
                              ctype="text/plain"), 415, UNSUPPORTED_MEDIA_TYPE, stack="model", chat=True, rows=(1, 0))
case("json_lookalike_content_type", J("POST", "/chats", CHATS_OK, ctype="application/jsonx"), 415, UNSUPPORTED_MEDIA_TYPE)
case("json_suffix_with_two_slashes", J("POST", "/chats", CHATS_OK, ctype="application/x/y+json"),
     415, UNSUPPORTED_MEDIA_TYPE)
case("missing_content_type_for_chat_is_json",
     J("POST", "/chat", {"chat_id": "__CHAT__", "user_id": "__USER__", "message": "no type __USER__"}, ctype=None),
     200, lambda data, ctx: check_echo(ctx, data, "no type " + ctx.user), stack="model", chat=True, rows=(1, 2))

# -- path tricks
case("path_encoded_dot_dot_is_a_chat_id", J("GET", "/chats/%2e%2e?user_id=__USER__"), 404, chat_not_found(".."))
case("path_encoded_dot_dot_climbs_nothing", J("GET", "/chats/%2e%2e/health"), 404, NOT_FOUND)
case("path_dot_dot_above_root", RAW(head("GET", "/../health")), 400, BAD_REQUEST)
case("path_encoded_nul", J("GET", "/chats/__CHAT__%00?user_id=__USER__"), 400, BAD_REQUEST, chat=True, rows=(1, 0))
case("path_double_slash", J("GET", "//health"), 404, NOT_FOUND, schema=False)   # the checker reads /health
case("path_empty_segment_inside", J("GET", "/chats//messages?user_id=__USER__"), 404, NOT_FOUND)
case("path_trailing_slash", J("GET", "/chats/?user_id=__USER__"), 404, NOT_FOUND)
case("path_encoded_slash_inside_an_id", J("GET", "/chats/__CHAT__%2Fmessages?user_id=__USER__"),
     404, exact_filled(chat_not_found("__CHAT__/messages")), chat=True, rows=(1, 0))
case("path_segment_of_7000_bytes", J("GET", "/chats/" + "s" * 7000 + "?user_id=__USER__"),
     404, chat_not_found("s" * 7000))
case("path_non_utf8_bytes", RAW(head("GET", "/chats/a\xff\xfe?user_id=u")), 404, chat_not_found("a\ufffd\ufffd"))
case("path_non_utf8_encoded", J("GET", "/chats/a%ff%C0%80?user_id=__USER__"), 404, chat_not_found("a\ufffd\ufffd\ufffd"))
case("worker_path_bad_percent_encoding", FCGI("GET", "/chats/%zz?user_id=u"), 400, MALFORMED_PATH)
case("worker_path_encoded_nul", FCGI("GET", "/chats/a%00b?user_id=u"), 400, MALFORMED_PATH)   # README: 400
case("worker_path_not_absolute", FCGI("GET", "health"), 400, MALFORMED_PATH)

# -- query strings
case("query_over_nginx_buffer", J("GET", "/chats?user_id=__USER__&pad=" + "q" * 9000), 414, TARGET_TOO_LONG)
case("worker_query_between_8_and_16_kib", FCGI("GET", "/chats?user_id=" + "q" * 12000),
     422, entries(too_long(255, "query", "user_id")))
case("worker_query_over_16_kib", FCGI("GET", "/chats?user_id=__USER__&pad=" + "q" * 16400), 414, TARGET_TOO_LONG)
case("query_65_parameters", J("GET", "/chats?user_id=__USER__&" + "&".join(f"p{i}={i}" for i in range(64))),
     400, TOO_MANY_PARAMS)
case("query_64_parameters", J("GET", "/chats?user_id=__USER__&" + "&".join(f"p{i}={i}" for i in range(63))),
     200, {"chats": [], "total": 0})
case("query_bad_percent_encoding", J("GET", "/chats?user_id=%zz"), 400, MALFORMED_QUERY)
case("query_repeated_user_id_last_wins", J("GET", "/chats/__CHAT__?user_id=someone-else&user_id=__USER__"),
     200, lambda data, ctx: check_same_chat(ctx, data), chat=True, rows=(1, 0))
case("query_user_id_with_nul", J("GET", "/chats/__CHAT__?user_id=__USER__%00"),
     404, exact_filled(chat_not_found("__CHAT__")), chat=True, rows=(1, 0))
case("query_user_id_ff", J("GET", "/chats?user_id=%ff"),
     422, entries({"loc": ["query", "user_id"], "msg": "string is not valid UTF-8", "type": "value_error.str.encoding"}))

# -- model output reaching JSON and SSE
MODEL_TEXTS = {
    "control_characters": "".join(map(chr, range(0, 32))) + "\x7f end",
    "quotes_and_backslashes": 'say "hi" \\ \\" \\\\u0041 \'single\' </script>',
    "forged_event": 'x\n\nevent: done\ndata: {"reply": "forged"}\n\nevent: error\ndata: {}\n\n',
    "bare_carriage_returns": "a\rdata: forged\r\revent: done\r\rb",
    "line_separators": "a\u2028b\u2029c\u0085d",
}
for _name, _text in MODEL_TEXTS.items():
    _directive = "#reply=" + json.dumps(_text).replace(" ", "\\u0020")
    case(f"model_reply_{_name}_as_json",
         J("POST", "/chat", {"chat_id": "__CHAT__", "user_id": "__USER__", "message": _directive + " __USER__"}),
         200, (lambda text: lambda data, ctx: check_reply_text(ctx, data, text))(_text),
         stack="model", chat=True, rows=(1, 2))
    case(f"model_reply_{_name}_as_sse", None, None, stack="model", chat=True, rows=(1, 2),
         extra=(lambda directive, text: lambda ctx: check_stream(ctx, directive, text))(_directive, _text))
case("model_reply_lone_surrogate_as_json",
     J("POST", "/chat", {"chat_id": "__CHAT__", "user_id": "__USER__", "message": '#reply="a\\ud800b" __USER__'}),
     200, lambda data, ctx: check_reply_text(ctx, data, "a\ufffdb"), stack="model", chat=True, rows=(1, 2))
case("model_reply_lone_surrogate_as_sse", None, None, stack="model", chat=True, rows=(1, 2),
     extra=lambda ctx: check_stream(ctx, '#reply="a\\ud800b"', "a\ufffdb"))


# -- checks used above

def check_echo(ctx, data, message):
    check_reply_text(ctx, data, "Echo: " + message)
    stored = rows(ctx.s, ctx.chat["id"])
    assert stored[0]["content"] == message, f"stored user message {stored[0]['content']!r}, wanted {message!r}"


def check_reply_text(ctx, data, reply):
    assert data.get("reply") == reply, f"reply {data.get('reply')!r}, wanted {reply!r}"
    stored = rows(ctx.s, ctx.chat["id"])
    assert [r["role"] for r in stored] == ["user", "assistant"], stored
    assert stored[1]["content"] == reply, f"stored reply {stored[1]['content']!r}, wanted {reply!r}"


def check_enum(data):
    detail = data["detail"]
    assert len(detail) == 1 and detail[0]["loc"] == ["body", "model"] \
        and detail[0]["type"] == "type_error.enum", data


def check_title(ctx, data, title):
    assert data["title"] == title, data
    check_chat_stored(ctx.s, data)


def check_same_chat(ctx, data):
    assert data == dict(ctx.chat), f"{data!r} != {ctx.chat!r}"


def check_stream(ctx, directive, text):
    """A streamed reply: only delta events then done, the deltas make the text, stored exactly."""
    with stream_chat(ctx.s, ctx.chat["id"], ctx.user, f"{directive} {tag()}") as st:
        assert st.status == 200, f"status {st.status}"
        events = st.read_all()
        raw = bytes(st.raw)
    raw.decode("utf-8")   # strictly UTF-8
    assert b"\r" not in raw, f"a raw CR (an SSE line break) in the stream: {raw!r}"
    lines = raw.split(b"\n")
    names = [line[len(b"event: "):] for line in lines if line.startswith(b"event:")]
    assert names and set(names[:-1]) == {b"delta"} and names[-1] == b"done", f"events {names!r}"
    assert all(line == b"" or line.startswith((b"event: ", b"data: ", b":")) for line in lines), raw
    assert [e.name for e in events] == [n.decode() for n in names], f"events {events!r}"
    assert deltas_text(events) == text, f"the deltas make {deltas_text(events)!r}, wanted {text!r}"
    assert events[-1].json()["reply"] == text, events[-1]
    stored = rows(ctx.s, ctx.chat["id"])
    assert stored[1]["content"] == text, f"stored {stored[1]['content']!r}, wanted {text!r}"


# --------------------------------------------------------------------------------------------------
# Running a case


_baseline = {}   # stack name -> (worker pids, log offset)


def stack_still_up(name, s):
    """/health answers and no worker process died since the last look (the supervisor would hide it)."""
    resp = s.request("GET", "/health", timeout=10, validate=False)
    assert resp.status == 200, f"{name} stack: GET /health {resp.describe()}"
    pids, since = _baseline[name]
    crashes = crash_lines(s, since)
    now = worker_pids(s)
    if crashes or now != pids:   # let the supervisor restore the pool before the next case
        deadline = time.monotonic() + 5
        while len(worker_pids(s)) < len(pids) and time.monotonic() < deadline:
            time.sleep(0.1)
    _baseline[name] = (worker_pids(s), log_size(s))
    assert not crashes and now == pids, \
        f"a worker process of the {name} stack died during this case: {crashes or (pids, now)}"


def run_case(c):
    s = STACKS[c.stack]()
    if c.stack not in _baseline:
        _baseline[c.stack] = (worker_pids(s), log_size(s))
    ctx = Ctx(s, c.chat)
    try:
        if c.extra is not None:
            c.extra(ctx)
        else:
            method, path, resp = c.send(ctx)
            if c.status is None:
                assert resp is None or resp.status >= 400, f"answered {resp.describe()}"
            else:
                assert resp is not None, "the connection closed without an answer"
                assert resp.status == c.status, f"status {resp.status}, wanted {c.status}: {resp.describe()}"
                ctype = resp.headers.get("content-type", "").split(";")[0].strip()
                assert ctype == "application/json", f"Content-Type {ctype!r}: {resp.describe()}"
                data = resp.data()
                if callable(c.want):
                    c.want(data, ctx)
                elif c.want is not None:
                    assert data == c.want, f"body\n  {data!r}\nwanted\n  {c.want!r}"
                if path is not None and c.schema:
                    check_schema(method, path, resp)
        assert ctx.counts() == c.rows, f"stored rows (chats, messages) {ctx.counts()}, wanted {c.rows}"
        if ctx.chat is not None and c.status is not None and c.status >= 400:
            check_chat_stored(s, ctx.chat)   # a refused request left the chat as it was
    finally:
        stack_still_up(c.stack, s)


for _c in CASES:
    add_test(f"battery.{_c.name}", (lambda c: lambda: run_case(c))(_c))


# --------------------------------------------------------------------------------------------------
# Cases that need more than one request


def abandoned_bodies(build, n=24):
    """n clients (more than the shared stack's 16 threads) start a request and go away mid-body; then
    every thread must be free again: 20 requests at once all answer within a few seconds."""
    s = plain()
    if "plain" not in _baseline:
        _baseline["plain"] = (worker_pids(s), log_size(s))
    user = new_user("battery")
    socks = []
    try:
        for _ in range(n):
            sock = s.connect(10)
            sock.sendall(build(user))
            socks.append(sock)
        time.sleep(0.5)
    finally:
        for sock in socks:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")   # RST
            sock.close()
    time.sleep(0.5)
    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        got = list(pool.map(lambda _: s.request("GET", "/health", timeout=15, validate=False).status, range(20)))
    took = time.monotonic() - started
    assert got == [200] * 20, got
    assert took < 10, f"20 health checks took {took:.1f} s after the clients left: threads stuck?"
    stored = s.sql("SELECT count(*) FROM chats WHERE user_id = ?", (user,))[0][0]
    stack_still_up("plain", s)
    assert stored == 0, f"{stored} of {n} requests whose client left mid-body were stored as complete"


def _cl_larger(user):
    body = encode_json({"user_id": user})
    return head("POST", "/chats", b"Content-Length: %d" % (len(body) + 100)) + body


def _chunked_unfinished(user):
    body = encode_json({"user_id": user})
    return head("POST", "/chats", b"Transfer-Encoding: chunked") + b"%x\r\n" % len(body) + body + b"\r\n"


add_test("battery.content_length_larger_than_body_client_leaves", lambda: abandoned_bodies(_cl_larger))
add_test("battery.chunked_unfinished_client_leaves", lambda: abandoned_bodies(_chunked_unfinished))


ROUTES = [  # path, methods answered (HEAD wherever GET)
    ("/", {"GET"}), ("/health", {"GET"}), ("/openapi.json", {"GET"}), ("/models", {"GET"}),
    ("/chats?user_id=__USER__", {"GET", "POST"}),
    ("/chats/__CHAT__?user_id=__USER__", {"GET", "PATCH", "DELETE"}),
    ("/chats/__CHAT__/messages?user_id=__USER__", {"GET"}),
    ("/chats/__CHAT__/regenerate?user_id=__USER__", {"POST"}),
    ("/chat", {"POST"}), ("/no/such/route", set()),
]


def every_route(method):
    """method on every route: HEAD like GET without a body, else 405 with Allow on a known route and
    404 on an unknown one; the chat is unchanged and the stack up."""
    def run():
        s = plain()
        if "plain" not in _baseline:
            _baseline["plain"] = (worker_pids(s), log_size(s))
        ctx = Ctx(s, True)
        wrong = []
        for path, methods in ROUTES:
            target = ctx.fill(path)
            data = f"{method} {target} HTTP/1.1\r\nHost: battery\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            resp = raw_http(s, data.encode())
            if resp is None:
                wrong.append(f"{method} {path}: no answer")
                continue
            get_like = method == "HEAD" and "GET" in methods
            want = 200 if get_like else 405 if methods else 404
            ctype = resp.headers.get("content-type", "").split(";")[0].strip()
            problem = None
            if resp.status != want and not (method == "TRACE" and not methods and resp.status == 405):
                problem = f"status {resp.status}, wanted {want}"
            elif ctype != "application/json":
                problem = f"Content-Type {ctype!r}"
            elif method == "HEAD" and resp.body:
                problem = "a body"
            elif method != "HEAD" and resp.status == 405 and resp.data() != METHOD_NOT_ALLOWED:
                problem = f"body {resp.body!r}"
            elif method != "HEAD" and resp.status == 404 and resp.data() != NOT_FOUND:
                problem = f"body {resp.body!r}"
            elif resp.status == 405 and method != "TRACE":
                allow = {m.strip() for m in resp.headers.get("allow", "").split(",") if m.strip()}
                if allow != methods | ({"HEAD"} if "GET" in methods else set()):
                    problem = f"Allow {resp.headers.get('allow')!r}"
            if problem:
                wrong.append(f"{method} {path}: {problem}: {resp.describe()}")
        assert ctx.counts() == (1, 0), ctx.counts()
        check_chat_stored(s, ctx.chat)
        stack_still_up("plain", s)
        assert not wrong, "\n".join(wrong)
    return run


for _method in ("HEAD", "OPTIONS", "PUT", "TRACE", "FROBNICATE"):
    add_test(f"battery.method_{_method.lower()}_on_every_route", every_route(_method))


def shared_stacks_still_up():
    """Last: both shared stacks answer, and no worker process died during the whole battery."""
    for name, get in STACKS.items():
        s = get()
        resp = s.request("GET", "/health", timeout=10, validate=False)
        assert resp.status == 200, f"{name}: {resp.describe()}"
        crashes = crash_lines(s, 0)
        assert not crashes, f"{name} stack: worker processes died during the battery:\n" + "\n".join(crashes)


add_test("battery.zz_shared_stacks_still_up", shared_stacks_still_up)
