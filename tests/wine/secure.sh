#!/usr/bin/env bash
# The encrypted channel between the Windows and the Linux iocptool: listen
# --key and connect --key under Wine against the Linux build, both ways.
#
#   tests/wine/secure.sh WIN_BUILD_DIR [LINUX_IOCPTOOL]
#
# Each scenario moves a file each way at once, byte-exact, with a
# half-close (the side that ends first keeps receiving until the other
# ends), or checks that a wrong key fails both ends with nothing written.
# A key made by either build is used by both.  When the Windows build has
# no encryption (iocptool.exe --version says "encryption: not built"), or
# the Linux one has none, every scenario is skipped.  Sourced setups as in
# tests/wine/cli.sh; the last line is "N passed, M failed"; the status is 0
# only when nothing failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/wine/lib.sh
. "$here/lib.sh"
wine_scenarios_init secure "$@"

# Both builds must have encryption, or there is nothing to test.
win_version=$(timeout -k 5 30 wine "$exe" --version 2>/dev/null | tr -d '\r')
if ! printf '%s\n' "$win_version" | grep -q '^encryption: libsodium'; then
  skip "encrypted channel" "iocptool.exe has no encryption (build libsodium: tests/wine/build_sodium.sh)"
  wine_finish
fi
if ! [ -x "$linux_tool" ] || ! "$linux_tool" --version 2>/dev/null | grep -q '^encryption: libsodium'; then
  skip "encrypted channel" "no Linux iocptool with encryption at $linux_tool"
  wine_finish
fi

# Keys: one made by each build.  A file Wine creates is not private to its
# owner on the Linux side: the Linux build checks that, so it is made so.
"$linux_tool" keygen "$work/linux.key" || {
  fail "keygen (Linux)"
  wine_finish
}
if timeout -k 5 30 wine "$exe" keygen "$(winepath -w "$work/win.key")" 2>"$work/wkeygen.err" &&
  chmod 600 "$work/win.key" && "$linux_tool" keygen --check "$work/win.key"; then
  pass "keygen: iocptool.exe makes a key the Linux build accepts"
else
  fail "keygen (Windows)" "$(tr -d '\r' <"$work/wkeygen.err")"
fi
"$linux_tool" keygen "$work/other.key"

head -c $((4 * 1024 * 1024 + 123)) /dev/urandom >"$work/to_connect"
head -c $((3 * 1024 * 1024 + 45)) /dev/urandom >"$work/to_listen"

# run_pair NAME WIN_SIDE LISTEN_KEY CONNECT_KEY:
# listen and connect, one of them iocptool.exe (WIN_SIDE: listen or
# connect), each with its file on stdin and its stdout in a file; sets rc_l
# and rc_c.  Each key is a path on the Linux side.
run_pair() {
  local name=$1 win_side=$2 lkey=$3 ckey=$4
  local l_cmd=("$linux_tool") c_cmd=("$linux_tool")
  if [ "$win_side" = listen ]; then
    l_cmd=(timeout -k 5 120 wine "$exe")
    lkey=$(winepath -w "$lkey")
  else
    c_cmd=(timeout -k 5 120 wine "$exe")
    ckey=$(winepath -w "$ckey")
  fi
  "${l_cmd[@]}" listen --key "$lkey" 127.0.0.1:0 <"$work/to_connect" >"$work/$name.lout" \
    2>"$work/$name.lerr" &
  local lpid=$!
  pids+=("$lpid")
  local port
  if ! port=$(listening_port "$work/$name.lerr"); then
    rc_l=-1
    rc_c=-1
    return
  fi
  "${c_cmd[@]}" connect --key "$ckey" 127.0.0.1 "$port" <"$work/to_listen" >"$work/$name.cout" \
    2>"$work/$name.cerr"
  rc_c=$?
  wait "$lpid"
  rc_l=$?
}

# ---- round trips ----

for win_side in listen connect; do
  for key in linux win; do
    [ -f "$work/$key.key" ] || continue
    name="$win_side-$key"
    what="iocptool.exe $win_side with the Linux build, a key made by the $key build"
    run_pair "$name" "$win_side" "$work/$key.key" "$work/$key.key"
    if [ "$rc_l" -eq 0 ] && [ "$rc_c" -eq 0 ] && cmp -s "$work/to_listen" "$work/$name.lout" &&
      cmp -s "$work/to_connect" "$work/$name.cout"; then
      pass "$what: both files byte-exact, both ends exit 0"
    else
      fail "$what" "listen $rc_l: $(tr -d '\r' <"$work/$name.lerr"); connect $rc_c: $(tr -d '\r' <"$work/$name.cerr")"
    fi
  done
done

# ---- a wrong key ----

for win_side in listen connect; do
  name="wrong-$win_side"
  what="iocptool.exe $win_side, a wrong key"
  run_pair "$name" "$win_side" "$work/linux.key" "$work/other.key"
  why="authentication failed: wrong key or tampered handshake"
  if [ "$rc_l" -eq 1 ] && [ "$rc_c" -eq 1 ] && [ ! -s "$work/$name.lout" ] &&
    [ ! -s "$work/$name.cout" ] && tr -d '\r' <"$work/$name.lerr" | grep -q "$why" &&
    tr -d '\r' <"$work/$name.cerr" | grep -q "$why"; then
    pass "$what: both ends exit 1 with the reason, nothing written"
  else
    fail "$what" "listen $rc_l: $(tr -d '\r' <"$work/$name.lerr"); connect $rc_c: $(tr -d '\r' <"$work/$name.cerr")"
  fi
done

wine_finish
