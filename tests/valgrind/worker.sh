#!/usr/bin/env bash
# The WORKER that tests/valgrind/run.sh gives conf/stack.sh: the real worker under valgrind's memcheck.
# One log per process (the supervisor forks its workers without exec, and valgrind follows a fork):
# VALGRIND_LOG_DIR/worker.PID.log.  run.sh reads the logs once the stacks have stopped.
top=$(cd "$(dirname "$0")/../.." && pwd)
: "${VALGRIND_LOG_DIR:?VALGRIND_LOG_DIR is not set}"
exec valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --num-callers=40 \
    --suppressions="$top/tests/valgrind/suppressions.supp" \
    --log-file="$VALGRIND_LOG_DIR/worker.%p.log" "$top/build/ai-chat-fcgi" "$@"
