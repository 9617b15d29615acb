"""Login abuse limits (kept in the database, shared by every process): 5 failures for an email or 20
from an address in 15 minutes, then 429 with Retry-After until the window has passed; a success
clears the email's count."""

import time
from urllib.parse import urlencode

from api import expect
from auth_util import PASSWORD, SECRET, new_email, register
from harness import Stack, test

WRONG = {"detail": "Invalid email or password"}


def attempt(s, email, password):
    return s.request("POST", "/auth/login", json={"email": email, "password": password})


def limited(resp, longest):
    assert resp.status == 429, resp.describe()
    retry = int(resp.headers["retry-after"])
    assert 1 <= retry <= longest, resp.headers
    assert resp.data() == {"detail": f"Too many failed logins: try again in {retry} seconds"}, resp.describe()
    return retry


@test
def failed_logins_are_limited_per_email_and_per_address():
    with Stack(env={"AUTH": "token", "JWT_SECRET": SECRET, "WORKER_PROCESSES": "2"}) as s:
        _, email = register(s)
        for _ in range(4):
            assert attempt(s, email, "wrong password").data() == WRONG
        assert attempt(s, email, PASSWORD).status == 200      # a success clears the email's count
        assert s.sql("SELECT count(*) FROM login_attempts WHERE kind = 'email'")[0][0] == 0
        for _ in range(5):
            resp = attempt(s, email, "wrong password")
            assert resp.status == 401 and resp.data() == WRONG, resp.describe()
        # the sixth is refused, the right password too, and the form as well
        limited(attempt(s, email, "wrong password"), 900)
        limited(attempt(s, email.upper(), PASSWORD), 900)
        form = urlencode({"username": email, "password": PASSWORD})
        limited(s.request("POST", "/auth/token", body=form,
                          headers={"Content-Type": "application/x-www-form-urlencoded"}), 900)
        # refused attempts are not counted; the address has 9 failures: 11 more, on any emails
        assert s.sql("SELECT count(*) FROM login_attempts WHERE kind = 'addr'")[0][0] == 9
        for i in range(11):
            assert attempt(s, new_email("spray"), "wrong password").status == 401, i
        _, other = register(s)
        limited(attempt(s, other, PASSWORD), 900)
        # registering is not a login: still open
        register(s)


@test
def the_limit_ends_with_its_window():
    env = {"AUTH": "token", "JWT_SECRET": SECRET, "WORKER_PROCESSES": "1", "LOGIN_WINDOW_S": "2",
           "LOGIN_MAX_FAILURES_PER_EMAIL": "2", "LOGIN_MAX_FAILURES_PER_ADDR": "0"}
    with Stack(env=env) as s:
        _, email = register(s)
        for _ in range(2):
            assert attempt(s, email, "wrong password").status == 401
        limited(attempt(s, email, PASSWORD), 2)
        time.sleep(2.2)
        expect(s, "POST", "/auth/login", 200, json={"email": email, "password": PASSWORD})
