#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# tunnel.sh: encrypted tunnel throughput, back to back on this machine.
#
# Four tunnels, each two proxies in a row between an iperf3 client and an
# iperf3 server:
#   plain   iocptool relay -> iocptool relay                 (no encryption)
#   iocptool iocptool relay --key-target -> relay --key-listen (docs/PROTOCOL.md;
#           AES-256-GCM where the CPU has AES-NI, as a user gets it)
#   iocptool-xchacha  the same with IOCP_CIPHER=xchacha20poly1305 on both ends
#           (the protocol's first cipher, what an older peer speaks)
#   spiped  spiped -e -> spiped -d                           (Debian's spiped)
# Both proxies of a tunnel share CPU 1; iperf3 (client and server) runs on
# CPU 0.  Repetitions are interleaved and the order rotates; the table shows
# medians, every run in order with the load average, how busy CPU 1 was
# (user, system, irq and softirq from /proc/stat: 100 means the proxies'
# CPU was the bound), and each tunnel's ratio to spiped and to the plain relay.
#
#   bash bench/tunnel.sh                  REPS (3), DURATION (5), IOCPTOOL (build/iocptool)
#   TUNNELS="iocptool spiped" bash bench/tunnel.sh     a subset
# Needs iperf3 and spiped (apt-get install iperf3 spiped).
set -euo pipefail
REPS=${REPS:-3}
DURATION=${DURATION:-5}
IOCPTOOL=${IOCPTOOL:-build/iocptool}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

for tool in iperf3 spiped taskset ss; do
  command -v "$tool" >/dev/null || { echo "tunnel.sh: $tool is missing" >&2; exit 1; }
done
# The help is read whole first: grep -q stops reading at its match, and
# with pipefail the help's SIGPIPE would fail the check.
grep -q -- --key-target <<<"$("$IOCPTOOL" relay --help 2>/dev/null)" ||
  { echo "tunnel.sh: $IOCPTOOL has no relay --key-target (built without libsodium?)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$IOCPTOOL" keygen "$work/key" >/dev/null
head -c 64 /dev/urandom >"$work/spiped.key"

# A free port on 127.0.0.1 (bound then released; good enough on a quiet box).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Wait until something listens on port $1.  Asked of the kernel, not by
# connecting: a test connection would travel through the tunnel and be taken
# by the one-off iperf3 server as its client.
wait_port() {
  for _ in $(seq 1 100); do
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] && return 0
    sleep 0.05
  done
  echo "tunnel.sh: nothing listens on $1" >&2
  return 1
}

# Busy and total jiffies of one CPU from /proc/stat (user, nice, system,
# irq, softirq, steal are busy; idle and iowait are not): "busy total".
cpu_jiffies() {
  awk -v cpu="cpu$1" '$1 == cpu { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6 }' /proc/stat
}
busy_percent() {
  local b0 t0 b1 t1
  read -r b0 t0 <<<"$1"
  read -r b1 t1 <<<"$2"
  awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.0f", t ? 100 * b / t : 0 }'
}

start() { taskset -c "$PROXY_CPU" "$@" >/dev/null 2>&1 & pids+=($!); }

# One measurement of tunnel $1: prints Gbit/s.
measure() {
  local name=$1 a b s
  a=$(free_port); b=$(free_port); s=$(free_port)
  taskset -c "$LOAD_CPU" iperf3 -s -1 -p "$s" >/dev/null 2>&1 & local server=$!
  pids+=("$server")
  local first=${#pids[@]}
  case $name in
    plain)
      start "$IOCPTOOL" relay -W 1 --no-stats "127.0.0.1:$b" "127.0.0.1:$s"
      start "$IOCPTOOL" relay -W 1 --no-stats "127.0.0.1:$a" "127.0.0.1:$b" ;;
    iocptool)
      start "$IOCPTOOL" relay -W 1 --no-stats --key-listen "$work/key" "127.0.0.1:$b" "127.0.0.1:$s"
      start "$IOCPTOOL" relay -W 1 --no-stats --key-target "$work/key" "127.0.0.1:$a" "127.0.0.1:$b" ;;
    iocptool-xchacha)
      start env IOCP_CIPHER=xchacha20poly1305 "$IOCPTOOL" relay -W 1 --no-stats \
        --key-listen "$work/key" "127.0.0.1:$b" "127.0.0.1:$s"
      start env IOCP_CIPHER=xchacha20poly1305 "$IOCPTOOL" relay -W 1 --no-stats \
        --key-target "$work/key" "127.0.0.1:$a" "127.0.0.1:$b" ;;
    spiped)
      start spiped -F -d -s "[127.0.0.1]:$b" -t "[127.0.0.1]:$s" -k "$work/spiped.key"
      start spiped -F -e -s "[127.0.0.1]:$a" -t "[127.0.0.1]:$b" -k "$work/spiped.key" ;;
  esac
  wait_port "$a"; wait_port "$b"; wait_port "$s"
  local out j0 j1
  j0=$(cpu_jiffies "$PROXY_CPU")
  out=$(taskset -c "$LOAD_CPU" iperf3 -c 127.0.0.1 -p "$a" -t "$DURATION" -f g 2>&1 | awk '/receiver/ {print $7}')
  j1=$(cpu_jiffies "$PROXY_CPU")
  busy=$(busy_percent "$j0" "$j1")
  for p in "${pids[@]:$((first - 1))}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  echo "${out:-0} $busy"
}

tunnels=(plain iocptool iocptool-xchacha spiped)
if [ -n "${TUNNELS:-}" ]; then
  keep=()
  for t in "${tunnels[@]}"; do [[ " $TUNNELS " == *" $t "* ]] && keep+=("$t"); done
  tunnels=("${keep[@]}")
fi
declare -A results busys loads
for rep in $(seq 1 "$REPS"); do
  for i in "${!tunnels[@]}"; do
    t=${tunnels[$(((i + rep) % ${#tunnels[@]}))]}
    read -r v busy <<<"$(measure "$t")"
    echo "rep $rep $t: $v Gbit/s (CPU $PROXY_CPU busy $busy%)" >&2
    results[$t]="${results[$t]:-} $v"
    busys[$t]="${busys[$t]:-} $busy"
    loads[$t]="${loads[$t]:-} $(cut -d' ' -f1 /proc/loadavg)"
  done
done

# The median of the numbers on stdin; empty for none (a tunnel TUNNELS left
# out: grep finding no line must not end the script under pipefail).
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk 'NR {a[NR]=$1} END {if (NR) print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "## Encrypted tunnel benchmark"
echo
echo "- command: \`REPS=$REPS DURATION=$DURATION${TUNNELS:+ TUNNELS=\"$TUNNELS\"} bash bench/tunnel.sh\`"
echo "- machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r)"
echo "- both proxies of a tunnel on CPU $PROXY_CPU, iperf3 client and server on CPU $LOAD_CPU; one iperf3 stream, $DURATION s, median of $REPS"
echo
echo "| tunnel | Gbit/s | ×spiped | ×plain relay | CPU $PROXY_CPU busy % | runs, in order | load avg |"
echo "|---|---:|---:|---:|---:|---|---|"
spiped_m=$(echo "${results[spiped]:-}" | median)
plain_m=$(echo "${results[plain]:-}" | median)
for t in "${tunnels[@]}"; do
  m=$(echo "${results[$t]}" | median)
  echo "| $t | $m | $(awk -v a="$m" -v b="${spiped_m:-0}" 'BEGIN {printf "%.2f", b ? a/b : 0}')" \
    "| $(awk -v a="$m" -v b="${plain_m:-0}" 'BEGIN {printf "%.2f", b ? a/b : 0}')" \
    "| $(echo "${busys[$t]}" | median) |${results[$t]} |${loads[$t]} |"
done
# Each tunnel against spiped repetition by repetition (the two ran next to
# each other in the same round), so a target "in every repetition" can be
# read off, not only the medians.
if [ -n "${results[spiped]:-}" ]; then
  echo
  read -r -a sp <<<"${results[spiped]}"
  for t in "${tunnels[@]}"; do
    [ "$t" = spiped ] && continue
    read -r -a r <<<"${results[$t]}"
    line=""
    for i in "${!r[@]}"; do
      line+=" $(awk -v a="${r[$i]}" -v b="${sp[$i]:-0}" 'BEGIN {printf "%.2f", b ? a/b : 0}')"
    done
    echo "- $t ÷ spiped, per repetition:$line"
  done
fi
