#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# ab.sh: two or more echo servers in turns on one load, to tell whether a
# change made the server cheaper.  Each repetition runs every server once
# (the order rotates), fresh, pinned to SERVER_CPU with loadgen on LOAD_CPU,
# and prints the server's CPU time per request (the time its threads spent
# on a CPU over the run, in nanoseconds from /proc/PID/task/*/schedstat;
# utime+stime in clock ticks where schedstat is missing) with req/s and the
# load average.  On a loaded machine a run serves few requests and the
# 10 ms ticks are too coarse to tell servers apart; schedstat is not.  On a
# shared machine the spread between repetitions of one server is the noise
# to beat.
#
#   bash bench/ab.sh "build/iocptool echo --backend epoll -W 1" \
#                    "/tmp/old/iocptool echo --backend epoll -W 1" -- -c 1000 -s 64
#
# Arguments: server commands (each gets 127.0.0.1:0 appended unless it
# names PORT, which is replaced by 0), then --, then loadgen's options (its
# -p and -d are added).  Environment: REPS (5), DURATION (3), SERVER_CPU
# (1), LOAD_CPU (0), BENCH_BUILD (build/bench).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-5}
DURATION=${DURATION:-3}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
BENCH_BUILD=${BENCH_BUILD:-build/bench}

servers=()
while (($#)) && [[ $1 != -- ]]; do
    servers+=("$1")
    shift
done
[[ ${1:-} == -- ]] && shift
load=("$@")
((${#servers[@]})) || { echo "usage: ab.sh SERVER... -- LOADGEN-OPTIONS" >&2; exit 2; }
[[ -x $BENCH_BUILD/loadgen ]] || { cmake -S bench -B "$BENCH_BUILD" >/dev/null && cmake --build "$BENCH_BUILD" >/dev/null; }

work=$(mktemp -d)
pid=
cleanup() {
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

hz=$(getconf CLK_TCK)
# CPU time of a process so far, in nanoseconds: the sum over its threads of
# schedstat's time on a CPU, or utime+stime where schedstat is missing.
cpu_ns() {
    if [[ -r /proc/$1/schedstat ]]; then
        cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ t += $1 } END { printf "%d", t }'
        return
    fi
    local s
    s=$(cat "/proc/$1/stat")
    s=${s##*) }
    set -- $s
    echo $(((${12} + ${13}) * 1000000000 / hz))
}

printf '| rep | server | req/s | CPU µs/req | p50 µs | p99 µs | load avg |\n|---:|---|---:|---:|---:|---:|---:|\n'
: >"$work/runs.tsv"
for ((r = 0; r < REPS; r++)); do
    n=${#servers[@]}
    for ((k = 0; k < n; k++)); do
        i=$(((k + r) % n))
        cmd=${servers[$i]}
        [[ $cmd == *PORT* ]] && cmd=${cmd//PORT/0} || cmd="$cmd 127.0.0.1:0"
        # shellcheck disable=SC2086
        taskset -c "$SERVER_CPU" $cmd 2>"$work/err" &
        pid=$!
        port=
        for _ in $(seq 100); do
            port=$(grep -o 'listening on [^ ]* [0-9]*' "$work/err" 2>/dev/null | awk '{print $4}' | head -1 || true)
            [[ -n $port ]] && break
            sleep 0.05
        done
        [[ -n $port ]] || { echo "server $i did not start: $(cat "$work/err")" >&2; exit 1; }
        t0=$(cpu_ns "$pid")
        out=$(taskset -c "$LOAD_CPU" "$BENCH_BUILD/loadgen" -p "$port" -d "$DURATION" "${load[@]}")
        t1=$(cpu_ns "$pid")
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
        pid=
        reqs=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$out")
        rps=$(sed -n 's/.*req_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
        us=$(awk -v t=$((t1 - t0)) -v n="$reqs" 'BEGIN { printf "%.2f", n ? t / 1e3 / n : 0 }')
        p50=$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<<"$out")
        p99=$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$out")
        printf '| %d | %s | %s | %s | %s | %s | %s |\n' "$r" "${servers[$i]}" "$rps" "$us" "$p50" "$p99" \
            "$(cut -d' ' -f1 /proc/loadavg)"
        printf '%d\t%d\t%s\t%s\t%s\t%s\n' "$r" "$i" "$rps" "$us" "$p50" "$p99" >>"$work/runs.tsv"
    done
done

# Medians per server, and each server's CPU per request divided by the last
# server's (the reference) in the same repetition: a ratio per repetition,
# so a target "in every run" can be read off, then their median.
printf '\n| server | req/s | CPU µs/req (lowest–highest) | p50 / p99 µs | CPU ÷ %s, per rep | median |\n' \
    "${servers[-1]}"
printf '|---|---:|---:|---:|---|---:|\n'
for ((i = 0; i < ${#servers[@]}; i++)); do
    awk -F'\t' -v i="$i" -v ref=$((${#servers[@]} - 1)) -v name="${servers[$i]}" '
        function med(a, n,   k, j, t) {
            for (k = 2; k <= n; k++) for (j = k; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $2 == ref { refus[$1] = $4 }
        $2 == i { n++; rps[n] = $3; us[n] = $4; p50[n] = $5; p99[n] = $6; rep[n] = $1
                  lo = (n == 1 || $4 < lo) ? $4 : lo; hi = (n == 1 || $4 > hi) ? $4 : hi }
        END {
            line = ""; m = 0
            for (k = 1; k <= n; k++) if (refus[rep[k]] > 0) { r[++m] = us[k] / refus[rep[k]]; line = line sprintf(" %.2f", r[m]) }
            printf "| %s | %.0f | %.2f (%.2f–%.2f) | %.0f / %.0f |%s | %.2f |\n", name, med(rps, n), med(us, n), lo, hi,
                med(p50, n), med(p99, n), line, m ? med(r, m) : 0
        }' "$work/runs.tsv"
done
