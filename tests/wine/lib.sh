#!/usr/bin/env bash
# What the Wine scenario scripts (cli.sh, udp.sh, secure.sh, unix.sh,
# proxy.sh, scripting.sh, ...) share: their arguments, the Wine prefix, a
# work directory, the processes to stop, the PASS/FAIL lines and the
# helpers that start iocptool.exe and read its output.  A script starts:
#
#   set -uo pipefail
#   here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
#   # shellcheck source=tests/wine/lib.sh
#   . "$here/lib.sh"
#   wine_scenarios_init NAME "$@"
#
# and is run as `NAME.sh WIN_BUILD_DIR [LINUX_IOCPTOOL]`, from tests/run.sh
# after tests/wine.sh has set up the prefix, or alone (a prefix of its own
# is then set up, and removed at exit).  wine_scenarios_init sets:
#
#   root        the source tree
#   win_dir     WIN_BUILD_DIR, absolute: the mingw-w64 build (iocptool.exe,
#               tests/*.exe)
#   exe         $win_dir/iocptool.exe
#   linux_tool  LINUX_IOCPTOOL, absolute (default build/ci-release/iocptool
#               in the source tree): the Linux peer where a scenario needs one
#   work        a fresh temporary directory, removed at exit
#   pids        the background processes to stop at exit: add with pids+=
#
# Results: pass NAME, fail NAME [WHY], skip NAME [WHY]; wine_finish prints
# the counts, the last line "N passed, M failed", and exits with status 0
# only when nothing failed.

# shellcheck disable=SC2034 # the variables are for the sourcing script
wine_scenarios_init() {
  local name=$1
  if [ $# -lt 2 ] || [ ! -d "$2" ]; then
    echo "usage: $name.sh WIN_BUILD_DIR [LINUX_IOCPTOOL]" >&2
    exit 2
  fi
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  win_dir=$(cd "$2" && pwd)
  exe=$win_dir/iocptool.exe
  linux_tool=$(realpath -m "${3:-$root/build/ci-release/iocptool}")

  if [ -z "${WINEPREFIX:-}" ] || [ ! -f "${WINEPREFIX}/system.reg" ]; then
    # shellcheck source=tests/wine.sh
    . "$root/tests/wine.sh"
    iocp_wine_setup || exit 1
  fi
  export WINEDEBUG=-all
  unset DISPLAY

  work=$(mktemp -d "${TMPDIR:-/tmp}/iocp-wine-$name.XXXXXX")
  pids=()
  trap wine_scenarios_cleanup EXIT

  passed=0
  failed=0
  skipped=0
}

# At exit: TERM to what is left (timeout(1) passes it on to wine), KILL to
# what has not gone within 5 s, then the work directory and an own prefix.
wine_scenarios_cleanup() {
  local p _ left
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for _ in $(seq 1 50); do
    left=
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=$p; done
    [ -z "$left" ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  rm -rf "$work"
  if [ "$(type -t iocp_wine_cleanup)" = function ]; then iocp_wine_cleanup; fi
}

pass() { passed=$((passed + 1)); echo "[PASS] $1"; }
fail() { failed=$((failed + 1)); echo "[FAIL] $1${2:+: $2}"; }
skip() { skipped=$((skipped + 1)); echo "[SKIP] $1${2:+: $2}"; }

wine_finish() {
  [ "$skipped" -eq 0 ] || echo "$skipped skipped"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

# wine_run SECONDS ARGS...: iocptool.exe in the foreground, bounded.
wine_run() {
  local secs=$1
  shift
  timeout -k 5 "$secs" wine "$exe" "$@"
}

# start_bg NAME SECONDS ARGS...: iocptool.exe in the background, bounded,
# stdin from ${bg_stdin:-/dev/null}, stdout in $work/NAME.out, stderr in
# $work/NAME.err; sets bg_pid and adds it to pids.
start_bg() {
  local name=$1 secs=$2
  shift 2
  timeout -k 5 "$secs" wine "$exe" "$@" <"${bg_stdin:-/dev/null}" >"$work/$name.out" \
    2>"$work/$name.err" &
  bg_pid=$!
  pids+=("$bg_pid")
}

# wait_line FILE PATTERN: true once FILE has a line matching the basic
# regular expression PATTERN (CRs removed); false after 15 s.
wait_line() {
  local file=$1 pattern=$2 _
  for _ in $(seq 1 150); do
    tr -d '\r' <"$file" 2>/dev/null | grep -q -- "$pattern" && return 0
    sleep 0.1
  done
  return 1
}

# listening_port FILE: the port of the first "listening on ADDR PORT" line
# in FILE (CRLF on Windows), waited for as by wait_line; nothing and false
# when none came.
listening_port() {
  wait_line "$1" '^listening on ' || return 1
  tr -d '\r' <"$1" | awk '/^listening on / {print $4; exit}'
}

# free_port: a loopback TCP port nothing listens on (bound, then closed).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# winpath PATH: a Unix path as the Windows program sees it (drive Z: is /).
winpath() { printf 'Z:%s' "${1//\//\\}"; }

# win_pid MARKER: the Windows process behind a background wine, the newest
# whose command line has "iocptool.exe MARKER"; SIGINT to it is Ctrl-C for
# the program.  Nothing when there is none.
win_pid() {
  pgrep -f -n -- "iocptool.exe $1" || true
}

# ctrl_c MARKER: Ctrl-C to that process (see win_pid); false when none.
ctrl_c() {
  local wp
  wp=$(win_pid "$1")
  [ -n "$wp" ] && kill -INT "$wp"
}
