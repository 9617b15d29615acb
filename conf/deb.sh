#!/bin/sh
# make deb: builds build/deb/ai-chat-fcgi_<version>_<arch>.deb with Debian's tools.  The packaging
# (conf/debian/) is copied into a copy of the source tree (build/deb/ai-chat-fcgi-<version>/debian),
# so the top level stays as it is; then dpkg-buildpackage builds the binary package and lintian
# checks it (an error fails the build).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' "$top/conf/debian/changelog")
out=$top/build/deb
tree=$out/ai-chat-fcgi-$version

rm -rf "$out"
mkdir -p "$tree"
# The source: what git tracks (or, outside a checkout, the tree without build products), and the two
# documentation assets the docs pages load (from conf/docs/node_modules, installed by make docs).
cd "$top"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c \
        '[ -f "$1" ] && mkdir -p "$2/$(dirname "$1")" && cp -p "$1" "$2/$1" || true' sh {} "$tree"
else
    tar --exclude=./build --exclude=./run --exclude=./conf/docs/node_modules -cf - . | (cd "$tree" && tar -xf -)
fi
for d in conf/docs/node_modules/swagger-ui-dist conf/docs/node_modules/redoc/bundles; do
    if [ -d "$d" ]; then
        mkdir -p "$tree/$d"
        cp -rp "$d/." "$tree/$d/"
    fi
done
rm -rf "$tree/debian"
cp -rp "$top/conf/debian" "$tree/debian"

cd "$tree"
# Not the caller's make flags (make test SANITIZE=1 must not build a sanitized package).
unset MAKEFLAGS MFLAGS MAKELEVEL SANITIZE
dpkg-buildpackage -b -us -uc >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
deb=$(ls "$out"/ai-chat-fcgi_"$version"_*.deb)
echo "deb: built $deb"
# lintian: errors fail; warnings are printed.
if ! lintian --fail-on error --tag-display-limit 0 "$deb" >"$out/lintian.log" 2>&1; then
    cat "$out/lintian.log"
    echo "deb: lintian found errors"
    exit 1
fi
sed 's/^/deb: lintian: /' "$out/lintian.log"
echo "deb: lintian: no errors"
