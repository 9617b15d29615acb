#!/usr/bin/env python3
"""A throwaway PostgreSQL cluster for the tests and the benchmark: initdb in a temporary folder,
started on a unix socket in that folder and a free loopback port, removed by stop().

    with Cluster() as pg:                    # or pg = Cluster().start() ... pg.stop()
        url = pg.create_database()           # postgresql://ai@/db_1?host=<socket dir>&port=<port>
        pg.url("db_1", tcp=True)             # postgresql://ai:<password>@127.0.0.1:<port>/db_1

As root the cluster runs as the postgres user (initdb refuses root). Debian's postgresql package
puts the programs in /usr/lib/postgresql/<version>/bin.

Command line (for shell scripts): pgcluster.py start DIR  (prints the URL of database "ai"; the
cluster runs on after the command), pgcluster.py stop DIR.
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

USER = "ai"
PASSWORD = "s3cret-test-password"   # the TCP login's; unix-socket logins are trusted


def bin_dir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise RuntimeError("PostgreSQL is not installed (Debian: postgresql)")
    return os.path.dirname(found[-1])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, directory=None, fsync=False, max_connections=400, extra=None, listen="127.0.0.1", hba=()):
        self.dir = directory or tempfile.mkdtemp(prefix="ai-chat-pg-")
        self.data = os.path.join(self.dir, "data")
        self.socket_dir = self.dir
        self.port = None
        self.fsync = fsync
        self.max_connections = max_connections
        self.extra = extra or {}
        self.listen = listen
        self.hba = list(hba)      # more pg_hba.conf lines (other hosts' addresses)
        self.proc = None
        self.bin = bin_dir()
        self.as_postgres = os.geteuid() == 0
        self.count = 0

    # -- running the server's programs as the right user

    def _cmd(self, args):
        if self.as_postgres:
            return ["runuser", "-u", "postgres", "--"] + args
        return args

    def _run(self, args, **kw):
        return subprocess.run(self._cmd(args), check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            pwfile = os.path.join(self.dir, "pw")
            with open(pwfile, "w") as f:
                f.write(PASSWORD + "\n")
            if self.as_postgres:
                os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
            self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", USER, "--pwfile", pwfile,
                       "-E", "UTF8", "--locale=C.UTF-8", "-N", "--auth-local=trust",
                       "--auth-host=scram-sha-256"])
            os.unlink(pwfile)
            with open(os.path.join(self.data, "pg_hba.conf"), "a") as f:
                f.write("".join(line + "\n" for line in self.hba))
        self.port = self.port or free_port()
        self._spawn()
        return self

    def _spawn(self):
        settings = {"listen_addresses": self.listen, "unix_socket_directories": self.socket_dir,
                    "port": str(self.port), "max_connections": str(self.max_connections),
                    "fsync": "on" if self.fsync else "off",
                    # a commit is in the WAL before it is acknowledged (a crash of the server, halt
                    # ("immediate"), loses nothing); without fsync the OS's crash could
                    "full_page_writes": "on" if self.fsync else "off", "shared_buffers": "64MB",
                    "log_min_messages": "fatal", "logging_collector": "off"}
        settings.update(self.extra)
        args = [os.path.join(self.bin, "postgres"), "-D", self.data]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        self.log = open(os.path.join(self.dir, "postgres.log"), "ab")
        self.proc = subprocess.Popen(self._cmd(args), stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with status {self.proc.returncode}: {self.log_tail()}")
            if os.path.exists(os.path.join(self.socket_dir, f".s.PGSQL.{self.port}")):
                try:
                    self.psql("postgres", "SELECT 1")
                    return
                except subprocess.CalledProcessError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start within 30 s: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines=20):
        try:
            with open(os.path.join(self.dir, "postgres.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def _server_pid(self):
        """The postmaster's pid (runuser stays as its parent when we are root)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def halt(self, mode="fast"):
        """Stops the server (fast: sessions ended, a clean shutdown; immediate: like a crash)."""
        if self.proc is None:
            return
        pid = self._server_pid()
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        if pid:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        self.log.close()

    def restart(self, down_seconds=0.0, mode="fast"):
        self.halt(mode)
        time.sleep(down_seconds)
        self._spawn()

    def stop(self):
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- databases

    def url(self, database, tcp=False):
        if tcp:
            return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"
        return f"postgresql://{USER}@/{database}?host={self.socket_dir}&port={self.port}"

    def psql(self, database, sql):
        return subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
                               "-h", self.socket_dir, "-p", str(self.port), "-U", USER, "-d", database,
                               "-c", sql], check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True).stdout

    def create_database(self, name=None):
        """A new empty database; returns its unix-socket URL."""
        if name is None:
            self.count += 1
            name = f"db_{os.getpid()}_{self.count}"
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name):
        self.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv):
    if len(argv) == 3 and argv[1] == "start":
        pg = Cluster(argv[2], fsync=os.environ.get("PG_FSYNC") == "1").start()
        pg.create_database("ai")
        with open(os.path.join(argv[2], "port"), "w") as f:
            f.write(str(pg.port))
        print(pg.url("ai"))
        return 0
    if len(argv) == 3 and argv[1] == "stop":
        pid_file = os.path.join(argv[2], "data", "postmaster.pid")
        try:
            with open(pid_file) as f:
                pid = int(f.readline())
            os.kill(pid, signal.SIGINT)
            for _ in range(300):
                os.kill(pid, 0)
                time.sleep(0.1)
        except (OSError, ValueError):
            pass
        shutil.rmtree(argv[2], ignore_errors=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
