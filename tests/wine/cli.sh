#!/usr/bin/env bash
# iocptool.exe under Wine against Linux peers over loopback, both ways.
#
#   tests/wine/cli.sh WIN_BUILD_DIR [LINUX_IOCPTOOL]
#
# WIN_BUILD_DIR holds the mingw-w64 build (iocptool.exe, tests/*.exe);
# LINUX_IOCPTOOL is a Linux iocptool (default: build/ci-release/iocptool),
# used as the peer where a scenario needs one; python3 is the other peer.
# Sourced from tests/run.sh after tests/wine.sh has set up the prefix, or run
# alone (it then sets one up itself).  Every wine process runs under
# timeout(1).  A subcommand that iocptool.exe does not have yet ("not
# available on Windows yet") skips its scenarios, so the script runs
# whatever exists.  The last line is "N passed, M failed"; the status is 0
# only when nothing failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
win_dir=$(cd "${1:?usage: cli.sh WIN_BUILD_DIR [LINUX_IOCPTOOL]}" && pwd)
linux_tool=${2:-$root/build/ci-release/iocptool}
exe=$win_dir/iocptool.exe

if [ -z "${WINEPREFIX:-}" ] || [ ! -f "${WINEPREFIX}/system.reg" ]; then
  # shellcheck source=tests/wine.sh
  . "$root/tests/wine.sh"
  iocp_wine_setup || exit 1
fi
export WINEDEBUG=-all
unset DISPLAY

work=$(mktemp -d "${TMPDIR:-/tmp}/iocp-wine-cli.XXXXXX")
pids=()
cleanup_cli() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap 'cleanup_cli; [ "$(type -t iocp_wine_cleanup)" = function ] && iocp_wine_cleanup' EXIT

passed=0
failed=0
skipped=0
pass() { passed=$((passed + 1)); echo "[PASS] $1"; }
fail() { failed=$((failed + 1)); echo "[FAIL] $1${2:+: $2}"; }
skip() { skipped=$((skipped + 1)); echo "[SKIP] $1${2:+: $2}"; }

# wine_run SECONDS ARGS...: iocptool.exe in the foreground, bounded.
wine_run() {
  local secs=$1
  shift
  timeout -k 5 "$secs" wine "$exe" "$@"
}

# start_bg NAME SECONDS ARGS...: iocptool.exe in the background, stdin from
# /dev/null, stdout in $work/NAME.out, stderr in $work/NAME.err; sets bg_pid.
start_bg() {
  local name=$1 secs=$2
  shift 2
  timeout -k 5 "$secs" wine "$exe" "$@" <"${bg_stdin:-/dev/null}" >"$work/$name.out" \
    2>"$work/$name.err" &
  bg_pid=$!
  pids+=("$bg_pid")
}

# The port from a "listening on ADDR PORT" line (CRLF on Windows), or "".
listening_port() {
  local file=$1 i
  for i in $(seq 1 150); do
    local port
    port=$(tr -d '\r' <"$file" 2>/dev/null | awk '/^listening on / {print $4; exit}')
    if [ -n "$port" ]; then
      echo "$port"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# The Windows process behind a background wine: the one whose command line
# has the marker; SIGINT to it is Ctrl-C for the program.
win_pid() {
  pgrep -f -n -- "iocptool.exe $1" || true
}

# available SUBCOMMAND: true when iocptool.exe has it.
available() {
  local out
  out=$(wine_run 30 "$1" --help 2>&1 >/dev/null)
  ! printf '%s' "$out" | grep -q "not available"
}

# python3 echo clients: HOST PORT N BYTES; N connections, BYTES each,
# byte-exact or exit 1.  A script file, so that timeout(1) can run it.
cat >"$work/echo_clients.py" <<'PY'
import os, socket, sys, threading
host, port, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
bad = []
def one(i):
    data = os.urandom(size)
    s = socket.create_connection((host, port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    got = bytearray()
    def reader():
        while True:
            b = s.recv(65536)
            if not b:
                break
            got.extend(b)
    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    t.join(60)
    s.close()
    if bytes(got) != data:
        bad.append(i)
threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join(120)
sys.exit(1 if bad else 0)
PY
echo_clients() {
  timeout -k 5 "$1" python3 "$work/echo_clients.py" "${@:2}"
}

echo "iocptool.exe: $(wine_run 30 --version 2>/dev/null | tr -d '\r')"

# ---- basics ----

if out=$(wine_run 30 --version 2>&1) && printf '%s' "$out" | grep -q '^iocptool '; then
  pass "--version exits 0"
else
  fail "--version" "$out"
fi

wine_run 30 echo >/dev/null 2>"$work/usage.err"
rc=$?
if [ "$rc" -eq 2 ] && tr -d '\r' <"$work/usage.err" | grep -q '^iocptool: echo:'; then
  pass "a usage error exits 2 with an iocptool: line"
else
  fail "usage error" "status $rc: $(cat "$work/usage.err")"
fi

# ---- echo under Wine, Linux clients ----

start_bg echo 120 echo -v -W 2 127.0.0.1:0
echo_bg=$bg_pid
if port=$(listening_port "$work/echo.err"); then
  pass "echo prints its listening line"
  if printf 'hello from linux\n' | timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)
out = b""
while True:
    b = s.recv(4096)
    if not b: break
    out += b
sys.exit(0 if out == b"hello from linux\n" else 1)' "$port"; then
    pass "echo: one line comes back"
  else
    fail "echo: one line"
  fi
  if echo_clients 120 127.0.0.1 "$port" 32 $((1024 * 1024)); then
    pass "echo: 32 Linux clients x 1 MiB, byte-exact"
  else
    fail "echo: 32 Linux clients x 1 MiB"
  fi
  if [ -x "$linux_tool" ] && "$linux_tool" connect --help >/dev/null 2>&1; then
    head -c 2000000 /dev/urandom >"$work/blob"
    if timeout 30 "$linux_tool" connect 127.0.0.1 "$port" <"$work/blob" >"$work/blob.back" 2>"$work/lc.err" &&
      cmp -s "$work/blob" "$work/blob.back"; then
      pass "echo: the Linux iocptool connect gets its 2 MB back"
    else
      fail "echo: Linux iocptool connect" "$(cat "$work/lc.err")"
    fi
  else
    skip "echo: Linux iocptool connect" "no Linux iocptool with connect at $linux_tool"
  fi
  # Ctrl-C (SIGINT to the Windows process) stops it safely, books balanced.
  wp=$(win_pid "echo -v -W 2")
  if [ -n "$wp" ]; then
    kill -INT "$wp"
    wait "$echo_bg"
    rc=$?
    err=$(tr -d '\r' <"$work/echo.err")
    if [ "$rc" -eq 0 ] && printf '%s' "$err" | grep -q 'stopping' &&
      ! printf '%s' "$err" | grep -q 'mismatch'; then
      pass "echo: Ctrl-C stops it with status 0 and clean books"
    else
      fail "echo: Ctrl-C" "status $rc: $err"
    fi
  else
    fail "echo: Ctrl-C" "no Windows process found"
  fi
else
  fail "echo prints its listening line" "$(cat "$work/echo.err")"
fi

# Stop under load: clients streaming while Ctrl-C lands.
start_bg load 120 echo -W 4 127.0.0.1:0
load_bg=$bg_pid
if port=$(listening_port "$work/load.err"); then
  (echo_clients 60 127.0.0.1 "$port" 16 $((8 * 1024 * 1024)) >/dev/null 2>&1 &)
  sleep 1
  wp=$(win_pid "echo -W 4")
  t0=$(date +%s%N)
  [ -n "$wp" ] && kill -INT "$wp"
  wait "$load_bg"
  rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  if [ "$rc" -eq 0 ] && [ "$ms" -lt 10000 ]; then
    pass "echo: Ctrl-C under load stops it in ${ms} ms with status 0"
  else
    fail "echo: Ctrl-C under load" "status $rc after ${ms} ms: $(tr -d '\r' <"$work/load.err")"
  fi
else
  fail "echo under load: no listening line"
fi

# ---- the other way: IOCP clients, Linux echo server ----

if [ -x "$linux_tool" ]; then
  "$linux_tool" echo 127.0.0.1:0 2>"$work/lecho.err" &
  lecho=$!
  pids+=("$lecho")
  if lport=$(listening_port "$work/lecho.err"); then
    if IOCP_PEER=127.0.0.1:$lport timeout -k 5 120 wine "$win_dir/tests/test_engine_win.exe" \
      --filter '*external_echo_peer*' >"$work/peer.out" 2>&1 &&
      grep -q '^1 passed, 0 failed' "$work/peer.out"; then
      pass "IOCP clients under Wine stream byte-exact through the Linux iocptool echo"
    else
      fail "IOCP clients to the Linux echo" "$(tr -d '\r' <"$work/peer.out" | tail -5)"
    fi
  else
    fail "Linux iocptool echo: no listening line"
  fi
  kill "$lecho" 2>/dev/null
  wait "$lecho" 2>/dev/null
else
  skip "IOCP clients to the Linux echo" "no Linux iocptool at $linux_tool"
fi

# ---- listen, connect, relay, stats: whatever iocptool.exe has ----

if available listen; then
  start_bg listen 60 listen 127.0.0.1:0
  listen_bg=$bg_pid
  # Its stdout is the test's file: what a Linux client sends lands there.
  if port=$(listening_port "$work/listen.err"); then
    head -c 500000 /dev/urandom >"$work/lin"
    timeout 20 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(open(sys.argv[2], "rb").read()); s.close()' "$port" "$work/lin"
    wait "$listen_bg"
    rc=$?
    if [ "$rc" -eq 0 ] && cmp -s "$work/lin" "$work/listen.out"; then
      pass "listen: a Linux client's 500 kB land on stdout byte-exact"
    else
      fail "listen: stdout" "status $rc: $(tr -d '\r' <"$work/listen.err")"
    fi
  else
    fail "listen: no listening line"
  fi
else
  skip "listen" "not available on Windows yet"
fi

# relay under Wine between Linux clients and the Linux iocptool echo.
if available relay && [ -x "$linux_tool" ]; then
  "$linux_tool" echo 127.0.0.1:0 2>"$work/recho.err" &
  recho=$!
  pids+=("$recho")
  if tport=$(listening_port "$work/recho.err"); then
    start_bg relay 120 relay -v -W 2 127.0.0.1:0 "127.0.0.1:$tport"
    relay_bg=$bg_pid
    if rport=$(listening_port "$work/relay.err"); then
      if echo_clients 120 127.0.0.1 "$rport" 16 $((1024 * 1024)); then
        pass "relay: 16 Linux clients x 1 MiB through relay.exe to the Linux echo, byte-exact"
      else
        fail "relay: 16 clients through relay.exe" "$(tr -d '\r' <"$work/relay.err" | tail -3)"
      fi
      wp=$(win_pid "relay -v -W 2")
      [ -n "$wp" ] && kill -INT "$wp"
      wait "$relay_bg"
      rc=$?
      if [ "$rc" -eq 0 ] && ! tr -d '\r' <"$work/relay.err" | grep -q mismatch; then
        pass "relay: Ctrl-C stops it with status 0 and clean books"
      else
        fail "relay: Ctrl-C" "status $rc: $(tr -d '\r' <"$work/relay.err" | tail -3)"
      fi
    else
      fail "relay: no listening line" "$(cat "$work/relay.err")"
    fi
  else
    fail "relay: the Linux echo did not start"
  fi
  kill "$recho" 2>/dev/null
  wait "$recho" 2>/dev/null
elif available relay; then
  skip "relay" "no Linux iocptool at $linux_tool"
else
  skip "relay" "not available on Windows yet"
fi

# connect under Wine: stdin to a Linux peer, what comes back to stdout.
if available connect && [ -x "$linux_tool" ]; then
  "$linux_tool" echo --no-stats 127.0.0.1:0 2>"$work/cecho.err" &
  cecho=$!
  pids+=("$cecho")
  if cport=$(listening_port "$work/cecho.err"); then
    head -c 3000000 /dev/urandom >"$work/cin"
    if timeout -k 5 60 wine "$exe" connect 127.0.0.1 "$cport" <"$work/cin" >"$work/cout" \
      2>"$work/connect.err" && cmp -s "$work/cin" "$work/cout"; then
      pass "connect: a 3 MB file on stdin comes back on stdout through the Linux echo"
    else
      fail "connect: file through the Linux echo" "$(tr -d '\r' <"$work/connect.err")"
    fi
    if cat "$work/cin" | timeout -k 5 60 wine "$exe" connect 127.0.0.1 "$cport" 2>"$work/connect2.err" |
      cmp -s - "$work/cin"; then
      pass "connect: the same through pipes on both sides"
    else
      fail "connect: pipes" "$(tr -d '\r' <"$work/connect2.err")"
    fi
  else
    fail "connect: the Linux echo did not start"
  fi
  kill "$cecho" 2>/dev/null
  wait "$cecho" 2>/dev/null
  # The Linux iocptool listen receives what iocptool.exe connect sends.
  "$linux_tool" listen 127.0.0.1:0 >"$work/lout" 2>"$work/llisten.err" </dev/null &
  llisten=$!
  pids+=("$llisten")
  if lport=$(listening_port "$work/llisten.err"); then
    head -c 1000000 /dev/urandom >"$work/lin2"
    timeout -k 5 60 wine "$exe" connect 127.0.0.1 "$lport" <"$work/lin2" >/dev/null \
      2>"$work/connect3.err"
    rc=$?
    wait "$llisten"
    if [ "$rc" -eq 0 ] && cmp -s "$work/lin2" "$work/lout"; then
      pass "connect: the Linux iocptool listen gets 1 MB byte-exact, then EOF"
    else
      fail "connect to the Linux listen" "status $rc: $(tr -d '\r' <"$work/connect3.err")"
    fi
  else
    fail "the Linux iocptool listen did not start"
  fi
elif available connect; then
  skip "connect" "no Linux iocptool at $linux_tool"
else
  skip "connect" "not available on Windows yet"
fi

for sub in stats; do
  if available "$sub"; then
    if wine_run 30 "$sub" --help >/dev/null 2>&1; then
      pass "$sub --help exits 0"
    else
      fail "$sub --help"
    fi
  else
    skip "$sub" "not available on Windows yet"
  fi
done

echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
