#!/usr/bin/env bash
# Serve the API through nginx in the foreground: write nginx's configuration from nginx.conf.example,
# start the worker and nginx, and stop both on SIGINT or SIGTERM (Ctrl-C).  Used by make run, make test
# and make bench.
#
# Environment: PORT (else the worker's setting: .env, then 8080), RUN_DIR (configuration, logs, pid;
# default ./run), WORKER (the FastCGI program; default build/ai-chat-fcgi), NGINX_WORKERS (default auto),
# ACCESS_LOG (default RUN_DIR/access.log; "off" to disable).  Every other setting reaches the worker.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
worker=${WORKER:-$top/build/ai-chat-fcgi}
app=$top/build/ai-chat-fcgi
run_dir=${RUN_DIR:-$PWD/run}
port=${PORT:-$("$app" --config-value PORT)}
# AUTH=token (the default) needs JWT_SECRET: make run generates one into RUN_DIR, once, when it is
# not set, so that `make run` just works (tokens stay valid across restarts).
if [ "$("$app" --config-value AUTH)" = token ] && [ "$("$app" --config-value JWT_SECRET_SET)" = no ]; then
    mkdir -p "${RUN_DIR:-$PWD/run}"
    secret_file=${RUN_DIR:-$PWD/run}/jwt_secret
    if [ ! -s "$secret_file" ]; then
        (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$secret_file")
        echo "stack: JWT_SECRET is not set: generated one into $secret_file" >&2
    fi
    JWT_SECRET=$(cat "$secret_file")
    export JWT_SECRET
fi
max_body=$("$app" --config-value MAX_BODY_BYTES)
max_import=$("$app" --config-value MAX_IMPORT_BYTES)

mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)
# The socket and nginx's temporary files go where nginx's workers (www-data when started as root) can
# reach them whatever the permissions of the checkout's parents.
sock_dir=$(mktemp -d /tmp/ai-chat-fcgi.XXXXXX)
chmod 0711 "$sock_dir"
socket=$sock_dir/worker.sock

# The documentation pages and the assets they load, where nginx's workers can read them.
docs_src=$top/conf/docs
docs_dir=$sock_dir/docs
mkdir -p "$docs_dir/assets/swagger-ui" "$docs_dir/assets/redoc"
cp "$docs_src"/*.html "$docs_dir/" 2>/dev/null || true
if [ -d "$docs_src/node_modules/swagger-ui-dist" ] && [ -d "$docs_src/node_modules/redoc/bundles" ]; then
    cp "$docs_src/node_modules/swagger-ui-dist/"{swagger-ui-bundle.js,swagger-ui.css,favicon-32x32.png} \
        "$docs_dir/assets/swagger-ui/"
    cp "$docs_src/node_modules/redoc/bundles/redoc.standalone.js" "$docs_dir/assets/redoc/"
else
    echo "stack: conf/docs/node_modules is missing (make docs): /docs and /redoc will not load" >&2
fi
chmod -R a+rX "$docs_dir"

# The chat page (/ui/) and the two packages it loads (conf/ui/node_modules, make docs).
ui_src=$top/conf/ui
ui_dir=$sock_dir/ui
mkdir -p "$ui_dir/vendor"
cp "$ui_src"/index.html "$ui_src"/app.js "$ui_src"/app.css "$ui_dir/"
if [ -f "$ui_src/node_modules/marked/lib/marked.umd.js" ] && [ -f "$ui_src/node_modules/dompurify/dist/purify.min.js" ]; then
    cp "$ui_src/node_modules/marked/lib/marked.umd.js" "$ui_src/node_modules/dompurify/dist/purify.min.js" "$ui_dir/vendor/"
else
    echo "stack: conf/ui/node_modules is missing (make docs): /ui/ shows messages as plain text" >&2
fi
chmod -R a+rX "$ui_dir"

user_line=""
if [ "$(id -u)" = 0 ]; then
    user_line="user www-data www-data;"
    export FCGI_SOCKET_GROUP=${FCGI_SOCKET_GROUP:-www-data}
fi

sed -e "s|@PORT@|$port|g" -e "s|@SOCKET@|$socket|g" -e "s|@RUN_DIR@|$run_dir|g" \
    -e "s|@TMP_DIR@|$sock_dir|g" -e "s|@DOCS_DIR@|$docs_dir|g" -e "s|@UI_DIR@|$ui_dir|g" -e "s|@MAX_BODY@|$((max_body + 65536))|g" -e "s|@MAX_BODY_BYTES@|$max_body|g" \
    -e "s|@MAX_IMPORT_BYTES@|$max_import|g" \
    -e "s|@USER_LINE@|$user_line|g" -e "s|@WORKERS@|${NGINX_WORKERS:-auto}|g" \
    -e "s|@ACCESS_LOG@|${ACCESS_LOG:-$run_dir/access.log}|g" \
    "$top/nginx.conf.example" > "$run_dir/nginx.conf"

worker_pid=""
nginx_pid=""
stop() {
    trap - INT TERM EXIT
    # The front end first: nginx finishes what it has begun (a request whose body it is still
    # reading reaches the worker only once whole), then the worker finishes its own.
    if [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null; then
        wait "$nginx_pid" 2>/dev/null || true
    fi
    [ -n "$worker_pid" ] && kill -TERM "$worker_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$sock_dir"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop' EXIT

FCGI_SOCKET=$socket "$worker" &
worker_pid=$!
# Up to 15 s: a worker on PostgreSQL, on a loaded machine, may take a while to migrate and start.
for _ in $(seq 1 300); do
    [ -S "$socket" ] && break
    kill -0 "$worker_pid" 2>/dev/null || { echo "stack: the worker did not start" >&2; exit 1; }
    sleep 0.05
done
[ -S "$socket" ] || { echo "stack: no socket at $socket" >&2; exit 1; }

/usr/sbin/nginx -p "$run_dir" -c "$run_dir/nginx.conf" -e "$run_dir/error.log" &
nginx_pid=$!
echo "stack: serving http://127.0.0.1:$port (nginx $nginx_pid, worker $worker_pid, logs in $run_dir)" >&2

# Whichever stops first, stop the other.
set +e
wait -n "$worker_pid" "$nginx_pid"
status=$?
echo "stack: a process exited (status $status); stopping" >&2
exit "$status"
