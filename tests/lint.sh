#!/usr/bin/env bash
# Source checks (after curl's): functions that are easy to get wrong are not used in the C sources.
# Ends with "lint: N passed, N failed".
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
passed=0
failed=0
for fn in strcpy strcat sprintf vsprintf gets strtok sscanf strncpy strncat atoi atol; do
    hits=$(grep -nE "(^|[^a-z_])$fn\(" common/*.[ch] fcgi/*.[ch] tests/unit/*.[ch] tests/fuzz/*.c tests/bench/*.c 2>/dev/null)
    if [ -n "$hits" ]; then
        echo "FAIL no $fn:"
        echo "$hits"
        failed=$((failed + 1))
    else
        echo "PASS no $fn"
        passed=$((passed + 1))
    fi
done
echo "lint: $passed passed, $failed failed"
[ "$failed" = 0 ]
