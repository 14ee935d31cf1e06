#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# udp_echo.sh: the UDP echo benchmark.  `iocptool echo -u` (epoll and
# io_uring backends, one worker) against the plain recvmmsg server
# (bench/udp_echo_mmsg.c) and socat (UDP4-LISTEN,fork with PIPE: a child
# per client), at 64 and 1400 bytes.  udp_loadgen keeps SOCKETS x WINDOW
# datagrams in flight (closed loop).  The server runs on SERVER_CPU, the
# load generator on LOAD_CPU; every server is started fresh for each
# measurement, and the repetitions are interleaved (every server runs once
# before any runs again), so the ratios come from one run of the script on
# one machine state.  Prints a Markdown table of medians with their spread
# (min-max) on stdout; progress on stderr.
#
#   bash bench/udp_echo.sh
#   REPS=3 DURATION=2 bash bench/udp_echo.sh
#
# Environment: REPS (5), DURATION seconds per run (3), SOCKETS (16), WINDOW
# (8), IOCPTOOL (build/iocptool), BENCH_BUILD (build/bench), SERVER_CPU (1),
# LOAD_CPU (0).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/udp_lib.sh

command_line="REPS=$REPS DURATION=$DURATION bash bench/udp_echo.sh"
servers=()
for b in epoll uring; do
    if iocptool_serves "$b" echo -u --no-stats --backend "$b" --workers 1 127.0.0.1:0; then
        servers+=("iocptool-$b")
    else
        notes+=("no iocptool-$b row: '$IOCPTOOL echo -u --backend $b' does not echo here")
    fi
done
servers+=(udp_echo_mmsg)
if command -v socat >/dev/null; then servers+=(socat); else notes+=("socat is not installed: no socat row"); fi
sizes=(64 1400)

# start SERVER: sets $started and $port
start() {
    local log=$work/$1.$RANDOM.log
    case $1 in
    iocptool-*)
        start_pinned "$SERVER_CPU" "$log" "$IOCPTOOL" echo -u --no-stats --backend "${1#iocptool-}" --workers 1 127.0.0.1:0
        port=$(wait_port "$log") ;;
    udp_echo_mmsg)
        start_pinned "$SERVER_CPU" "$log" "$BENCH_BUILD/udp_echo_mmsg" 0
        port=$(wait_port "$log") ;;
    socat)
        port=$(free_port)
        start_pinned "$SERVER_CPU" "$log" socat -T 30 "UDP4-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" PIPE
        port=$(wait_port "$log" "$port") ;;
    esac || die "$1 did not start: $(cat "$log")"
}

for ((rep = 1; rep <= REPS; rep++)); do
    for size in "${sizes[@]}"; do
        for s in "${servers[@]}"; do
            start "$s"
            read -r rate ns lost < <(run_load "$started" "$port" "$size")
            stop "$started"
            say "rep $rep/$REPS  $size B  $s: $rate datagrams/s, $ns ns CPU per datagram, $lost lost"
            echo "$rate" >>"$work/rate.$s.$size"
            echo "$ns" >>"$work/ns.$s.$size"
            echo "$lost" >>"$work/lost.$s.$size"
        done
    done
done

echo "$command_line"
echo
machine
echo "Load: $SOCKETS sockets x $WINDOW datagrams in flight, $DURATION s per run, $REPS runs interleaved; server on CPU $SERVER_CPU, load on CPU $LOAD_CPU."
echo
echo "| size | server | datagrams/s (median, spread) | server CPU per datagram, ns (median, spread) | rate / recvmmsg | CPU / recvmmsg | lost |"
echo "|---|---|---|---|---|---|---|"
for size in "${sizes[@]}"; do
    read -r base_rate _ < <(stats_of <"$work/rate.udp_echo_mmsg.$size")
    read -r base_ns _ < <(stats_of <"$work/ns.udp_echo_mmsg.$size")
    for s in "${servers[@]}"; do
        read -r rate rspread < <(stats_of <"$work/rate.$s.$size")
        read -r ns nspread < <(stats_of <"$work/ns.$s.$size")
        lost=$(awk '{ t += $1 } END { print t + 0 }' "$work/lost.$s.$size")
        rr=$(awk -v a="$rate" -v b="$base_rate" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
        cr=$(awk -v a="$ns" -v b="$base_ns" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
        echo "| $size B | $s | $rate ($rspread) | $ns ($nspread) | $rr | $cr | $lost |"
    done
done
for n in "${notes[@]}"; do echo; echo "Note: $n"; done
