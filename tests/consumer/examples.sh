#!/usr/bin/env bash
# Run the example programs of one build (examples/) and check what they do,
# once per backend named:
#   - echo_server --once on a free loopback port, and send_file through it:
#     a generated 1 MiB file comes back byte for byte, and both programs
#     report the 1048576 bytes they moved
#   - heartbeat: each side hears the other's beats in order, the client goes
#     silent after its beats, the server's deadline closes it, exit 0
#
#   tests/consumer/examples.sh BIN_DIR BACKEND...
#
# Every program runs under a time limit; a server left behind by a failure
# is killed on exit.  Exit status 0 when all passed.
set -euo pipefail
bin=$1
shift
tmp=$(mktemp -d "${TMPDIR:-/tmp}/iocp-examples.XXXXXX")
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "examples: $*" >&2; exit 1; }
show() { for f in "$@"; do echo "--- $f:"; cat "$tmp/$f"; done >&2; }

size=1048576
head -c $size /dev/urandom >"$tmp/file"

for backend in "$@"; do
  export IOCP_BACKEND=$backend

  # ---- echo_server and send_file: a file round-trips over loopback ----
  timeout 60 "$bin/echo_server" --once 0 127.0.0.1 >"$tmp/server.out" 2>"$tmp/server.err" &
  server=$!
  # The server prints its port once it listens; wait for that line (or its end).
  port=
  for _ in $(seq 300); do
    port=$(sed -n 's/^echo_server: listening on port \([0-9]*\) .*/\1/p' "$tmp/server.out")
    [ -n "$port" ] || ! kill -0 "$server" 2>/dev/null && break
    sleep 0.1
  done
  [ -n "$port" ] || { show server.out server.err; fail "$backend: echo_server printed no port"; }
  grep -q "^echo_server: listening on port $port ($backend, " "$tmp/server.out" ||
    [ "${IOCP_TEST_REQUIRE_ALL:-0}" != 1 ] || { show server.out; fail "$backend: echo_server ran another backend"; }

  timeout 60 "$bin/send_file" 127.0.0.1 "$port" "$tmp/file" >"$tmp/reply" 2>"$tmp/client.err" ||
    { show client.err server.out server.err; fail "$backend: send_file failed"; }
  cmp -s "$tmp/file" "$tmp/reply" ||
    { show client.err server.out; fail "$backend: the reply ($(wc -c <"$tmp/reply") bytes) is not the file"; }
  grep -qx "send_file: sent $size bytes, received $size bytes: done" "$tmp/client.err" ||
    { show client.err; fail "$backend: send_file's summary is wrong"; }
  # --once: the server stops by itself after that connection.
  status=0
  wait "$server" || status=$?
  server=
  [ "$status" = 0 ] || { show server.out server.err; fail "$backend: echo_server --once exited $status"; }
  grep -Eq "^echo_server: 127\.0\.0\.1:[0-9]+: echoed $size bytes \(done\)$" "$tmp/server.out" ||
    { show server.out; fail "$backend: echo_server did not report the $size bytes"; }
  echo "examples: $backend: echo_server and send_file round-tripped $size bytes on port $port"

  # ---- heartbeat: timers, tasks by ID, a deadline that closes a silent peer ----
  # A slow interval: the deadline (three intervals) must not fire early on a
  # loaded machine while the client is still beating.
  beats=4
  status=0
  timeout 60 "$bin/heartbeat" $beats 300 >"$tmp/heartbeat.out" 2>&1 || status=$?
  [ "$status" = 0 ] || { show heartbeat.out; fail "$backend: heartbeat exited $status"; }
  out=$tmp/heartbeat.out
  for k in $(seq $beats); do
    [ "$(grep -cx "heartbeat: server <- client beat $k" "$out")" = 1 ] ||
      { show heartbeat.out; fail "$backend: heartbeat: the server did not hear the client's beat $k once"; }
    grep -qx "heartbeat: client <- server beat $k" "$out" ||
      { show heartbeat.out; fail "$backend: heartbeat: the client did not hear the server's beat $k"; }
  done
  ! grep -q "^heartbeat: server <- client beat $((beats + 1))$" "$out" ||
    { show heartbeat.out; fail "$backend: heartbeat: the client beat after going silent"; }
  for line in "heartbeat: client goes silent after $beats beats" \
    "heartbeat: server: client missed 3 beats, closing it"; do
    grep -qx "$line" "$out" || { show heartbeat.out; fail "$backend: heartbeat did not print '$line'"; }
  done
  tail -1 "$out" | grep -q "^heartbeat: ok: server heard $beats of the client's beats" ||
    { show heartbeat.out; fail "$backend: heartbeat's summary is wrong"; }
  echo "examples: $backend: heartbeat: $beats beats each way, the silent client closed by the server's deadline"
done
