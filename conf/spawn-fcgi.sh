#!/bin/sh
# ai-chat-fcgi under spawn-fcgi: spawn-fcgi creates the unix socket and starts the worker with it as
# fd 0 (the worker's "listening socket on fd 0" mode).  Copy it, adjust the variables, and run it as
# root (it creates /run/ai-chat-fcgi and drops to USER).
#
#   conf/spawn-fcgi.sh            a pool of PROCESSES worker processes; spawn-fcgi exits once they run
#   conf/spawn-fcgi.sh -n         one process that stays in the foreground (a supervisor: runit,
#                                 daemontools, s6, supervisord)
#
# spawn-fcgi -F N forks N processes that share the socket, so each worker runs WORKER_PROCESSES=1
# (the environment wins over the settings file).  spawn-fcgi does not restart a process that dies:
# the others go on serving.  In the foreground (-n) spawn-fcgi execs the worker itself and -F is
# ignored, so there the worker's own supervisor makes the processes (WORKER_PROCESSES=PROCESSES) and
# restarts any that dies.
#
# The web server connects to SOCKET: its user must be in GROUP (mode 0660).  Settings:
# /usr/local/etc/ai-chat-fcgi/ai-chat.env (or AI_CHAT_CONFIG); the database directory must be
# writable by USER.  Stop the pool with: kill $(cat /run/ai-chat-fcgi/spawn-fcgi.pid)
set -eu

BIN=${BIN:-/usr/local/bin/ai-chat-fcgi}
SOCKET=${SOCKET:-/run/ai-chat-fcgi/worker.sock}
PROCESSES=${PROCESSES:-4}
USER=${USER_NAME:-www-data}
GROUP=${GROUP_NAME:-www-data}
PID_FILE=${PID_FILE:-/run/ai-chat-fcgi/spawn-fcgi.pid}
export AI_CHAT_CONFIG="${AI_CHAT_CONFIG:-/usr/local/etc/ai-chat-fcgi/ai-chat.env}"

mkdir -p "$(dirname "$SOCKET")"
chmod 0755 "$(dirname "$SOCKET")"
# Settings such as the database path are relative to the working directory: start in the one the
# database lives in.
cd "${WORK_DIR:-/var/lib/ai-chat-fcgi}"

if [ "${1:-}" = "-n" ]; then
    export WORKER_PROCESSES="$PROCESSES"
    exec spawn-fcgi -s "$SOCKET" -M 0660 -U "$USER" -G "$GROUP" -u "$USER" -g "$GROUP" -n -- "$BIN"
fi
export WORKER_PROCESSES=1
exec spawn-fcgi -s "$SOCKET" -M 0660 -U "$USER" -G "$GROUP" -u "$USER" -g "$GROUP" \
    -F "$PROCESSES" -P "$PID_FILE" -- "$BIN"
