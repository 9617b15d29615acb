#!/usr/bin/env bash
# make valgrind: memory errors and leaks under valgrind's memcheck, in two parts.
#
# 1. Every unit test binary and corpus replay given as an argument (default: build/tests/test_* and
#    build/tests/replay_*) runs under memcheck; any error, or any definitely or indirectly lost block,
#    fails it (--error-exitcode=99).
# 2. End to end: tests/valgrind/e2e.py runs a part of the e2e suite (VALGRIND_E2E, a list of test-name
#    filters) with tests/valgrind/worker.sh as conf/stack.sh's WORKER, so every worker process runs under
#    memcheck with a log of its own.  After the stacks have stopped (SIGTERM), each log must show zero
#    errors and nothing definitely or indirectly lost ("still reachable" is fine: libcurl, OpenSSL and
#    libfcgi keep global state until exit).  Each e2e test and each worker log counts as one check.
#
# Ends with "valgrind: N passed, N failed"; exit status 1 if anything failed.  The logs stay in
# VALGRIND_OUT (default build/valgrind).  tests/valgrind/suppressions.supp holds third-party false
# positives only.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
PYTHON=${PYTHON:-/usr/bin/python3}
out_dir=${VALGRIND_OUT:-$top/build/valgrind}
supp=$top/tests/valgrind/suppressions.supp

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind: valgrind is not installed (apt-get install valgrind)"
    echo "valgrind: 0 passed, 1 failed"
    exit 1
fi
if grep -q fsanitize build/.flags 2>/dev/null; then
    echo "valgrind: the build uses sanitizers (SANITIZE=1), which valgrind cannot run: build without them"
    echo "valgrind: 0 passed, 1 failed"
    exit 1
fi

rm -rf "$out_dir"
mkdir -p "$out_dir/unit" "$out_dir/e2e"
passed=0
failed=0

vg=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=40
    --suppressions="$supp")

# -- 1. unit tests and replays
if [ $# = 0 ]; then
    set -- build/tests/test_* build/tests/replay_*
fi
for t in "$@"; do
    name=$(basename "$t")
    log=$out_dir/unit/$name.valgrind.log
    start=$(date +%s%N)
    "${vg[@]}" --log-file="$log" "$t" >"$out_dir/unit/$name.out" 2>&1
    rc=$?
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    secs=$((ms / 1000)).$(( (ms % 1000) / 100 ))
    summary=$(grep -E "ERROR SUMMARY" "$log" 2>/dev/null | tail -1 | sed 's/^==[0-9]*== //')
    lost=$(grep -E "definitely lost:|indirectly lost:" "$log" 2>/dev/null | sed 's/^==[0-9]*== *//' | tr '\n' ' ')
    if [ "$rc" = 0 ]; then
        printf 'PASS %s (%s s) %s %s\n' "$name" "$secs" "$summary" "${lost:-(no leaks)}"
        passed=$((passed + 1))
    else
        printf 'FAIL %s: exit status %s %s %s\n' "$name" "$rc" "$summary" "$lost"
        if [ "$rc" = 99 ]; then
            sed 's/^/    /' "$log" | head -200
        else
            tail -30 "$out_dir/unit/$name.out" | sed 's/^/    /'
        fi
        failed=$((failed + 1))
    fi
done

# -- 2. end to end, the worker under memcheck
echo "== e2e under valgrind (worker logs in $out_dir/e2e)"
VALGRIND_LOG_DIR=$out_dir/e2e "$PYTHON" "$top/tests/valgrind/e2e.py" 2>&1 | tee "$out_dir/e2e.out"
line=$(grep -E "^e2e: [0-9]+ passed, [0-9]+ failed" "$out_dir/e2e.out" | tail -1)
if [ -n "$line" ]; then
    passed=$((passed + $(echo "$line" | sed -E 's/^e2e: ([0-9]+) passed.*/\1/')))
    failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
else
    echo "FAIL e2e: printed no summary"
    failed=$((failed + 1))
fi

# Each worker log: it must be complete (valgrind wrote its summaries at exit), with zero errors and
# zero bytes definitely or indirectly lost.
logs=("$out_dir"/e2e/worker.*.log)
if [ ! -e "${logs[0]}" ]; then
    echo "FAIL worker-logs: no worker ran under valgrind"
    failed=$((failed + 1))
    logs=()
fi
for log in "${logs[@]}"; do
    name=$(basename "$log" .log)
    cmd=$(sed -n 's/^==[0-9]*== Command: //p' "$log" | head -1)
    errors=$(sed -n 's/^==[0-9]*== ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$log" | tail -1 | tr -d ,)
    definite=$(sed -n 's/^==[0-9]*== *definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1 | tr -d ,)
    indirect=$(sed -n 's/^==[0-9]*== *indirectly lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1 | tr -d ,)
    reachable=$(sed -n 's/^==[0-9]*== *still reachable: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1 | tr -d ,)
    heap=$(sed -n 's/^==[0-9]*== *total heap usage: \(.*\)/\1/p' "$log" | tail -1)
    # A process with nothing in use at exit prints "All heap blocks were freed" and no LEAK SUMMARY.
    if grep -q "All heap blocks were freed" "$log"; then definite=${definite:-0}; indirect=${indirect:-0}; fi
    if [ -z "$errors" ]; then
        echo "FAIL $name ($cmd): the log has no ERROR SUMMARY (the process did not exit normally)"
        tail -40 "$log" | sed 's/^/    /'
        failed=$((failed + 1))
    elif [ "$errors" != 0 ] || [ "${definite:-0}" != 0 ] || [ "${indirect:-0}" != 0 ]; then
        echo "FAIL $name ($cmd): $errors errors, ${definite:-0} bytes definitely and ${indirect:-0} indirectly lost"
        sed 's/^/    /' "$log" | head -300
        failed=$((failed + 1))
    else
        echo "PASS $name: 0 errors, 0 bytes definitely or indirectly lost, ${reachable:-0} bytes still reachable; heap: $heap"
        passed=$((passed + 1))
    fi
done

echo "valgrind: $passed passed, $failed failed"
[ "$failed" = 0 ]
