#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# echo.sh: the echo benchmark, every server back to back on this machine.
#
# Servers: iocptool echo (uring and epoll backends, one worker) and the three
# peers in bench/ (echo_uv as libuv's examples write it, echo_uv_best with
# one reused read buffer and uv_try_write first, echo_epoll, echo_uring).  Tests: 1, 100 and 1000
# connections x 64 B, 100 x 16 KiB, the accept rate, and server RSS per idle
# connection.  The server runs on one CPU and loadgen on the other, so the
# two never steal time from each other; each server is started fresh for
# each measurement.  Repetitions are interleaved (every server runs a test
# before any runs it again), so a slow minute on the machine lands on all of
# them alike.  Prints one Markdown table of medians on stdout; progress goes
# to stderr.
#
#   bash bench/echo.sh
#   REPS=1 DURATION=2 bash bench/echo.sh
#
# Environment: REPS (3), DURATION seconds per run (5), IOCPTOOL
# (build/iocptool), BENCH_BUILD (build/bench), IDLE_CONNS (10000),
# ACCEPT_SLOTS (100), SERVER_CPU (1), LOAD_CPU (0), SERVERS (a subset of the
# server names, e.g. "iocptool-uring echo_uring"), TESTS (a subset of the
# modes: echo accept idle).

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-3}
DURATION=${DURATION:-5}
IOCPTOOL=${IOCPTOOL:-build/iocptool}
BENCH_BUILD=${BENCH_BUILD:-build/bench}
IDLE_CONNS=${IDLE_CONNS:-10000}
ACCEPT_SLOTS=${ACCEPT_SLOTS:-100}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
# One source address has ~28,000 ephemeral ports; the idle test's 10,000
# connections fit, but accept mode churns through ports faster than
# TIME_WAIT frees them.  Every 127.0.0.0/8 address is on lo without setup.
SOURCES=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8
IDLE_HOLD=3 # seconds loadgen holds the idle connections; RSS is read in between

command_line="REPS=$REPS DURATION=$DURATION bash bench/echo.sh${*:+ $*}"
# shellcheck source=bench/lib.sh
source bench/lib.sh

# utime + stime in clock ticks, summed over the threads of the process.  The
# command name in field 2 may hold spaces, so count fields after its ")".
cpu_ticks() {
    local stat fields
    stat=$(cat "/proc/$1/stat")
    read -r -a fields <<<"${stat##*) }"
    echo $((fields[11] + fields[12]))
}

# Time on a CPU in nanoseconds, summed over the threads of the process
# (schedstat), or utime + stime converted where schedstat is missing: on a
# loaded machine a run serves few requests, and ticks of 10 ms are too coarse
# to tell two servers apart.
cpu_ns() {
    if [[ -r /proc/$1/schedstat ]]; then
        cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ t += $1 } END { printf "%d", t }'
    else
        echo $(($(cpu_ticks "$1") * 1000000000 / CLK_TCK))
    fi
}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# ---- setup ---------------------------------------------------------------

check_reps_duration
if (($(nproc) < 2)); then
    SERVER_CPU=0
    notes+=("only one CPU: server and loadgen share CPU 0, so numbers understate every server")
fi

# 10,000 idle connections need that many descriptors on both ends.
ulimit -n "$(ulimit -Hn)"
((IDLE_CONNS + 64 <= $(ulimit -n))) || die "IDLE_CONNS=$IDLE_CONNS needs more than ulimit -Hn $(ulimit -Hn) descriptors"

say "building the peers in $BENCH_BUILD"
cmake -S bench -B "$BENCH_BUILD" >/dev/null
cmake --build "$BENCH_BUILD" >/dev/null
LOADGEN=$BENCH_BUILD/loadgen

servers=()
if "$IOCPTOOL" echo --help >/dev/null 2>&1; then
    servers+=(iocptool-uring iocptool-epoll)
else
    notes+=("iocptool rows skipped: '$IOCPTOOL echo --help' fails, so that binary has no echo subcommand")
    say "note: ${notes[-1]}"
fi
servers+=(echo_uv echo_uv_best echo_epoll echo_uring)
# SERVERS="iocptool-uring echo_uring" keeps only the servers named.
keep_named servers "${SERVERS:-}"

server_argv() {
    case $1 in
    iocptool-uring) argv=("$IOCPTOOL" echo --backend uring --workers 1 127.0.0.1:0) ;;
    iocptool-epoll) argv=("$IOCPTOOL" echo --backend epoll --workers 1 127.0.0.1:0) ;;
    *) argv=("$BENCH_BUILD/$1" 0) ;;
    esac
}

# ---- one measurement -----------------------------------------------------

# Starts server $1 on SERVER_CPU and waits for "listening on ADDR PORT".
# A new file each time, made before the fork: the child truncates its stderr
# only after it, and a reused file read in between shows the last server's
# port.
starts=0
start_server() {
    local argv err="$work/server.$((++starts)).err"
    server_argv "$1"
    : >"$err"
    taskset -c "$SERVER_CPU" "${argv[@]}" >/dev/null 2>"$err" &
    server_pid=$!
    pids+=("$server_pid")
    server_port=
    local tries
    for ((tries = 0; tries < 100; tries++)); do
        server_port=$(sed -n 's/^listening on .* \([0-9][0-9]*\)$/\1/p' "$err" | head -n 1)
        [[ -n $server_port ]] && return 0
        alive "$server_pid" || break
        sleep 0.05
    done
    say "echo.sh: $1 did not start: $(head -c 300 "$err")"
    stop_server
    return 1
}

# SIGTERM, five seconds to exit cleanly, then SIGKILL.
stop_server() {
    local tries
    kill -TERM "$server_pid" 2>/dev/null || true
    for ((tries = 0; tries < 50; tries++)); do
        alive "$server_pid" || break
        sleep 0.1
    done
    if alive "$server_pid"; then
        say "echo.sh: server $server_pid ignored SIGTERM; killing it"
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    local status=0
    wait "$server_pid" 2>/dev/null || status=$?
    ((status == 0)) || say "echo.sh: server $server_pid exited with status $status"
    forget "$server_pid"
}

# Runs loadgen on LOAD_CPU with the given arguments; its key=value line is
# parsed into lg[].
# It runs in the background, so a signal to this script is handled at once
# and not after the run.
declare -A lg
loadgen() {
    local lg_pid kv
    taskset -c "$LOAD_CPU" "$LOADGEN" -p "$server_port" "$@" >"$work/load.out" &
    lg_pid=$!
    pids+=("$lg_pid")
    wait "$lg_pid" || true
    forget "$lg_pid"
    lg=()
    for kv in $(tail -n 1 "$work/load.out"); do
        lg[${kv%%=*}]=${kv#*=}
    done
    [[ -n ${lg[requests]:-} && ${lg[requests]} != 0 ]]
}

# Throughput test: sets value (req/s or conn/s), cpu_us (server CPU time per
# request or connection), p50, p99, errors.
measure_load() {
    local t0 t1
    t0=$(cpu_ns "$server_pid")
    loadgen "$@" -d "$DURATION" || return 1
    t1=$(cpu_ns "$server_pid")
    value=${lg[req_per_s]}
    cpu_us=$(awk -v t="$((t1 - t0))" -v n="${lg[requests]}" 'BEGIN { printf "%.2f", t / 1e3 / n }')
    p50=${lg[p50_us]}
    p99=${lg[p99_us]}
    errors=${lg[errors]}
}

# Idle test: RSS with IDLE_CONNS connections open minus RSS with none, per
# connection, in bytes.  loadgen prints "idle N ready" once every connection
# has echoed a byte, which means the server has accepted it and armed a read.
measure_idle() {
    local rss0 rss1 ready='' tries lg_pid
    rss0=$(rss_kib "$server_pid")
    : >"$work/idle.out" # emptied here, not after the fork, or the last run's line shows
    taskset -c "$LOAD_CPU" "$LOADGEN" -p "$server_port" --mode idle -c "$IDLE_CONNS" \
        -b "$SOURCES" -d "$IDLE_HOLD" >"$work/idle.out" &
    lg_pid=$!
    pids+=("$lg_pid")
    for ((tries = 0; tries < 1200; tries++)); do
        ready=$(sed -n 's/^idle \([0-9][0-9]*\) ready$/\1/p' "$work/idle.out")
        [[ -n $ready ]] && break
        alive "$lg_pid" || break
        sleep 0.05
    done
    if [[ -n $ready ]]; then
        sleep 0.5 # let the server finish with the last echoes
        rss1=$(rss_kib "$server_pid")
    fi
    wait "$lg_pid" || true
    forget "$lg_pid"
    [[ -n $ready && $ready != 0 ]] || return 1
    value=$(((rss1 - rss0) * 1024 / ready))
    base_rss[$server]=${base_rss[$server]:-}" $rss0"
    cpu_us=- p50=- p99=-
    errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' "$work/idle.out")
    errors=${errors:-$((IDLE_CONNS - ready))}
}

# ---- the runs ------------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)
tests=(
    "echo 1 64"
    "echo 100 64"
    "echo 1000 64"
    "echo 100 16384"
    "accept $ACCEPT_SLOTS 1"
    "idle $IDLE_CONNS 1"
)
# TESTS="accept idle" keeps only the tests of those modes, TESTS="echo" the
# echo rows.
if [[ -n ${TESTS:-} ]]; then
    keep=()
    for test in "${tests[@]}"; do
        [[ " $TESTS " == *" ${test%% *} "* ]] && keep+=("$test")
    done
    tests=("${keep[@]}")
fi

label() {
    local mode=$1 conns=$2 size=$3
    case $mode in
    echo)
        if ((size >= 1024)); then
            echo "echo ${conns}×$((size / 1024)) KiB, req/s"
        else
            echo "echo ${conns}×$size B, req/s"
        fi
        ;;
    accept) echo "accept, $conns slots, conn/s" ;;
    idle) echo "idle RSS, $conns conns, B/conn" ;;
    esac
}

# Per (test, server): space-separated values, one per successful repetition.
declare -A r_value r_cpu r_p50 r_p99 r_errors base_rss

for test in "${tests[@]}"; do
    read -r mode conns size <<<"$test"
    for ((rep = 0; rep < REPS; rep++)); do
        # Rotate the order too, so no server always runs first or last.
        for ((i = 0; i < ${#servers[@]}; i++)); do
            server=${servers[(i + rep) % ${#servers[@]}]}
            key="$test|$server"
            start_server "$server" || {
                r_errors[$key]+=" fail"
                continue
            }
            ok=1
            case $mode in
            echo) measure_load --mode echo -c "$conns" -s "$size" || ok=0 ;;
            accept) measure_load --mode accept -c "$conns" -b "$SOURCES" || ok=0 ;;
            idle) measure_idle || ok=0 ;;
            esac
            stop_server
            if ((ok)); then
                r_value[$key]+=" $value"
                r_cpu[$key]+=" $cpu_us"
                r_p50[$key]+=" $p50"
                r_p99[$key]+=" $p99"
                r_errors[$key]+=" $errors"
                say "$(label "$mode" "$conns" "$size") rep $((rep + 1)) $server: $value (cpu/op $cpu_us us, errors $errors)"
            else
                r_errors[$key]+=" fail"
                say "$(label "$mode" "$conns" "$size") rep $((rep + 1)) $server: failed"
            fi
        done
    done
done

# ---- the report ----------------------------------------------------------

MEDIAN_DECIMALS=1 # this table has always shown one decimal (lib.sh: two)

# "min–max" of the numbers given (the spread of the repetitions), or "-".
spread() {
    [[ $# -gt 0 && $1 != - ]] || {
        echo -
        return
    }
    printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 }
        END { printf (lo == int(lo) ? "%d" : "%.1f"), lo; printf "–";
              printf (hi == int(hi) ? "%d" : "%.1f"), hi }'
}

echo "## Echo benchmark"
echo
echo "- command: \`$command_line\`"
echo "- machine: $(machine)"
echo "- server pinned to CPU $SERVER_CPU, loadgen to CPU $LOAD_CPU; one server worker; ${DURATION} s per run; median of $REPS"
echo "- ×uv, ×uring: this server's median divided by echo_uv_best's (libuv at its best: one reused read buffer, uv_try_write first) and echo_uring's (higher is better for req/s and conn/s, lower for CPU and B/conn); echo_uv is libuv as its examples write it (a 64 KiB malloc per read)"
echo "- spread: the lowest and highest of the repetitions"
echo "- CPU µs/op: the server's utime+stime over the run divided by its requests (connections for accept)"
for note in "${notes[@]}"; do
    echo "- $note"
done
echo
echo "| test | server | median | spread | ×uv | ×uring | CPU µs/op | CPU spread | CPU ×uv | CPU ×uring | p50 µs | p99 µs | errors |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for test in "${tests[@]}"; do
    read -r mode conns size <<<"$test"
    # shellcheck disable=SC2086 # the stored lists split on purpose
    {
        uv_value=$(median ${r_value["$test|echo_uv_best"]:--})
        uring_value=$(median ${r_value["$test|echo_uring"]:--})
        uv_cpu=$(median ${r_cpu["$test|echo_uv_best"]:--})
        uring_cpu=$(median ${r_cpu["$test|echo_uring"]:--})
    }
    for server in "${servers[@]}"; do
        key="$test|$server"
        # shellcheck disable=SC2086
        {
            value=$(median ${r_value[$key]:--})
            value_spread=$(spread ${r_value[$key]:--})
            cpu=$(median ${r_cpu[$key]:--})
            cpu_spread=$(spread ${r_cpu[$key]:--})
            p50=$(median ${r_p50[$key]:--})
            p99=$(median ${r_p99[$key]:--})
            errors=$(total_errors ${r_errors[$key]:-})
        }
        echo "| $(label "$mode" "$conns" "$size") | $server | $value | $value_spread" \
            "| $(ratio "$value" "$uv_value") | $(ratio "$value" "$uring_value")" \
            "| $cpu | $cpu_spread | $(ratio "$cpu" "$uv_cpu") | $(ratio "$cpu" "$uring_cpu")" \
            "| $p50 | $p99 | $errors |"
    done
done
echo
line="Server RSS before the idle test, with no connection:"
for server in "${servers[@]}"; do
    # shellcheck disable=SC2086
    line+=" $server $(median ${base_rss[$server]:--}) KiB,"
done
echo "${line%,}"
