#!/usr/bin/env bash
# Build the libFuzzer targets with clang in their own build directory and run
# each for a bounded time, starting from a seed corpus written here (one
# input per mode of the target, see fuzz_secure.c).  A crash, a leak or a
# broken property fails the run and leaves the input that caused it in the
# build directory, to replay with: build/fuzz/tests/fuzz/fuzz_secure CRASH-FILE
#
#   tests/fuzz/run.sh [SECONDS]     (default: $IOCP_FUZZ_SECONDS or 60)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-${IOCP_FUZZ_SECONDS:-60}}
dir=build/fuzz
jobs=$(nproc 2>/dev/null || echo 2)

if ! command -v clang >/dev/null; then
  echo "fuzz: clang is missing (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi
cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DIOCP_FUZZ=ON \
  -DIOCP_WERROR=ON >/dev/null
cmake --build "$dir" -j "$jobs" --target fuzz_secure fuzz_proxy_protocol fuzz_proxy

# The seeds: mode 0 a Hello of each role, mode 1 a clean session and a few
# damaged ones, mode 2 a key line.  The corpus directory keeps what the
# fuzzer adds, so later runs start further on.
corpus=$dir/corpus/fuzz_secure
mkdir -p "$corpus"
zeros64=$(printf '\\x00%.0s' $(seq 64))
printf "\\x00iocp\\x01S${zeros64}" >"$corpus/seed-hello-server"
printf "\\x00iocp\\x01C${zeros64}" >"$corpus/seed-hello-client"
printf '\x01\x00' >"$corpus/seed-session-clean"
printf '\x01\x04\x00\x10\x01' >"$corpus/seed-session-flip-hello"
printf '\x01\x05\x00\x50\x80' >"$corpus/seed-session-flip-confirm-server"
printf '\x01\x08\x00\x7e\x01\x01\x00\x04' >"$corpus/seed-session-flip-frames"
printf '\x01\x02\x10\x00\x00' >"$corpus/seed-session-cut"
printf '\x02iocptool-key-v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n' >"$corpus/seed-keyfile"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "fuzz: fuzz_secure for ${secs}s"
"$dir/tests/fuzz/fuzz_secure" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -max_len=4096 -print_final_stats=1 -artifact_prefix="$dir/" "$corpus"

# The PROXY protocol parser: a header of each kind to start from.  Half the
# time of the channel's: its input space is much smaller.
corpus=$dir/corpus/fuzz_proxy_protocol
mkdir -p "$corpus"
printf 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /' >"$corpus/seed-v1-tcp4"
printf 'PROXY TCP6 2001:db8::1 ::1 1 65535\r\n' >"$corpus/seed-v1-tcp6"
printf 'PROXY UNKNOWN\r\n' >"$corpus/seed-v1-unknown"
printf '\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x0a\x00\x00\x01\x0a\x00\x00\x02\x30\x39\x01\xbb' \
  >"$corpus/seed-v2-tcp4"
printf '\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x14\x0a\x00\x00\x01\x0a\x00\x00\x02\x30\x39\x01\xbb\x01\x00\x02h2\x04\x00\x00' \
  >"$corpus/seed-v2-tlv"
printf '\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00' >"$corpus/seed-v2-local"
psecs=$(( (secs + 1) / 2 ))
echo "fuzz: fuzz_proxy_protocol for ${psecs}s"
"$dir/tests/fuzz/fuzz_proxy_protocol" -max_total_time="$psecs" -timeout=10 -rss_limit_mb=2048 \
  -max_len=2048 -print_final_stats=1 -artifact_prefix="$dir/" "$corpus"

# The proxy protocols' parsers (fuzz_proxy.c: the first byte picks one):
# a message of each, complete, to start from.
corpus=$dir/corpus/fuzz_proxy
mkdir -p "$corpus"
printf '\x00\x05\x00' >"$corpus/seed-choice"
printf '\x01\x01\x00' >"$corpus/seed-auth"
printf '\x02\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38' >"$corpus/seed-reply-v4"
printf '\x02\x05\x00\x00\x03\x03abc\x00\x50' >"$corpus/seed-reply-name"
printf '\x03\x00\x5a\x00\x50\x7f\x00\x00\x01' >"$corpus/seed-socks4"
printf '\x04HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n' >"$corpus/seed-http"
printf '\x04HTTP/1.1 407 Proxy Authentication Required\r\n\r\n' >"$corpus/seed-http-407"
printf '\x05\x05\x02\x00\x02' >"$corpus/seed-hello"
printf '\x06\x01\x03bob\x02pw' >"$corpus/seed-userpass"
printf '\x07\x05\x01\x00\x03\x0bexample.org\x00\x50' >"$corpus/seed-request"
printf '\x07\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x16' \
  >"$corpus/seed-request-v6"
echo "fuzz: fuzz_proxy for ${psecs}s"
"$dir/tests/fuzz/fuzz_proxy" -max_total_time="$psecs" -timeout=10 -rss_limit_mb=2048 \
  -max_len=20000 -print_final_stats=1 -artifact_prefix="$dir/" "$corpus"

# The TLS channel's input side (fuzz_tls.c: mode 0 a server, 1 a client
# after its ClientHello, 2 a server after a real handshake), when TLS is
# built.
if grep -q '^IOCP_WITH_TLS:BOOL=ON' "$dir/CMakeCache.txt"; then
  cmake --build "$dir" -j "$jobs" --target fuzz_tls
  corpus=$dir/corpus/fuzz_tls
  mkdir -p "$corpus"
  printf '\x00\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00' >"$corpus/seed-client-hello"
  printf '\x01\x16\x03\x03\x00\x04\x02\x00\x00\x00' >"$corpus/seed-server-hello"
  printf '\x02\x17\x03\x03\x00\x20' >"$corpus/seed-record"
  echo "fuzz: fuzz_tls for ${psecs}s"
  "$dir/tests/fuzz/fuzz_tls" -max_total_time="$psecs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$dir/" "$corpus"
fi

