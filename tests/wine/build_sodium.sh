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
# through apt-get source, with a deb-src entry of its own in DIR: the
# system's apt configuration is neither needed nor changed.
set -euo pipefail

dir=${1:?usage: build_sodium.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
prefix=$dir/prefix
host=x86_64-w64-mingw32

if [ -f "$prefix/.done" ] && [ -f "$prefix/lib/libsodium.a" ]; then
  echo "build_sodium: $(cat "$prefix/.done") already in $prefix"
  exit 0
fi

# The suites of the system's own deb entries, as deb-src, in an apt state of
# our own: the source that matches the distribution the build runs on.
apt_dir=$dir/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
: >"$apt_dir/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] || continue
  sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\(http[^ ]*debian[^ ]*\) \([^ ]*\) .*/deb-src \2 \3 main/p' "$f" \
    >>"$apt_dir/sources.list"
done
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  # deb822: the Types/URIs/Suites stanzas of Debian's archive.
  awk '
    /^URIs:/ { uri = $2 }
    /^Suites:/ { $1 = ""; suites = $0 }
    /^$/ { emit() }
    END { emit() }
    function emit(   n, s, i) {
      if (uri ~ /debian/ && suites != "") {
        n = split(suites, s, " ")
        for (i = 1; i <= n; i++) print "deb-src " uri " " s[i] " main"
      }
      uri = ""; suites = ""
    }' "$f" >>"$apt_dir/sources.list"
done
if [ ! -s "$apt_dir/sources.list" ]; then
  echo "build_sodium: no Debian archive in /etc/apt to take the source from" >&2
  exit 1
fi
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
  -o "Debug::NoLocking=1" -q)
apt-get "${apt_opts[@]}" update >/dev/null
src=$dir/src
rm -rf "$src"
mkdir -p "$src"
(cd "$src" && apt-get "${apt_opts[@]}" source libsodium >/dev/null)
tree=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'libsodium-*' | head -n 1)
if [ -z "$tree" ]; then
  echo "build_sodium: apt-get source libsodium gave no source tree" >&2
  exit 1
fi
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
