#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# udp_relay.sh: the UDP relay benchmark.  `iocptool relay -u` (epoll and
# io_uring backends, one worker) against socat's UDP relay
# (UDP4-LISTEN,fork to UDP4: a child per client, each with its own socket
# towards the target, as the iocptool relay has a session each), in front
# of the plain recvmmsg echo server, at 64 and 1400 bytes.  The relay runs
# on SERVER_CPU; the load generator and the echo server behind the relay
# share LOAD_CPU.  Fresh relay per measurement, repetitions interleaved;
# one Markdown table of medians and spreads on stdout.  "Per round trip"
# is the relay's CPU for one datagram each way (four socket operations).
#
#   bash bench/udp_relay.sh
#   REPS=3 DURATION=2 bash bench/udp_relay.sh
#
# Environment: as bench/udp_echo.sh.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/udp_lib.sh

command_line="REPS=$REPS DURATION=$DURATION bash bench/udp_relay.sh"

start_pinned "$LOAD_CPU" "$work/target.log" "$BENCH_BUILD/udp_echo_mmsg" 0
target_pid=$started
target=$(wait_port "$work/target.log") || die "the echo target did not start"

relays=()
for b in epoll uring; do
    if iocptool_serves "$b" echo -u --no-stats --backend "$b" --workers 1 127.0.0.1:0; then
        relays+=("iocptool-$b")
    else
        notes+=("no iocptool-$b row: '$IOCPTOOL echo -u --backend $b' does not echo here")
    fi
done
if command -v socat >/dev/null; then relays+=(socat); else notes+=("socat is not installed: no socat row"); fi
((${#relays[@]})) || die "nothing to measure"
sizes=(64 1400)

start() {
    local log=$work/$1.$RANDOM.log
    case $1 in
    iocptool-*)
        start_pinned "$SERVER_CPU" "$log" "$IOCPTOOL" relay -u --no-stats --backend "${1#iocptool-}" --workers 1 127.0.0.1:0 "127.0.0.1:$target"
        port=$(wait_port "$log") ;;
    socat)
        port=$(free_port)
        start_pinned "$SERVER_CPU" "$log" socat -T 30 "UDP4-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "UDP4:127.0.0.1:$target"
        port=$(wait_port "$log" "$port") ;;
    esac || die "$1 did not start: $(cat "$log")"
}

for ((rep = 1; rep <= REPS; rep++)); do
    for size in "${sizes[@]}"; do
        for s in "${relays[@]}"; do
            start "$s"
            read -r rate ns lost < <(run_load "$started" "$port" "$size")
            stop "$started"
            say "rep $rep/$REPS  $size B  $s: $rate round trips/s, $ns ns relay CPU per round trip, $lost lost"
            echo "$rate" >>"$work/rate.$s.$size"
            echo "$ns" >>"$work/ns.$s.$size"
            echo "$lost" >>"$work/lost.$s.$size"
        done
    done
done
stop "$target_pid"

echo "$command_line"
echo
machine
echo "Load: $SOCKETS clients x $WINDOW datagrams in flight through the relay to udp_echo_mmsg, $DURATION s per run, $REPS runs interleaved; relay on CPU $SERVER_CPU, load and target on CPU $LOAD_CPU."
echo
base=socat
echo "| size | relay | round trips/s (median, spread) | relay CPU per round trip, ns (median, spread) | rate / socat | CPU / socat | lost |"
echo "|---|---|---|---|---|---|---|"
for size in "${sizes[@]}"; do
    base_rate=0 base_ns=0
    [[ -f $work/rate.$base.$size ]] && read -r base_rate _ < <(stats_of <"$work/rate.$base.$size")
    [[ -f $work/ns.$base.$size ]] && read -r base_ns _ < <(stats_of <"$work/ns.$base.$size")
    for s in "${relays[@]}"; do
        read -r rate rspread < <(stats_of <"$work/rate.$s.$size")
        read -r ns nspread < <(stats_of <"$work/ns.$s.$size")
        lost=$(awk '{ t += $1 } END { print t + 0 }' "$work/lost.$s.$size")
        rr=$(awk -v a="$rate" -v b="$base_rate" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
        cr=$(awk -v a="$ns" -v b="$base_ns" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
        echo "| $size B | $s | $rate ($rspread) | $ns ($nspread) | $rr | $cr | $lost |"
    done
done
for n in "${notes[@]}"; do echo; echo "Note: $n"; done
