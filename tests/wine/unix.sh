#!/usr/bin/env bash
# Unix-domain sockets in the Windows build, under Wine.
#
#   tests/wine/unix.sh WIN_BUILD_DIR [LINUX_IOCPTOOL]
#
# Windows has AF_UNIX stream sockets from Windows 10 1803; Wine may or may
# not (Wine 8 has none).  The first listen on unix:PATH tells which:
#  - with AF_UNIX: echo, listen and connect over unix: move data byte-exact
#    both ways with a half-close, -U is the same, and a relay takes TCP in
#    and sends it to a Unix-domain echo;
#  - without: listen, echo, relay and connect on unix: (and -U) end at once
#    with status 1 and the line that says the system has no Unix-domain
#    sockets, never a hang; a relay whose target is unix: resets its TCP
#    client and goes on serving.
# Sourced setups as in tests/wine/cli.sh; the last line is "N passed, M
# failed"; the status is 0 only when nothing failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/wine/lib.sh
. "$here/lib.sh"
wine_scenarios_init unix "$@"

sock=$(winpath "$work/s.sock")

no_unix_line='no Unix-domain sockets'

# ---- which case: does this Wine have AF_UNIX? ----

start_bg probe 120 listen "unix:$sock"
probe_pid=$bg_pid
supported=0
for _ in $(seq 1 150); do
  if tr -d '\r' <"$work/probe.err" | grep -q '^listening on unix:'; then
    supported=1
    break
  fi
  kill -0 "$probe_pid" 2>/dev/null || break
  sleep 0.1
done
kill "$probe_pid" 2>/dev/null # timeout(1) passes the TERM on to wine
wait "$probe_pid" 2>/dev/null
rm -f "$work/s.sock"
echo "this Wine has AF_UNIX: $([ $supported -eq 1 ] && echo yes || echo no)"

if [ $supported -eq 0 ]; then
  # ---- without AF_UNIX: the error says so, at once ----
  expect_no_unix() {
    local what=$1 secs=$2
    shift 2
    local out rc
    wine_run "$secs" "$@" </dev/null >/dev/null 2>"$work/no_unix.err"
    rc=$?
    out=$(tr -d '\r' <"$work/no_unix.err")
    if [ "$rc" -eq 1 ] && printf '%s' "$out" | grep -q "$no_unix_line" &&
      printf '%s' "$out" | grep -q 'address family not supported'; then
      pass "$what: status 1 and '$no_unix_line'"
    else
      fail "$what" "status $rc (124: it hung): $out"
    fi
  }
  expect_no_unix "listen unix:PATH" 30 listen "unix:$sock"
  expect_no_unix "listen -U PATH" 30 listen -U "$sock"
  expect_no_unix "echo unix:PATH" 30 echo "unix:$sock"
  expect_no_unix "relay unix:PATH (listening side)" 30 relay "unix:$sock" 127.0.0.1:9
  expect_no_unix "connect unix:PATH" 30 connect "unix:$sock"
  expect_no_unix "connect -U PATH" 30 connect -U "$sock"

  # A relay from TCP to a unix: target: the client is reset, the relay
  # goes on, and -v says why.
  start_bg relay 120 relay -v 127.0.0.1:0 "unix:$sock"
  relay_pid=$bg_pid
  port=$(listening_port "$work/relay.err")
  if [ -z "$port" ]; then
    fail "relay to a unix: target starts" "$(tr -d '\r' <"$work/relay.err")"
  else
    ok=1
    for i in 1 2; do
      got=$(printf 'hello\n' | timeout -k 5 30 "$linux_tool" connect 127.0.0.1 "$port" 2>&1)
      rc=$?
      [ "$rc" -ne 124 ] && [ "$rc" -ne 0 ] || ok=0
    done
    if [ $ok -eq 1 ] && kill -0 "$relay_pid" 2>/dev/null &&
      wait_line "$work/relay.err" 'address family not supported'; then
      pass "relay to a unix: target: each client reset at once, the relay goes on"
    else
      fail "relay to a unix: target" "rc $rc: $got; relay: $(tr -d '\r' <"$work/relay.err")"
    fi
  fi
else
  # ---- with AF_UNIX: data moves ----
  head -c 1048576 /dev/urandom >"$work/data"
  start_bg echo 120 echo -W 1 "unix:$sock"
  if ! wait_line "$work/echo.err" '^listening on unix:'; then
    fail "echo unix:PATH starts" "$(tr -d '\r' <"$work/echo.err")"
  else
    if wine_run 60 connect "unix:$sock" <"$work/data" >"$work/back" 2>"$work/connect.err" &&
      cmp -s "$work/data" "$work/back"; then
      pass "echo and connect over unix: (1 MiB back byte-exact after the half-close)"
    else
      fail "echo and connect over unix:" "$(tr -d '\r' <"$work/connect.err")"
    fi
    if wine_run 60 connect -U "$sock" <"$work/data" >"$work/back2" 2>/dev/null &&
      cmp -s "$work/data" "$work/back2"; then
      pass "connect -U PATH"
    else
      fail "connect -U PATH"
    fi
    start_bg relay 120 relay -W 1 127.0.0.1:0 "unix:$sock"
    port=$(listening_port "$work/relay.err")
    if [ -n "$port" ] &&
      timeout -k 5 60 "$linux_tool" connect 127.0.0.1 "$port" <"$work/data" >"$work/back3" 2>/dev/null &&
      cmp -s "$work/data" "$work/back3"; then
      pass "relay from TCP to a unix: echo"
    else
      fail "relay from TCP to a unix: echo" "$(tr -d '\r' <"$work/relay.err")"
    fi
  fi
fi

wine_finish
