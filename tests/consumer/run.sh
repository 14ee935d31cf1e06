#!/usr/bin/env bash
# Install libiocp and iocptool into a temporary prefix and use them the way
# a user does:
#   1. configure and build the project (tests off), `cmake --install` it into
#      a temporary prefix, and check the installed tree: the public headers
#      with the generated version.h and nothing from lib/src, both libraries,
#      the CMake package, iocp.pc, no path of the source or build tree
#   2. build tests/consumer against that prefix three ways (the CMake
#      package's iocp::iocp and iocp::iocp_static, and pkg-config) and run
#      each build; check which libiocp each one loads
#   3. build examples/ against that prefix the two ways docs/API.md shows
#      (its CMakeLists.txt with find_package, its Makefile with pkg-config)
#      and run the programs on every backend (tests/consumer/examples.sh)
#
#   tests/consumer/run.sh [BUILD_DIR [CMAKE_ARGS...]]
#
# BUILD_DIR (default: a temporary directory) is kept, so that the packaging
# step can make the DEB from the same build.  Exit status 0 when all passed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/iocp-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
build=${1:-$tmp/build}
[ $# -gt 0 ] && shift
fail() { echo "consumer: $*" >&2; exit 1; }

cmake -S "$root" -B "$build" -DIOCP_BUILD_TESTS=OFF "$@" >/dev/null
cmake --build "$build" -j "$jobs"
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
build=$(cd "$build" && pwd)

# ---- the installed tree ----
version=$(sed -n 's/^#define IOCP_VERSION_STRING "\(.*\)"$/\1/p' "$prefix/include/iocp/version.h")
[ -n "$version" ] || fail "include/iocp/version.h has no IOCP_VERSION_STRING"
(cd "$root/lib/include" && find . -name '*.h') | while read -r h; do
  [ -f "$prefix/include/$h" ] || fail "public header $h is not installed"
done
for h in "$root"/lib/src/*.h; do
  [ ! -e "$prefix/include/$(basename "$h")" ] && [ ! -e "$prefix/include/iocp/$(basename "$h")" ] ||
    fail "private header $(basename "$h") is installed"
done
config=$(find "$prefix" -name iocpConfig.cmake)
[ -n "$config" ] || fail "no iocpConfig.cmake"
libdir=$(dirname "$(dirname "$(dirname "$config")")")
for f in libiocp.a libiocp.so cmake/iocp/iocpConfigVersion.cmake pkgconfig/iocp.pc; do
  [ -e "$libdir/$f" ] || fail "$libdir/$f is missing"
done
# The soname: libiocp.so.0.MINOR before 1.0, libiocp.so.MAJOR after.
major=${version%%.*} minor=${version#*.}; minor=${minor%%.*}
want_soname=libiocp.so.$major
[ "$major" = 0 ] && want_soname=libiocp.so.0.$minor
soname=$(readelf -d "$libdir/libiocp.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "$want_soname" ] || fail "libiocp.so's soname is '$soname', not $want_soname"
[ -e "$libdir/$soname" ] || fail "$libdir/$soname is missing"
# Nothing installed may name the source or build tree (lib/src above all).
if leaks=$(grep -rIl -e "$root" -e "$build" "$prefix"); then
  fail "installed files name the source or build tree: $leaks"
fi
"$prefix/bin/iocptool" --version | head -1 | grep -qx "iocptool $version" ||
  fail "the installed iocptool does not say 'iocptool $version'"

export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
[ "$(pkg-config --modversion iocp)" = "$version" ] || fail "iocp.pc's version is not $version"
[ "$(pkg-config --variable=includedir iocp | xargs realpath)" = "$(realpath "$prefix/include")" ] ||
  fail "iocp.pc's includedir is not $prefix/include"
static_libs=$(pkg-config --static --libs iocp)
needs_uring=no
readelf -d "$libdir/libiocp.so" | grep -q 'NEEDED.*liburing' && needs_uring=yes
case "$needs_uring $static_libs" in
  "yes "*-luring*-lpthread* | "no "*-lpthread*) ;;
  *) fail "pkg-config --static --libs iocp: '$static_libs' (liburing needed: $needs_uring)" ;;
esac

# ---- the consumer, three ways ----
for via in package package-static pkg-config; do
  dir=$tmp/consumer-$via
  echo "consumer: building with $via"
  cmake -S "$root/tests/consumer" -B "$dir" -DIOCP_CONSUMER_VIA="$via" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$tmp/configure.log" ||
    { cat "$tmp/configure.log"; fail "$via: configure failed"; }
  grep -q "consumer: libiocp $version from $prefix/" "$tmp/configure.log" ||
    { cat "$tmp/configure.log"; fail "$via: did not find libiocp $version in $prefix"; }
  cmake --build "$dir" >/dev/null || fail "$via: build failed"
  loaded=$(ldd "$dir/consumer" | awk '/libiocp/ {print $3}')
  if [ "$via" = package-static ]; then
    [ -z "$loaded" ] || fail "$via: links $loaded instead of the static library"
  else
    [ "$(realpath "$loaded")" = "$(realpath "$libdir/$soname")" ] ||
      fail "$via: loads '$loaded', not $libdir/$soname"
  fi
  "$dir/consumer" || fail "$via: the consumer failed"
done

# ---- the examples, two ways ----
backends=$("$prefix/bin/iocptool" --version | sed -n 's/^backends: \([^(]*\) (.*/\1/p')
[ -n "$backends" ] || fail "iocptool --version names no backend"
dir=$tmp/examples-package
echo "consumer: building examples/ with find_package"
cmake -S "$root/examples" -B "$dir" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_COMPILE_WARNING_AS_ERROR=ON >"$tmp/configure.log" ||
  { cat "$tmp/configure.log"; fail "examples: configure failed"; }
grep -q "examples: libiocp $version from $prefix/" "$tmp/configure.log" ||
  { cat "$tmp/configure.log"; fail "examples: did not find libiocp $version in $prefix"; }
cmake --build "$dir" >/dev/null || fail "examples: build with find_package failed"
# shellcheck disable=SC2086 # one argument per backend
bash "$root/tests/consumer/examples.sh" "$dir" $backends
dir=$tmp/examples-pkg-config
echo "consumer: building examples/ with pkg-config (examples/Makefile)"
mkdir "$dir"
make -s -C "$root/examples" O="$dir" CFLAGS="-O2 -g -Werror" LDFLAGS="-Wl,-rpath,$libdir" ||
  fail "examples: build with pkg-config failed"
loaded=$(ldd "$dir/echo_server" | awk '/libiocp/ {print $3}')
[ "$(realpath "$loaded")" = "$(realpath "$libdir/$soname")" ] ||
  fail "examples: pkg-config build loads '$loaded', not $libdir/$soname"
# shellcheck disable=SC2086
bash "$root/tests/consumer/examples.sh" "$dir" $backends
echo "consumer: libiocp $version installed, found and used three ways; examples built two ways and run"
