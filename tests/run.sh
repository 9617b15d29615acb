#!/usr/bin/env bash
# Runs the unit test binaries given as arguments (cmocka), then the end-to-end suite twice (on SQLite,
# then on PostgreSQL), the multi-host test and the rest, and ends with the line "N passed, N failed".
# Exit status 1 if anything failed.  The repository's unit tests get a throwaway PostgreSQL cluster
# (tests/pgcluster.py) through AC_TEST_PG_URL; the e2e harness makes its own.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
unit_only=0
if [ "${1:-}" = "--unit-only" ]; then unit_only=1; shift; fi

passed=0
failed=0
out=$(mktemp)
pg_dir=$(mktemp -d /tmp/ai-chat-unit-pg.XXXXXX)
trap 'rm -f "$out"; "$PYTHON" "$top/tests/pgcluster.py" stop "$pg_dir"' EXIT
if url=$("$PYTHON" "$top/tests/pgcluster.py" start "$pg_dir" 2>"$out"); then
    export AC_TEST_PG_URL=$url
else
    echo "FAIL: no PostgreSQL cluster for the unit tests: $(cat "$out")"
    failed=$((failed + 1))
fi

for t in "$@"; do
    echo "== $t"
    "$t" >"$out" 2>&1
    rc=$?
    cat "$out"
    # A binary may run several groups (the repository's: one per engine): their counts add up.
    p=$(sed -n 's/.*\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | awk '{ n += $1 } END { print n + 0 }')
    f=$(sed -n 's/.*\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | awk '{ n += $1 } END { print n + 0 }')
    p=${p:-0}
    f=${f:-0}
    # A binary that crashed or printed no summary counts as one failure.
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
    passed=$((passed + p))
    failed=$((failed + f))
done

# Runs a suite that ends with "<name>: N passed, N failed" and adds its counts.
suite() {
    local name=$1
    shift
    echo "== $name"
    "$@" 2>&1 | tee "$out"
    local line
    line=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed" "$out" | tail -1)
    if [ -n "$line" ]; then
        passed=$((passed + $(echo "$line" | sed -E "s/^$name: ([0-9]+) passed.*/\\1/")))
        failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
    else
        echo "$name: printed no summary"
        failed=$((failed + 1))
    fi
}

suite lint "$top/tests/lint.sh"
if [ "$unit_only" = 0 ]; then
    suite e2e "$PYTHON" "$top/tests/e2e/run.py"
    suite e2e-pg env E2E_DB=postgres "$PYTHON" "$top/tests/e2e/run.py"
    suite multihost "$PYTHON" "$top/tests/multihost/run.py"
    suite model "$PYTHON" "$top/tests/model/run.py" --seeds "${MODEL_SEEDS:-4}" --steps "${MODEL_STEPS:-60}"
    suite browser "$PYTHON" "$top/tests/browser/run.py"
    suite ui "$PYTHON" "$top/tests/browser/ui.py"
    suite ui-pg env E2E_DB=postgres "$PYTHON" "$top/tests/browser/ui.py"
    suite deploy "$PYTHON" "$top/tests/deploy/run.py"
    suite package "$PYTHON" "$top/tests/package/run.py"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
