#!/usr/bin/env bash
# iocptool.exe -u (UDP) under Wine against Linux peers over loopback, both
# ways: echo -u, listen -u with one peer and with -k and three peers,
# connect -u and its port unreachable, relay -u, and the Linux iocptool
# talking to iocptool.exe.
#
#   tests/wine/udp.sh WIN_BUILD_DIR [LINUX_IOCPTOOL]
#
# WIN_BUILD_DIR holds the mingw-w64 build (iocptool.exe); LINUX_IOCPTOOL is
# a Linux iocptool (default: build/ci-release/iocptool); python3 is the
# other peer.  Sourced setup as in tests/wine/cli.sh: run from tests/run.sh
# after tests/wine.sh has set up the prefix, or alone.  Every process runs
# under timeout(1).  The last line is "N passed, M failed"; the status is 0
# only when nothing failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/wine/lib.sh
. "$here/lib.sh"
wine_scenarios_init udp "$@"

# The Linux side: datagram peers in python3.
#   sizes PORT              send 0, 1, 1472, 9000 and 65507 bytes, expect each back whole
#   peers PORT N WANT FIFO  N sockets each say "peer I"; once all are sent,
#                           write "go" to FIFO, and expect WANT on each
#   echo PORT               a Linux UDP echo on PORT (0: free; prints it)
cat >"$work/udp.py" <<'PY'
import os, select, socket, sys
mode, port = sys.argv[1], int(sys.argv[2])
def sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    s.settimeout(15)
    return s
if mode == "sizes":
    s = sock()
    s.connect(("127.0.0.1", port))
    for n in (0, 1, 1472, 9000, 65507):
        data = os.urandom(n)
        s.send(data)
        if s.recv(70000) != data:
            print("size %d: not the same datagram" % n)
            sys.exit(1)
    sys.exit(0)
if mode == "peers":
    n, want, fifo = int(sys.argv[3]), sys.argv[4].encode(), sys.argv[5]
    socks = [sock() for _ in range(n)]
    for i, s in enumerate(socks):
        s.connect(("127.0.0.1", port))
        s.send(b"peer %d\n" % i)
    with open(fifo, "w") as f:
        f.write("go\n")
    bad = [i for i, s in enumerate(socks) if s.recv(100) != want]
    sys.exit(1 if bad else 0)
if mode == "echo":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    print(s.getsockname()[1], flush=True)
    while True:
        data, peer = s.recvfrom(70000)
        s.sendto(data, peer)
PY
py() { timeout -k 5 60 python3 "$work/udp.py" "$@"; }

echo "iocptool.exe: $(timeout 30 wine "$exe" --version 2>/dev/null | head -1 | tr -d '\r')"

# ---- echo -u under Wine, a Linux client ----

start_bg echo 120 echo -u -v -W 2 127.0.0.1:0
echo_bg=$bg_pid
if port=$(listening_port "$work/echo.err"); then
  if py sizes "$port"; then
    pass "echo -u: datagrams of 0, 1, 1472, 9000 and 65507 bytes come back whole"
  else
    fail "echo -u: datagram sizes" "$(tr -d '\r' <"$work/echo.err")"
  fi
  ctrl_c "echo -u -v -W 2"
  wait "$echo_bg"
  rc=$?
  if [ "$rc" -eq 0 ] && ! tr -d '\r' <"$work/echo.err" | grep -q mismatch; then
    pass "echo -u: Ctrl-C stops it with status 0 and clean books"
  else
    fail "echo -u: Ctrl-C" "status $rc: $(tr -d '\r' <"$work/echo.err")"
  fi
else
  fail "echo -u prints its listening line" "$(cat "$work/echo.err")"
fi

# ---- listen -u -k under Wine with three Linux peers ----

mkfifo "$work/kin" "$work/go"
# stdin stays open (a writer holds the FIFO) until the peers are known.
(exec 3>"$work/kin"; read -r _ <"$work/go"; sleep 0.5; printf 'to all\n' >&3; sleep 5) &
pids+=($!)
bg_stdin=$work/kin start_bg lk 60 listen -u -k 127.0.0.1:0
lk_bg=$bg_pid
if port=$(listening_port "$work/lk.err"); then
  if py peers "$port" 3 "to all
" "$work/go" && wait_line "$work/lk.out" "peer 2"; then
    out=$(tr -d '\r' <"$work/lk.out" | sort | tr '\n' ' ')
    if [ "$out" = "peer 0 peer 1 peer 2 " ]; then
      pass "listen -u -k: three Linux peers fan in, stdin reaches all three"
    else
      fail "listen -u -k: stdout" "$out"
    fi
  else
    fail "listen -u -k: three peers" "$(tr -d '\r' <"$work/lk.err"; tr -d '\r' <"$work/lk.out")"
  fi
  ctrl_c "listen -u -k"
  wait "$lk_bg"
else
  fail "listen -u -k prints its listening line" "$(cat "$work/lk.err")"
fi

# ---- Linux iocptool connect -u to iocptool.exe listen -u, both ways ----

if [ -x "$linux_tool" ]; then
  mkfifo "$work/lin"
  (exec 3>"$work/lin"; sleep 20) &
  holder=$!
  pids+=("$holder")
  bg_stdin=$work/lin start_bg l1 60 listen -u 127.0.0.1:0
  l1_bg=$bg_pid
  if port=$(listening_port "$work/l1.err"); then
    mkfifo "$work/cin"
    (exec 4>"$work/cin"; printf 'from linux\n' >&4; sleep 10) &
    pids+=($!)
    timeout 30 "$linux_tool" connect -u -q 5 127.0.0.1 "$port" <"$work/cin" >"$work/c1.out" 2>"$work/c1.err" &
    c1=$!
    pids+=("$c1")
    if wait_line "$work/l1.out" "from linux"; then
      printf 'from windows\n' >"$work/lin"
      if wait_line "$work/c1.out" "from windows"; then
        pass "listen -u under Wine and the Linux connect -u: a datagram each way"
      else
        fail "listen -u: stdin to the peer" "$(cat "$work/c1.err")"
      fi
    else
      fail "listen -u: the Linux peer's datagram" "$(tr -d '\r' <"$work/l1.err")"
    fi
    kill "$c1" 2>/dev/null
  else
    fail "listen -u prints its listening line" "$(cat "$work/l1.err")"
  fi
  kill "$holder" 2>/dev/null
  ctrl_c "listen -u 127.0.0.1:0"
  wait "$l1_bg"
else
  fail "listen -u and the Linux connect -u" "no Linux iocptool at $linux_tool"
fi

# ---- connect -u under Wine to a Linux echo, and to a closed port ----

coproc LECHO { timeout -k 5 120 python3 "$work/udp.py" echo 0; }
pids+=("$LECHO_PID")
read -r eport <&"${LECHO[0]}"
out=$(printf 'hello from windows\n' | timeout -k 5 30 wine "$exe" connect -u 127.0.0.1 "$eport" 2>"$work/c2.err" | tr -d '\r')
rc=$?
if [ "$rc" -eq 0 ] && [ "$out" = "hello from windows" ]; then
  pass "connect -u under Wine: the reply after the end of stdin, status 0"
else
  fail "connect -u under Wine" "status $rc, out '$out': $(tr -d '\r' <"$work/c2.err")"
fi

closed=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'anyone?\n' | timeout -k 5 30 wine "$exe" connect -u -q 3 127.0.0.1 "$closed" >/dev/null 2>"$work/c3.err"
rc=$?
if [ "$rc" -eq 1 ] && tr -d '\r' <"$work/c3.err" | grep -q 'port unreachable'; then
  pass "connect -u under Wine: a closed port is 'port unreachable', status 1"
else
  fail "connect -u to a closed port" "status $rc: $(tr -d '\r' <"$work/c3.err")"
fi

# ---- relay -u under Wine between Linux clients and the Linux echo ----

start_bg relay 60 relay -u -v -W 2 127.0.0.1:0 "127.0.0.1:$eport"
relay_bg=$bg_pid
if port=$(listening_port "$work/relay.err"); then
  if py sizes "$port" && py sizes "$port"; then
    pass "relay -u under Wine: two Linux clients, every size both ways"
  else
    fail "relay -u under Wine" "$(tr -d '\r' <"$work/relay.err")"
  fi
  ctrl_c "relay -u -v -W 2"
  wait "$relay_bg"
  rc=$?
  if [ "$rc" -eq 0 ] && tr -d '\r' <"$work/relay.err" | grep -q 'relay: 2 sessions'; then
    pass "relay -u under Wine: a session per client, Ctrl-C ends it with 0"
  else
    fail "relay -u: sessions" "status $rc: $(tr -d '\r' <"$work/relay.err")"
  fi
else
  fail "relay -u prints its listening line" "$(cat "$work/relay.err")"
fi
kill "$LECHO_PID" 2>/dev/null

wine_finish
