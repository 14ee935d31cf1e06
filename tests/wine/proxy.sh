#!/usr/bin/env bash
# The proxy client of the Windows build, under Wine, through a Linux Dante.
#
#   tests/wine/proxy.sh WIN_BUILD_DIR [LINUX_IOCPTOOL]
#
# Dante's sockd (SOCKS4 and SOCKS5, no authentication) runs on a free
# loopback port, the Linux iocptool's echo server is the target, and
# iocptool.exe connect --proxy carries 1 MiB there and back byte-exact with
# a half-close: socks5:// (the name resolved by iocptool.exe), socks5h://
# (by Dante), socks4:// and nc's -X 5 -x.  A target Dante refuses by rule
# ends connect with status 1 and the SOCKS5 reason, never a hang.  Sourced
# setups as in tests/wine/cli.sh; the last line is "N passed, M failed";
# the status is 0 only when nothing failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/wine/lib.sh
. "$here/lib.sh"
wine_scenarios_init proxy "$@"

dante=$(command -v danted || echo /usr/sbin/danted)
[ -x "$dante" ] || { fail "dante-server is installed (.ci/deps)"; wine_finish; }

# The target: the Linux build's echo server.
timeout -k 5 300 "$linux_tool" echo 127.0.0.1:0 </dev/null 2>"$work/echo.err" &
pids+=("$!")
wait_line "$work/echo.err" '^listening on ' || { fail "echo server starts" "$(cat "$work/echo.err")"; wine_finish; }
eport=$(awk '/^listening on / {print $4; exit}' "$work/echo.err")

# Dante, with port 9 of 127.0.0.1 refused by rule.
started=0
for _ in 1 2 3 4 5; do
  dport=$(free_port)
  cat >"$work/sockd.conf" <<CONF
logoutput: stderr
internal: 127.0.0.1 port = $dport
external: 127.0.0.1
clientmethod: none
socksmethod: none
$([ "$(id -u)" -eq 0 ] && printf 'user.privileged: root\nuser.unprivileged: nobody\n')
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks block { from: 0.0.0.0/0 to: 127.0.0.1/32 port = 9 }
socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
CONF
  timeout -k 5 300 "$dante" -f "$work/sockd.conf" -N 1 </dev/null 2>"$work/sockd.err" &
  dpid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$dport") 2>/dev/null; then started=1; break; fi
    kill -0 "$dpid" 2>/dev/null || break
    sleep 0.1
  done
  if [ $started -eq 1 ]; then pids+=("$dpid"); break; fi
  kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null
done
if [ $started -eq 0 ]; then
  fail "sockd starts" "$(cat "$work/sockd.err")"
  wine_finish
fi

head -c 1048576 /dev/urandom >"$work/data"
through() {
  local what=$1
  shift
  rm -f "$work/back"
  if timeout -k 5 120 wine "$exe" connect -w 30 "$@" <"$work/data" >"$work/back" 2>"$work/connect.err" &&
    cmp -s "$work/data" "$work/back"; then
    pass "iocptool.exe connect $what: 1 MiB there and back"
  else
    fail "iocptool.exe connect $what" "$(tr -d '\r' <"$work/connect.err")"
  fi
}
through "--proxy socks5://" --proxy "socks5://127.0.0.1:$dport" 127.0.0.1 "$eport"
through "--proxy socks5h:// (a name)" --proxy "socks5h://127.0.0.1:$dport" localhost "$eport"
through "--proxy socks4://" --proxy "socks4://127.0.0.1:$dport" 127.0.0.1 "$eport"
through "-X 5 -x" -X 5 -x "127.0.0.1:$dport" 127.0.0.1 "$eport"

timeout -k 5 60 wine "$exe" connect --proxy "socks5://127.0.0.1:$dport" 127.0.0.1 9 \
  </dev/null >/dev/null 2>"$work/refused.err"
rc=$?
if [ $rc -eq 1 ] && tr -d '\r' <"$work/refused.err" | grep -q "SOCKS5: connection not allowed by the proxy's rules"; then
  pass "a target the proxy refuses: status 1 and the SOCKS5 reason"
else
  fail "a target the proxy refuses" "status $rc (124: it hung): $(tr -d '\r' <"$work/refused.err")"
fi

wine_finish
