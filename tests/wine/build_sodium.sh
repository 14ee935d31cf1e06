#!/usr/bin/env bash
# libsodium for the Windows cross-build, which Debian does not package for
# mingw-w64: Debian's own source package, cross-compiled as a static library.
#
#   tests/wine/build_sodium.sh DIR
#
# Builds into DIR (in the build tree) and installs into DIR/prefix, with its
# libsodium.pc in DIR/prefix/lib/pkgconfig; configure the mingw-w64 build
# with -DIOCP_MINGW_EXTRA_PREFIX=DIR/prefix to use it.  A finished build is
# kept (DIR/prefix/.done names the source it came from), so CI pays for it
# once per build tree.  The source comes from the distribution's archive
# through apt-get source (tests/wine/debian_source.sh), with an apt state
# of its own in DIR/apt: the system's apt configuration is neither needed
# nor changed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/wine/debian_source.sh
. "$here/debian_source.sh"

dir=${1:?usage: build_sodium.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
prefix=$dir/prefix
host=x86_64-w64-mingw32

if [ -f "$prefix/.done" ] && [ -f "$prefix/lib/libsodium.a" ]; then
  echo "build_sodium: $(cat "$prefix/.done") already in $prefix"
  exit 0
fi

debian_source_init "$dir"
tree=$(debian_source_fetch libsodium "$dir/src") || {
  echo "build_sodium: no libsodium source could be fetched" >&2
  exit 1
}
version=$(basename "$tree")

# Debian's source is upstream's git tree, without the generated configure
# (Debian's build runs dh-autoreconf): generate it the same way.
cd "$tree"
autoreconf -fi >"$dir/autoreconf.log" 2>&1 || {
  tail -n 30 "$dir/autoreconf.log" >&2
  exit 1
}
# Static only: iocptool.exe must need no DLL beyond the system's.  No stack
# protector: with mingw-w64 it would need libssp, one more library to carry.
./configure --host="$host" --prefix="$prefix" --disable-shared --enable-static \
  --disable-ssp --disable-dependency-tracking CFLAGS="-O2" >"$dir/configure.log" 2>&1 || {
  tail -n 30 "$dir/configure.log" >&2
  exit 1
}
make -j "$(nproc 2>/dev/null || echo 2)" >"$dir/make.log" 2>&1 || {
  tail -n 30 "$dir/make.log" >&2
  exit 1
}
make install >>"$dir/make.log" 2>&1
# Linked statically, its declarations must not ask for a DLL's imports, and
# its random generator (RtlGenRandom) lives in advapi32.
sed -i -e 's/^Cflags: \(.*\)$/Cflags: \1 -DSODIUM_STATIC/' \
  -e 's/^Libs: \(.*\)$/Libs: \1 -ladvapi32/' "$prefix/lib/pkgconfig/libsodium.pc"
echo "$version" >"$prefix/.done"
echo "build_sodium: $version built for $host in $prefix"
