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
# shellcheck source=bench/lib.sh
source bench/lib.sh

# ---- setup ---------------------------------------------------------------

check_reps_duration
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

keep_named proxies "${PROXIES:-}"

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
filter_tests_by_prefix

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

echo "## Relay benchmark"
echo
echo "- command: \`$command_line\`"
echo "- machine: $(machine)"
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
