#!/usr/bin/env bash
# Write the ABI of a build's libiocp.so, as abigail-tools see it, to a file:
#   packaging/abi/dump.sh BUILD_DIR OUT.abi
# BUILD_DIR is a configured and built tree of iocptool (with debug
# information: RelWithDebInfo or Debug, as CI's builds are).  Only what the
# public headers declare counts (lib/include and the generated
# iocp/version.h): abidw --headers-dir drops the library's private types.
# No path of this machine goes into the file (no corpus or compilation
# directory, file names without folders), so that a committed dump is the
# same wherever it was made.  A release's dump is committed as
# packaging/abi/libiocp-MAJOR.MINOR.abi (packaging/README.md); check.sh
# compares a build with it.
set -euo pipefail
build=${1:?usage: packaging/abi/dump.sh BUILD_DIR OUT.abi}
out=${2:?usage: packaging/abi/dump.sh BUILD_DIR OUT.abi}
fail() { echo "abi-dump: $*" >&2; exit 1; }
command -v abidw >/dev/null || fail "abidw is not installed (bash .ci/deps installs abigail-tools)"

src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt" 2>/dev/null)
[ -n "$src" ] || fail "$build is not a configured build of iocptool"
lib=$build/lib/libiocp.so
[ -e "$lib" ] || fail "$lib is missing: build the iocp_shared target first"
lib=$(realpath "$lib")
case "$(readelf -S "$lib")" in
  *.debug_info*) ;;
  *) fail "$lib has no debug information (use RelWithDebInfo)" ;;
esac

abidw --headers-dir "$src/lib/include" --headers-dir "$build/lib/include" \
  --drop-private-types --drop-undefined-syms --no-elf-needed \
  --no-corpus-path --no-comp-dir-path --short-locs \
  --out-file "$out" "$lib"
echo "abi-dump: $(basename "$lib") ($(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')):" \
  "$(grep -c '<elf-symbol ' "$out") exported symbols -> $out"
