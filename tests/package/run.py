#!/usr/bin/env python3
"""The Debian package: built by make deb (dpkg-buildpackage, lintian with no error), then installed into
a clean Debian 12 root made by debootstrap, where it is used, upgraded, removed and purged.

    python3 tests/package/run.py [name-filter]

The root is made once (build/debootstrap/bookworm, reused by the next run, e.g. make test SANITIZE=1)
and copied for each test.  A test skips only when debootstrap cannot make a root (no Debian mirror,
not root), saying so.  Ends with "package: N passed, N failed".
"""

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(os.path.abspath(__file__)).parent.parent.parent
CACHE = ROOT / "build" / "debootstrap" / "bookworm"
DEB_DIR = ROOT / "build" / "deb"
SUITE = "bookworm"
STATE = "/var/lib/ai-chat-fcgi"
SETTINGS = "/etc/ai-chat-fcgi/ai-chat.env"
SECRET = "/etc/ai-chat-fcgi/jwt-secret.env"


class Skip(Exception):
    pass


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def run(cmd, timeout=600, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def mirror():
    """The Debian mirror apt uses here (debootstrap and the root's apt use it too)."""
    for f in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if f.exists():
            m = re.search(r"(?:URIs:|^deb)\s+(https?://\S+/debian)\b", f.read_text(), re.M)
            if m:
                return m.group(1)
    return "http://deb.debian.org/debian"


def build_deb():
    """make deb; returns the .deb's path."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SANITIZE")}
    r = run(["make", "--no-print-directory", "-C", str(ROOT), "deb"], timeout=900, env=env)
    check(r.returncode == 0, f"make deb failed:\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    check("deb: lintian: no errors" in r.stdout, f"make deb did not report lintian clean:\n{r.stdout[-2000:]}")
    debs = sorted(DEB_DIR.glob("ai-chat-fcgi_*_*.deb"))
    check(len(debs) == 1, f"make deb made {debs}")
    return debs[0], r.stdout


_root_problem = None


def base_root():
    """build/debootstrap/bookworm, made on first use; Skip when debootstrap cannot run here."""
    global _root_problem
    if _root_problem:
        raise Skip(_root_problem)
    if (CACHE / "usr" / "bin" / "apt-get").exists():
        return CACHE
    if os.geteuid() != 0:
        _root_problem = "debootstrap needs root"
        raise Skip(_root_problem)
    if shutil.which("debootstrap") is None:
        _root_problem = "debootstrap is not installed (make deb installs it)"
        raise Skip(_root_problem)
    tmp = CACHE.with_name(CACHE.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    r = run(["debootstrap", "--variant=minbase", SUITE, str(tmp), mirror()], timeout=1200)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        _root_problem = f"debootstrap {SUITE} from {mirror()} failed: {(r.stderr or r.stdout)[-400:]}"
        raise Skip(_root_problem)
    tmp.rename(CACHE)
    print(f"    (made a {SUITE} root with debootstrap in {time.monotonic() - started:.0f} s)", flush=True)
    return CACHE


class Chroot:
    """A copy of the clean root, for one test; removed after."""

    def __init__(self, name):
        base = base_root()
        self.dir = Path(tempfile.mkdtemp(prefix=f"ai-chat-pkg-{name}-"))
        self.path = self.dir / "root"
        r = run(["cp", "-a", str(base), str(self.path)])
        check(r.returncode == 0, f"copying the root: {r.stderr}")
        shutil.copy("/etc/resolv.conf", self.path / "etc" / "resolv.conf")
        # No service is started in a chroot (nothing runs systemd there); say so to invoke-rc.d.
        policy = self.path / "usr" / "sbin" / "policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)

    def sh(self, script, user=None, timeout=600, check_ok=True):
        cmd = ["chroot"] + ([f"--userspec={user}:{user}"] if user else []) + [str(self.path), "/bin/sh", "-c",
                                                                               script]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8",
               "HOME": "/root"}
        r = run(cmd, timeout=timeout, env=env)
        if check_ok:
            check(r.returncode == 0, f"in the root: {script}\n  exit {r.returncode}\n{r.stdout[-2500:]}\n{r.stderr[-2500:]}")
        return r

    def file(self, p):
        return self.path / p.lstrip("/")

    def install(self, deb):
        shutil.copy(deb, self.file("/tmp/ai-chat-fcgi.deb"))
        self.sh("apt-get update -qq && apt-get install -y -qq --no-install-recommends /tmp/ai-chat-fcgi.deb",
                timeout=900)

    def cgi(self, method, uri, body="", user="_ai-chat"):
        """One CGI request to the installed binary, as the service's user, with its settings."""
        env = (f"REQUEST_METHOD={method} REQUEST_URI='{uri}' SCRIPT_NAME= SERVER_PROTOCOL=HTTP/1.1 "
               f"CONTENT_TYPE=application/json CONTENT_LENGTH={len(body.encode())} AI_CHAT_CONFIG={SETTINGS}")
        script = (f"cd {STATE} && set -a && . {SECRET} && set +a && printf %s '{body}' | env {env} "
                  "/usr/bin/ai-chat-fcgi")
        r = self.sh(script, user=user)
        head, _, data = r.stdout.partition("\n\n")   # text mode: CRLF read as LF
        m = re.match(r"Status: (\d+)", head)
        check(m, f"no Status line from the CGI binary: {r.stdout[:500]!r} {r.stderr[:500]!r}")
        return int(m.group(1)), data

    def stat(self, p):
        st = os.stat(self.file(p))
        owner = self.sh(f"stat -c '%U:%G' {p}").stdout.strip()
        return st.st_mode & 0o7777, owner

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def newest_schema():
    return max(int(f.name[:3]) for f in (ROOT / "sql" / "sqlite").glob("[0-9][0-9][0-9]_*.sql"))


def old_database(path, upto=2):
    """A database at schema version upto, holding a chat with two messages."""
    conn = sqlite3.connect(path)
    for f in sorted((ROOT / "sql" / "sqlite").glob("[0-9][0-9][0-9]_*.sql")):
        if int(f.name[:3]) <= upto:
            conn.executescript(f.read_text())
    conn.execute(f"PRAGMA user_version = {upto}")
    conn.execute("INSERT INTO chats (id, user_id, title, created_at, updated_at) VALUES "
                 "('22222222-2222-4222-8222-222222222222', 'before', 'from 1.0', 1, 2)")
    conn.execute("INSERT INTO messages (chat_id, role, content, created_at) VALUES "
                 "('22222222-2222-4222-8222-222222222222', 'user', 'hello', 3)")
    conn.execute("INSERT INTO messages (chat_id, role, content, created_at) VALUES "
                 "('22222222-2222-4222-8222-222222222222', 'assistant', 'hi there', 4)")
    conn.commit()
    conn.close()


# --------------------------------------------------------------------------------------------------

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


_deb = None


def deb():
    global _deb
    if _deb is None:
        _deb = build_deb()
    return _deb[0]


@test
def builds_and_passes_lintian():
    path, out = build_deb()
    global _deb
    _deb = (path, out)
    info = run(["dpkg-deb", "--info", str(path)]).stdout
    files = run(["dpkg-deb", "--contents", str(path)]).stdout
    for f in ("./usr/bin/ai-chat-fcgi", "./usr/share/man/man8/ai-chat-fcgi.8.gz", "./etc/ai-chat-fcgi/ai-chat.env",
              "./lib/systemd/system/ai-chat-fcgi.socket", "./lib/systemd/system/ai-chat-fcgi.service",
              "./usr/share/ai-chat-fcgi/examples/nginx-site.conf",
              "./usr/share/ai-chat-fcgi/examples/apache-proxy-fcgi.conf",
              "./usr/share/ai-chat-fcgi/docs/openapi.json", "./usr/share/ai-chat-fcgi/docs/swagger.html",
              "./usr/share/ai-chat-fcgi/sql/sqlite/001_init.sql"):
        check(f in files, f"the package lacks {f}")
    check(re.search(r"-rw-r----- root/root .* ./etc/ai-chat-fcgi/ai-chat.env", files),
          "the settings file is not 0640 in the package")
    check("Depends:" in info and "adduser" in info, f"control: {info}")
    # no secret is built into the package: postinst makes one per host
    with tempfile.TemporaryDirectory() as tmp:
        run(["dpkg-deb", "-x", str(path), tmp])
        settings = Path(tmp, SETTINGS.lstrip("/")).read_text()
        check(not re.search(r"^JWT_SECRET=\S", settings, re.M), "the packaged settings file holds a JWT_SECRET")
    warnings = [l for l in out.splitlines() if l.startswith("deb: lintian: W:")]
    return f"{path.name}, lintian: no errors, {len(warnings)} warnings"


@test
def installs_into_a_clean_debian_root():
    root = Chroot("install")
    try:
        root.install(deb())
        # the system user, the state directory, the settings file and the secret
        check(root.sh("getent passwd _ai-chat").stdout.startswith("_ai-chat:"), "no _ai-chat user")
        eq_ = root.stat(STATE)
        check(eq_ == (0o750, "_ai-chat:_ai-chat"), f"{STATE}: {eq_}")
        st = root.stat(SETTINGS)
        check(st == (0o640, "root:_ai-chat"), f"{SETTINGS}: {st}")
        st = root.stat(SECRET)
        check(st == (0o640, "root:_ai-chat"), f"{SECRET}: {st}")
        secret = root.file(SECRET).read_text()
        check(re.search(r"^JWT_SECRET=[0-9a-f]{96}$", secret, re.M), f"no random JWT_SECRET in {SECRET}")
        conffiles = root.sh("dpkg-query -W -f='${Conffiles}' ai-chat-fcgi").stdout
        check(SETTINGS in conffiles, f"{SETTINGS} is not a conffile: {conffiles!r}")
        # the service's binary answers a CGI request, and keeps a chat in the state directory
        status, body = root.cgi("GET", "/health")
        check(status == 200 and '"healthy"' in body, f"GET /health: {status} {body!r}")
        # AUTH=token (the default) with the package's secret: an account, and its token
        account = '{"email": "pkg@example.com", "password": "correct horse battery"}'
        status, body = root.cgi("POST", "/auth/register", account)
        check(status == 201 and '"pkg@example.com"' in body, f"POST /auth/register: {status} {body!r}")
        status, body = root.cgi("POST", "/auth/login", account)
        check(status == 200 and '"access_token"' in body, f"POST /auth/login: {status} {body!r}")
        # the first admin is made on the host: ai-chat-fcgi user add (the password on stdin), as the
        # service's user with the package's settings; the admin then logs in and lists the users
        r = root.sh(f"cd {STATE} && printf '%s\\n' 'admin password 1' | "
                    f"AI_CHAT_CONFIG={SETTINGS} /usr/bin/ai-chat-fcgi user add admin@example.com --admin",
                    user="_ai-chat")
        check("admin@example.com" in r.stdout + r.stderr, f"user add said: {r.stdout!r} {r.stderr!r}")
        admin = '{"email": "admin@example.com", "password": "admin password 1"}'
        status, body = root.cgi("POST", "/auth/login", admin)
        check(status == 200 and '"access_token"' in body, f"the admin's POST /auth/login: {status} {body!r}")
        users = sqlite3.connect(root.file(f"{STATE}/ai_chat.db")).execute(
            "SELECT email, role FROM users ORDER BY email").fetchall()
        check(users == [("admin@example.com", "admin"), ("pkg@example.com", "user")], f"users: {users}")
        db = root.file(f"{STATE}/ai_chat.db")
        check(db.exists(), "no database in the state directory")
        version = sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0]
        check(version == newest_schema(), f"schema version {version}, wanted {newest_schema()}")
        for unit in ("ai-chat-fcgi.socket", "ai-chat-fcgi.service"):
            check(root.file(f"/lib/systemd/system/{unit}").exists(), f"no {unit}")
        check(root.file("/etc/systemd/system/sockets.target.wants/ai-chat-fcgi.socket").is_symlink(),
              "the socket is not enabled")
        return "user, state directory, settings 0640, secret, CGI /health 200, accounts, user add --admin, schema current"
    finally:
        root.close()


@test
def upgrade_migrates_and_remove_keeps_the_data_purge_does_not():
    root = Chroot("upgrade")
    try:
        root.install(deb())
        # a database from 1.0.0 (schema 2), then the package again: postinst migrates it
        db = root.file(f"{STATE}/ai_chat.db")
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        old_database(db)
        root.sh(f"chown _ai-chat:_ai-chat {STATE}/ai_chat.db")
        root.sh("apt-get install -y -qq --reinstall /tmp/ai-chat-fcgi.deb")
        conn = sqlite3.connect(db)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        check(version == newest_schema(), f"not migrated: schema {version}")
        rows = conn.execute("SELECT role, content, parent_id FROM messages ORDER BY id").fetchall()
        conn.close()
        check(rows == [("user", "hello", None), ("assistant", "hi there", 1)], f"after the upgrade: {rows}")
        secret = root.file(SECRET).read_text()
        # remove: the data and the settings stay
        root.sh("apt-get remove -y -qq ai-chat-fcgi")
        check(not root.file("/usr/bin/ai-chat-fcgi").exists(), "the binary stayed after remove")
        check(db.exists() and root.file(SETTINGS).exists(), "remove took the data or the settings")
        check(root.file(SECRET).read_text() == secret, "remove changed the secret")
        # installed again, the secret is the same one
        root.sh("apt-get install -y -qq --no-install-recommends /tmp/ai-chat-fcgi.deb")
        check(root.file(SECRET).read_text() == secret, "a reinstall made a new secret")
        # purge: everything goes
        root.sh("apt-get purge -y -qq ai-chat-fcgi")
        for p in (STATE, SETTINGS, SECRET):
            check(not root.file(p).exists(), f"{p} is still there after purge")
        check(root.sh("getent passwd _ai-chat", check_ok=False).returncode != 0, "the user is still there")
        return "schema 2 -> current with its rows, remove keeps data, purge removes it"
    finally:
        root.close()


def main(argv):
    pattern = argv[1] if len(argv) > 1 else ""
    passed = failed = skipped = 0
    for fn in TESTS:
        name = fn.__name__
        if pattern not in name:
            continue
        t0 = time.monotonic()
        try:
            note = fn()
            print(f"PASS {name} ({time.monotonic() - t0:.1f} s{'; ' + note if note else ''})", flush=True)
            passed += 1
        except Skip as e:
            print(f"SKIP {name}: {e}", flush=True)
            skipped += 1
        except Exception as e:  # noqa: BLE001
            first = str(e).splitlines()[0] if str(e) else ""
            print(f"FAIL {name}: {type(e).__name__}: {first}", flush=True)
            print("    " + "".join(traceback.format_exception(e)).rstrip().replace("\n", "\n    "), flush=True)
            failed += 1
    extra = f", {skipped} skipped" if skipped else ""
    print(f"package: {passed} passed, {failed} failed{extra}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
