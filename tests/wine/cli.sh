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
# shellcheck source=tests/wine/lib.sh
. "$here/lib.sh"
wine_scenarios_init cli "$@"

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

# ---- closed standard streams, and Ctrl-C in the middle of a transfer ----
#
# A program started with a descriptor closed (`<&-`, `>&-`) gets a standard
# handle from Wine that every call refuses; iocptool.exe takes it as an
# empty input or a discarded output, as the POSIX build takes a closed
# descriptor.  Ctrl-C is SIGINT to the Windows process; Wine has no way to
# send Ctrl-Break, so only Ctrl-C (status 130) is checked here.

if available connect && [ -x "$linux_tool" ]; then
  "$linux_tool" echo --no-stats 127.0.0.1:0 2>"$work/zecho.err" &
  zecho=$!
  pids+=("$zecho")
  if zport=$(listening_port "$work/zecho.err"); then
    head -c 200000 /dev/urandom >"$work/zin"
    timeout -k 5 60 wine "$exe" connect 127.0.0.1 "$zport" <"$work/zin" >&- 2>"$work/zc.err"
    rc=$?
    if [ "$rc" -eq 0 ] && ! tr -d '\r' <"$work/zc.err" | grep -q '^iocptool:'; then
      pass "connect with stdout closed (>&-): what comes back is discarded, status 0"
    else
      fail "connect >&-" "status $rc: $(tr -d '\r' <"$work/zc.err")"
    fi
  else
    fail "closed stdout: the Linux echo did not start"
  fi
  kill "$zecho" 2>/dev/null
  wait "$zecho" 2>/dev/null
else
  skip "connect >&-" "no connect or no Linux iocptool at $linux_tool"
fi

if available listen; then
  head -c 300000 /dev/urandom >"$work/zsend"
  timeout -k 5 60 wine "$exe" listen 127.0.0.1:0 <&- >"$work/zl.out" 2>"$work/zl.err" &
  zl=$!
  pids+=("$zl")
  if port=$(listening_port "$work/zl.err"); then
    # The client sends, half-closes, and must read EOF (stdin is empty).
    timeout 30 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(open(sys.argv[2], "rb").read()); s.shutdown(socket.SHUT_WR)
sys.exit(0 if s.recv(1) == b"" else 1)' "$port" "$work/zsend"
    crc=$?
    wait "$zl"
    rc=$?
    if [ "$rc" -eq 0 ] && [ "$crc" -eq 0 ] && cmp -s "$work/zsend" "$work/zl.out"; then
      pass "listen with stdin closed (<&-): stdin reads as empty, 300 kB land on stdout, status 0"
    else
      fail "listen <&-" "status $rc, client $crc: $(tr -d '\r' <"$work/zl.err")"
    fi
  else
    fail "listen <&-: no listening line" "$(tr -d '\r' <"$work/zl.err")"
  fi

  # Ctrl-C while a client streams: status 130, and stdout holds exactly
  # what the tool had received (the -v count), a prefix of what was sent.
  head -c $((32 * 1024 * 1024)) /dev/urandom >"$work/ksend"
  timeout -k 5 120 wine "$exe" listen -v -B iocp 127.0.0.1:0 </dev/null >"$work/kl.out" \
    2>"$work/kl.err" &
  kl=$!
  pids+=("$kl")
  if port=$(listening_port "$work/kl.err"); then
    # The sender holds its connection open after sending (no EOF): only
    # the Ctrl-C ends the transfer.
    timeout 60 python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=50)
s.sendall(open(sys.argv[2], "rb").read())
time.sleep(50)' "$port" "$work/ksend" &
    ksender=$!
    pids+=("$ksender")
    for i in $(seq 1 300); do
      [ "$(stat -c %s "$work/kl.out")" -gt 1000000 ] && break
      sleep 0.1
    done
    wp=$(win_pid "listen -v -B iocp 127.0.0.1:0")
    [ -n "$wp" ] && kill -INT "$wp"
    wait "$kl"
    rc=$?
    kill "$ksender" 2>/dev/null
    wait "$ksender" 2>/dev/null
    size=$(stat -c %s "$work/kl.out")
    got=$(tr -d '\r' <"$work/kl.err" | sed -n 's/.* bytes sent, \([0-9]*\) bytes received.*/\1/p')
    if [ "$rc" -eq 130 ] && [ "$size" -gt 0 ] && [ "$size" = "$got" ] &&
      cmp -s -n "$size" "$work/ksend" "$work/kl.out"; then
      pass "listen: Ctrl-C mid-transfer exits 130 with all $size bytes it received on stdout"
    else
      fail "listen: Ctrl-C mid-transfer" "status $rc, $size bytes on stdout, received ${got:-?}: $(tr -d '\r' <"$work/kl.err" | tail -3)"
    fi
  else
    fail "listen for Ctrl-C: no listening line" "$(tr -d '\r' <"$work/kl.err")"
  fi
else
  skip "closed stdin, Ctrl-C" "listen not available on Windows yet"
fi

# ---- stats: the endpoint of iocptool.exe servers, asked by iocptool.exe ----
#
# Wine has no AF_UNIX, so the endpoint is loopback TCP with a token file
# (stats_transport_win.c); `stats` finds it in the per-user directory,
# %LOCALAPPDATA%\iocptool, which the host sees inside the prefix.

# python3 clients that connect and hold: HOST PORT N READY_FILE.  They
# write READY_FILE once all are connected, then wait to be killed.
cat >"$work/hold_clients.py" <<'PY'
import socket, sys, time
host, port, n, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
socks = [socket.create_connection((host, port), timeout=30) for _ in range(n)]
open(ready, "w").close()
time.sleep(300)
PY

# ask_raw PORT FIRST_LINES: what a TCP endpoint answers to FIRST_LINES.
cat >"$work/ask_raw.py" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.argv[2].encode())
s.shutdown(socket.SHUT_WR)
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode(errors="replace"))
PY

# storm.py PORT TOKEN N IDLE: IDLE connections that hold an endpoint slot
# (half of them with half a token), then N queries at once; prints how many
# were answered, refused (an error line) and failed (nothing at all).
cat >"$work/storm.py" <<'PY'
import selectors, socket, sys, time
port, token, n, idle = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
held = []
for i in range(idle):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    if i % 2:
        s.sendall(token[:10].encode())
    held.append(s)
queries, failed = [], 0
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        s.sendall((token + "\njson\n").encode())
        s.setblocking(False)
        queries.append([s, b""])
    except OSError:
        failed += 1
sel = selectors.DefaultSelector()
for q in queries:
    sel.register(q[0], selectors.EVENT_READ, q)
end = time.time() + 60
while sel.get_map() and time.time() < end:
    for key, _ in sel.select(0.5):
        q = key.data
        try:
            b = q[0].recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            b = b""
        if b:
            q[1] += b
        else:
            sel.unregister(q[0])
            q[0].close()
answered = sum(1 for q in queries if q[1].startswith(b"{") and q[1].endswith(b"\n"))
refused = sum(1 for q in queries if q[1].startswith(b"error: "))
print(answered, refused, len(queries) - answered - refused + failed)
PY

# json_get FILE KEY.SUBKEY...: a number (or true/false) from a JSON file.
json_get() {
  python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k]
print(str(v).lower() if isinstance(v, bool) else v)' "$1" "$2" 2>/dev/null
}

# The per-user directory as the host sees it.
stats_dir() {
  local d
  for d in "$WINEPREFIX"/drive_c/users/*/AppData/Local/iocptool; do
    [ -d "$d" ] && echo "$d" && return 0
  done
  return 1
}

# stats_endpoint_of ERRFILE: the Windows path of the endpoint a -v server
# names ("stats endpoint tcp ADDR PORT token PATH" or "... unix PATH").
stats_endpoint_of() {
  local i path
  for i in $(seq 1 100); do
    path=$(tr -d '\r' <"$1" | awk '/^iocptool: stats endpoint (tcp .* token|unix) / {print $NF; exit}')
    if [ -n "$path" ]; then
      echo "$path"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# stats_json OUT ARGS...: iocptool.exe stats --json ARGS into OUT (CRs
# dropped); its status.
stats_json() {
  local out=$1 rc
  shift
  wine_run 30 stats --json "$@" >"$out.raw" 2>"$out.err"
  rc=$?
  tr -d '\r' <"$out.raw" >"$out"
  return $rc
}

# wait_online OUT WANT ARGS...: ask until counted and walked are WANT (the
# server accepts and closes asynchronously), at most 20 s; the last answer
# stays in OUT.
wait_online() {
  local out=$1 want=$2 i
  shift 2
  for i in $(seq 1 40); do
    if stats_json "$out" "$@" && [ "$(json_get "$out" online.counted)" = "$want" ] &&
      [ "$(json_get "$out" online.walked)" = "$want" ]; then
      return 0
    fi
    sleep 0.5
  done
  return 1
}

# hold_clients PORT N: N held connections in the background; sets hold_pid.
hold_clients() {
  rm -f "$work/held"
  timeout -k 5 120 python3 "$work/hold_clients.py" 127.0.0.1 "$1" "$2" "$work/held" &
  hold_pid=$!
  pids+=("$hold_pid")
  local i
  for i in $(seq 1 300); do
    [ -f "$work/held" ] && return 0
    kill -0 "$hold_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

if available stats; then
  if wine_run 30 stats --help >/dev/null 2>&1; then
    pass "stats --help exits 0"
  else
    fail "stats --help"
  fi

  N=200
  start_bg sstats 180 echo -v -W 3 127.0.0.1:0
  secho_bg=$bg_pid
  if port=$(listening_port "$work/sstats.err") && winpath=$(stats_endpoint_of "$work/sstats.err"); then
    name=${winpath##*\\}
    spid=${name%.*}
    sdir=$(stats_dir)
    hostfile=$sdir/$name
    if [ -n "$sdir" ] && [ -f "$hostfile" ]; then
      pass "stats: the endpoint is $name in the per-user directory"
    else
      fail "stats: endpoint file" "$winpath not found under $WINEPREFIX"
    fi

    if hold_clients "$port" "$N"; then
      if wait_online "$work/s1.json" "$N" "$spid" &&
        [ "$(json_get "$work/s1.json" online.hashed)" = "$N" ] &&
        [ "$(json_get "$work/s1.json" online.agree)" = true ] &&
        [ "$(json_get "$work/s1.json" server_connections)" = "$N" ] &&
        [ "$(json_get "$work/s1.json" pid)" = "$spid" ]; then
        pass "stats --json under Wine: walked == counted == $N Linux connections"
      else
        fail "stats --json: $N connections" "$(head -c 400 "$work/s1.json") $(cat "$work/s1.json.err")"
      fi
      # Without an argument: the one running server of this user.
      if stats_json "$work/s2.json" && [ "$(json_get "$work/s2.json" pid)" = "$spid" ]; then
        pass "stats finds the single running server without an argument"
      else
        fail "stats without an argument" "$(cat "$work/s2.json.err")"
      fi
      lines=$(wine_run 30 stats --clients "$spid" 2>"$work/sc.err" | tr -d '\r' | grep -c '^[0-9]')
      if [ "$lines" -eq "$N" ]; then
        pass "stats --clients lists the $N connections"
      else
        fail "stats --clients" "$lines lines: $(cat "$work/sc.err")"
      fi
      wine_run 30 stats --prometheus "$spid" 2>&1 | tr -d '\r' >"$work/prom.txt"
      if grep -qx "iocptool_connections_online $N" "$work/prom.txt"; then
        pass "stats --prometheus counts them too"
      else
        fail "stats --prometheus" "$(head -c 400 "$work/prom.txt")"
      fi
      kill "$hold_pid" 2>/dev/null
      wait "$hold_pid" 2>/dev/null
      if wait_online "$work/s3.json" 0 "$spid" &&
        [ "$(json_get "$work/s3.json" closed)" = "$N" ]; then
        pass "stats: back to 0 online, $N closed, once the Linux clients go"
      else
        fail "stats after the clients close" "$(head -c 400 "$work/s3.json")"
      fi
    else
      fail "stats: $N Linux clients could not connect"
    fi

    # The token: without it, or a wrong one, nothing but an error line.
    if [ "${name##*.}" = tcp ] && read -r tport token <"$hostfile"; then
      no_token=$(timeout 20 python3 "$work/ask_raw.py" "$tport" $'json\n' | tr -d '\r')
      wrong=$(timeout 20 python3 "$work/ask_raw.py" "$tport" "$(printf '%064d' 0)"$'\njson\n' |
        tr -d '\r')
      right=$(timeout 20 python3 "$work/ask_raw.py" "$tport" "$token"$'\njson\n' | tr -d '\r')
      if [ "$no_token" = "error: unauthorized (a wrong or missing token)" ] &&
        [ "$wrong" = "$no_token" ] && printf '%s' "$right" | grep -q "\"pid\":$spid," &&
        stats_json "$work/s4.json" "$spid" && [ "$(json_get "$work/s4.json" pid)" = "$spid" ]; then
        pass "stats: a wrong or missing token is refused and the endpoint keeps serving"
      else
        fail "stats: token" "no token: '$no_token', wrong: '$wrong', right: '${right:0:80}'"
      fi
    else
      skip "stats: token" "the endpoint is not a token file ($name)"
    fi

    # A storm of queries on top of connections that hold a slot: all
    # answered, and the endpoint goes on.
    if [ "${name##*.}" = tcp ] && read -r tport token <"$hostfile"; then
      # (Not "failed": that is the script's own count.)
      read -r st_answered st_refused st_failed < <(timeout 120 python3 "$work/storm.py" \
        "$tport" "$token" 120 40)
      if [ "${st_answered:-0}" = 120 ] && [ "${st_failed:-1}" = 0 ] &&
        stats_json "$work/s6.json" "$spid" && [ "$(json_get "$work/s6.json" pid)" = "$spid" ]; then
        pass "stats: 120 queries at once on top of 40 idle connections, all answered"
      else
        fail "stats: storm" \
          "${st_answered:-?} answered, ${st_refused:-?} refused, ${st_failed:-?} failed"
      fi
    else
      skip "stats: storm" "the endpoint is not a token file ($name)"
    fi

    # Files left by servers that are gone are dropped on the way.
    printf '1 %064d\n' 0 >"$sdir/4000000.tcp"
    : >"$sdir/4000004.sock"
    if stats_json "$work/s5.json" && [ "$(json_get "$work/s5.json" pid)" = "$spid" ] &&
      [ ! -e "$sdir/4000000.tcp" ] && [ ! -e "$sdir/4000004.sock" ]; then
      pass "stats: stale endpoint files are removed, the live one answers"
    else
      fail "stats: stale files" "$(ls "$sdir") $(cat "$work/s5.json.err")"
    fi

    # --watch into a pipe: plain repeated reports until Ctrl-C, status 0.
    timeout -k 5 60 wine "$exe" stats --watch 0.2 --json "$spid" >"$work/watch.out" \
      2>"$work/watch.err" &
    watch_bg=$!
    pids+=("$watch_bg")
    for i in $(seq 1 50); do
      [ "$(wc -l <"$work/watch.out")" -ge 3 ] && break
      sleep 0.1
    done
    wp=$(win_pid "stats --watch 0.2")
    [ -n "$wp" ] && kill -INT "$wp"
    wait "$watch_bg"
    rc=$?
    if [ "$rc" -eq 0 ] && [ "$(wc -l <"$work/watch.out")" -ge 3 ] &&
      ! grep -q $'\033' "$work/watch.out"; then
      pass "stats --watch: plain reports into a pipe, Ctrl-C ends it with status 0"
    else
      fail "stats --watch" "status $rc, $(wc -l <"$work/watch.out") lines: $(cat "$work/watch.err")"
    fi

    wp=$(win_pid "echo -v -W 3")
    [ -n "$wp" ] && kill -INT "$wp"
    wait "$secho_bg"
    rc=$?
    if [ "$rc" -eq 0 ] && [ ! -e "$hostfile" ]; then
      pass "stats: the endpoint file is removed when the server stops"
    else
      fail "stats: endpoint file at exit" "status $rc, $(ls "$sdir")"
    fi
  else
    fail "stats: echo -v names no endpoint" "$(tr -d '\r' <"$work/sstats.err")"
  fi

  # Killed outright: the token file is delete-on-close, the system drops it.
  start_bg skill 60 echo -v -W 1 127.0.0.1:0
  skill_bg=$bg_pid
  if listening_port "$work/skill.err" >/dev/null && winpath=$(stats_endpoint_of "$work/skill.err"); then
    hostfile=$(stats_dir)/${winpath##*\\}
    wp=$(win_pid "echo -v -W 1")
    [ -n "$wp" ] && kill -9 "$wp"
    wait "$skill_bg" 2>/dev/null
    for i in $(seq 1 50); do
      [ -e "$hostfile" ] || break
      sleep 0.1
    done
    if [ -n "$wp" ] && [ ! -e "$hostfile" ]; then
      pass "stats: a killed server's endpoint file goes away"
    else
      fail "stats: killed server" "$hostfile still there"
    fi
  else
    fail "stats: echo -v names no endpoint" "$(tr -d '\r' <"$work/skill.err")"
  fi

  # relay: both legs of every client are counted.
  if [ -x "$linux_tool" ]; then
    R=20
    "$linux_tool" echo --no-stats 127.0.0.1:0 2>"$work/secho.err" &
    lecho=$!
    pids+=("$lecho")
    if tport=$(listening_port "$work/secho.err"); then
      start_bg srelay 120 relay -v -W 2 127.0.0.1:0 "127.0.0.1:$tport"
      srelay_bg=$bg_pid
      if rport=$(listening_port "$work/srelay.err") &&
        winpath=$(stats_endpoint_of "$work/srelay.err"); then
        rname=${winpath##*\\}
        rpid=${rname%.*}
        if hold_clients "$rport" "$R" && wait_online "$work/r1.json" $((2 * R)) "$rpid" &&
          [ "$(json_get "$work/r1.json" server_connections)" = "$R" ] &&
          [ "$(json_get "$work/r1.json" connected)" = "$R" ] &&
          [ "$(json_get "$work/r1.json" command)" = relay ]; then
          pass "stats: relay.exe counts $R Linux clients and their $R target legs"
        else
          fail "stats: relay" "$(head -c 400 "$work/r1.json") $(cat "$work/r1.json.err")"
        fi
        kill "$hold_pid" 2>/dev/null
        wait "$hold_pid" 2>/dev/null
        wp=$(win_pid "relay -v -W 2 127.0.0.1:0 127.0.0.1:$tport")
        [ -n "$wp" ] && kill -INT "$wp"
        wait "$srelay_bg"
        rc=$?
        if [ "$rc" -eq 0 ] && [ ! -e "$(stats_dir)/$rname" ]; then
          pass "stats: relay.exe's endpoint file is removed when it stops"
        else
          fail "stats: relay endpoint at exit" "status $rc"
        fi
      else
        fail "stats: relay -v names no endpoint" "$(tr -d '\r' <"$work/srelay.err")"
      fi
    else
      fail "stats: the Linux echo did not start"
    fi
    kill "$lecho" 2>/dev/null
    wait "$lecho" 2>/dev/null
  else
    skip "stats: relay" "no Linux iocptool at $linux_tool"
  fi
else
  skip "stats" "not available on Windows yet"
fi

wine_finish
