#!/usr/bin/env bash
# Make the DEB from a configured and built tree and check it:
#   packaging/check_deb.sh BUILD_DIR
#   1. cpack -G DEB in BUILD_DIR (configured with -DCMAKE_INSTALL_PREFIX=/usr)
#   2. dpkg-deb -I: name, version (the project's), and a Depends that names
#      the package of every shared library iocptool and libiocp.so need
#   3. the contents (dpkg-deb -x): the tool, both libraries, headers,
#      iocp.pc and the CMake package, all under /usr
#   4. as root (sudo if needed): dpkg -i, then /usr/bin/iocptool --version
#      and pkg-config see it, then dpkg -r (and --purge, for dpkg's own
#      record: the ldconfig trigger's postrm keeps one) leaves nothing.  Without
#      root this step is skipped, or fails when IOCP_TEST_REQUIRE_ALL=1 (CI).
set -euo pipefail
build=${1:?usage: packaging/check_deb.sh BUILD_DIR}
fail() { echo "check_deb: $*" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/iocp-deb.XXXXXX")
installed=
cleanup() {
  if [ -n "$installed" ]; then
    $SUDO dpkg --purge iocptool >/dev/null || echo "check_deb: dpkg --purge iocptool failed" >&2
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[ -n "$version" ] || fail "$build is not a configured build of iocptool"
rm -f "$build"/iocptool_*.deb
(cd "$build" && cpack -G DEB >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; fail "cpack -G DEB failed"; }
deb=$(ls "$build"/iocptool_*.deb)
echo "check_deb: $(basename "$deb")"

# ---- control ----
dpkg-deb -I "$deb"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = iocptool ] || fail "Package is '$(field Package)'"
case "$(field Version)" in "$version"|"$version"-*) ;; *) fail "Version '$(field Version)' is not $version";; esac
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture is '$(field Architecture)'"
depends=$(field Depends)
[ -n "$depends" ] || fail "no Depends"

# ---- contents ----
dpkg-deb -x "$deb" "$tmp/root"
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
for f in usr/bin/iocptool usr/include/iocp.h usr/include/iocp/version.h \
         "usr/lib/$multiarch/libiocp.a" "usr/lib/$multiarch/libiocp.so.0" \
         "usr/lib/$multiarch/pkgconfig/iocp.pc" "usr/lib/$multiarch/cmake/iocp/iocpConfig.cmake" \
         usr/share/bash-completion/completions/iocptool; do
  [ -e "$tmp/root/$f" ] || fail "/$f is not in the package"
done
outside=$(cd "$tmp/root" && find . -mindepth 1 -maxdepth 1 ! -name usr)
[ -z "$outside" ] || fail "files outside /usr: $outside"

# Every shared library the binaries need comes from a package Depends names.
for bin in "$tmp/root/usr/bin/iocptool" "$tmp/root/usr/lib/$multiarch/libiocp.so.0"; do
  for soname in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    pkgs=$(dpkg -S "*/$soname" 2>/dev/null | sed 's/[:,].*//' | sort -u) ||
      fail "no installed package has $soname"
    found=no
    for p in $pkgs; do
      grep -Eq "(^|, )$p( |,|$)" <<<"$depends" && found=yes
    done
    [ "$found" = yes ] || fail "$(basename "$bin") needs $soname ($pkgs) but Depends is '$depends'"
    echo "check_deb: $(basename "$bin") needs $soname:" $pkgs "in Depends"
  done
done

# ---- install, use, remove ----
if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
  [ "${IOCP_TEST_REQUIRE_ALL:-0}" = 1 ] && fail "installing the DEB needs root or sudo"
  echo "check_deb: SKIPPED installing the DEB (needs root or sudo)"
  exit 0
fi
if dpkg-query -W -f='${Status}' iocptool 2>/dev/null | grep -q "ok installed"; then
  fail "a package iocptool is installed already; remove it first (dpkg -r iocptool)"
fi
[ ! -e /usr/bin/iocptool ] || fail "/usr/bin/iocptool exists outside any package"
$SUDO dpkg -i "$deb"
installed=yes
/usr/bin/iocptool --version
/usr/bin/iocptool --version | head -1 | grep -qx "iocptool $version" ||
  fail "/usr/bin/iocptool --version does not say 'iocptool $version'"
[ "$(env -u PKG_CONFIG_PATH pkg-config --modversion iocp)" = "$version" ] ||
  fail "pkg-config does not find iocp $version in /usr"
$SUDO dpkg -r iocptool >/dev/null
installed=
[ ! -e /usr/bin/iocptool ] && [ ! -e "/usr/lib/$multiarch/libiocp.so.0" ] ||
  fail "dpkg -r left files behind"
$SUDO dpkg --purge iocptool >/dev/null
! dpkg-query -W iocptool >/dev/null 2>&1 || fail "dpkg still knows iocptool after --purge"
echo "check_deb: installed, ran /usr/bin/iocptool --version, removed"
