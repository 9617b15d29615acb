#!/usr/bin/env python3
"""Runs the end-to-end tests: python3 tests/e2e/run.py [name-filter]

Loads every tests/e2e/test_*.py, runs the tests whose name contains the filter against the real stack
(conf/stack.sh: nginx + build/ai-chat-fcgi), prints PASS/FAIL per test and "e2e: N passed, N failed";
exits 1 if any failed. E2E_KEEP=1 keeps the stacks' temporary directories (logs, database).
"""

import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if not harness.WORKER.exists():
        print(f"e2e: {harness.WORKER} does not exist: run make first", file=sys.stderr)
        return 1
    for name in sorted(os.listdir(HERE)):
        if name.startswith("test_") and name.endswith(".py"):
            importlib.import_module(name[:-3])
    return harness.run_tests(argv[1] if len(argv) == 2 else "")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
