#!/usr/bin/env bash
# make bench: wrk against the real worker, on SQLite and on PostgreSQL side by side, and against a
# trivial libfcgi responder (tests/bench/trivial.c) behind the same nginx configuration, and the real
# figures as ratios to the trivial ones.
#
# Makefile rule (the bench needs both binaries; stack.sh asks build/ai-chat-fcgi for its settings):
#
#   build/bench-trivial: tests/bench/trivial.c
#   	@mkdir -p build
#   	$(CC) $(CFLAGS) -o $@ $< -lfcgi -pthread
#
#   bench: build/ai-chat-fcgi build/bench-trivial      (plus deps with wrk)
#   	tests/bench/bench.sh
#
# Needs wrk, curl, python3 (its sqlite3 module), nginx; PYTHON picks the interpreter (default python3).
#
# What it does: starts a throwaway PostgreSQL cluster (tests/pgcluster.py, on a unix socket, fsync on,
# as durable as SQLite's synchronous=FULL) and three stacks with conf/stack.sh (nginx with one worker
# process, access log off): build/ai-chat-fcgi on a fresh SQLite database, the same on the PostgreSQL
# database, and build/bench-trivial, each in its own session (setsid) with its own RUN_DIR; creates a
# chat through each real stack's API and puts 50 messages of 100..300 characters in it (python3's
# sqlite3, psql); then runs `wrk -t1 -c50 -d${BENCH_SECONDS}s --latency` (after a short warm-up)
# against, in this order:
#   trivial /health (baseline, before), then for SQLite and for PostgreSQL: /health, /chats/{id},
#   /chats/{id}/messages (limit=50); trivial /health (baseline, after)
# and prints a table with both engines side by side. The baseline is the mean of its two runs.
#
# The messages page is also measured against the trivial responder answering a body of the page's size
# (BODY_BYTES; a run before and one after, and 7 short pairs back to back): target 0.80.
# Targets: /health >= 0.90 of the baseline, /chats/{id}/messages >= 0.50 on SQLite, and on PostgreSQL
# >= 0.50 of the SQLite figure; /chats/{id} is reported without a target. A MISS is reported and the exit status stays 0 (it is a report). Any non-2xx
# response or socket error (wrk's "Non-2xx or 3xx responses" and "Socket errors") is a FAIL, and so is
# anything that does not run (a stack that does not start, wrk failing): those exit 1.
#
# Environment: BENCH_SECONDS (default 10), BENCH_WARMUP (seconds of unmeasured load before each run,
# default 2; 0 for none), BENCH_KEEP=1 (keep the temporary directory: logs, wrk output, database).
# Worker settings (WORKER_PROCESSES, WORKER_THREADS, ...) pass through to both workers; the stacks run
# in the temporary directory, so a .env in the checkout does not apply.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
real_bin=$top/build/ai-chat-fcgi
trivial_bin=$top/build/bench-trivial
stack=$top/conf/stack.sh
seconds=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-2}
connections=50
user_id=bench-user
n_messages=50

die() { echo "bench: $*" >&2; exit 1; }

case $seconds in ''|*[!0-9]*|0) die "BENCH_SECONDS must be a positive integer (got '$seconds')";; esac
case $warmup in ''|*[!0-9]*) die "BENCH_WARMUP must be a non-negative integer (got '$warmup')";; esac
python=${PYTHON:-python3}
for tool in wrk curl "$python" setsid awk; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (Debian: wrk, curl, python3, util-linux, mawk)"
done
[ -x /usr/sbin/nginx ] || die "/usr/sbin/nginx is missing (Debian: nginx-light)"
[ -x "$real_bin" ] || die "$real_bin is missing: run make first"
[ -x "$trivial_bin" ] || die "$trivial_bin is missing: make build/bench-trivial"

work=$(mktemp -d /tmp/ai-chat-bench.XXXXXX)
chmod 0755 "$work"
db=$work/bench.db
pg_dir=$work/pg
pg_url=""
stack_pids=()
wrk_pid=""
failed=1    # cleared when everything ran; logs are shown when it stays 1

# shellcheck disable=SC2317  # called from the EXIT trap
stop_stack() {  # $1: the pid of a stack.sh started with setsid (the leader of its process group)
    local pid=$1 i
    kill -0 -- "-$pid" 2>/dev/null || return 0
    kill -TERM -- "-$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 -- "-$pid" 2>/dev/null; then
        echo "bench: stack $pid did not stop within 10 s; killing it" >&2
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317
cleanup() {
    local status=$? pid
    trap - EXIT INT TERM
    if [ -n "$wrk_pid" ]; then kill -TERM "$wrk_pid" 2>/dev/null || true; fi
    for pid in "${stack_pids[@]}"; do
        stop_stack "$pid"
    done
    if [ -n "$pg_url" ]; then "$python" "$top/tests/pgcluster.py" stop "$pg_dir"; fi
    if [ "$failed" = 1 ]; then
        for log in "$work"/*.log; do
            [ -s "$log" ] || continue
            echo "---- $(basename "$log") (last 20 lines)" >&2
            tail -n 20 "$log" >&2
        done
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: kept $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'failed=0; exit 130' INT
trap 'failed=0; exit 143' TERM

# A port nothing listens on, below the kernel's ephemeral range; not $1.
free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 12000))
        [ "$p" = "${1:-}" ] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# start_stack NAME WORKER PORT DATABASE_URL [BODY_BYTES]: sets STACK_PID (the stack's process group).
start_stack() {
    local name=$1 worker=$2 port=$3 url=$4 body_bytes=${5:-0} pid i
    (
        cd "$work"
        # Like nginx's access log, the worker's request lines are off while measuring (LOG_LEVEL=info
        # to keep them).
        # AUTH=none: the requests name their user_id (the original API), unless the caller says.
        exec setsid env WORKER="$worker" PORT="$port" RUN_DIR="$work/run-$name" ACCESS_LOG=off AUTH="${STACK_AUTH:-none}" \
            LOG_LEVEL="${LOG_LEVEL:-warn}" BODY_BYTES="$body_bytes" \
            NGINX_WORKERS=1 DATABASE_URL="$url" "$stack"
    ) </dev/null >"$work/$name.log" 2>&1 &
    pid=$!
    # setsid does not fork when its caller leads no process group (a background job of a script), so
    # the pid is the new session's leader; check it before relying on it to stop the whole stack.
    for i in $(seq 1 50); do
        [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$pid" ] && break
        sleep 0.02
    done
    stack_pids+=("$pid")
    [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$pid" ] \
        || die "stack $name (pid $pid) is not the leader of its process group"
    STACK_PID=$pid
}

wait_healthy() {  # NAME PORT PID
    local name=$1 port=$2 pid=$3 i code
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || die "the $name stack exited before answering /health (see $name.log below)"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/health" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    die "the $name stack did not answer /health with 200 within 15 s (last status: ${code:-none})"
}

real_port=$(free_port) || die "no free port"
pg_port=$(free_port "$real_port") || die "no free port"
trivial_port=$(free_port "$pg_port") || die "no free port"

pg_url=$(PG_FSYNC=1 "$python" "$top/tests/pgcluster.py" start "$pg_dir") || die "PostgreSQL did not start"
pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -1)")

start_stack real "$real_bin" "$real_port" "sqlite:///$db"
real_pid=$STACK_PID
start_stack pg "$real_bin" "$pg_port" "$pg_url"
pg_pid=$STACK_PID
start_stack trivial "$trivial_bin" "$trivial_port" "sqlite:///$work/trivial.db"
trivial_pid=$STACK_PID
wait_healthy real "$real_port" "$real_pid"
wait_healthy pg "$pg_port" "$pg_pid"
wait_healthy trivial "$trivial_port" "$trivial_pid"

trivial=http://127.0.0.1:$trivial_port

sentences=(
    "Could you explain how write-ahead logging works in SQLite and why it helps concurrent readers?"
    "In WAL mode, writers append pages to a separate log file while readers keep reading the database."
    "Readers see a consistent snapshot, because each one remembers the last valid frame in the log."
    "A checkpoint later copies the logged pages back into the main file and lets the log start over."
    "That is why many readers and one writer can work at the same time without blocking each other."
    "What happens when two processes try to write at the same moment, for example two web workers?"
    "The second writer waits for the lock until its busy timeout runs out, then it gets SQLITE_BUSY."
    "Starting the transaction with BEGIN IMMEDIATE takes the write lock up front and avoids deadlocks."
    "Thanks, that makes sense. Is there a limit on how large the log file can grow between checkpoints?"
    "By default SQLite checkpoints automatically once the log reaches about a thousand pages."
    "A long-running reader can hold a checkpoint back, so the log may grow while that reader is open."
    "Keep read transactions short and the log stays small; monitor its size if you see it grow."
)

# ---- the data, per engine: one chat through the API, 50 messages straight into the database, each
# following the one before (the active path)
# fill ENGINE BASE_URL: sets CHAT_URL and MESSAGES_URL
fill() {
    local engine=$1 base=$2 resp code body chat_id now_us last_ts i target content j role got
    resp=$(curl -sS --max-time 5 -X POST -H 'Content-Type: application/json' \
           -d "{\"user_id\": \"$user_id\", \"title\": \"Benchmark chat\"}" -w '\n%{http_code}' "$base/chats") \
        || die "POST /chats failed ($engine)"
    code=${resp##*$'\n'}
    body=${resp%$'\n'*}
    [ "$code" = 201 ] || die "POST /chats answered $code: $body ($engine)"
    chat_id=$(printf '%s' "$body" | sed -n 's/.*"id": *"\([0-9a-fA-F-]\{36\}\)".*/\1/p')
    [ -n "$chat_id" ] || die "no chat id in the answer to POST /chats: $body"
    now_us=$(date +%s%6N)
    {
        echo "BEGIN;"
        last_ts=$now_us
        for i in $(seq 1 "$n_messages"); do
            target=$((100 + (i * 73) % 201))     # 100..300 characters
            content=""
            j=$i
            while [ "${#content}" -lt "$target" ]; do
                content="${content:+$content }${sentences[$((j % ${#sentences[@]}))]}"
                j=$((j + 5))
            done
            content=${content:0:$target}
            content="${content% *}."               # end on a word
            if [ $((i % 2)) = 1 ]; then role=user; else role=assistant; fi
            last_ts=$((now_us + i * 1000))
            echo "INSERT INTO messages (chat_id, parent_id, role, content, created_at) VALUES ('$chat_id'," \
                 "(SELECT max(id) FROM messages WHERE chat_id = '$chat_id'), '$role', '${content//\'/\'\'}', $last_ts);"
        done
        echo "UPDATE chats SET updated_at = $last_ts, message_count = $n_messages WHERE id = '$chat_id';"
        echo "COMMIT;"
    } > "$work/messages-$engine.sql"
    if [ "$engine" = sqlite ]; then
        # The worker has the database open (WAL mode): wait up to 10 s for its lock like any other writer.
        "$python" -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
with open(sys.argv[2], encoding="utf-8") as f:
    db.executescript(f.read())
db.close()' "$db" "$work/messages-$engine.sql" || die "inserting the messages with $python (sqlite3) failed"
    else
        "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -d "$pg_url" -f "$work/messages-$engine.sql" >/dev/null \
            || die "inserting the messages with psql failed"
    fi
    CHAT_URL="$base/chats/$chat_id?user_id=$user_id"
    MESSAGES_URL="$base/chats/$chat_id/messages?user_id=$user_id&limit=$n_messages"
    body=$(curl -sS --max-time 5 -f "$CHAT_URL") || die "GET /chats/{id} failed after the inserts ($engine)"
    printf '%s' "$body" | grep -Eq "\"message_count\": *${n_messages}[,}]" \
        || die "the chat does not show message_count $n_messages ($engine): $body"
    body=$(curl -sS --max-time 5 -f "$MESSAGES_URL") || die "GET /chats/{id}/messages failed ($engine)"
    got=$(printf '%s' "$body" | grep -o '"role": *"' | wc -l)
    [ "$got" -eq "$n_messages" ] || die "GET /chats/{id}/messages returned $got messages, not $n_messages ($engine)"
    BYTES=${#body}
}
fill sqlite "http://127.0.0.1:$real_port"
sqlite_chat=$CHAT_URL sqlite_messages=$MESSAGES_URL bytes=$BYTES

# The bare responder again, answering a body of the messages page's size: the page's own baseline.
sized_port=$(free_port "$real_port") || die "no free port"
start_stack sized "$trivial_bin" "$sized_port" "sqlite:///$work/sized.db" "$bytes"
sized_pid=$STACK_PID
wait_healthy sized "$sized_port" "$sized_pid"
sized=http://127.0.0.1:$sized_port
fill pg "http://127.0.0.1:$pg_port"
pg_chat=$CHAT_URL pg_messages=$MESSAGES_URL

# ---- the runs
# wrk ignores SIGINT, and bash runs no INT trap while a foreground child that ignored it runs on; so
# wrk runs in the background and the script waits for it, which a signal interrupts at once.
wrk_wait() {  # wrk's arguments; its output goes where the caller's goes
    local status=0
    wrk "$@" &
    wrk_pid=$!
    wait "$wrk_pid" || status=$?
    wrk_pid=""
    return "$status"
}
# run_wrk KEY URL: leaves wrk's report in $work/KEY.wrk
run_wrk() {
    local key=$1 url=$2
    echo "bench: $key: $url" >&2
    if [ "$warmup" -gt 0 ]; then
        wrk_wait -t1 -c"$connections" -d"${warmup}s" "$url" >/dev/null || die "wrk (warm-up) failed on $url"
    fi
    wrk_wait -t1 -c"$connections" -d"${seconds}s" --latency "$url" >"$work/$key.wrk" 2>&1 \
        || { cat "$work/$key.wrk" >&2; die "wrk failed on $url"; }
}
run_wrk base1 "$trivial/health"
run_wrk health "http://127.0.0.1:$real_port/health"
run_wrk chat "$sqlite_chat"
run_wrk sized1 "$sized/health"
run_wrk messages "$sqlite_messages"
run_wrk sized2 "$sized/health"
run_wrk pg_health "http://127.0.0.1:$pg_port/health"
run_wrk pg_chat "$pg_chat"
run_wrk pg_messages "$pg_messages"
run_wrk base2 "$trivial/health"
# On a machine shared with other work the load drifts within seconds: the page against its baseline
# again in BENCH_PAIRS short pairs run back to back (BENCH_PAIR_SECONDS each), the median of their ratios.
pairs=${BENCH_PAIRS:-7}
pair_seconds=${BENCH_PAIR_SECONDS:-3}
pair_ratios=()
for i in $(seq 1 "$pairs"); do
    wrk_wait -t1 -c"$connections" -d"${pair_seconds}s" "$sized/health" >"$work/pair-s$i.wrk" 2>&1 || die "wrk failed"
    wrk_wait -t1 -c"$connections" -d"${pair_seconds}s" "$sqlite_messages" >"$work/pair-m$i.wrk" 2>&1 || die "wrk failed"
    pair_ratios+=("$(awk '/^Requests\/sec:/ { print $2 }' "$work/pair-m$i.wrk") $(awk '/^Requests\/sec:/ { print $2 }' "$work/pair-s$i.wrk")")
done

# wrk_field KEY FIELD: rps, p50, p99, requests, non2xx, sockerr
wrk_field() {
    awk -v f="$2" '
        /^Requests\/sec:/                { rps = $2 }
        $1 == "50%"                      { p50 = $2 }
        $1 == "99%"                      { p99 = $2 }
        / requests in /                  { requests = $1 }
        /Non-2xx or 3xx responses:/      { non2xx = $NF }
        /Socket errors:/                 { gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) sockerr += $i }
        END {
            v["rps"] = rps; v["p50"] = p50; v["p99"] = p99; v["requests"] = requests + 0
            v["non2xx"] = non2xx + 0; v["sockerr"] = sockerr + 0
            print (v[f] == "" ? "?" : v[f])
        }' "$work/$1.wrk"
}

base1=$(wrk_field base1 rps)
base2=$(wrk_field base2 rps)
baseline=$(awk -v a="$base1" -v b="$base2" 'BEGIN { printf "%.2f", (a + b) / 2 }')
awk -v b="$baseline" 'BEGIN { exit !(b > 0) }' || die "the baseline measured 0 req/s"
sized_base=$(awk -v a="$(wrk_field sized1 rps)" -v b="$(wrk_field sized2 rps)" 'BEGIN { printf "%.2f", (a + b) / 2 }')

errors=0
row_fmt="%-44s %10s %9s %9s %8s %8s %7s %7s  %s\n"
# row LABEL KEY TARGET(or -) [BASELINE]
row() {
    local label=$1 key=$2 target=$3 base=${4:-$baseline} rps p50 p99 reqs non2xx sockerr ratio verdict
    rps=$(wrk_field "$key" rps)
    p50=$(wrk_field "$key" p50)
    p99=$(wrk_field "$key" p99)
    reqs=$(wrk_field "$key" requests)
    non2xx=$(wrk_field "$key" non2xx)
    sockerr=$(wrk_field "$key" sockerr)
    ratio=$(awk -v r="$rps" -v b="$base" 'BEGIN { printf "%.2f", r / b }')
    if [ "$non2xx" != 0 ] || [ "$sockerr" != 0 ] || [ "$reqs" = 0 ] || [ "$rps" = "?" ]; then
        verdict="FAIL ($non2xx non-2xx, $sockerr socket errors of $reqs requests)"
        errors=$((errors + 1))
    elif [ "$target" = - ]; then
        verdict="-"
    elif awk -v r="$ratio" -v t="$target" 'BEGIN { exit !(r >= t) }'; then
        verdict=PASS
    else
        verdict=MISS
    fi
    # shellcheck disable=SC2059
    printf "$row_fmt" "$label" "$rps" "$p50" "$p99" "$non2xx" "$sockerr" "$ratio" \
        "$([ "$target" = - ] && echo - || echo ">=$target")" "$verdict"
}

drift=$(awk -v a="$base1" -v b="$base2" -v m="$baseline" \
        'BEGIN { d = (a - b) / m * 100; if (d < 0) d = -d; printf "%.1f", d }')
settings() { (cd "$work" && "$real_bin" --config-value "$1" 2>/dev/null) || echo '?'; }

echo
echo "ai-chat-fcgi bench: wrk -t1 -c$connections -d${seconds}s --latency (warm-up ${warmup}s), $(nproc) CPUs, nginx 1 worker, access log off"
echo "real worker: WORKER_PROCESSES=$(settings WORKER_PROCESSES) WORKER_THREADS=$(settings WORKER_THREADS); trivial: WORKER_THREADS=${WORKER_THREADS:-8}"
echo "chat: $n_messages messages of 100..300 characters; the messages page is $bytes bytes"
echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on a unix socket (fsync on), DB_POOL_SIZE=${DB_POOL_SIZE:-10}"
echo
# shellcheck disable=SC2059
printf "$row_fmt" endpoint req/s p50 p99 non-2xx sockerr ratio target result
row "trivial /health (baseline, before)" base1 -
row "SQLite /health" health 0.90
row "SQLite /chats/{id}" chat -
row "SQLite /chats/{id}/messages (limit=50)" messages 0.50
row "trivial, a $bytes-byte body (before)" sized1 - "$sized_base"
row "SQLite /chats/{id}/messages vs the same size" messages 0.80 "$sized_base"
row "trivial, a $bytes-byte body (after)" sized2 - "$sized_base"
row "PostgreSQL /health" pg_health 0.90
row "PostgreSQL /chats/{id}" pg_chat -
row "PostgreSQL /chats/{id}/messages (limit=50)" pg_messages -
row "trivial /health (baseline, after)" base2 -
echo
# Side by side: PostgreSQL's figure against SQLite's (target: the messages page at >= 0.50 of it).
side_fmt="%-30s %12s %12s %10s %7s  %s\n"
# shellcheck disable=SC2059
printf "$side_fmt" endpoint "SQLite r/s" "PG r/s" "PG/SQLite" target result
side() {
    local label=$1 key=$2 target=$3 a b r verdict
    a=$(wrk_field "$key" rps)
    b=$(wrk_field "pg_$key" rps)
    r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')
    if [ "$target" = - ]; then verdict=-
    elif awk -v r="$r" -v t="$target" 'BEGIN { exit !(r >= t) }'; then verdict=PASS
    else verdict=MISS; fi
    # shellcheck disable=SC2059
    printf "$side_fmt" "$label" "$a" "$b" "$r" "$([ "$target" = - ] && echo - || echo ">=$target")" "$verdict"
}
side "/health" health -
side "/chats/{id}" chat -
side "/chats/{id}/messages" messages 0.50
echo
echo "baseline: $baseline req/s (mean of $base1 and $base2; they differ by $drift%); the ${bytes}-byte baseline: $sized_base req/s"
if awk -v d="$drift" 'BEGIN { exit !(d > 10) }'; then
    echo "note: the baseline drifted by more than 10% between its two runs; the ratios are noisy"
fi

pair_median=$(for p in "${pair_ratios[@]}"; do echo "$p"; done | awk '{ printf "%.3f\n", $1 / $2 }' | sort -n \
    | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
echo "messages page / the ${bytes}-byte responder, $pairs pairs of ${pair_seconds} s back to back: ratios" \
    "$(for p in "${pair_ratios[@]}"; do echo "$p"; done | awk '{ printf "%.2f ", $1 / $2 }')-> median $pair_median" \
    "(target 0.80: $(awk -v m="$pair_median" 'BEGIN { print (m >= 0.8 ? "PASS" : "MISS") }'))"
if [ "$errors" -gt 0 ]; then
    echo "bench: $errors run(s) had failed requests (FAIL above)" >&2
    exit 1
fi
failed=0
exit 0
