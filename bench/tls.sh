#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# tls.sh: TLS termination benchmark.  iocptool relay --tls-listen against
# stunnel4 and haproxy (bind ... ssl crt), each terminating TLS in front of
# the same plaintext target, driven by bench's tls_load (OpenSSL, epoll, one
# thread).  The terminator runs alone on PROXY_CPU; the load (tls_load and
# the target: a sink, a source or echo_epoll) shares LOAD_CPU.
#
# Tests:
#   up N      N TLS streams writing into the terminator, plaintext to a sink
#   down N    a source's plaintext through the terminator to N TLS readers
#   hs 1.3    full handshakes per second (no resumption), HS_CONNS slots
#   hs 1.2    each connecting, handshaking, echoing one byte, closing
#
# Every peer negotiates the same: the client offers only TLS_AES_128_GCM_SHA256
# (1.3) or ECDHE-ECDSA-AES128-GCM-SHA256 (1.2; ECDHE-RSA-... with KEY=rsa)
# and X25519 first.  Certificate: ECDSA P-256 (KEY=ec, the default) or
# RSA-2048 (KEY=rsa), self-signed, made fresh for the run.
#
# Each terminator is started fresh for each measurement; repetitions are
# interleaved and their order rotates, so a slow minute lands on all alike.
# Prints one Markdown table of medians (with every run, for the spread) on
# stdout; progress goes to stderr.
#
#   bash bench/tls.sh
#   REPS=1 DURATION=2 bash bench/tls.sh
#
# Environment: IOCPTOOL_BASE (another iocptool binary, e.g. a build of
# the previous commit: adds the row iocptool-base, run like iocptool, to
# measure a change in the same run), REPS (5), DURATION seconds per run (3), KEY (ec or rsa),
# HS_CONNS (32), IOCPTOOL (build/iocptool), BENCH_BUILD (build/bench),
# PROXY_CPU (1), LOAD_CPU (0), PROXIES (a space-separated subset of the
# terminator names), TESTS (a comma-separated subset by prefix: "up",
# "down", "hs", "hs 1.2", ...).
#
# Terminators: iocptool (relay as a user starts it: no --workers, under
# taskset its worker count is 1), iocptool-epoll (the epoll backend),
# stunnel (stunnel4 as its documentation configures a service: default
# logging), stunnel-best (logging off, TCP_NODELAY both sides), haproxy
# (nbthread 1, the buffers as shipped) and haproxy-best (nbthread 1,
# tune.bufsize 65536 so a read takes several records).
# Needs openssl, stunnel4 and haproxy (apt-get install openssl stunnel4
# haproxy) and libssl-dev for tls_load; a missing peer drops its rows.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPS=${REPS:-5}
DURATION=${DURATION:-3}
KEY=${KEY:-ec}
HS_CONNS=${HS_CONNS:-32}
IOCPTOOL=${IOCPTOOL:-build/iocptool}
BENCH_BUILD=${BENCH_BUILD:-build/bench}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
WARMUP=0.5

command_line="REPS=$REPS DURATION=$DURATION KEY=$KEY bash bench/tls.sh${*:+ $*}"
# shellcheck source=bench/lib.sh
source bench/lib.sh

# utime+stime of a process and all its threads, live and exited, in ticks.
proc_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
        echo 0
        return
    }
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}

# The port a program printed as "listening on ADDR PORT" in file $1.
printed_port() {
    sed -n 's/^listening on .* \([0-9][0-9]*\)$/\1/p' "$1" | head -n 1
}

# ---- setup ---------------------------------------------------------------

check_reps_duration
[[ $KEY == ec || $KEY == rsa ]] || die "KEY=$KEY: ec or rsa"
command -v python3 >/dev/null || die "python3 not found (used to pick free ports)"
command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
if (($(nproc) < 2)); then
    PROXY_CPU=0
    notes+=("only one CPU: terminator and load share CPU 0")
fi
ulimit -n "$(ulimit -Hn)"

say "building tls_load and echo_epoll in $BENCH_BUILD"
cmake -S bench -B "$BENCH_BUILD" >/dev/null
cmake --build "$BENCH_BUILD" >/dev/null
LOAD=$BENCH_BUILD/tls_load
ECHO=$BENCH_BUILD/echo_epoll
[[ -x $LOAD ]] || die "$LOAD was not built (libssl-dev missing?)"

# The certificate every terminator presents.
if [[ $KEY == ec ]]; then
    keyopts=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
    load_key=()
else
    keyopts=(-newkey rsa:2048)
    load_key=(--rsa)
fi
openssl req -x509 "${keyopts[@]}" -nodes -keyout "$work/key.pem" -out "$work/cert.pem" \
    -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    2>/dev/null || die "openssl req failed"
chmod 600 "$work/key.pem"
cat "$work/cert.pem" "$work/key.pem" >"$work/both.pem"
chmod 600 "$work/both.pem"

proxies=()
relay_help=$("$IOCPTOOL" relay --help 2>&1 || true)
if [[ $relay_help == *--tls-listen* ]]; then
    proxies+=(iocptool iocptool-epoll)
    [[ -n ${IOCPTOOL_BASE:-} ]] && proxies+=(iocptool-base)
else
    notes+=("iocptool rows skipped: '$IOCPTOOL relay --help' has no --tls-listen")
fi
if command -v stunnel4 >/dev/null; then
    proxies+=(stunnel stunnel-best)
else
    notes+=("stunnel rows skipped: stunnel4 is not installed")
fi
if command -v haproxy >/dev/null; then
    proxies+=(haproxy haproxy-best)
else
    notes+=("haproxy rows skipped: haproxy is not installed")
fi
keep_named proxies "${PROXIES:-}"
((${#proxies[@]})) || die "no terminator to run"

stunnel_config() {
    local port=$1 target=$2 best=$3
    cat <<EOF
foreground = yes
pid =
syslog = no
$([[ $best == 1 ]] && echo "debug = 0" || echo "output = $work/stunnel.log")
[bench]
accept = 127.0.0.1:$port
connect = 127.0.0.1:$target
cert = $work/cert.pem
key = $work/key.pem
$([[ $best == 1 ]] && printf 'socket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n')
EOF
}

haproxy_config() {
    local port=$1 target=$2 best=$3
    cat <<EOF
global
    maxconn 4096
    nbthread 1
$([[ $best == 1 ]] && echo "    tune.bufsize 65536")
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
listen tls
    bind 127.0.0.1:$port ssl crt $work/both.pem
    server target 127.0.0.1:$target
EOF
}

# ---- one measurement -----------------------------------------------------

# A target on LOAD_CPU: sink, source or echo.  Sets target_pid, target_port.
start_target() {
    local kind=$1 err="$work/target.err" tries
    : >"$err"
    case $kind in
    echo) setsid taskset -c "$LOAD_CPU" "$ECHO" 0 >/dev/null 2>"$err" & ;;
    *) setsid taskset -c "$LOAD_CPU" "$LOAD" --mode "$kind" -p 0 >/dev/null 2>"$err" & ;;
    esac
    target_pid=$!
    pids+=("$target_pid")
    for ((tries = 0; tries < 200; tries++)); do
        target_port=$(printed_port "$err")
        [[ -n $target_port ]] && return 0
        sleep 0.025
    done
    stop_pid "$target_pid"
    return 1
}

starts=0
start_proxy() {
    local name=$1 target=$2 err="$work/proxy.$((++starts)).err" argv=()
    proxy_pid=
    proxy_port=
    case $name in
    iocptool)
        argv=("$IOCPTOOL" relay --no-stats --tls-listen --tls-cert "$work/cert.pem"
            --tls-key "$work/key.pem" 127.0.0.1:0 "127.0.0.1:$target")
        ;;
    iocptool-base)
        argv=("$IOCPTOOL_BASE" relay --no-stats --tls-listen --tls-cert "$work/cert.pem"
            --tls-key "$work/key.pem" 127.0.0.1:0 "127.0.0.1:$target")
        ;;
    iocptool-epoll)
        argv=("$IOCPTOOL" relay --no-stats --backend epoll --tls-listen
            --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" 127.0.0.1:0
            "127.0.0.1:$target")
        ;;
    stunnel | stunnel-best)
        proxy_port=$(free_port)
        stunnel_config "$proxy_port" "$target" "$([[ $name == *-best ]] && echo 1 || echo 0)" \
            >"$work/stunnel.conf"
        argv=(stunnel4 "$work/stunnel.conf")
        ;;
    haproxy | haproxy-best)
        proxy_port=$(free_port)
        haproxy_config "$proxy_port" "$target" "$([[ $name == *-best ]] && echo 1 || echo 0)" \
            >"$work/haproxy.cfg"
        argv=(haproxy -db -f "$work/haproxy.cfg")
        ;;
    esac
    : >"$err"
    setsid taskset -c "$PROXY_CPU" "${argv[@]}" >/dev/null 2>"$err" &
    proxy_pid=$!
    pids+=("$proxy_pid")
    local tries
    for ((tries = 0; tries < 200; tries++)); do
        if [[ $name == iocptool* ]]; then
            proxy_port=$(printed_port "$err")
            [[ -n $proxy_port ]] && return 0
        elif listening "$proxy_port"; then
            return 0
        fi
        alive "$proxy_pid" || break
        sleep 0.025
    done
    say "tls.sh: $name did not start: $(head -c 300 "$err")"
    stop_pid "$proxy_pid"
    return 1
}

# One run of test $2 $3 through terminator $1: sets value, cpu (the
# terminator's CPU: % of one CPU for bulk, µs per handshake for hs), p50,
# p99, errors.
measure() {
    local name=$1 mode=$2 arg=$3 kind t0 t1 kv load_args=()
    case $mode in
    up) kind=sink load_args=(--mode up -c "$arg") ;;
    down) kind=source load_args=(--mode down -c "$arg") ;;
    hs) kind=echo load_args=(--mode hs -c "$HS_CONNS" --tls "$arg") ;;
    esac
    start_target "$kind" || return 1
    start_proxy "$name" "$target_port" || {
        stop_pid "$target_pid"
        return 1
    }
    t0=$(proc_ticks "$proxy_pid")
    taskset -c "$LOAD_CPU" "$LOAD" "${load_args[@]}" "${load_key[@]}" -p "$proxy_port" \
        -d "$DURATION" -w "$WARMUP" >"$work/load.out" 2>"$work/load.err" || true
    t1=$(proc_ticks "$proxy_pid")
    stop_pid "$proxy_pid"
    stop_pid "$target_pid"
    declare -A lg=()
    for kv in $(tail -n 1 "$work/load.out"); do
        lg[${kv%%=*}]=${kv#*=}
    done
    [[ -n ${lg[all]:-} && ${lg[all]} != 0 ]] || {
        say "  $(head -c 300 "$work/load.err")"
        return 1
    }
    errors=${lg[errors]}
    local ticks=$((t1 - t0)) hz
    hz=$(getconf CLK_TCK)
    if [[ $mode == hs ]]; then
        value=${lg[per_s]%.*}
        cpu=$(awk -v t="$ticks" -v hz="$hz" -v n="${lg[all]}" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }')
        busy=-
        p50=${lg[p50_us]%.*}
        p99=${lg[p99_us]%.*}
    else
        value=${lg[gbit_per_s]}
        cpu=$(awk -v t="$ticks" -v hz="$hz" -v n="${lg[all]}" 'BEGIN { printf "%.2f", t / hz / (n / 1e9) }')
        busy=$(awk -v t="$ticks" -v hz="$hz" -v s="${lg[elapsed]}" 'BEGIN { printf "%.0f", 100 * t / hz / s }')
        p50=- p99=-
    fi
}

# ---- the runs ------------------------------------------------------------

tests=(
    "up 1"
    "up 4"
    "down 1"
    "hs 1.3"
    "hs 1.2"
)
filter_tests_by_prefix

label() {
    case $1 in
    up) echo "into the terminator, $2 stream$([[ $2 == 1 ]] || echo s), Gbit/s" ;;
    down) echo "out of the terminator, $2 stream$([[ $2 == 1 ]] || echo s), Gbit/s" ;;
    hs) echo "full handshakes TLS $2, per s" ;;
    esac
}

declare -A r_value r_cpu r_busy r_p50 r_p99 r_errors r_load

for test in "${tests[@]}"; do
    read -r mode a <<<"$test"
    for ((rep = 0; rep < REPS; rep++)); do
        for ((i = 0; i < ${#proxies[@]}; i++)); do
            proxy=${proxies[(i + rep) % ${#proxies[@]}]}
            key="$test|$proxy"
            if measure "$proxy" "$mode" "$a"; then
                r_value[$key]+=" $value"
                r_cpu[$key]+=" $cpu"
                r_busy[$key]+=" $busy"
                r_p50[$key]+=" $p50"
                r_p99[$key]+=" $p99"
                r_errors[$key]+=" $errors"
                r_load[$key]+=" $(cut -d' ' -f1 /proc/loadavg)"
                say "$(label "$mode" "$a") rep $((rep + 1)) $proxy: $value (terminator CPU $cpu, errors $errors)"
            else
                r_errors[$key]+=" fail"
                say "$(label "$mode" "$a") rep $((rep + 1)) $proxy: failed"
            fi
        done
    done
done

# ---- the report ----------------------------------------------------------

echo "## TLS termination benchmark"
echo
echo "- command: \`$command_line\`"
echo "- machine: $(machine), $(openssl version)"
echo "- terminator pinned to CPU $PROXY_CPU, load (tls_load and its target) to CPU $LOAD_CPU; ${DURATION} s per run after ${WARMUP} s of warm-up; median of $REPS"
echo "- certificate: $([[ $KEY == ec ]] && echo "ECDSA P-256" || echo "RSA-2048"); TLS 1.3 TLS_AES_128_GCM_SHA256, TLS 1.2 $([[ $KEY == ec ]] && echo ECDHE-ECDSA || echo ECDHE-RSA)-AES128-GCM-SHA256, X25519; handshakes: $HS_CONNS slots, full handshakes, one byte echoed per connection"
echo "- iocptool relay with one worker; haproxy $(haproxy -v 2>/dev/null | sed -n 's/^HAProxy version \([^ ]*\).*/\1/p' | head -n 1) with one thread; $(stunnel4 -version 2>&1 | sed -n 's/^\(stunnel [^ ]*\).*/\1/p' | head -n 1), a thread per connection"
echo "- ×haproxy, ×stunnel: this row's median divided by haproxy's, stunnel's (the common configurations); CPU ×: the same for the terminator CPU (below 1: cheaper)"
echo "- terminator CPU: utime+stime of the terminator's process (every thread) over the whole run divided by what tls_load did in it: CPU seconds per GB of plaintext (bulk), µs per handshake (hs); busy %: that CPU time as a share of the run (bulk)"
for note in "${notes[@]}"; do
    echo "- $note"
done
echo
echo "| test | terminator | median | ×haproxy | ×stunnel | terminator CPU | CPU ×haproxy | CPU ×stunnel | busy % | p50 µs | p99 µs | errors | runs, in order | load avg |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"
for test in "${tests[@]}"; do
    read -r mode a <<<"$test"
    # shellcheck disable=SC2086 # the stored lists split on purpose
    {
        hap=$(median ${r_value["$test|haproxy"]:--})
        stu=$(median ${r_value["$test|stunnel"]:--})
        hap_cpu=$(median ${r_cpu["$test|haproxy"]:--})
        stu_cpu=$(median ${r_cpu["$test|stunnel"]:--})
    }
    for proxy in "${proxies[@]}"; do
        key="$test|$proxy"
        # shellcheck disable=SC2086
        {
            value=$(median ${r_value[$key]:--})
            cpu=$(median ${r_cpu[$key]:--})
            busy=$(median ${r_busy[$key]:--})
            p50=$(median ${r_p50[$key]:--})
            p99=$(median ${r_p99[$key]:--})
            errors=$(total_errors ${r_errors[$key]:-})
            runs=$(echo ${r_value[$key]:--})
            loads=$(echo ${r_load[$key]:--})
        }
        [[ $mode == hs ]] && cpu_unit=" µs" || cpu_unit=" s/GB"
        [[ $cpu == - ]] && cpu_unit=
        echo "| $(label "$mode" "$a") | $proxy | $value | $(ratio "$value" "$hap")" \
            "| $(ratio "$value" "$stu") | $cpu$cpu_unit | $(ratio "$cpu" "$hap_cpu") | $(ratio "$cpu" "$stu_cpu") | $busy | $p50 | $p99 | $errors | $runs | $loads |"
    done
done
