#!/usr/bin/env bash
# Make the DEBs from a configured and built tree and check them:
#   packaging/check_deb.sh BUILD_DIR
#   1. cpack -G DEB in BUILD_DIR (configured with -DCMAKE_INSTALL_PREFIX=/usr):
#      iocptool, libiocp<SOVERSION> (named after the soname) and libiocp-dev
#   2. dpkg-deb -I: names, version (the project's), sections, and Depends:
#      every shared library the binaries need comes from a package named
#      there; libiocp-dev depends on this very libiocp<SOVERSION>
#   3. the contents (dpkg-deb -x): each file in its package, the libraries
#      in Debian's multiarch directory, all under /usr
#   4. lintian: no error (warnings and notes are printed)
#   5. as root (sudo if needed): install all three, then /usr/bin/iocptool
#      --version, pkg-config, and tests/consumer built against the installed
#      libiocp-dev (CMake package, shared and static, and pkg-config) and
#      run; then purging all three leaves nothing.  Without root this
#      step is skipped, or fails when IOCP_TEST_REQUIRE_ALL=1 (CI).
set -euo pipefail
build=${1:?usage: packaging/check_deb.sh BUILD_DIR}
build=$(cd "$build" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
fail() { echo "check_deb: $*" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/iocp-deb.XXXXXX")
installed=()
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
# Through apt, which waits for dpkg's lock (another install on the machine)
# instead of failing at once; the packages' dependencies are installed
# already (.ci/deps).
apt_opts=(-y -q -o DPkg::Lock::Timeout=600)
cleanup() {
  if [ ${#installed[@]} -gt 0 ]; then
    $SUDO apt-get purge "${apt_opts[@]}" "${installed[@]}" >/dev/null ||
      echo "check_deb: apt-get purge ${installed[*]} failed" >&2
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[ -n "$version" ] || fail "$build is not a configured build of iocptool"
major=${version%%.*} minor=${version#*.}; minor=${minor%%.*}
soversion=$major
[ "$major" = 0 ] && soversion=0.$minor
runtime=libiocp$soversion
packages=(iocptool "$runtime" libiocp-dev)

rm -f "$build"/*.deb
(cd "$build" && cpack -G DEB >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; fail "cpack -G DEB failed"; }
debs=("$build"/*.deb)
[ ${#debs[@]} -eq 3 ] || fail "cpack made ${#debs[@]} packages, not 3: $(cd "$build" && ls ./*.deb)"
declare -A deb
arch=$(dpkg --print-architecture)
for p in "${packages[@]}"; do
  deb[$p]=$(ls "$build/${p}_"*"_$arch.deb" 2>/dev/null) || fail "no $p package (made: $(cd "$build" && ls ./*.deb))"
  echo "check_deb: $(basename "${deb[$p]}")"
done

# ---- control ----
field() { dpkg-deb -f "${deb[$1]}" "$2"; }
declare -A section=([iocptool]=net [$runtime]=libs [libiocp-dev]=libdevel)
for p in "${packages[@]}"; do
  dpkg-deb -I "${deb[$p]}" | sed -n '/^ Package:/,$p'
  [ "$(field "$p" Package)" = "$p" ] || fail "Package is '$(field "$p" Package)', not $p"
  case "$(field "$p" Version)" in "$version"|"$version"-*) ;; *) fail "$p: Version '$(field "$p" Version)' is not $version";; esac
  [ "$(field "$p" Architecture)" = "$arch" ] || fail "$p: Architecture is '$(field "$p" Architecture)'"
  [ "$(field "$p" Section)" = "${section[$p]}" ] || fail "$p: Section is '$(field "$p" Section)', not ${section[$p]}"
  [ -n "$(field "$p" Depends)" ] || fail "$p: no Depends"
done
deb_version=$(field "$runtime" Version)
grep -Eq "(^|, )$runtime \(= $deb_version\)(,|$)" <<<"$(field libiocp-dev Depends)" ||
  fail "libiocp-dev does not depend on $runtime (= $deb_version): '$(field libiocp-dev Depends)'"
shlibs=$(dpkg-deb --ctrl-tarfile "${deb[$runtime]}" | tar -xO ./shlibs 2>/dev/null) || shlibs=
[ "$shlibs" = "libiocp $soversion $runtime (>= $deb_version)" ] ||
  fail "$runtime's shlibs is '$shlibs', not 'libiocp $soversion $runtime (>= $deb_version)'"

# ---- contents ----
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
lib=usr/lib/$multiarch
for p in "${packages[@]}"; do
  dpkg-deb -x "${deb[$p]}" "$tmp/$p"
  outside=$(cd "$tmp/$p" && find . -mindepth 1 -maxdepth 1 ! -name usr)
  [ -z "$outside" ] || fail "$p: files outside /usr: $outside"
  for f in copyright changelog.Debian.gz; do
    [ -f "$tmp/$p/usr/share/doc/$p/$f" ] || fail "$p: no /usr/share/doc/$p/$f"
  done
done
has() { # package file...
  local p=$1; shift
  for f in "$@"; do [ -e "$tmp/$p/$f" ] || [ -L "$tmp/$p/$f" ] || fail "/$f is not in $p"; done
}
lacks() { # package file...
  local p=$1; shift
  for f in "$@"; do [ ! -e "$tmp/$p/$f" ] && [ ! -L "$tmp/$p/$f" ] || fail "/$f is in $p"; done
}
has iocptool usr/bin/iocptool usr/share/man/man1/iocptool.1.gz \
  usr/share/bash-completion/completions/iocptool
lacks iocptool "$lib" usr/include
has "$runtime" "$lib/libiocp.so.$soversion" "$lib/libiocp.so.$version"
lacks "$runtime" usr/bin usr/include "$lib/libiocp.so" "$lib/libiocp.a"
has libiocp-dev usr/include/iocp.h usr/include/iocp/version.h "$lib/libiocp.a" "$lib/libiocp.so" \
  "$lib/pkgconfig/iocp.pc" "$lib/cmake/iocp/iocpConfig.cmake" "$lib/cmake/iocp/iocpConfigVersion.cmake"
lacks libiocp-dev usr/bin "$lib/libiocp.so.$soversion"
[ "$(readlink "$tmp/libiocp-dev/$lib/libiocp.so")" = "libiocp.so.$soversion" ] ||
  fail "libiocp-dev's libiocp.so points at '$(readlink "$tmp/libiocp-dev/$lib/libiocp.so")'"
soname=$(readelf -d "$tmp/$runtime/$lib/libiocp.so.$soversion" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libiocp.so.$soversion" ] || fail "the soname is '$soname', not libiocp.so.$soversion"

# Every shared library the binaries need comes from a package Depends names.
for bin in "$tmp/iocptool/usr/bin/iocptool:iocptool" "$tmp/$runtime/$lib/libiocp.so.$version:$runtime"; do
  p=${bin##*:} bin=${bin%:*}
  depends=$(field "$p" Depends)
  for needed in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    pkgs=$(dpkg -S "*/$needed" 2>/dev/null | sed 's/[:,].*//' | sort -u) ||
      fail "no installed package has $needed"
    found=no
    for q in $pkgs; do
      grep -Eq "(^|, )$q( |,|$)" <<<"$depends" && found=yes
    done
    [ "$found" = yes ] || fail "$(basename "$bin") needs $needed ($pkgs) but $p's Depends is '$depends'"
    echo "check_deb: $(basename "$bin") needs $needed:" $pkgs "in $p's Depends"
  done
done

# ---- lintian ----
command -v lintian >/dev/null || fail "lintian is not installed (bash .ci/deps installs it)"
# Root is what CI is: lintian only says it would rather not be.
lintian --fail-on error --display-info --pedantic "${debs[@]}" 2>&1 |
  grep -v '^running with root privileges' | tee "$tmp/lintian.log" || fail "lintian found errors"
echo "check_deb: lintian: $(grep -c '^E:' "$tmp/lintian.log" || true) errors," \
  "$(grep -c '^W:' "$tmp/lintian.log" || true) warnings, $(grep -c '^[IP]:' "$tmp/lintian.log" || true) notes"

# ---- install, use, remove ----
if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
  [ "${IOCP_TEST_REQUIRE_ALL:-0}" = 1 ] && fail "installing the DEBs needs root or sudo"
  echo "check_deb: SKIPPED installing the DEBs (needs root or sudo)"
  exit 0
fi
for p in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    fail "a package $p is installed already; remove it first (dpkg -r $p)"
  fi
done
[ ! -e /usr/bin/iocptool ] || fail "/usr/bin/iocptool exists outside any package"
[ ! -e "/$lib/libiocp.so" ] || fail "/$lib/libiocp.so exists outside any package"
installed=("${packages[@]}")
$SUDO apt-get install "${apt_opts[@]}" --no-install-recommends "${deb[@]}"
/usr/bin/iocptool --version
/usr/bin/iocptool --version | head -1 | grep -qx "iocptool $version" ||
  fail "/usr/bin/iocptool --version does not say 'iocptool $version'"
[ "$(env -u PKG_CONFIG_PATH pkg-config --modversion iocp)" = "$version" ] ||
  fail "pkg-config does not find iocp $version in /usr"

# tests/consumer against the installed libiocp-dev, found in /usr alone.
for via in package package-static pkg-config; do
  dir=$tmp/consumer-$via
  env -u PKG_CONFIG_PATH -u CMAKE_PREFIX_PATH cmake -S "$root/tests/consumer" -B "$dir" \
    -DIOCP_CONSUMER_VIA="$via" >"$tmp/configure.log" ||
    { cat "$tmp/configure.log"; fail "consumer ($via): configure failed"; }
  grep -q "consumer: libiocp $version from /usr/lib/$multiarch" "$tmp/configure.log" ||
    { cat "$tmp/configure.log"; fail "consumer ($via): did not find libiocp $version in /$lib"; }
  cmake --build "$dir" >/dev/null || fail "consumer ($via): build failed"
  loaded=$(ldd "$dir/consumer" | awk '/libiocp/ {print $3}')
  if [ "$via" = package-static ]; then
    [ -z "$loaded" ] || fail "consumer ($via): loads $loaded instead of linking libiocp.a"
  else
    [ "$(realpath "$loaded")" = "$(realpath "/$lib/libiocp.so.$soversion")" ] ||
      fail "consumer ($via): loads '$loaded', not /$lib/libiocp.so.$soversion"
  fi
  "$dir/consumer" >/dev/null || fail "consumer ($via): failed"
  echo "check_deb: tests/consumer built with the installed libiocp-dev ($via) and ran"
done

$SUDO apt-get purge "${apt_opts[@]}" "${packages[@]}" >/dev/null
installed=()
for f in /usr/bin/iocptool "/$lib/libiocp.so" "/$lib/libiocp.so.$soversion" /usr/include/iocp.h \
         "/usr/share/doc/$runtime"; do
  [ ! -e "$f" ] || fail "purging left $f behind"
done
for p in "${packages[@]}"; do
  ! dpkg-query -W "$p" >/dev/null 2>&1 || fail "dpkg still knows $p after --purge"
done
echo "check_deb: installed ${packages[*]}, ran /usr/bin/iocptool --version, built and ran" \
  "tests/consumer against them, removed them"
