# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034 # work, notes, usr... are read by the scripts
#
# lib.sh: the harness bench/echo.sh, bench/relay.sh and bench/tls.sh share:
# messages, the list of started processes and their cleanup, process and
# port state from /proc, free ports, stopping a server, a CPU's busy time,
# the REPS/DURATION checks, the TESTS filter and the report's medians,
# ratios and error totals.  Sourced, not run, after `cd` to the top of the
# tree.  Sets work (a temporary directory), pids and notes.

work=$(mktemp -d)
pids=()
notes=()

say() {
    printf '%s\n' "$*" >&2
}

# The message names the script that was run ($0 is bench/NAME.sh).
die() {
    say "${0##*/}: $*"
    exit 1
}

# Everything the script starts is in pids until it has been reaped; the
# process groups go too (socat forks a child per connection).  A pid that
# leads no group is killed alone.
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() {
    local pid keep=()
    for pid in "${pids[@]}"; do
        [[ $pid == "$1" ]] || keep+=("$pid")
    done
    pids=("${keep[@]}")
}

# kill -0 also succeeds on a zombie, so look at the process state instead.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# SIGTERM to the process group (or the process), five seconds, then SIGKILL.
stop_pid() {
    local pid=$1 tries
    [[ -n $pid ]] || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((tries = 0; tries < 50; tries++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}

# A free TCP port on 127.0.0.1 (bound, then released).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# True once something listens on 127.0.0.1:$1 (or any address), without
# connecting to it: a connection would use up iperf3's one test.
listening() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6
}

# listening, waited for up to five seconds.
wait_listening() {
    local tries
    for ((tries = 0; tries < 200; tries++)); do
        listening "$1" && return 0
        sleep 0.025
    done
    return 1
}

# Busy and total jiffies of one CPU, from /proc/stat, then the busy time's
# parts: "busy total user system irq softirq" (user includes nice).
cpu_jiffies() {
    awk -v cpu="cpu$1" '$1 == cpu {
        busy = $2 + $3 + $4 + $7 + $8 + $9; total = busy + $5 + $6
        print busy, total, $2 + $3, $4, $7, $8 }' /proc/stat
}

# The busy share of the CPU between two cpu_jiffies, in %.
busy_percent() {
    local b0 t0 b1 t1
    read -r b0 t0 _ <<<"$1"
    read -r b1 t1 _ <<<"$2"
    awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.0f", t ? 100 * b / t : 0 }'
}

# The parts of the busy time between two cpu_jiffies, in % of the CPU:
# sets usr, sys, irq, sirq.
cpu_split() {
    local a b
    read -ra a <<<"$1"
    read -ra b <<<"$2"
    local t=$((b[1] - a[1]))
    ((t > 0)) || t=1
    usr=$(((b[2] - a[2]) * 100 / t))
    sys=$(((b[3] - a[3]) * 100 / t))
    irq=$(((b[4] - a[4]) * 100 / t))
    sirq=$(((b[5] - a[5]) * 100 / t))
}

# REPS and DURATION as every script takes them, and taskset for the pinning.
check_reps_duration() {
    [[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS=$REPS: not a positive integer"
    [[ $DURATION =~ ^[0-9]+([.][0-9]+)?$ ]] || die "DURATION=$DURATION: not a number of seconds"
    command -v taskset >/dev/null || die "taskset not found (util-linux)"
}

# TESTS (comma-separated prefixes, e.g. "up,hs 1.2") keeps only the entries
# of the array tests that start with one of them; unset keeps all.
filter_tests_by_prefix() {
    [[ -n ${TESTS:-} ]] || return 0
    local t w keep=() wanted
    IFS=',' read -ra wanted <<<"$TESTS"
    for t in "${tests[@]}"; do
        for w in "${wanted[@]}"; do
            [[ $t == "$w"* ]] && keep+=("$t") && break
        done
    done
    tests=("${keep[@]}")
}

# keep_named ARRAY "a b": keeps only the entries of ARRAY named in the
# space-separated list (PROXIES, SERVERS); an empty list keeps all.
keep_named() {
    local -n list=$1
    [[ -n $2 ]] || return 0
    local name keep=()
    for name in "${list[@]}"; do
        [[ " $2 " == *" $name "* ]] && keep+=("$name")
    done
    list=("${keep[@]}")
}

# "N CPUs, model, Linux release" for the report's machine line.
machine() {
    local cpu_model
    cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    echo "$(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r)"
}

# Median of the numbers given, or "-" for none; a fraction shows
# MEDIAN_DECIMALS (2) decimals.
median() {
    [[ $# -gt 0 && $1 != - ]] || {
        echo -
        return
    }
    printf '%s\n' "$@" | sort -g | awk -v f="%.${MEDIAN_DECIMALS:-2}f" '{ v[NR] = $1 }
        END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf (m == int(m) ? "%d" : f), m }'
}

# $1 / $2 to two decimals, or "-" when either is missing.
ratio() {
    if [[ $1 == - || $2 == - ]]; then
        echo -
    else
        awk -v a="$1" -v b="$2" 'BEGIN { if (b != 0) printf "%.2f", a / b; else printf "-" }'
    fi
}

# Errors summed over repetitions; a run that failed outright counts apart.
total_errors() {
    local e sum=0 failed=0
    for e in "$@"; do
        [[ $e == fail ]] && failed=$((failed + 1)) || sum=$((sum + e))
    done
    ((failed)) && echo "$sum (+$failed failed)" || echo "$sum"
}
