"""Signals, the supervisor and the clocks: no signal silences or kills a worker (USR1 and HUP reopen
LOG_FILE, PIPE is ignored), the supervisor outlives SIGHUP and refills a slot whose fork failed, a
wall clock stepped back stalls nothing, and a start-up failure exits at once and leaves the listening
socket on fd 0 alone."""

import os
import resource
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from api import chat_path, create_chat, expect, new_user
from harness import ROOT, WORKER, Skip, Stack, test
from provider import model_env, new_chat, shared_provider, stream_chat, tag
from test_crash import skip, supervisor_and_children


def stack_workers(s):
    """The stack's ai-chat-fcgi processes: [pid] of the one process, or the supervisor's children."""
    supervisor, children = supervisor_and_children(s)
    return supervisor, children


def healthy(s, n=10, within=1.0):
    for i in range(n):
        started = time.monotonic()
        resp = s.request("GET", "/health", timeout=5)
        took = time.monotonic() - started
        assert resp.status == 200 and took < within, f"GET /health {i}: {took:.2f} s {resp.describe()}"


def wait_for(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


@test
def usr1_hup_and_pipe_neither_silence_nor_kill_a_worker():
    # Regression: FCGX_Init's SIGUSR1 handler made every later accept fail at once ("accept:
    # Success" in a loop, nothing served, the process alive); SIGHUP's default action killed it.
    log = Path(tempfile.mkdtemp(prefix="ai-chat-log-")) / "worker.log"
    with Stack(env={"WORKER_PROCESSES": "1", "WORKER_THREADS": "4", "LOG_FILE": str(log)}) as s:
        (pid,) = [p for p in s.leftover_processes() if "ai-chat-fcgi" in Path(f"/proc/{p}/cmdline").read_text()]
        for sig in (signal.SIGUSR1, signal.SIGPIPE, signal.SIGHUP, signal.SIGUSR1):
            os.kill(pid, sig)
            time.sleep(0.1)
            healthy(s, 5)
        assert Path(f"/proc/{pid}").exists(), "the worker died of a signal"
        # logrotate's way: move the file, signal, and the lines go to a new file of that name.
        os.rename(log, f"{log}.1")
        os.kill(pid, signal.SIGUSR1)
        wait_for("a new LOG_FILE after SIGUSR1", log.exists, 3)
        healthy(s, 3)
        os.rename(log, f"{log}.2")
        os.kill(pid, signal.SIGHUP)
        wait_for("a new LOG_FILE after SIGHUP", log.exists, 3)
        healthy(s, 3)
    text = log.read_text() + Path(f"{log}.1").read_text() + Path(f"{log}.2").read_text()
    assert " request method=GET path=/health status=200 " in log.read_text(), log.read_text()[-1000:]
    assert "accept" not in text, f"accept errors in the log: {text[-2000:]}"


@test
def the_supervisor_outlives_sighup_and_passes_it_on():
    # Regression: SIGHUP's default action killed the supervisor and orphaned its workers.
    log = Path(tempfile.mkdtemp(prefix="ai-chat-log-")) / "worker.log"
    with Stack(env={"WORKER_PROCESSES": "2", "WORKER_THREADS": "2", "LOG_FILE": str(log)}) as s:
        supervisor, children = stack_workers(s)
        os.rename(log, f"{log}.1")
        os.kill(supervisor, signal.SIGHUP)
        wait_for("a new LOG_FILE after SIGHUP", log.exists, 3)
        healthy(s, 20)
        assert stack_workers(s) == (supervisor, children), "the supervisor or a worker changed"
        assert s.proc.poll() is None, "the stack stopped"
        os.kill(supervisor, signal.SIGUSR1)
        time.sleep(0.3)
        healthy(s, 5)
        assert stack_workers(s) == (supervisor, children)
    assert " request method=GET path=/health status=200 " in log.read_text(), log.read_text()[-1000:]


PIDS_CGROUPS = Path("/sys/fs/cgroup/pids")


def pids_cgroup_of(pid):
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            return PIDS_CGROUPS / path.lstrip("/")
    return None


@test
def a_slot_whose_fork_failed_is_filled_again():
    # Regression: a failed fork() left -1 in the slot, which was never tried again.
    cgroup = PIDS_CGROUPS / f"ai-chat-e2e-{uuid.uuid4().hex[:8]}"
    try:
        cgroup.mkdir()
    except OSError as e:
        skip(f"no pids cgroup to make fork() fail in ({e})")
        return
    try:
        with Stack(env={"WORKER_PROCESSES": "2", "WORKER_THREADS": "2"}) as s:
            supervisor, children = stack_workers(s)
            home = pids_cgroup_of(supervisor)
            (cgroup / "cgroup.procs").write_text(str(supervisor))
            (cgroup / "pids.max").write_text("1")          # the supervisor alone: fork() fails
            try:
                os.kill(children[0], signal.SIGKILL)
                time.sleep(2.5)                             # two tries a second apart, both failing
                assert len(stack_workers(s)[1]) == 1, f"a worker started in spite of pids.max=1: {stack_workers(s)}"
                healthy(s, 5)                                # the other goes on serving
                (cgroup / "pids.max").write_text("max")
                wait_for("the empty slot filled once fork() works again",
                         lambda: len(stack_workers(s)[1]) == 2, 4)
                healthy(s, 5)
            finally:
                for pid in (cgroup / "cgroup.procs").read_text().split():
                    try:
                        ((home or PIDS_CGROUPS) / "cgroup.procs").write_text(pid)
                    except OSError:
                        pass
            assert s.log_tail().count("fork: Resource temporarily unavailable") >= 1, s.log_tail()
    finally:
        try:
            cgroup.rmdir()
        except OSError:
            pass


# --------------------------------------------------------------------------------------------------
# A wall clock stepped back (libfaketime in the worker alone; the machine's clock is left alone)

FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def faketime_worker(tmp):
    """A WORKER for conf/stack.sh: the real one under libfaketime, its wall clock shifted by what the
    file holds ("+0" to start with), its monotonic clock left alone."""
    offset = tmp / "offset"
    offset.write_text("+0\n")
    preload = str(FAKETIME)
    ldd = subprocess.run(["ldd", str(WORKER)], capture_output=True, text=True).stdout
    asan = [w for w in ldd.split() if "libasan" in w and w.startswith("/")]
    if asan:  # the sanitizer's runtime must come first (make test SANITIZE=1)
        preload = f"{asan[0]} {preload}"
    wrapper = tmp / "worker-faketime.sh"
    wrapper.write_text(f"""#!/bin/sh
export LD_PRELOAD="{preload}" FAKETIME_TIMESTAMP_FILE="{offset}" FAKETIME_NO_CACHE=1
export FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_DONT_RESET=1
exec "{WORKER}" "$@"
""")
    wrapper.chmod(0o755)
    return wrapper, offset


@test
def a_clock_stepped_back_stalls_neither_heartbeats_nor_restarts():
    # Regression: heartbeats and the supervisor's restart pacing used time(): with the clock stepped
    # back an hour, pings stopped and a dead worker was not replaced for an hour.
    if not FAKETIME.exists():
        raise AssertionError(f"{FAKETIME} is missing (apt-get install libfaketime)")
    tmp = Path(tempfile.mkdtemp(prefix="ai-chat-clock-"))
    wrapper, offset = faketime_worker(tmp)
    env = model_env(shared_provider(), WORKER=str(wrapper), WORKER_PROCESSES="2", WORKER_THREADS="4")
    with Stack(env=env) as s:
        user, chat_id = new_chat(s)
        with stream_chat(s, chat_id, user, f"#delay=5 {tag()}") as st:
            assert st.status == 200
            pings_after_step = 0
            for event in st.events():
                if event.name == "comment" and offset.read_text().strip() == "+0":
                    offset.write_text("-1h\n")      # the first ping came: now step the clock back
                    stepped = event.at
                elif event.name == "comment":
                    pings_after_step += 1
                elif event.name in ("delta", "done", "error"):
                    break
            assert offset.read_text().strip() == "-1h", f"no ping at all: {st.seen!r}"
            assert pings_after_step >= 2, \
                f"{pings_after_step} pings in the {event.at - stepped:.1f} s after the clock went back: {st.seen!r}"
        supervisor, children = stack_workers(s)
        os.kill(children[0], signal.SIGKILL)
        wait_for("the killed worker replaced with the clock an hour back",
                 lambda: len(stack_workers(s)[1]) == 2 and children[0] not in stack_workers(s)[1], 5)
        healthy(s, 5)


# --------------------------------------------------------------------------------------------------
# Start-up


@test
def a_start_up_failure_exits_at_once_and_leaves_fd_0_alone():
    # Regression: a thread that could not open its database made ac_serve free every context, also
    # those never set up (fd 0 in their zeroed requests): libfcgi shut down the inherited listening
    # socket on fd 0 (shared with every other process of a spawn-fcgi or systemd pool), polled it
    # 2 s, and closed it.  Watched with strace: the real process, its real system calls.
    tmp = Path(tempfile.mkdtemp(prefix="ai-chat-startup-"))
    sock_path, trace = tmp / "fd0.sock", tmp / "trace"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen(16)
    env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": f"sqlite:///{tmp}/x.db", "AUTH": "none",
           "AI_CHAT_CONFIG": str(tmp / "none.env"), "WORKER_PROCESSES": "1", "WORKER_THREADS": "64"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    if "ASAN_OPTIONS" in env:   # SANITIZE=1: LeakSanitizer cannot run under ptrace (strace)
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
    started = time.monotonic()
    # 48 descriptors: the first threads open their database connections, a later one cannot.
    p = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=close,shutdown", "-o", str(trace), str(WORKER)],
                         stdin=listener.fileno(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                         cwd=tmp, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48)))
    try:
        out, _ = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("the worker that could not start was still running after 30 s") from None
    took = time.monotonic() - started
    text = out.decode(errors="replace")
    assert p.returncode == 1, f"exit status {p.returncode}: {text[-1500:]}"
    assert "cannot open the database" in text, text[-1500:]
    calls = [line for line in trace.read_text().splitlines() if "close(0)" in line or "shutdown(0," in line]
    assert not calls, f"the worker shut down or closed fd 0, the listening socket it was handed: {calls[:3]} ({len(calls)} calls)"
    assert took < 2, f"took {took:.1f} s to give up"
    assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(str(sock_path))          # still listening, for the next worker to take it
    listener.close()


@test
def sqlite_memory_statistics_are_off():
    # Regression: SQLITE_CONFIG_MEMSTATUS was set after SQLite was initialised, which fails (21,
    # unchecked), so every allocation still took SQLite's global statistics mutex.
    with Stack(env={"WORKER_PROCESSES": "1", "WORKER_THREADS": "2"}) as s:
        user = new_user()
        chat = create_chat(s, user)
        expect(s, "GET", chat_path(chat["id"], user_id=user), 200, chat)
        (pid,) = [p for p in s.leftover_processes() if "ai-chat-fcgi" in Path(f"/proc/{p}/cmdline").read_text()]
        r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-iex", "set auto-load off",
                            "-ex", "print (long long) sqlite3_memory_used()"],
                           capture_output=True, text=True, timeout=60)
        lines = [line for line in r.stdout.splitlines() if line.startswith("$1 = ")]
        if not lines and "Couldn't write extended state status" in r.stdout + r.stderr:
            # gdb cannot call a function in a process on some CPUs and kernels (it fails restoring the
            # registers' extended state); the answer is unknowable here, not wrong.
            raise Skip("gdb cannot call functions in a process on this machine (extended state)")
        assert lines, f"gdb could not ask the worker: {r.stdout[-800:]} {r.stderr[-800:]}"
        assert lines[0] == "$1 = 0", f"SQLite counts its memory ({lines[0]}): MEMSTATUS is on"
        healthy(s, 3)
