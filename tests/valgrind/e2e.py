#!/usr/bin/env python3
"""Part of the end-to-end suite against workers run under valgrind (make valgrind; tests/valgrind/run.sh).

The e2e harness (tests/e2e/harness.py) starts its own stacks and does not let WORKER through from the
environment, so this runner loads it, makes every Stack it creates use tests/valgrind/worker.sh as
conf/stack.sh's WORKER, with one worker process of at most 4 threads (memcheck runs a process's
threads one at a time), and gives the stacks more time to start and stop.  Then it runs the tests of
the modules named in VALGRIND_E2E (space-separated, without the test_ prefix; default below) and ends
with "e2e: N passed, N failed" like tests/e2e/run.py.  VALGRIND_LOG_DIR (required) receives one
valgrind log per worker process; run.sh checks them once this has exited (the shared stacks stop at
exit).

Left out by default: modules that need several worker processes or many threads (lifecycle,
concurrency, model_concurrency), that time the worker closely, or that run other programs than the
stack (config, deploy-like, readme examples, openapi's linter).
"""

import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(os.path.dirname(HERE), "e2e")
sys.path.insert(0, E2E)

import harness  # noqa: E402

WRAPPER = os.path.join(HERE, "worker.sh")
DEFAULT_MODULES = ("basics chat_routes chats_create chats_list messages unicode validation cors limits "
                   "status_lines storage model_send model_stream model_regenerate model_idempotency "
                   "model_faults model_context loop_parked loop_slow_reader conditional_requests auth auth_admin")
MAX_THREADS = 4
# Tests left out (VALGRIND_E2E_SKIP, space-separated full names), each with its reason:
# loop_parked.sigkill_of_a_worker_holding_parked_chats needs two worker processes (one runs here).
DEFAULT_SKIP = "loop_parked.sigkill_of_a_worker_holding_parked_chats"

_original_init = harness.Stack.__init__


def _init_under_valgrind(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    self.env["WORKER"] = WRAPPER
    self.env["WORKER_PROCESSES"] = "1"
    threads = self.env.get("WORKER_THREADS")
    self.env["WORKER_THREADS"] = str(min(int(threads), MAX_THREADS) if threads and threads.isdigit()
                                     else MAX_THREADS)


def main():
    if not os.environ.get("VALGRIND_LOG_DIR"):
        print("valgrind e2e: VALGRIND_LOG_DIR is not set", file=sys.stderr)
        return 2
    if not harness.WORKER.exists():
        print(f"valgrind e2e: {harness.WORKER} does not exist: run make first", file=sys.stderr)
        return 1
    harness.Stack.__init__ = _init_under_valgrind
    os.environ.setdefault("LOOP_TEST_CHATS", "40")   # parked chats at once, under memcheck
    harness.START_TIMEOUT = 60
    harness.Stack.wait_stopped.__defaults__ = (60,)   # memcheck's leak search runs at exit
    modules = os.environ.get("VALGRIND_E2E", DEFAULT_MODULES).split()
    for name in modules:
        importlib.import_module("test_" + name)
    prefixes = tuple(name + "." for name in modules)
    skip = set(os.environ.get("VALGRIND_E2E_SKIP", DEFAULT_SKIP).split())
    for t in harness.TESTS:
        if t.name in skip:
            print(f"SKIP {t.name}", flush=True)
    harness.TESTS[:] = [t for t in harness.TESTS if t.name.startswith(prefixes) and t.name not in skip]
    return harness.run_tests("")


if __name__ == "__main__":
    sys.exit(main())
