#!/usr/bin/env bash
# The batch examples of docs/SCRIPTING.md (docs/scripting/*.cmd), run by
# Wine's cmd.exe against iocptool.exe, with Linux peers where they need one.
#
#   tests/wine/scripting.sh WIN_BUILD_DIR [LINUX_IOCPTOOL]
#
# WIN_BUILD_DIR holds the mingw-w64 build (iocptool.exe); LINUX_IOCPTOOL is
# a Linux iocptool (default: build/ci-release/iocptool), the echo server,
# listener and sender the scripts talk to.  iocptool.exe is found on the
# PATH the scripts see (WINEPATH), as after an install.  Each script runs
# as `timeout N wine cmd /c docs\scripting\X.cmd ARGS` and its exit status
# and output are checked against what the document says.  Sourced from
# tests/run.sh after tests/wine.sh has set up the prefix, or run alone (it
# then sets one up itself).  The last line is "N passed, M failed"; the
# status is 0 only when nothing failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/wine/lib.sh
. "$here/lib.sh"
wine_scenarios_init scripting "$@"

doc=$root/docs/SCRIPTING.md
export WINEPATH
WINEPATH=$(winpath "$win_dir")
scripts=$(winpath "$root/docs/scripting")

# run SECONDS SCRIPT ARGS...: docs\scripting\SCRIPT.cmd under cmd.exe, in
# $work, stdin from /dev/null; sets rc, out and err (CR removed).
#
# Under load, Wine's cmd.exe now and then fails to start a program from the
# script at all ("ShellExecuteEx failed: Internal error"): that is the
# emulator, not the script, so such a run (and only such a run) is made
# again, at most twice, and the retry is said.
run() {
  local secs=$1 script=$2 attempt
  shift 2
  for attempt in 1 2 3; do
    (cd "$work" && timeout -k 5 "$secs" wine cmd /c "$scripts\\$script.cmd" "$@" \
      </dev/null >"$work/run.out" 2>"$work/run.err")
    rc=$?
    out=$(tr -d '\r' <"$work/run.out")
    err=$(tr -d '\r' <"$work/run.err")
    grep -q "ShellExecuteEx failed" <<<"$out$err" || break
    echo "[note] $script: wine could not start a program (attempt $attempt); running it again"
  done
}

# expect NAME STATUS [OUT_PATTERN [ERR_PATTERN]]: the last run exited with
# STATUS and its stdout and stderr match the extended regular expressions.
expect() {
  local name=$1 status=$2 opat=${3:-} epat=${4:-}
  if [ "$rc" -ne "$status" ]; then
    fail "$name" "status $rc, not $status; stdout: $out; stderr: $err"
  elif [ -n "$opat" ] && ! grep -Eq -- "$opat" <<<"$out"; then
    fail "$name" "stdout does not match /$opat/: $out"
  elif [ -n "$epat" ] && ! grep -Eq -- "$epat" <<<"$err"; then
    fail "$name" "stderr does not match /$epat/: $err"
  else
    pass "$name"
  fi
}

# linux_bg NAME ARGS...: the Linux iocptool in the background, stderr in
# $work/NAME.err, stdout in $work/NAME.out; sets bg.
linux_bg() {
  local name=$1
  shift
  "$linux_tool" "$@" <"${bg_stdin:-/dev/null}" >"$work/$name.out" 2>"$work/$name.err" &
  bg=$!
  pids+=("$bg")
}

stop_bg() {
  kill "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

# No iocptool.exe of this prefix is left running (the relay example stops
# its own), within 5 s: a killed Windows process takes a moment to go.
no_exe_left() {
  local p left
  for _ in $(seq 1 50); do
    left=
    for p in $(pgrep -f "iocptool.exe"); do
      { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qxF "WINEPREFIX=$WINEPREFIX" && left=$p
    done
    [ -z "$left" ] && return 0
    sleep 0.1
  done
  return 1
}

[ -x "$win_dir/iocptool.exe" ] || { echo "no $win_dir/iocptool.exe"; exit 1; }
[ -x "$linux_tool" ] || { echo "no Linux iocptool at $linux_tool"; exit 1; }

# ---- the document and the scripts ----

for f in "$root"/docs/scripting/*.cmd; do
  name=$(basename "$f")
  if grep -q "docs/scripting/$name" "$doc"; then
    pass "$name is in docs/SCRIPTING.md"
  else
    fail "$name is in docs/SCRIPTING.md"
  fi
  if [ "$(tr -cd '\r' <"$f" | wc -c)" -eq "$(wc -l <"$f")" ]; then
    pass "$name has CRLF line ends"
  else
    fail "$name has CRLF line ends" "cmd.exe wants them; check .gitattributes"
  fi
done

"$linux_tool" echo --no-stats 127.0.0.1:0 </dev/null >/dev/null 2>"$work/echo.err" &
echo_pid=$!
pids+=("$echo_pid")
eport=$(listening_port "$work/echo.err") || { fail "the Linux echo server starts"; eport=1; }
closed=$(free_port)

# ---- portcheck.cmd: the exit codes ----

run 30 portcheck 127.0.0.1 "$eport"
expect "portcheck: an open port exits 0" 0 "^127\.0\.0\.1 $eport: open$"
run 30 portcheck 127.0.0.1 "$closed"
expect "portcheck: a closed port exits 1" 1 "^127\.0\.0\.1 $closed: closed$"
run 30 portcheck 127.0.0.1 70000
expect "portcheck: port 70000 is a usage error, exit 2" 2 "usage error$" \
  "^iocptool: connect: port 70000: too large"
run 30 portcheck 127.0.0.1
expect "portcheck: a missing argument exits 2" 2 "" "^usage: portcheck"

# ---- healthcheck.cmd: the loop ----

run 30 healthcheck 127.0.0.1 "$eport"
expect "healthcheck: a server that is up: 0 at the first probe" 0 "up after 1 probe"
late=$(free_port)
(sleep 2.5 && exec "$linux_tool" echo --no-stats "127.0.0.1:$late" </dev/null >/dev/null 2>&1) &
late_pid=$!
pids+=("$late_pid")
run 60 healthcheck 127.0.0.1 "$late" 20
if [ "$rc" -eq 0 ] && n=$(sed -n 's/.*up after \([0-9]*\) probe.*/\1/p' <<<"$out") && [ "${n:-0}" -ge 2 ]; then
  pass "healthcheck: a server that comes up 2.5 s later: 0 after $n probes"
else
  fail "healthcheck: a server that comes up later" "status $rc: $out $err"
fi
stop_bg "$late_pid"
run 30 healthcheck 127.0.0.1 "$closed" 2
expect "healthcheck: never up: 1 after TRIES probes" 1 "" "still down after 2 probe"
run 30 healthcheck 127.0.0.1 0
expect "healthcheck: port 0 is a usage error: 2 at once" 2

# ---- relay.cmd: started, used and stopped ----

run 60 relay 127.0.0.1:0 "127.0.0.1:$eport"
expect "relay: the request comes back through the relay, which stops: 0" 0 \
  "^hello through the relay$"
if grep -q "^relay: listening on port [0-9]*, forwarding to 127.0.0.1:$eport$" <<<"$out" &&
  grep -q "^relay: stopped$" <<<"$out"; then
  pass "relay: says where it listened and that it stopped"
else
  fail "relay: its report" "$out"
fi
if no_exe_left; then pass "relay: no iocptool.exe left running"; else fail "relay: iocptool.exe left running"; fi
run 60 relay 127.0.0.1:0 "127.0.0.1:$closed"
expect "relay: a target that refuses: the request fails, 1" 1 "^relay: stopped$" \
  "the request through the relay failed"
no_exe_left || fail "relay (dead target): iocptool.exe left running"
run 30 relay 127.0.0.1:0
expect "relay: a missing target is a usage error: 2" 2 "" "^usage: relay"
run 60 relay 127.0.0.1:70000 "127.0.0.1:$eport"
expect "relay: a relay that cannot start: 1 with its message" 1 "" \
  "the relay did not start:.*|iocptool: relay: 127.0.0.1:70000: port 70000: too large"
grep -q "iocptool: relay: 127.0.0.1:70000: port 70000: too large" <<<"$err" ||
  fail "relay: the relay's own message is shown" "$err"

# ---- sendfile.cmd and recvfile.cmd: a file transfer ----

head -c 3000000 /dev/urandom >"$work/blob.bin"
linux_bg recv listen 127.0.0.1:0
recv_pid=$bg
if rport=$(listening_port "$work/recv.err"); then
  run 60 sendfile blob.bin 127.0.0.1 "$rport"
  wait "$recv_pid"
  lrc=$?
  if [ "$rc" -eq 0 ] && [ "$lrc" -eq 0 ] && cmp -s "$work/blob.bin" "$work/recv.out" &&
    grep -q "^sendfile: sent blob.bin (3000000 bytes) to 127.0.0.1 $rport$" <<<"$out"; then
    pass "sendfile: 3 MB to the Linux iocptool listen, byte-exact, 0"
  else
    fail "sendfile to the Linux listen" "status $rc (listen $lrc): $out $err"
  fi
else
  fail "sendfile: the Linux listen did not start"
fi
run 30 sendfile missing.bin 127.0.0.1 "$closed"
expect "sendfile: a missing file is a usage error: 2" 2 "" "missing.bin: no such file"
run 60 sendfile blob.bin 127.0.0.1 "$closed" 2
expect "sendfile: nobody listening: tried again, then 1" 1 "" "not sent: 2 tries failed"
if grep -q "try 1 failed, status 1;" <<<"$err" && grep -q "not sent: 2 tries failed" <<<"$err"; then
  pass "sendfile: says each failed try"
else
  fail "sendfile: the failed tries" "$err"
fi
# A receiver that starts 1 s late: the second try gets through.
late=$(free_port)
(sleep 1 && exec "$linux_tool" listen "127.0.0.1:$late" </dev/null >"$work/late.out" 2>/dev/null) &
late_pid=$!
pids+=("$late_pid")
run 60 sendfile blob.bin 127.0.0.1 "$late" 5
wait "$late_pid"
if [ "$rc" -eq 0 ] && cmp -s "$work/blob.bin" "$work/late.out" && grep -q "try 1 failed" <<<"$err"; then
  pass "sendfile: a receiver that starts late gets the file at a later try"
else
  fail "sendfile: a late receiver" "status $rc: $out $err"
fi

# recvfile.cmd under Wine, the Linux iocptool connect sending.
(cd "$work" && timeout -k 5 60 wine cmd /c "$scripts\\recvfile.cmd" 127.0.0.1:0 got.bin \
  </dev/null >"$work/recvfile.out" 2>"$work/recvfile.err") &
rf=$!
pids+=("$rf")
if wport=$(listening_port "$work/recvfile.err"); then
  timeout 30 "$linux_tool" connect 127.0.0.1 "$wport" <"$work/blob.bin" >/dev/null 2>"$work/lconnect.err"
  lrc=$?
  wait "$rf"
  rc=$?
  out=$(tr -d '\r' <"$work/recvfile.out")
  if [ "$rc" -eq 0 ] && [ "$lrc" -eq 0 ] && cmp -s "$work/blob.bin" "$work/got.bin" &&
    [ ! -e "$work/got.bin.part" ] && grep -q "^recvfile: received got.bin (3000000 bytes)$" <<<"$out"; then
    pass "recvfile: 3 MB from the Linux iocptool connect, byte-exact, renamed, 0"
  else
    fail "recvfile" "status $rc (connect $lrc): $out $(tr -d '\r' <"$work/recvfile.err")"
  fi
else
  fail "recvfile: no listening line" "$(tr -d '\r' <"$work/recvfile.err")"
fi
(cd "$work" && timeout -k 5 60 wine cmd /c "$scripts\\recvfile.cmd" 127.0.0.1:0 empty.bin \
  </dev/null >"$work/recvfile2.out" 2>"$work/recvfile2.err") &
rf=$!
pids+=("$rf")
if wport=$(listening_port "$work/recvfile2.err"); then
  timeout 30 "$linux_tool" connect 127.0.0.1 "$wport" </dev/null >/dev/null 2>&1
  wait "$rf"
  rc=$?
  err=$(tr -d '\r' <"$work/recvfile2.err")
  if [ "$rc" -eq 1 ] && [ ! -e "$work/empty.bin" ] && [ ! -e "$work/empty.bin.part" ] &&
    grep -q "the sender sent nothing" <<<"$err"; then
    pass "recvfile: a sender that sends nothing: 1, no file"
  else
    fail "recvfile: nothing sent" "status $rc: $err"
  fi
else
  fail "recvfile (nothing sent): no listening line"
fi
run 30 recvfile 127.0.0.1:0
expect "recvfile: a missing FILE is a usage error: 2" 2 "" "^usage: recvfile"

# ---- statslog.cmd: stats --json as JSON Lines ----

# A Windows echo server: its stats endpoint is this prefix's user's.
timeout -k 5 120 wine "$win_dir/iocptool.exe" echo 127.0.0.1:0 </dev/null >/dev/null \
  2>"$work/wecho.err" &
wecho=$!
pids+=("$wecho")
if wport=$(listening_port "$work/wecho.err"); then
  printf 'eleven byte' | timeout 10 "$linux_tool" connect 127.0.0.1 "$wport" >/dev/null 2>&1
  run 60 statslog - 1 2
  n=$(grep -c '^{"pid":[0-9]*,"command":"echo",' <<<"$out")
  if [ "$rc" -eq 0 ] && [ "$n" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 2 ] &&
    grep -q '"listening":"127.0.0.1:'"$wport"'"' <<<"$out" && grep -q '"bytes_in":11,' <<<"$out"; then
    pass "statslog: two JSON lines of the Windows echo's counters, 0"
  else
    fail "statslog" "status $rc: $out $err"
  fi
  wpid=$(sed -n 's/^{"pid":\([0-9]*\),.*/\1/p' <<<"$out" | head -1)
  run 30 statslog "$wpid" 1 1
  expect "statslog: the server named by its PID" 0 "^\\{\"pid\":$wpid,"
  # Ctrl-C for the Windows echo (SIGINT to its process), then no server.
  for p in $(pgrep -f "iocptool.exe echo 127.0.0.1:0"); do
    { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qxF "WINEPREFIX=$WINEPREFIX" &&
      kill -INT "$p"
  done
  wait "$wecho"
  run 30 statslog - 1 1
  expect "statslog: no server running: 1" 1 "" "no running iocptool server found"
else
  fail "statslog: the Windows echo did not start" "$(tr -d '\r' <"$work/wecho.err")"
fi
run 30 statslog - 0
expect "statslog: an interval of 0 is a usage error: 2" 2 "" "^usage: statslog"

stop_bg "$echo_pid"
wine_finish
