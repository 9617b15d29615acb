"""Personal API keys (AUTH=token, issue 14): POST/GET /auth/keys, DELETE /auth/keys/{id}; a key is
accepted wherever a bearer token is (chat routes, /v1, the openai SDK's apiKey) as its account; a
revoke holds at once on every process and host; another account's key is a 404; admins list and
revoke anyone's (403 for others); the database holds only a hash; malformed keys are 401s."""

import hashlib
import re
import uuid

from api import UUID4_RE, expect, expect_422, missing, too_short
from auth_util import PASSWORD, TOKEN_ENV, account, bearer, cli, new_email, token_stack, unauthorized
from harness import Stack, default_stack, test
from provider import model_env, shared_provider, tag
from test_observability import samples
from test_openai import error_of, run_sdk

KEY_RE = re.compile(r"^sk-[A-Za-z0-9_-]{43}$")
INVALID = "Invalid authentication credentials"


def make_key(s, token, name="laptop"):
    headers, made = expect(s, "POST", "/auth/keys", 201, json={"name": name}, headers=bearer(token))
    assert set(made) == {"id", "name", "key", "prefix", "created_at", "last_used_at"}, made
    assert UUID4_RE.match(made["id"]) and KEY_RE.match(made["key"]), made
    assert made["name"] == name and made["prefix"] == made["key"][:11] and made["last_used_at"] is None, made
    assert headers.get("cache-control") == "no-store", headers
    return made


def deleted(s, path, **kwargs):
    resp = s.request("DELETE", path, **kwargs)
    assert resp.status == 204 and resp.body == b"", resp.describe()


def listed(made):
    return {k: v for k, v in made.items() if k != "key"}


def make_admin(s):
    email = new_email("keyadmin")
    status, out = cli(s, "user", "add", email, "--admin", stdin=PASSWORD + "\n")
    assert status == 0, out
    _, data = expect(s, "POST", "/auth/login", 200, json={"email": email, "password": PASSWORD})
    return data["access_token"]


@test
def create_list_use_revoke():
    _, s = token_stack()
    user, _, token = account(s, "keys")
    expect(s, "GET", "/auth/keys", 200, [], headers=bearer(token))
    a = make_key(s, token, "laptop")
    b = make_key(s, token, "ci \u00e9\U0001F600")
    _, keys = expect(s, "GET", "/auth/keys", 200, headers=bearer(token))
    assert keys == [listed(a), listed(b)], keys
    # the key is its account, wherever a bearer token is
    expect(s, "GET", "/auth/me", 200, user, headers=bearer(a["key"]))
    _, keys = expect(s, "GET", "/auth/keys", 200, headers=bearer(a["key"]))
    assert keys[0]["last_used_at"] is not None and keys[1]["last_used_at"] is None, keys
    assert keys[0]["last_used_at"] >= keys[0]["created_at"], keys
    # revoked: refused at once, like a key never made; a second revoke is a 404
    deleted(s, f"/auth/keys/{a['id']}", headers=bearer(token))
    unauthorized(s, "GET", "/auth/me", INVALID, headers=bearer(a["key"]))
    unauthorized(s, "GET", "/chats", INVALID, headers=bearer(a["key"]))
    expect(s, "DELETE", f"/auth/keys/{a['id']}", 404, {"detail": f"API key with id '{a['id']}' not found"},
           headers=bearer(token))
    expect(s, "DELETE", "/auth/keys/not-a-uuid", 404, {"detail": "API key with id 'not-a-uuid' not found"},
           headers=bearer(token))
    expect(s, "GET", "/auth/keys", 200, [listed(b)], headers=bearer(token))
    assert s.sql("SELECT id, name FROM api_keys WHERE user_id = ?", (user["id"],)) == [(b["id"], b["name"])]
    # a key may revoke itself
    deleted(s, f"/auth/keys/{b['id']}", headers=bearer(b["key"]))
    unauthorized(s, "GET", "/auth/keys", INVALID, headers=bearer(b["key"]))
    assert s.sql("SELECT count(*) FROM api_keys WHERE user_id = ?", (user["id"],))[0][0] == 0
    # the name: required, 1..200 characters
    expect_422(s, "POST", "/auth/keys", [missing("body", "name")], json={}, headers=bearer(token))
    expect_422(s, "POST", "/auth/keys", [too_short(1, "body", "name")], json={"name": ""}, headers=bearer(token))
    _, data = expect(s, "POST", "/auth/keys", 422, json={"name": "n" * 201}, headers=bearer(token))
    assert data["detail"][0]["loc"] == ["body", "name"], data
    # no token: 401
    unauthorized(s, "POST", "/auth/keys", "Not authenticated", body={"name": "x"})
    unauthorized(s, "GET", "/auth/keys", "Not authenticated")


@test
def at_most_a_hundred_keys():
    _, s = token_stack()
    user, _, token = account(s, "many")
    made = [make_key(s, token, f"k{i}") for i in range(100)]
    expect(s, "POST", "/auth/keys", 409,
           {"detail": "Too many API keys: an account has at most 100 (revoke one first)"},
           json={"name": "one more"}, headers=bearer(token))
    deleted(s, f"/auth/keys/{made[0]['id']}", headers=bearer(token))
    make_key(s, token, "now there is room")
    assert s.sql("SELECT count(*) FROM api_keys WHERE user_id = ?", (user["id"],))[0][0] == 100


@test
def a_key_works_on_chat_routes_and_v1():
    _, s = token_stack()
    user, _, token = account(s, "keyed")
    key = make_key(s, token)["key"]
    t = tag()
    status, _, sent = s.json("POST", "/chat", json={"message": f"hello {t}"}, headers=bearer(key))
    assert status == 200 and sent["reply"] == f"Echo: hello {t}", sent
    assert s.sql("SELECT user_id FROM chats WHERE id = ?", (sent["chat_id"],)) == [(user["id"],)]
    _, listing = expect(s, "GET", "/chats", 200, headers=bearer(key))
    assert [c["id"] for c in listing["chats"]] == [sent["chat_id"]], listing
    _, messages = expect(s, "GET", f"/chats/{sent['chat_id']}/messages", 200, headers=bearer(key))
    assert [m["content"] for m in messages] == [f"hello {t}", f"Echo: hello {t}"], messages
    # the OpenAI routes, with the key as the SDKs send it
    resp = s.request("GET", "/v1/models", headers=bearer(key))
    assert resp.status == 200 and resp.data()["object"] == "list", resp.describe()
    resp = s.request("POST", "/v1/chat/completions", headers={**bearer(key), "X-Chat-Id": sent["chat_id"]},
                     json={"model": "fast", "messages": [{"role": "user", "content": f"v1 {t}"}]})
    assert resp.status == 200 and resp.data()["choices"][0]["message"]["content"] == f"Echo: v1 {t}", \
        resp.describe()
    assert s.sql("SELECT count(*) FROM messages WHERE chat_id = ?", (sent["chat_id"],))[0][0] == 4
    # a key is not ended by a logout (a token is)
    expect(s, "POST", "/auth/logout", 200, {"detail": "Logged out"}, headers=bearer(token))
    unauthorized(s, "GET", "/auth/me", "Session expired", headers=bearer(token))
    expect(s, "GET", "/auth/me", 200, user, headers=bearer(key))
    # revoked: the /v1 routes answer in OpenAI's shape
    (key_id,) = s.sql("SELECT id FROM api_keys WHERE user_id = ?", (user["id"],))[0]
    deleted(s, f"/auth/keys/{key_id}", headers=bearer(key))
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions")):
        resp = s.request(method, path, headers=bearer(key),
                         **({"json": {"model": "fast", "messages": [{"role": "user", "content": "x"}]}}
                            if method == "POST" else {}))
        e = error_of(resp, 401, code="invalid_api_key", type_="authentication_error")
        assert e["message"] == INVALID and resp.headers.get("www-authenticate") == "Bearer", resp.describe()


@test
def deleting_the_account_deletes_its_keys():
    _, s = token_stack()
    admin = make_admin(s)
    for by_admin in (False, True):
        user, _, token = account(s, "gone")
        key = make_key(s, token)["key"]
        if by_admin:
            deleted(s, f"/admin/users/{user['id']}", headers=bearer(admin))
        else:
            deleted(s, "/auth/me", json={"password": PASSWORD}, headers=bearer(key))
        assert s.sql("SELECT count(*) FROM api_keys WHERE user_id = ?", (user["id"],))[0][0] == 0
        unauthorized(s, "GET", "/auth/me", INVALID, headers=bearer(key))


@test
def a_revoke_holds_at_once_on_every_process_and_host():
    env = model_env(shared_provider(), **TOKEN_ENV, WORKER_PROCESSES="2", WORKER_THREADS="2")
    with Stack(env=env) as a:
        # a second host: its own nginx and worker processes, the same database
        with Stack(env=env, database_url=a.database_url) as b:
            user, _, token = account(a, "hosts")
            made = make_key(a, token)
            for s in (a, b):
                for _ in range(6):	# spread over the processes of each
                    expect(s, "GET", "/auth/me", 200, user, headers=bearer(made["key"]))
            deleted(a, f"/auth/keys/{made['id']}", headers=bearer(token))
            for s in (b, a):
                for _ in range(6):
                    unauthorized(s, "GET", "/auth/me", INVALID, headers=bearer(made["key"]))
            # and one revoked on the second host is refused on the first
            other = make_key(b, token)
            expect(a, "GET", "/auth/me", 200, user, headers=bearer(other["key"]))
            deleted(b, f"/auth/keys/{other['id']}", headers=bearer(other["key"]))
            for _ in range(6):
                unauthorized(a, "GET", "/chats", INVALID, headers=bearer(other["key"]))


@test
def another_accounts_key_is_404_and_untouched():
    _, s = token_stack()
    alice, _, alice_token = account(s, "alice")
    _, _, bob_token = account(s, "bob")
    key = make_key(s, alice_token)
    expect(s, "DELETE", f"/auth/keys/{key['id']}", 404, {"detail": f"API key with id '{key['id']}' not found"},
           headers=bearer(bob_token))
    expect(s, "GET", "/auth/keys", 200, [], headers=bearer(bob_token))
    expect(s, "GET", "/auth/me", 200, alice, headers=bearer(key["key"]))
    assert s.sql("SELECT count(*) FROM api_keys WHERE id = ?", (key["id"],))[0][0] == 1
    # a non-admin reaches no one's keys through the admin routes
    for method, path in (("GET", f"/admin/users/{alice['id']}/keys"),
                         ("DELETE", f"/admin/users/{alice['id']}/keys/{key['id']}")):
        expect(s, method, path, 403, {"detail": "Admin access required"}, headers=bearer(bob_token))
        expect(s, method, path, 403, {"detail": "Admin access required"}, headers=bearer(key["key"]))
    assert s.sql("SELECT count(*) FROM api_keys WHERE id = ?", (key["id"],))[0][0] == 1


@test
def admins_list_and_revoke_anyones_keys():
    _, s = token_stack()
    admin = make_admin(s)
    user, _, token = account(s, "listed")
    a, b = make_key(s, token, "one"), make_key(s, token, "two")
    _, keys = expect(s, "GET", f"/admin/users/{user['id']}/keys", 200, headers=bearer(admin))
    assert keys == [listed(a), listed(b)], keys
    deleted(s, f"/admin/users/{user['id']}/keys/{a['id']}", headers=bearer(admin))
    unauthorized(s, "GET", "/auth/me", INVALID, headers=bearer(a["key"]))
    expect(s, "GET", f"/admin/users/{user['id']}/keys", 200, [listed(b)], headers=bearer(admin))
    # unknown accounts and keys, and a key of another account than the path's
    nobody = str(uuid.uuid4())
    expect(s, "GET", f"/admin/users/{nobody}/keys", 404, {"detail": f"User with id '{nobody}' not found"},
           headers=bearer(admin))
    expect(s, "DELETE", f"/admin/users/{nobody}/keys/{b['id']}", 404,
           {"detail": f"User with id '{nobody}' not found"}, headers=bearer(admin))
    other, _, other_token = account(s, "other")
    expect(s, "DELETE", f"/admin/users/{other['id']}/keys/{b['id']}", 404,
           {"detail": f"API key with id '{b['id']}' not found"}, headers=bearer(admin))
    expect(s, "DELETE", f"/admin/users/{user['id']}/keys/{a['id']}", 404,
           {"detail": f"API key with id '{a['id']}' not found"}, headers=bearer(admin))
    expect(s, "GET", "/auth/me", 200, user, headers=bearer(b["key"]))
    # an admin's own key is an admin
    admin_key = make_key(s, admin)["key"]
    expect(s, "GET", f"/admin/users/{other['id']}/keys", 200, [], headers=bearer(admin_key))
    assert other_token


@test
def the_database_and_the_logs_hold_no_key():
    _, s = token_stack()
    user, _, token = account(s, "hashed")
    made = make_key(s, token)
    expect(s, "GET", "/auth/me", 200, user, headers=bearer(made["key"]))
    rows = s.sql("SELECT prefix, key_hash FROM api_keys WHERE id = ?", (made["id"],))
    assert rows == [(made["key"][:11], hashlib.blake2b(made["key"].encode(), digest_size=32).hexdigest())], rows
    secret = made["key"][11:].encode()
    if s.database_url.startswith("sqlite"):
        raw = b""
        for suffix in ("", "-wal", "-shm"):
            try:
                with open(f"{s.db_path}{suffix}", "rb") as f:
                    raw += f.read()
            except FileNotFoundError:
                pass
        assert raw and made["prefix"].encode() in raw and secret not in raw, "the key is in the database's files"
    else:
        tables = [r[0] for r in s.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert "api_keys" in tables, tables
        for table in tables:
            rows = s.sql(f"SELECT * FROM {table}")
            assert made["key"][11:] not in repr(rows) and secret not in b"".join(
                bytes(v) for r in rows for v in r if isinstance(v, (bytes, memoryview))), table
    log = (s.run_dir / "access.log").read_text(errors="replace") + s.log_tail(1000)
    assert made["key"][11:] not in log, "the key is in a log"


@test
def malformed_and_unknown_keys_are_401s_counted_by_reason():
    env = model_env(shared_provider(), **TOKEN_ENV, METRICS="1", WORKER_PROCESSES="1")
    with Stack(env=env) as s:
        user, _, token = account(s, "bad")
        key = make_key(s, token)["key"]

        def failures():
            text = s.request("GET", "/metrics").body.decode()
            got = samples(text)
            return {r: got.get(("auth_failures_total", frozenset({("reason", r)})), 0)
                    for r in ("malformed", "invalid")}

        before = failures()
        malformed = ["sk-", "sk-short", key + "x", key[:-1], key[:-1] + "!", "sk-" + "." * 43,
                     key[:20] + " " + key[21:]]
        unknown = ["sk-" + "A" * 43, key[:-1] + ("A" if key[-1] != "A" else "B")]
        for bad in malformed + unknown:
            for path in ("/auth/me", "/chats", "/auth/keys"):
                unauthorized(s, "GET", path, INVALID, headers=bearer(bad))
        after = failures()
        assert after["malformed"] - before["malformed"] == 3 * len(malformed), (before, after)
        assert after["invalid"] - before["invalid"] == 3 * len(unknown), (before, after)
        expect(s, "GET", "/auth/me", 200, user, headers=bearer(key))


@test
def keys_need_auth_token():
    s = default_stack()	# AUTH=none
    expect(s, "GET", "/auth/keys", 404, {"detail": "Not available: there are no accounts (AUTH=none)"})
    expect(s, "POST", "/auth/keys", 404, {"detail": "Not available: there are no accounts (AUTH=none)"},
           json={"name": "x"})


@test
def openai_sdk_with_an_api_key():
    p = shared_provider()
    with Stack(env=model_env(p, PROVIDER_RETRIES="0", **TOKEN_ENV)) as s:
        _, _, token = account(s, "sdkkey")
        key = make_key(s, token, "sdk")
        revoked = make_key(s, token, "revoked")
        deleted(s, f"/auth/keys/{revoked['id']}", headers=bearer(token))
        _, chat = expect(s, "POST", "/chats", 201, json={"title": "SDK key"}, headers=bearer(key["key"]))
        r = run_sdk(s, "ignored-in-token-mode", chat["id"], api_key=key["key"], bad_key=True,
                    extra_env={"REVOKED_KEY": revoked["key"]})
        for k in ("badKeyModels", "badKeyChat", "revokedKey"):
            e = r[k]
            assert e["authentication"] and e["status"] == 401 and e["code"] == "invalid_api_key", e


@test
def a_key_and_a_token_share_their_accounts_limits():
    env = model_env(shared_provider(), **TOKEN_ENV, CHAT_RATE_PER_MINUTE="2", WORKER_PROCESSES="1")
    with Stack(env=env) as s:
        user, _, token = account(s, "limited")
        key = make_key(s, token)["key"]
        t = tag()
        status, _, first = s.json("POST", "/chat", json={"message": f"{t} token"}, headers=bearer(token))
        assert status == 200, first
        status, _, data = s.json("POST", "/chat", json={"message": f"{t} key", "chat_id": first["chat_id"]},
                                 headers=bearer(key))
        assert status == 200, data
        resp = s.request("POST", "/chat", json={"message": f"{t} over", "chat_id": first["chat_id"]},
                         headers=bearer(key))
        assert resp.status == 429 and "CHAT_RATE_PER_MINUTE" in resp.data()["detail"], resp.describe()
        assert int(resp.headers["retry-after"]) >= 1, resp.headers
        assert s.sql("SELECT count(*) FROM messages m JOIN chats c ON c.id = m.chat_id WHERE c.user_id = ?",
                     (user["id"],))[0][0] == 4
        # another account's key is not held back
        _, _, other_token = account(s, "free")
        other_key = make_key(s, other_token)["key"]
        status, _, data = s.json("POST", "/chat", json={"message": f"{t} other"}, headers=bearer(other_key))
        assert status == 200, data
