#!/bin/sh
# Installs ai-chat-fcgi (make install runs it), or removes what it installed.
#
#   conf/install.sh [install]     install build/ai-chat-fcgi and its files
#   conf/install.sh uninstall     remove them again; the settings file and the databases stay
#
# Honours (environment): PREFIX (/usr/local), DESTDIR (staging root for packages, empty), BINDIR
# ($PREFIX/bin), SYSCONFDIR ($PREFIX/etc), DATADIR ($PREFIX/share), MANDIR ($DATADIR/man), STATEDIR
# (/var/lib/ai-chat-fcgi: where the installed settings put the database), RUN_USER (www-data: the
# owner of STATEDIR and the group of the settings file, when run as root without DESTDIR), BINARY
# (build/ai-chat-fcgi), NO_SECRET=1 (no JWT_SECRET written into a new settings file: a package's build).
#
# Installs:
#   $BINDIR/ai-chat-fcgi
#   $SYSCONFDIR/ai-chat-fcgi/ai-chat.env       from conf/ai-chat.env.example, only if there is none
#   $DATADIR/ai-chat-fcgi/sql/, models.conf     the schema and the model registry (for reference)
#   $DATADIR/ai-chat-fcgi/docs/                 /docs and /redoc pages, openapi.json, assets/
#   $DATADIR/ai-chat-fcgi/examples/             web server, spawn-fcgi and systemd examples,
#                                               their paths rewritten to these directories
#   $MANDIR/man8/ai-chat-fcgi.8
#   $DATADIR/ai-chat-fcgi/install-manifest      what was installed, for uninstall
# The binary reads $SYSCONFDIR/ai-chat-fcgi/ai-chat.env when AI_CHAT_CONFIG is unset and there is no
# ./.env: build it with that path (make PREFIX=...); install.sh warns when it was built with another.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
BINDIR=${BINDIR:-$PREFIX/bin}
SYSCONFDIR=${SYSCONFDIR:-$PREFIX/etc}
DATADIR=${DATADIR:-$PREFIX/share}
MANDIR=${MANDIR:-$DATADIR/man}
STATEDIR=${STATEDIR:-/var/lib/ai-chat-fcgi}
RUN_USER=${RUN_USER:-www-data}
BINARY=${BINARY:-$top/build/ai-chat-fcgi}

share=$DATADIR/ai-chat-fcgi
settings=$SYSCONFDIR/ai-chat-fcgi/ai-chat.env
manifest=$share/install-manifest
action=${1:-install}

say() { echo "install.sh: $*"; }

# Copies src to $DESTDIR$dst with mode, and records dst in the manifest.
put() {
    install -D -m "$3" "$1" "$DESTDIR$2"
    echo "$2" >> "$DESTDIR$manifest.new"
}

# The examples name make install's default paths: rewrite them to these.
rewrite() {
    sed -e "s|/usr/local/bin|$BINDIR|g" \
        -e "s|/usr/local/etc|$SYSCONFDIR|g" \
        -e "s|/usr/local/share/ai-chat-fcgi|$share|g" \
        -e "s|/var/lib/ai-chat-fcgi|$STATEDIR|g" "$1"
}

put_rewritten() {
    tmp=$(mktemp)
    rewrite "$1" > "$tmp"
    put "$tmp" "$2" "$3"
    rm -f "$tmp"
}

do_install() {
    [ -x "$BINARY" ] || { say "no $BINARY: build it first (make)"; exit 1; }
    if ! grep -aqF "$settings" "$BINARY"; then
        say "warning: $BINARY was not built to read $settings by default (make PREFIX=$PREFIX" \
            "SYSCONFDIR=$SYSCONFDIR rebuilds it so); set AI_CHAT_CONFIG=$settings where it runs"
    fi
    mkdir -p "$DESTDIR$share"
    : > "$DESTDIR$manifest.new"

    put "$BINARY" "$BINDIR/ai-chat-fcgi" 0755
    for engine in sqlite postgres; do
        for f in "$top"/sql/$engine/*.sql; do
            [ -e "$f" ] && put "$f" "$share/sql/$engine/$(basename "$f")" 0644
        done
    done
    put "$top/conf/models.conf" "$share/models.conf" 0644
    put "$top/conf/ai-chat-fcgi.8" "$MANDIR/man8/ai-chat-fcgi.8" 0644

    docs=$top/conf/docs
    for f in "$docs"/*.html "$docs/openapi.json"; do
        [ -f "$f" ] && put "$f" "$share/docs/$(basename "$f")" 0644
    done
    nm=$docs/node_modules
    if [ -d "$nm/swagger-ui-dist" ] && [ -f "$nm/redoc/bundles/redoc.standalone.js" ]; then
        for f in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png; do
            put "$nm/swagger-ui-dist/$f" "$share/docs/assets/swagger-ui/$f" 0644
        done
        put "$nm/redoc/bundles/redoc.standalone.js" "$share/docs/assets/redoc/redoc.standalone.js" 0644
    else
        say "warning: conf/docs/node_modules is missing (make docs): /docs and /redoc will not load"
    fi

    ui=$top/conf/ui
    for f in index.html app.js app.css; do
        put "$ui/$f" "$share/ui/$f" 0644
    done
    if [ -f "$ui/node_modules/marked/lib/marked.umd.js" ] && [ -f "$ui/node_modules/dompurify/dist/purify.min.js" ]; then
        put "$ui/node_modules/marked/lib/marked.umd.js" "$share/ui/vendor/marked.umd.js" 0644
        put "$ui/node_modules/dompurify/dist/purify.min.js" "$share/ui/vendor/purify.min.js" 0644
    else
        say "warning: conf/ui/node_modules is missing (make docs): /ui/ shows replies as plain text"
    fi

    for f in lighttpd-fastcgi.conf lighttpd-cgi.conf apache-proxy-fcgi.conf apache-fcgid.conf \
        apache-cgi.conf nginx-site.conf nginx-auth-basic.conf nginx-auth-request.conf ai-chat.env.example; do
        [ -f "$top/conf/$f" ] && put_rewritten "$top/conf/$f" "$share/examples/$f" 0644
    done
    put_rewritten "$top/conf/spawn-fcgi.sh" "$share/examples/spawn-fcgi.sh" 0755
    for f in "$top"/conf/systemd/*; do
        put_rewritten "$f" "$share/examples/systemd/$(basename "$f")" 0644
    done

    # The settings file: the example, with the database in STATEDIR; never replaced.
    if [ -e "$DESTDIR$settings" ]; then
        say "keeping the settings file $settings"
    else
        tmp=$(mktemp)
        {
            echo "# Installed by conf/install.sh from conf/ai-chat.env.example; see ai-chat-fcgi(8)."
            echo "# It holds GROQ_API_KEY: readable by root and the group the worker runs as only."
            sed -e "s|^DATABASE_URL=.*|DATABASE_URL=sqlite:///$STATEDIR/ai_chat.db|" \
                -e "s|Copy to .env in the directory the worker starts in (make run: the checkout),|Read by the installed worker (AI_CHAT_CONFIG overrides the path);|" \
                "$top/conf/ai-chat.env.example"
        } > "$tmp"
        install -D -m 0640 "$tmp" "$DESTDIR$settings"
        rm -f "$tmp"
        say "installed the settings file $settings (set GROQ_API_KEY there)"
    fi
    # AUTH=token (the default) signs its tokens with JWT_SECRET: a random one, once, when the settings
    # file has none (never replaced, so an upgrade keeps every token valid).  Not into a package
    # (NO_SECRET=1, debian/rules): its postinst makes one per host.
    if [ -z "${NO_SECRET:-}" ] && ! grep -q '^[[:space:]]*\(export[[:space:]]\+\)\?JWT_SECRET=..*' "$DESTDIR$settings"; then
        secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
        printf '\n# Written by conf/install.sh: the secret bearer tokens are signed with (keep it secret).\nJWT_SECRET=%s\n' \
            "$secret" >> "$DESTDIR$settings"
        say "wrote a random JWT_SECRET into $settings"
    fi
    mkdir -p "$DESTDIR$STATEDIR"
    chmod 0750 "$DESTDIR$STATEDIR"
    if [ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ] && id "$RUN_USER" >/dev/null 2>&1; then
        chown "root:$(id -gn "$RUN_USER")" "$settings"
        chown "$RUN_USER:$(id -gn "$RUN_USER")" "$STATEDIR"
    fi

    echo "$manifest" >> "$DESTDIR$manifest.new"
    mv "$DESTDIR$manifest.new" "$DESTDIR$manifest"
    say "installed into ${DESTDIR:-/}: $BINDIR/ai-chat-fcgi, $share, $MANDIR/man8/ai-chat-fcgi.8"
}

do_uninstall() {
    if [ -f "$DESTDIR$manifest" ]; then
        while IFS= read -r f; do
            case "$f" in
            "$BINDIR"/* | "$share"/* | "$MANDIR"/*) rm -f "$DESTDIR$f" ;;
            *) say "not removing $f (outside the install directories)" ;;
            esac
        done < "$DESTDIR$manifest"
    else
        say "no $manifest: removing the default list"
        rm -f "$DESTDIR$BINDIR/ai-chat-fcgi" "$DESTDIR$MANDIR/man8/ai-chat-fcgi.8"
        rm -rf "$DESTDIR$share"
    fi
    # Directories left empty (never the settings' or the database's).
    for d in "$share/docs/assets/swagger-ui" "$share/docs/assets/redoc" "$share/docs/assets" \
        "$share/docs" "$share/ui/vendor" "$share/ui" "$share/sql/sqlite" "$share/sql/postgres" "$share/sql" "$share/examples/systemd" "$share/examples" "$share"; do
        [ -d "$DESTDIR$d" ] && rmdir "$DESTDIR$d" 2>/dev/null || true
    done
    say "removed ai-chat-fcgi from ${DESTDIR:-/} (kept $settings and $STATEDIR)"
}

case "$action" in
install) do_install ;;
uninstall) do_uninstall ;;
*) echo "usage: $0 [install|uninstall]" >&2; exit 2 ;;
esac
