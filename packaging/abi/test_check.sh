#!/usr/bin/env bash
# The verdicts of packaging/abi/check.sh, with abidiff itself, on the ABI of
# a build and copies of it changed the way a release could change it:
#   packaging/abi/test_check.sh BUILD_DIR
#   1. the same ABI                                   -> 0, "unchanged"
#   2. a function added                               -> 0, "compatibly"
#   3. a function removed, the same soname            -> 1, "FAIL"
#   4. a function removed, a new soname               -> 0, "incompatibly ... soname changed"
#   5. a config struct's member moved, same soname    -> 1, "FAIL" (no symbol
#      is removed: abidiff calls this "maybe compatible", check.sh may not)
# Ends with "N passed, M failed"; exit 0 when all passed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: packaging/abi/test_check.sh BUILD_DIR}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/iocp-abitest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

bash "$here/dump.sh" "$build" "$tmp/abi" >/dev/null
soname=$(sed -n "1s/.* soname='\([^']*\)'.*/\1/p" "$tmp/abi")
# Drop one exported function (its symbol and its declaration): the first
# one the dump declares.
fn=$(sed -n "s/^ *<function-decl name='\([A-Za-z0-9_]*\)' .*elf-symbol-id=.*/\1/p" "$tmp/abi" | head -n 1)
[ -n "$fn" ] && grep -q "<elf-symbol name='$fn'" "$tmp/abi" ||
  { echo "abi-test: no exported function in the ABI of $build" >&2; exit 1; }
sed -e "/<elf-symbol name='$fn' /d" -e "/<function-decl name='$fn' .*[^/]>$/,/<\/function-decl>/d" \
  -e "/<function-decl name='$fn' .*\/>$/d" "$tmp/abi" >"$tmp/abi-less"
! grep -q "name='$fn'" "$tmp/abi-less" || { echo "abi-test: could not take $fn out" >&2; exit 1; }
sed "1s/ soname='[^']*'/ soname='$soname.test'/" "$tmp/abi" >"$tmp/abi-other-soname"
# Move the second member of the first iocp_*_config struct 64 bits on.
python3 - "$tmp/abi" "$tmp/abi-moved" <<'PY'
import re, sys
src = open(sys.argv[1]).read().split('\n')
inside, moved = False, False
for i, line in enumerate(src):
    if re.search(r"<class-decl name='iocp_[a-z0-9_]+_config'", line) and not line.rstrip().endswith('/>'):
        inside = True
    elif inside and '</class-decl>' in line:
        inside = False
    elif inside and not moved:
        m = re.search(r"layout-offset-in-bits='(\d+)'", line)
        if m and int(m.group(1)) > 0:
            src[i] = line.replace(m.group(0), "layout-offset-in-bits='%d'" % (int(m.group(1)) + 64))
            moved = True
if not moved:
    sys.exit('abi-test: no iocp_*_config struct with two members in the ABI')
open(sys.argv[2], 'w').write('\n'.join(src))
PY

expect() { # NAME STATUS WORDS OLD NEW
  local name=$1 want=$2 words=$3 rc=0
  bash "$here/check.sh" --compare "$4" "$5" >"$tmp/out" 2>&1 || rc=$?
  if [ "$rc" = "$want" ] && grep -q "^abi: .*$words" "$tmp/out"; then
    echo "PASS $name: $(grep '^abi:' "$tmp/out")"
    passed=$((passed + 1))
  else
    echo "FAIL $name: status $rc (want $want), no '$words' in:"
    cat "$tmp/out"
    failed=$((failed + 1))
  fi
}
expect "same ABI" 0 "is unchanged" "$tmp/abi" "$tmp/abi"
expect "a function added" 0 "changed compatibly" "$tmp/abi-less" "$tmp/abi"
expect "a function removed, same soname" 1 "FAIL: .*INCOMPATIBLY.*soname stays" "$tmp/abi" "$tmp/abi-less"
expect "a function removed, new soname" 0 "incompatibly.*soname changed" "$tmp/abi-other-soname" "$tmp/abi-less"
expect "a config member moved, same soname" 1 "FAIL: .*INCOMPATIBLY" "$tmp/abi" "$tmp/abi-moved"
echo "abi-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
