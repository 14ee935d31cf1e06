#!/usr/bin/env bash
# TLS in the Windows build: iocptool.exe connect --tls and listen --tls
# under Wine against OpenSSL's own s_server and s_client and against the
# Linux build, both ways.
#
#   tests/wine/tls.sh WIN_BUILD_DIR [LINUX_IOCPTOOL]
#
# The certificates are made for the run with the openssl command: a CA, a
# server certificate for localhost and 127.0.0.1, one for another host.
# Each data scenario moves a file each way, byte-exact, and ends with
# close_notify both ways (both ends exit 0).  The failures: a certificate
# for another host, and a CA that is only in the test's files (so not in
# the system's ROOT store, which iocptool.exe reads through CryptoAPI when
# no --tls-ca is given): exit 1 with the verdict.  When iocptool.exe has no
# TLS (by its --version) or the Linux one has none, every scenario is
# skipped, or fails with IOCP_TEST_REQUIRE_ALL=1 (as in CI).
# The preamble and the helpers are tests/wine/lib.sh's; the last line is
# "N passed, M failed"; the status is 0 only when nothing failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/wine/lib.sh
. "$here/lib.sh"
wine_scenarios_init tls "$@"

# A file's text without Windows line ends, for messages and greps.
text() { tr -d '\r' <"$1" 2>/dev/null; }

# Wait (at most 15 s) until something listens on 127.0.0.1:PORT.
wait_listening() {
  local want _
  want=$(printf '0100007F:%04X 00000000:0000 0A' "$1")
  for _ in $(seq 1 150); do
    grep -q "$want" /proc/net/tcp && return 0
    sleep 0.1
  done
  return 1
}

# Wait (at most SECS) until FILE holds at least N bytes.
wait_size() {
  local file=$1 n=$2 secs=$3 _
  for _ in $(seq 1 $((secs * 10))); do
    [ "$(stat -c %s "$file" 2>/dev/null || echo 0)" -ge "$n" ] && return 0
    sleep 0.1
  done
  return 1
}

# feed FILE NAME: FILE on stdout, then hold the pipe open until
# $work/NAME.end exists (at most 120 s, or until the run's directory is
# gone): the reader's input ends when the scenario says so, not when the
# file has been read.
feed() {
  local _
  cat "$1"
  for _ in $(seq 1 1200); do
    [ -e "$work/$2.end" ] || [ ! -d "$work" ] && return 0
    sleep 0.1
  done
}

# wait_bounded PID SECS: the status of a background job, or 124 (and the
# job killed) when it has not ended in time.
wait_bounded() {
  local pid=$1 secs=$2 _
  for _ in $(seq 1 $((secs * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 124
  fi
  wait "$pid"
}

# A build without TLS skips, except where every suite must run (CI).
missing() {
  if [ "${IOCP_TEST_REQUIRE_ALL:-0}" = 1 ]; then fail "$@"; else skip "$@"; fi
  wine_finish
}
win_version=$(wine_run 30 --version 2>/dev/null | tr -d '\r')
if ! printf '%s\n' "$win_version" | grep -q '^tls: OpenSSL'; then
  missing "TLS" "iocptool.exe --version says no TLS (OpenSSL: tests/wine/build_openssl.sh)"
fi
if ! [ -x "$linux_tool" ] || ! "$linux_tool" --version 2>/dev/null | grep -q '^tls: OpenSSL'; then
  missing "TLS" "no Linux iocptool with TLS at $linux_tool"
fi
command -v openssl >/dev/null || {
  fail "TLS" "the openssl command is needed for the certificates and the peers"
  wine_finish
}

# ---- certificates ----

(
  cd "$work" || exit 1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
    -out ca.pem -days 30 -subj /CN=iocptool-wine-test-ca || exit 1
  for spec in "server localhost DNS:localhost,IP:127.0.0.1" "other other.example DNS:other.example"; do
    # shellcheck disable=SC2086 # the spec's words are the arguments
    set -- $spec
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
      -out "$1.csr" -subj "/CN=$2" || exit 1
    printf 'subjectAltName=%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
      -extfile "$1.ext" -out "$1.pem" || exit 1
    chmod 600 "$1.key"
  done
) >"$work/certs.log" 2>&1 || {
  fail "certificates" "$(cat "$work/certs.log")"
  wine_finish
}
w_ca=$(winpath "$work/ca.pem")
w_cert=$(winpath "$work/server.pem")
w_key=$(winpath "$work/server.key")

head -c $((1024 * 1024 + 77)) /dev/urandom >"$work/small_a"
head -c $((1024 * 1024 + 33)) /dev/urandom >"$work/small_b"
head -c $((4 * 1024 * 1024 + 123)) /dev/urandom >"$work/big_a"
head -c $((3 * 1024 * 1024 + 45)) /dev/urandom >"$work/big_b"
size() { stat -c %s "$1"; }

# s_server NAME CERT: openssl s_server for one client on a free port, its
# input small_b held open until NAME-s.end; sets s_pid and s_port.
s_server() {
  local name=$1 cert=$2
  s_port=$(free_port)
  feed "$work/small_b" "$name-s" |
    timeout -k 5 150 openssl s_server -accept "127.0.0.1:$s_port" -naccept 1 -quiet \
      -cert "$work/$cert.pem" -key "$work/$cert.key" >"$work/$name.sout" 2>"$work/$name.serr" &
  s_pid=$!
  pids+=("$s_pid")
  wait_listening "$s_port"
}

# ---- iocptool.exe connect --tls against openssl s_server ----

name=conn-s_server
what="iocptool.exe connect --tls --tls-ca against openssl s_server (localhost verified)"
if s_server "$name" server; then
  feed "$work/small_a" "$name-c" |
    timeout -k 5 120 wine "$exe" connect --tls --tls-ca "$w_ca" -v localhost "$s_port" \
      >"$work/$name.cout" 2>"$work/$name.cerr" &
  c_pid=$!
  pids+=("$c_pid")
  wait_size "$work/$name.sout" "$(size "$work/small_a")" 60
  wait_size "$work/$name.cout" "$(size "$work/small_b")" 60
  touch "$work/$name-c.end" # connect's input ends: close_notify, s_server's session ends
  wait_bounded "$c_pid" 60
  rc_c=$?
  touch "$work/$name-s.end"
  wait_bounded "$s_pid" 30
  if [ "$rc_c" -eq 0 ] && cmp -s "$work/small_a" "$work/$name.sout" &&
    cmp -s "$work/small_b" "$work/$name.cout" && text "$work/$name.cerr" | grep -q 'TLS: TLSv1.3' &&
    text "$work/$name.cerr" | grep -q 'CN *= *localhost'; then
    pass "$what: both files byte-exact, exit 0, -v names TLSv1.3 and the peer"
  else
    fail "$what" "connect $rc_c: $(text "$work/$name.cerr"); s_server: $(cat "$work/$name.serr")"
  fi
else
  fail "$what" "s_server does not listen: $(cat "$work/$name.serr")"
fi

# ---- verification failures: exit 1 with the verdict ----

# fails_against NAME CERT WHY ARGS...: iocptool.exe connect ARGS to an
# s_server with CERT must exit 1 with WHY on stderr and write nothing.
fails_against() {
  local name=$1 cert=$2 why=$3 what=$4
  shift 4
  if ! s_server "$name" "$cert"; then
    fail "$what" "s_server does not listen: $(cat "$work/$name.serr")"
    return
  fi
  wine_run 60 connect --tls "$@" localhost "$s_port" </dev/null >"$work/$name.cout" \
    2>"$work/$name.cerr"
  local rc=$?
  touch "$work/$name-s.end"
  wait_bounded "$s_pid" 30
  if [ "$rc" -eq 1 ] && [ ! -s "$work/$name.cout" ] && text "$work/$name.cerr" | grep -q "$why"; then
    pass "$what: exit 1, \"$why\""
  else
    fail "$what" "connect $rc: $(text "$work/$name.cerr")"
  fi
}

fails_against wrong-host other "certificate verify failed: the certificate is not for localhost" \
  "iocptool.exe connect --tls to a certificate for another host" --tls-ca "$w_ca"
# No --tls-ca: the system's ROOT store, read through CryptoAPI (-vv says
# how many it took), does not know the test's CA.
fails_against unknown-ca server "certificate verify failed: unable to get local issuer certificate" \
  "iocptool.exe connect --tls, a CA not in the system's ROOT store" -v -v
if text "$work/unknown-ca.cerr" | grep -q 'CA certificates from the ROOT store'; then
  pass "iocptool.exe connect --tls without --tls-ca reads the system's ROOT store"
else
  fail "the ROOT store" "$(text "$work/unknown-ca.cerr")"
fi

# ---- iocptool.exe listen --tls against openssl s_client ----

# Wine's heap checks watch this one: listen without -k stops its server
# from the first connection's callback, where an accept request was once
# freed twice (the TLS state then landed on the freed block).
name=listen-s_client
what="iocptool.exe listen --tls against openssl s_client (verified with the CA)"
feed "$work/small_b" "$name-l" |
  WINEDEBUG=warn+heap timeout -k 5 120 wine "$exe" listen --tls --tls-cert "$w_cert" --tls-key "$w_key" -v 127.0.0.1:0 \
    >"$work/$name.lout" 2>"$work/$name.lerr" &
l_pid=$!
pids+=("$l_pid")
if port=$(listening_port "$work/$name.lerr"); then
  feed "$work/small_a" "$name-c" |
    timeout -k 5 120 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
      -CAfile "$work/ca.pem" -verify_return_error -quiet -no_ign_eof -nocommands \
      >"$work/$name.cout" 2>"$work/$name.cerr" &
  c_pid=$!
  pids+=("$c_pid")
  wait_size "$work/$name.lout" "$(size "$work/small_a")" 60
  wait_size "$work/$name.cout" "$(size "$work/small_b")" 60
  # s_client's input ends (close_notify), then listen's (close_notify).
  touch "$work/$name-c.end"
  wait_bounded "$c_pid" 60
  rc_c=$?
  touch "$work/$name-l.end"
  wait_bounded "$l_pid" 60
  rc_l=$?
  if [ "$rc_l" -eq 0 ] && [ "$rc_c" -eq 0 ] && cmp -s "$work/small_a" "$work/$name.lout" &&
    cmp -s "$work/small_b" "$work/$name.cout" && text "$work/$name.lerr" | grep -q 'TLS: TLSv1.3' &&
    ! grep -q ':heap:' "$work/$name.lerr"; then
    pass "$what: both files byte-exact, both exit 0, no heap misuse"
  else
    fail "$what" "listen $rc_l: $(text "$work/$name.lerr"); s_client $rc_c: $(cat "$work/$name.cerr")"
  fi
else
  fail "$what" "listen does not listen: $(text "$work/$name.lerr")"
fi

# ---- iocptool.exe and the Linux build, both ways ----

# Each end sends its file and ends its direction when its input ends; the
# other keeps receiving until the peer's close_notify (docs/EOF.md).
for win_side in listen connect; do
  name="linux-$win_side"
  what="iocptool.exe $win_side --tls with the Linux build, 4 MiB and 3 MiB with a half-close"
  l_cmd=("$linux_tool" listen --tls --tls-cert "$work/server.pem" --tls-key "$work/server.key")
  c_cmd=("$linux_tool" connect --tls --tls-ca "$work/ca.pem")
  if [ "$win_side" = listen ]; then
    l_cmd=(wine "$exe" listen --tls --tls-cert "$w_cert" --tls-key "$w_key")
  else
    c_cmd=(wine "$exe" connect --tls --tls-ca "$w_ca")
  fi
  timeout -k 5 120 "${l_cmd[@]}" 127.0.0.1:0 <"$work/big_a" >"$work/$name.lout" 2>"$work/$name.lerr" &
  l_pid=$!
  pids+=("$l_pid")
  if ! port=$(listening_port "$work/$name.lerr"); then
    fail "$what" "listen does not listen: $(text "$work/$name.lerr")"
    continue
  fi
  timeout -k 5 120 "${c_cmd[@]}" localhost "$port" <"$work/big_b" >"$work/$name.cout" \
    2>"$work/$name.cerr"
  rc_c=$?
  wait_bounded "$l_pid" 60
  rc_l=$?
  if [ "$rc_l" -eq 0 ] && [ "$rc_c" -eq 0 ] && cmp -s "$work/big_b" "$work/$name.lout" &&
    cmp -s "$work/big_a" "$work/$name.cout"; then
    pass "$what: both files byte-exact, both ends exit 0"
  else
    fail "$what" "listen $rc_l: $(text "$work/$name.lerr"); connect $rc_c: $(text "$work/$name.cerr")"
  fi
done

wine_finish
