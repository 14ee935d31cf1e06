#!/usr/bin/env bash
# OpenSSL 3 for the Windows cross-build, which Debian does not package for
# mingw-w64: Debian's own source package, cross-compiled as static libcrypto
# and libssl only (no apps, tests, docs or DLLs).
#
#   tests/wine/build_openssl.sh [CACHE]
#
# A cold build takes about 6 minutes of CPU (370 s measured: the source,
# Configure, 717 files, the install; 3 minutes on two idle cores), so it is
# kept outside the clone, keyed by the source version, in
# CACHE/openssl-VERSION-mingw64/prefix (CACHE defaults to $IOCP_CI_CACHE,
# else $HOME/.cache/iocptool-ci); tests/run.sh starts it in the background
# at the beginning of the run.  A fresh machine builds it
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
# The rest leaves out what iocptool's TLS never reaches, so that a cold
# build is short: TLS 1.2 and 1.3 only, no DTLS, no legacy provider or
# deprecated API, none of the ciphers, digests and message formats that
# TLS 1.2/1.3 with the common suites (AES-GCM, ChaCha20-Poly1305; ECDHE,
# DHE; RSA, ECDSA, Ed25519 certificates) does not use.  A private key
# file encrypted with DES (old `genrsa -des3`) is therefore refused.
config=(no-shared no-module no-engine no-dso no-tests no-legacy no-deprecated
  no-autoload-config no-async
  no-ssl3 no-tls1 no-tls1_1 no-dtls no-sctp no-srtp no-srp no-ssl-trace no-comp
  no-idea no-camellia no-aria no-bf no-cast no-des no-seed no-rc2 no-rc4 no-rc5
  no-md4 no-mdc2 no-rmd160 no-whirlpool no-sm2 no-sm3 no-sm4 no-gost
  no-siphash no-siv no-ocb no-blake2 no-scrypt no-ec2m no-dsa
  no-cms no-ts no-cmp no-ct no-ocsp no-rfc3779)
./Configure mingw64 --cross-compile-prefix="$host-" --prefix="$prefix" --libdir=lib \
  "${config[@]}" >"$dir/configure.log" 2>&1 || {
  tail -n 30 "$dir/configure.log" >&2
  exit 1
}
# Only the two libraries and the provider code inside them: not the
# helper library of the openssl program that build_libs also makes.
libs="libcrypto.a libssl.a providers/libcommon.a providers/libdefault.a"
make -j "$(nproc 2>/dev/null || echo 2)" build_libs LIBS="$libs" >"$dir/make.log" 2>&1 || {
  tail -n 30 "$dir/make.log" >&2
  exit 1
}
make install_dev LIBS="$libs" >>"$dir/make.log" 2>&1
end=$(date +%s)
# Linked statically, libcrypto needs these system libraries after it.
for pc in "$prefix"/lib/pkgconfig/libcrypto.pc "$prefix"/lib/pkgconfig/openssl.pc; do
  [ -f "$pc" ] && sed -i 's/^Libs: \(.*\)$/Libs: \1 -lws2_32 -lgdi32 -lcrypt32 -luser32 -ladvapi32/' "$pc"
done
echo "openssl $version, $((end - start)) s to build" >"$prefix/.done"
rm -rf "$dir/src"
echo "build_openssl: openssl $version built for $host in $((end - start)) s" >&2
echo "$prefix"
