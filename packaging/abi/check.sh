#!/usr/bin/env bash
# Compare the ABI of a build's libiocp.so with the previous release's:
#   packaging/abi/check.sh BUILD_DIR
#   packaging/abi/check.sh --compare OLD.abi NEW.abi   (two dumps; for tests)
#
# The previous release is the newest packaging/abi/libiocp-MAJOR.MINOR.abi
# not newer than the build's MAJOR.MINOR.  dump.sh writes the build's ABI
# the way that file was written, and abidiff compares the two with the
# soname set aside, so that the interfaces alone are judged:
#   unchanged, or functions and variables added only
#                                     -> exit 0: compatible, says which
#   a function or variable removed, or changed (its type, a type it reaches:
#   a struct's layout, an enum's values...)
#                                     -> incompatible: programs linked
#                                        against the old library may break
#     ... and the soname changed      -> exit 0: the expected break of a new
#                                        0.MINOR (or MAJOR); reported
#     ... with the same soname        -> exit 1: bump the minor version (the
#                                        soname is 0.MINOR before 1.0) or
#                                        keep the old interfaces
# abidiff itself sets its "incompatible" bit only for removed symbols; a
# changed layout is "maybe compatible" to it, so the counts of its summary
# decide here.  That counts a member appended to a struct that carries its
# size as incompatible too: abidiff's suppression for such growth
# (has_data_member_inserted_at = end) also hides moved members and changed
# member types, so none is used, and a release that only appends to such a
# struct is judged by a person (the report shows it).  An abidiff error is
# exit 2.  The full report is printed whenever something changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "abi: $*" >&2; exit 2; }
command -v abidiff >/dev/null || fail "abidiff is not installed (bash .ci/deps installs abigail-tools)"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/iocp-abi.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

soname_of() { sed -n "1s/.* soname='\([^']*\)'.*/\1/p" "$1"; }

# compare OLD.abi NEW.abi: the verdict, as above.
compare() {
  local old=$1 new=$2 old_soname new_soname rc=0
  old_soname=$(soname_of "$old")
  new_soname=$(soname_of "$new")
  [ -n "$old_soname" ] && [ -n "$new_soname" ] || fail "a dump without a soname: $old or $new"
  # The interfaces alone: the old dump under the new soname.
  sed "1s/ soname='[^']*'/ soname='$new_soname'/" "$old" >"$tmp/old-as-new.abi"
  abidiff --no-default-suppression "$tmp/old-as-new.abi" "$new" >"$tmp/report" 2>&1 || rc=$?
  if (( rc & 3 )); then
    cat "$tmp/report" >&2
    fail "abidiff failed (status $rc)"
  fi
  # "Functions changes summary: 0 Removed, 1 Changed (2 filtered out), 0 Added
  # functions", the same for variables and for symbols without debug info.
  local removed changed added filtered
  count() { { grep 'changes summary:' "$tmp/report" || true; } | { grep -o "[0-9]* $1" || true; } |
    awk '{n += $1} END {print n + 0}'; }
  removed=$(count Removed) changed=$(count Changed) added=$(count Added) filtered=$(count filtered)
  local soname_note="the soname stays $new_soname"
  [ "$old_soname" = "$new_soname" ] || soname_note="the soname changed from $old_soname to $new_soname"
  if (( rc & 8 || removed > 0 || changed > 0 || (rc & 4 && added == 0) )); then
    cat "$tmp/report"
    if [ "$old_soname" = "$new_soname" ]; then
      echo "abi: FAIL: the ABI changed INCOMPATIBLY ($removed removed, $changed changed) and" \
        "$soname_note: programs built against" \
        "$(basename "$old") would break. Bump the minor version (the soname is 0.MINOR" \
        "before 1.0) or keep the old interfaces."
      return 1
    fi
    echo "abi: the ABI changed incompatibly ($removed removed, $changed changed), and" \
      "$soname_note, as a new release's must:" \
      "expected, not an error"
  elif (( rc & 4 )); then
    cat "$tmp/report"
    echo "abi: the ABI changed compatibly ($added added, nothing removed or changed); $soname_note"
  else
    if (( filtered > 0 )); then
      cat "$tmp/report"
      echo "abi: the ABI is unchanged but for $filtered change(s) abidiff filters out as" \
        "harmless; $soname_note"
    else
      echo "abi: the ABI is unchanged; $soname_note"
    fi
  fi
}

if [ "${1:-}" = --compare ]; then
  [ $# -eq 3 ] || fail "usage: packaging/abi/check.sh --compare OLD.abi NEW.abi"
  compare "$2" "$3"
  exit $?
fi

build=${1:?usage: packaging/abi/check.sh BUILD_DIR}
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt" 2>/dev/null)
[ -n "$version" ] || fail "$build is not a configured build of iocptool"
major=${version%%.*} minor=${version#*.}; minor=${minor%%.*}

# The newest baseline not newer than this build.
baseline= best=
for f in "$here"/libiocp-*.abi; do
  [ -e "$f" ] || continue
  v=${f##*/libiocp-}; v=${v%.abi}
  [[ $v =~ ^([0-9]+)\.([0-9]+)$ ]] || fail "$f: the name must be libiocp-MAJOR.MINOR.abi"
  key=$(( BASH_REMATCH[1] * 100000 + BASH_REMATCH[2] ))
  (( key <= major * 100000 + minor )) || continue
  if [ -z "$best" ] || (( key > best )); then best=$key baseline=$f; fi
done
[ -n "$baseline" ] || fail "no baseline in $here for $version (libiocp-MAJOR.MINOR.abi)"

bash "$here/dump.sh" "$build" "$tmp/new.abi" >/dev/null
echo "abi: libiocp $version against $(basename "$baseline")"
compare "$baseline" "$tmp/new.abi"
