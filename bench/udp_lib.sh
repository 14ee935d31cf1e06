# SPDX-License-Identifier: MIT
#
# udp_lib.sh: what bench/udp_echo.sh and bench/udp_relay.sh share: the
# build of the peers, starting a server pinned to a CPU and waiting until it
# is bound, its CPU time (children included: socat forks one per client),
# one closed-loop run of udp_loadgen, and the medians.  Sourced, not run.

REPS=${REPS:-5}
DURATION=${DURATION:-3}
IOCPTOOL=${IOCPTOOL:-build/iocptool}
BENCH_BUILD=${BENCH_BUILD:-build/bench}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
SOCKETS=${SOCKETS:-16}
WINDOW=${WINDOW:-8}

work=$(mktemp -d)
pids=()
notes=()

say() { printf '%s\n' "$*" >&2; }
die() {
    say "$(basename "$0"): $*"
    exit 1
}

# Every process started here is killed and reaped on the way out.
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        pkill -KILL -P "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS=$REPS: not a positive integer"
[[ $DURATION =~ ^[0-9]+([.][0-9]+)?$ ]] || die "DURATION=$DURATION: not a number of seconds"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
if (($(nproc) < 2)); then
    SERVER_CPU=0
    notes+=("only one CPU: server and load generator share CPU 0")
fi

say "building the peers in $BENCH_BUILD"
cmake -S bench -B "$BENCH_BUILD" >/dev/null
cmake --build "$BENCH_BUILD" --target udp_loadgen udp_echo_mmsg >/dev/null
LOADGEN=$BENCH_BUILD/udp_loadgen
HZ=$(getconf CLK_TCK)

# utime + stime in clock ticks of a process and of its live children.
cpu_ticks() {
    local total=0 pid stat fields
    for pid in "$1" $(pgrep -P "$1" 2>/dev/null); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        read -r -a fields <<<"${stat##*) }"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# A UDP port nothing is bound to, for the peers that cannot take port 0.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        grep -qi ":$(printf '%04X' "$port") " /proc/net/udp /proc/net/udp6 2>/dev/null || break
    done
    echo "$port"
}

# Is UDP port $1 bound by anyone?
bound() {
    grep -qi ":$(printf '%04X' "$1") " /proc/net/udp /proc/net/udp6 2>/dev/null
}

# start_pinned CPU LOG ARGV...: start, pinned, stderr to LOG; sets $started.
start_pinned() {
    local cpu=$1 log=$2
    shift 2
    taskset -c "$cpu" "$@" >/dev/null 2>"$log" &
    started=$!
    pids+=("$started")
}

# Wait for "listening on ADDR PORT" in $1 (or, with a port, for it to be
# bound); prints the port.
wait_port() {
    local log=$1 port=${2:-} i
    for ((i = 0; i < 200; i++)); do
        if [[ -n $port ]]; then
            bound "$port" && {
                echo "$port"
                return 0
            }
        else
            port=$(awk '/^listening on / {print $4; exit}' "$log")
            [[ -n $port ]] && {
                echo "$port"
                return 0
            }
            port=
        fi
        sleep 0.05
    done
    return 1
}

stop() {
    local keep=() p
    pkill -TERM -P "$1" 2>/dev/null || true
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    pids=("${keep[@]}")
}

# run_load PID PORT SIZE: one closed-loop run against PORT, with the CPU of
# process PID (and children) measured around it; prints
# "RATE CPU_NS_PER_DATAGRAM LOST".
run_load() {
    local pid=$1 port=$2 size=$3 before after out replies rate lost
    # A short warm-up: sessions open, socat forks its children.
    taskset -c "$LOAD_CPU" "$LOADGEN" -p "$port" -s "$size" -c "$SOCKETS" -w "$WINDOW" -d 0.5 >/dev/null || true
    before=$(cpu_ticks "$pid")
    out=$(taskset -c "$LOAD_CPU" "$LOADGEN" -p "$port" -s "$size" -c "$SOCKETS" -w "$WINDOW" -d "$DURATION") || true
    after=$(cpu_ticks "$pid")
    replies=$(sed -n 's/.*replies=\([0-9]*\).*/\1/p' <<<"$out")
    rate=$(sed -n 's/.*rate=\([0-9]*\).*/\1/p' <<<"$out")
    lost=$(sed -n 's/.*lost=\([0-9]*\).*/\1/p' <<<"$out")
    if [[ -z $replies || $replies -eq 0 ]]; then
        echo "0 0 0"
        return
    fi
    echo "$rate $(((after - before) * 1000000000 / HZ / replies)) $lost"
}

# median and spread (min-max) of the numbers on stdin
stats_of() {
    sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "- -"; exit }
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%d %d-%d\n", m, v[1], v[NR] }'
}

# iocptool_serves BACKEND ARGS...: whether `iocptool ARGS` (an echo server)
# answers a short load: a backend without datagrams here gets no row.
iocptool_serves() {
    local log=$work/probe.$1.log ok=1
    shift
    start_pinned "$SERVER_CPU" "$log" "$IOCPTOOL" "$@"
    local pid=$started port
    if port=$(wait_port "$log"); then
        "$LOADGEN" -p "$port" -c 1 -w 1 -d 0.3 >/dev/null 2>&1 && ok=0
    fi
    stop "$pid"
    return $ok
}

machine() {
    printf 'Machine: %s CPUs, %s, Linux %s\n' "$(nproc)" \
        "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" "$(uname -r)"
}
