#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# relay.sh: the relay benchmark, every TCP proxy back to back on this machine.
#
# Proxies: none (direct loopback, the ceiling), iocptool relay (uring and
# epoll backends, one worker), socat (a process per connection), and haproxy
# in tcp mode without and with splice.  Tests: iperf3 throughput with 1 and
# 4 streams, and relayed echo (loadgen, 100 connections x 64 B, against
# bench's echo_epoll).  The proxy runs alone on one CPU; the load (iperf3
# client and server, or loadgen and the echo server) shares the other, so
# every proxy is measured against the same load side and direct loopback
# shows what that side can do without a proxy.  Each proxy is started fresh
# for each measurement; repetitions are interleaved and their order rotates,
# so a slow minute lands on all proxies alike.  Prints one Markdown table of
# medians on stdout; progress goes to stderr.
#
#   bash bench/relay.sh
#   REPS=1 DURATION=2 bash bench/relay.sh
#
# Environment: REPS (3), DURATION seconds per run (5), IOCPTOOL
# (build/iocptool), BENCH_BUILD (build/bench), PROXY_CPU (1), LOAD_CPU (0),
# PROXIES (a space-separated subset of the proxy names to run, e.g.
# "iocptool-default haproxy-splice"; all by default), TESTS (a comma-separated
# subset of the tests by prefix: "iperf 1", "iperf", "echo"; all by default).  iocptool-default is
# the relay as a user starts it (no --backend, no --workers) under taskset:
# its worker count comes from the CPUs it may use; iocptool-log and
# iocptool-pcap are that relay with --log FILE and with --pcap FILE.
# Needs iperf3, socat and haproxy (apt-get install iperf3 socat haproxy);
# a missing one drops its rows with a note.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-3}
DURATION=${DURATION:-5}
IOCPTOOL=${IOCPTOOL:-build/iocptool}
BENCH_BUILD=${BENCH_BUILD:-build/bench}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

command_line="REPS=$REPS DURATION=$DURATION bash bench/relay.sh${*:+ $*}"
work=$(mktemp -d)
pids=()
notes=()

say() {
    printf '%s\n' "$*" >&2
}

die() {
    say "relay.sh: $*"
    exit 1
}

# Everything this script starts is in pids until it has been reaped; the
# process groups go too (socat forks a child per connection).
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

alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Busy and total jiffies of one CPU, from /proc/stat, then the busy time's
# parts: "busy total user system irq softirq" (user includes nice).
cpu_jiffies() {
    awk -v cpu="cpu$1" '$1 == cpu {
        busy = $2 + $3 + $4 + $7 + $8 + $9; total = busy + $5 + $6
        print busy, total, $2 + $3, $4, $7, $8 }' /proc/stat
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

wait_listening() {
    local tries
    for ((tries = 0; tries < 200; tries++)); do
        listening "$1" && return 0
        sleep 0.025
    done
    return 1
}

# ---- setup ---------------------------------------------------------------

[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS=$REPS: not a positive integer"
[[ $DURATION =~ ^[0-9]+([.][0-9]+)?$ ]] || die "DURATION=$DURATION: not a number of seconds"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
command -v python3 >/dev/null || die "python3 not found (used to pick free ports)"
command -v iperf3 >/dev/null || die "iperf3 not found (apt-get install iperf3)"
if (($(nproc) < 2)); then
    PROXY_CPU=0
    notes+=("only one CPU: proxy and load share CPU 0, so the proxy's cost shows as lost throughput")
fi
ulimit -n "$(ulimit -Hn)"

say "building loadgen and echo_epoll in $BENCH_BUILD"
cmake -S bench -B "$BENCH_BUILD" >/dev/null
cmake --build "$BENCH_BUILD" >/dev/null
LOADGEN=$BENCH_BUILD/loadgen
ECHO=$BENCH_BUILD/echo_epoll

proxies=(direct)
if "$IOCPTOOL" relay --help >/dev/null 2>&1; then
    proxies+=(iocptool-default iocptool-uring iocptool-epoll iocptool-log iocptool-pcap)
else
    notes+=("iocptool rows skipped: '$IOCPTOOL relay --help' fails")
    say "note: ${notes[-1]}"
fi
if command -v socat >/dev/null; then
    proxies+=(socat)
else
    notes+=("socat rows skipped: socat is not installed")
fi
if command -v haproxy >/dev/null; then
    proxies+=(haproxy haproxy-splice)
else
    notes+=("haproxy rows skipped: haproxy is not installed")
fi

if [[ -n ${PROXIES:-} ]]; then
    keep=()
    for p in "${proxies[@]}"; do
        [[ " $PROXIES " == *" $p "* ]] && keep+=("$p")
    done
    proxies=("${keep[@]}")
fi

haproxy_config() {
    local port=$1 target=$2 splice=$3
    cat <<EOF
global
    maxconn 4096
    nbthread 1
$([[ $splice == 1 ]] || echo "    nosplice")
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
$([[ $splice == 1 ]] && echo "    option splice-request" && echo "    option splice-response")
listen relay
    bind 127.0.0.1:$port
    server target 127.0.0.1:$target
EOF
}

# ---- one measurement -----------------------------------------------------

# Starts proxy $1 on PROXY_CPU in front of 127.0.0.1:$2; sets proxy_pid and
# proxy_port (for "direct": no process, the target's own port).
starts=0
start_proxy() {
    local name=$1 target=$2 err="$work/proxy.$((++starts)).err" argv=()
    proxy_pid=
    proxy_port=
    case $name in
    direct)
        proxy_port=$target
        return 0
        ;;
    iocptool-default)
        argv=("$IOCPTOOL" relay --no-stats 127.0.0.1:0 "127.0.0.1:$target")
        ;;
    iocptool-uring | iocptool-epoll)
        argv=("$IOCPTOOL" relay --backend "${name#iocptool-}" --workers 1 --no-stats
            127.0.0.1:0 "127.0.0.1:$target")
        ;;
    iocptool-log)
        # The default relay with the access log on: one JSON line per
        # connection, written off the workers.
        argv=("$IOCPTOOL" relay --no-stats --log "$work/access.log" 127.0.0.1:0
            "127.0.0.1:$target")
        ;;
    iocptool-pcap)
        # The default relay capturing every connection to pcapng (splice is
        # off while capturing; what the disk cannot take is dropped and
        # counted, never waited for).
        rm -f "$work/capture.pcapng"
        argv=("$IOCPTOOL" relay --no-stats --pcap "$work/capture.pcapng" 127.0.0.1:0
            "127.0.0.1:$target")
        ;;
    socat)
        proxy_port=$(free_port)
        argv=(socat "TCP-LISTEN:$proxy_port,bind=127.0.0.1,reuseaddr,fork,backlog=1024"
            "TCP:127.0.0.1:$target")
        ;;
    haproxy | haproxy-splice)
        proxy_port=$(free_port)
        haproxy_config "$proxy_port" "$target" "$([[ $name == haproxy-splice ]] && echo 1 || echo 0)" \
            >"$work/haproxy.cfg"
        argv=(haproxy -db -f "$work/haproxy.cfg")
        ;;
    esac
    : >"$err"
    # A process group of its own, so that socat's children go with it.
    setsid taskset -c "$PROXY_CPU" "${argv[@]}" >/dev/null 2>"$err" &
    proxy_pid=$!
    pids+=("$proxy_pid")
    local tries
    for ((tries = 0; tries < 200; tries++)); do
        if [[ $name == iocptool-* ]]; then
            proxy_port=$(sed -n 's/^listening on .* \([0-9][0-9]*\)$/\1/p' "$err" | head -n 1)
            [[ -n $proxy_port ]] && return 0
        elif listening "$proxy_port"; then
            return 0
        fi
        alive "$proxy_pid" || break
        sleep 0.025
    done
    say "relay.sh: $name did not start: $(head -c 300 "$err")"
    stop_pid "$proxy_pid"
    return 1
}

# SIGTERM to the process group, five seconds, then SIGKILL.
stop_pid() {
    local pid=$1 tries
    [[ -n $pid ]] || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((tries = 0; tries < 50; tries++)); do
        alive "$pid" || break
        sleep 0.1
    done
    alive "$pid" && kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}

# iperf3 through the proxy: sets value (Gbit/s received), cpu (proxy CPU
# busy %), errors.
measure_iperf() {
    local name=$1 streams=$2 sport ipid j0 j1
    sport=$(free_port)
    taskset -c "$LOAD_CPU" iperf3 -s -1 -p "$sport" >/dev/null 2>&1 &
    ipid=$!
    pids+=("$ipid")
    wait_listening "$sport" || {
        stop_pid "$ipid"
        return 1
    }
    start_proxy "$name" "$sport" || {
        stop_pid "$ipid"
        return 1
    }
    j0=$(cpu_jiffies "$PROXY_CPU")
    taskset -c "$LOAD_CPU" iperf3 -c 127.0.0.1 -p "$proxy_port" -P "$streams" -t "$DURATION" \
        -J >"$work/iperf.json" 2>/dev/null || true
    j1=$(cpu_jiffies "$PROXY_CPU")
    stop_pid "$proxy_pid"
    stop_pid "$ipid"
    value=$(python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    print("%.2f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception:
    print("")' "$work/iperf.json")
    [[ -n $value ]] || return 1
    cpu=$(busy_percent "$j0" "$j1")
    cpu_split "$j0" "$j1"
    p50=- p99=- errors=0
}

busy_percent() {
    local b0 t0 b1 t1
    read -r b0 t0 _ <<<"$1"
    read -r b1 t1 _ <<<"$2"
    awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.0f", t ? 100 * b / t : 0 }'
}

# Echo through the proxy with loadgen: sets value (req/s), cpu, p50, p99,
# errors.
measure_echo() {
    local name=$1 conns=$2 size=$3 eport epid err="$work/echo.err" j0 j1 tries kv
    : >"$err"
    taskset -c "$LOAD_CPU" "$ECHO" 0 >/dev/null 2>"$err" &
    epid=$!
    pids+=("$epid")
    eport=
    for ((tries = 0; tries < 200; tries++)); do
        eport=$(sed -n 's/^listening on .* \([0-9][0-9]*\)$/\1/p' "$err" | head -n 1)
        [[ -n $eport ]] && break
        sleep 0.025
    done
    [[ -n $eport ]] || {
        stop_pid "$epid"
        return 1
    }
    start_proxy "$name" "$eport" || {
        stop_pid "$epid"
        return 1
    }
    j0=$(cpu_jiffies "$PROXY_CPU")
    taskset -c "$LOAD_CPU" "$LOADGEN" -p "$proxy_port" --mode echo -c "$conns" -s "$size" \
        -d "$DURATION" >"$work/load.out" 2>/dev/null || true
    j1=$(cpu_jiffies "$PROXY_CPU")
    stop_pid "$proxy_pid"
    stop_pid "$epid"
    declare -A lg=()
    for kv in $(tail -n 1 "$work/load.out"); do
        lg[${kv%%=*}]=${kv#*=}
    done
    [[ -n ${lg[requests]:-} && ${lg[requests]} != 0 ]] || return 1
    value=${lg[req_per_s]%.*}
    cpu=$(busy_percent "$j0" "$j1")
    cpu_split "$j0" "$j1"
    p50=${lg[p50_us]}
    p99=${lg[p99_us]}
    errors=${lg[errors]}
}

# ---- the runs ------------------------------------------------------------

tests=(
    "iperf 1"
    "iperf 4"
    "echo 100 64"
)

# TESTS: a subset by kind ("iperf", "echo", or "iperf 1" for one of them).
if [[ -n ${TESTS:-} ]]; then
    keep=()
    for t in "${tests[@]}"; do
        IFS=',' read -ra wanted <<<"$TESTS"
        for w in "${wanted[@]}"; do
            [[ $t == "$w"* ]] && keep+=("$t") && break
        done
    done
    tests=("${keep[@]}")
fi

label() {
    case $1 in
    iperf) echo "iperf3, $2 stream$([[ $2 == 1 ]] || echo s), Gbit/s" ;;
    echo) echo "echo $2×$3 B, req/s" ;;
    esac
}

declare -A r_usr r_sys r_irq r_sirq
declare -A r_value r_cpu r_p50 r_p99 r_errors r_load

for test in "${tests[@]}"; do
    read -r mode a b <<<"$test"
    for ((rep = 0; rep < REPS; rep++)); do
        for ((i = 0; i < ${#proxies[@]}; i++)); do
            proxy=${proxies[(i + rep) % ${#proxies[@]}]}
            key="$test|$proxy"
            ok=1
            case $mode in
            iperf) measure_iperf "$proxy" "$a" || ok=0 ;;
            echo) measure_echo "$proxy" "$a" "$b" || ok=0 ;;
            esac
            if ((ok)); then
                r_value[$key]+=" $value"
                r_cpu[$key]+=" $cpu"
                r_usr[$key]+=" $usr"
                r_sys[$key]+=" $sys"
                r_irq[$key]+=" $irq"
                r_sirq[$key]+=" $sirq"
                r_p50[$key]+=" $p50"
                r_p99[$key]+=" $p99"
                r_errors[$key]+=" $errors"
                r_load[$key]+=" $(cut -d' ' -f1 /proc/loadavg)"
                say "$(label "$mode" "$a" "$b") rep $((rep + 1)) $proxy: $value (proxy CPU $cpu%: user $usr, system $sys, irq $irq, softirq $sirq; errors $errors)"
            else
                r_errors[$key]+=" fail"
                say "$(label "$mode" "$a" "$b") rep $((rep + 1)) $proxy: failed"
            fi
        done
    done
done

# ---- the report ----------------------------------------------------------

median() {
    [[ $# -gt 0 && $1 != - ]] || {
        echo -
        return
    }
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf (m == int(m) ? "%d" : "%.2f"), m }'
}

ratio() {
    if [[ $1 == - || $2 == - ]]; then
        echo -
    else
        awk -v a="$1" -v b="$2" 'BEGIN { if (b != 0) printf "%.2f", a / b; else printf "-" }'
    fi
}

total_errors() {
    local e sum=0 failed=0
    for e in "$@"; do
        [[ $e == fail ]] && failed=$((failed + 1)) || sum=$((sum + e))
    done
    ((failed)) && echo "$sum (+$failed failed)" || echo "$sum"
}

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "## Relay benchmark"
echo
echo "- command: \`$command_line\`"
echo "- machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r)"
echo "- proxy pinned to CPU $PROXY_CPU, load (iperf3 both ends, or loadgen and echo_epoll) to CPU $LOAD_CPU; ${DURATION} s per run; median of $REPS"
echo "- iocptool relay with one worker; haproxy $(haproxy -v 2>/dev/null | sed -n 's/^HAProxy version \([^ ]*\).*/\1/p' | head -n 1) with one thread; socat $(socat -V 2>/dev/null | sed -n 's/^socat version \([^ ]*\).*/\1/p' | head -n 1), a process per connection"
echo "- ×direct, ×socat: this row's median divided by direct loopback's, socat's"
echo "- proxy CPU: how busy the proxy's CPU was during the run (user, system, irq and softirq time of that CPU, so it includes kernel work done on the proxy's behalf); on the direct rows no proxy runs, so anything well above 0 there is other load on the machine and the numbers are suspect"
echo "- usr/sys/irq/sirq: the proxy CPU's user, system, irq and softirq time in % of it (medians), so a reader sees which side is saturated: near 100 together, the proxy's CPU is the bound; well below, the load side is"
for note in "${notes[@]}"; do
    echo "- $note"
done
echo
echo "| test | proxy | median | ×direct | ×socat | proxy CPU % | usr/sys/irq/sirq % | p50 µs | p99 µs | errors | runs, in order | load avg |"
echo "|---|---|---:|---:|---:|---:|---|---:|---:|---|---|---|"
for test in "${tests[@]}"; do
    read -r mode a b <<<"$test"
    # shellcheck disable=SC2086 # the stored lists split on purpose
    {
        direct=$(median ${r_value["$test|direct"]:--})
        socat_v=$(median ${r_value["$test|socat"]:--})
    }
    for proxy in "${proxies[@]}"; do
        key="$test|$proxy"
        # shellcheck disable=SC2086
        {
            value=$(median ${r_value[$key]:--})
            cpu=$(median ${r_cpu[$key]:--})
            split="$(median ${r_usr[$key]:--})/$(median ${r_sys[$key]:--})/$(median ${r_irq[$key]:--})/$(median ${r_sirq[$key]:--})"
            p50=$(median ${r_p50[$key]:--})
            p99=$(median ${r_p99[$key]:--})
            errors=$(total_errors ${r_errors[$key]:-})
            runs=$(echo ${r_value[$key]:--})
            loads=$(echo ${r_load[$key]:--})
        }
        echo "| $(label "$mode" "$a" "$b") | $proxy | $value | $(ratio "$value" "$direct")" \
            "| $(ratio "$value" "$socat_v") | $cpu | $split | $p50 | $p99 | $errors | $runs | $loads |"
    done
done
