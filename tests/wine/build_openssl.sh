#!/usr/bin/env bash
# OpenSSL 3 for the Windows cross-build, which Debian does not package for
# mingw-w64: Debian's own source package, cross-compiled as static libcrypto
# and libssl only (no apps, tests, docs or DLLs).
#
#   tests/wine/build_openssl.sh [CACHE]
#
# A build takes minutes, so it is kept outside the clone, keyed by the
# source version: CACHE/openssl-VERSION-mingw64/prefix (CACHE defaults to
# $IOCP_CI_CACHE, else $HOME/.cache/iocptool-ci).  A fresh machine builds it
# once; a new Debian version builds beside the old one.  The last line
# printed is the prefix: configure the mingw-w64 build with
# -DIOCP_MINGW_EXTRA_PREFIX=PREFIX (its lib/pkgconfig holds openssl.pc).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/wine/debian_source.sh
. "$here/debian_source.sh"

cache=${1:-${IOCP_CI_CACHE:-$HOME/.cache/iocptool-ci}}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
host=x86_64-w64-mingw32

work=$cache/openssl-work
mkdir -p "$work"
debian_source_init "$work"
versions=$(debian_source_versions openssl)
[ -n "$versions" ] || { echo "build_openssl: no openssl source in the archive" >&2; exit 1; }
# The newest version already built, else the newest the mirror hands out.
tree=
for version in $versions; do
  dir=$cache/openssl-$version-mingw64
  prefix=$dir/prefix
  if [ -f "$prefix/.done" ] && [ -f "$prefix/lib/libssl.a" ]; then
    echo "build_openssl: openssl $version already built" >&2
    echo "$prefix"
    exit 0
  fi
done
for version in $versions; do
  dir=$cache/openssl-$version-mingw64
  prefix=$dir/prefix
  mkdir -p "$dir"
  if tree=$(debian_source_fetch openssl "$dir/src" "$version"); then
    break
  fi
  echo "build_openssl: openssl $version not on the mirror, trying an older one" >&2
  rm -rf "$dir"
  tree=
done
[ -n "$tree" ] || { echo "build_openssl: no openssl source could be fetched" >&2; exit 1; }
cd "$tree"
start=$(date +%s)
# Static libraries with every provider inside libcrypto (no-module): the
# .exe must need no DLL beyond the system's.  no-engine/no-dso: nothing is
# loaded at run time.  --libdir=lib: the MinGW layout, not lib64.
./Configure mingw64 --cross-compile-prefix="$host-" --prefix="$prefix" --libdir=lib \
  no-shared no-module no-engine no-dso no-tests no-apps no-docs >"$dir/configure.log" 2>&1 || \
./Configure mingw64 --cross-compile-prefix="$host-" --prefix="$prefix" --libdir=lib \
  no-shared no-module no-engine no-dso no-tests >"$dir/configure.log" 2>&1 || {
  tail -n 30 "$dir/configure.log" >&2
  exit 1
}
make -j "$(nproc 2>/dev/null || echo 2)" build_libs >"$dir/make.log" 2>&1 || {
  tail -n 30 "$dir/make.log" >&2
  exit 1
}
make install_dev >>"$dir/make.log" 2>&1
end=$(date +%s)
# Linked statically, libcrypto needs these system libraries after it.
for pc in "$prefix"/lib/pkgconfig/libcrypto.pc "$prefix"/lib/pkgconfig/openssl.pc; do
  [ -f "$pc" ] && sed -i 's/^Libs: \(.*\)$/Libs: \1 -lws2_32 -lgdi32 -lcrypt32 -luser32 -ladvapi32/' "$pc"
done
echo "openssl $version, $((end - start)) s to build" >"$prefix/.done"
rm -rf "$dir/src"
echo "build_openssl: openssl $version built for $host in $((end - start)) s" >&2
echo "$prefix"
