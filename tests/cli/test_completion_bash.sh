#!/usr/bin/env bash
# The generated bash completion script, run in bash: source it and call its
# completion function the way bash does on <TAB> (COMP_WORDS, COMP_CWORD),
# then check COMPREPLY.  CTest runs it (test_completion_bash):
#
#   tests/cli/test_completion_bash.sh BUILD/iocptool.bash BUILD/iocptool
#
# The options expected come from `iocptool --completions table` (checked
# against --help by test_cli_completions) and `iocptool --help`.  The
# function runs under `set -u`, as in a shell that has it on.  The last
# line is "N passed, M failed"; the status is 0 only when nothing failed.
set -u

script=$(realpath "${1:?usage: test_completion_bash.sh SCRIPT IOCPTOOL}")
tool=$(realpath "${2:?usage: test_completion_bash.sh SCRIPT IOCPTOOL}")
work=$(mktemp -d "${TMPDIR:-/tmp}/iocp-comp.XXXXXX")
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
check() { # NAME GOT WANT
  if [ "$2" = "$3" ]; then
    passed=$((passed + 1))
    echo "[PASS] $1"
  else
    failed=$((failed + 1))
    echo "[FAIL] $1"
    echo "       got:  '$2'"
    echo "       want: '$3'"
  fi
}

# shellcheck source=/dev/null
source "$script" || { echo "cannot source $script"; echo "0 passed, 1 failed"; exit 1; }
check "the script registers _iocptool for iocptool" "$(complete -p iocptool 2>&1)" \
  "complete -F _iocptool iocptool"

# comp WORD...: complete the last word of "WORD..." as bash would (the
# cursor at its end); COMPREPLY sorted, one line.
comp() {
  COMP_WORDS=("$@")
  COMP_CWORD=$(($# - 1))
  COMP_LINE="$*"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  _iocptool iocptool "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" ||
    echo "(status $?)"
  printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
sorted() { printf '%s\n' "$@" | sort | tr '\n' ' ' | sed 's/ $//'; }

table=$("$tool" --completions table)
cmds=$(awk -F'\t' '$1 == "command" {print $2}' <<<"$table")
opts_of() { awk -F'\t' -v c="$1" '$1 == "option" && $2 == c {print $3}' <<<"$table"; }

# ---- subcommands ----
# shellcheck disable=SC2086
check "iocptool <TAB>: the subcommands" "$(comp iocptool '')" "$(sorted $cmds)"
help_cmds=$("$tool" --help | awk '/^commands:/ {on = 1; next} on && /^  / {print $1} on && !/^  / {on = 0}')
# shellcheck disable=SC2086
check "iocptool <TAB>: the subcommands of iocptool --help" "$(comp iocptool '')" "$(sorted $help_cmds)"
check "iocptool li<TAB>" "$(comp iocptool li)" "listen"
check "iocptool c<TAB>" "$(comp iocptool c)" "connect"
check "iocptool -<TAB>" "$(comp iocptool -)" "--help --version"
check "iocptool xyz <TAB>: nothing" "$(comp iocptool xyz '')" ""

# ---- each subcommand's options ----
for c in $cmds; do
  # shellcheck disable=SC2046
  check "iocptool $c -<TAB>: its options" "$(comp iocptool "$c" -)" "$(sorted $(opts_of "$c"))"
done
# prefixed CMD PREFIX: the options of CMD that start with PREFIX
# shellcheck disable=SC2046
prefixed() { sorted $(opts_of "$1" | grep -e "^$2"); }
check "iocptool listen --ke<TAB>" "$(comp iocptool listen --ke)" "$(prefixed listen --ke)"
check "iocptool listen --ke<TAB> has --key and --keep-open" "$(prefixed listen --ke)" \
  "--keep-open --key"
check "iocptool connect --z<TAB>" "$(comp iocptool connect --z)" "--zero-io"
check "iocptool connect --keep<TAB>: refused by connect, not offered" \
  "$(comp iocptool connect --keep)" ""
check "iocptool listen -k 127.0.0.1:0 --no<TAB>: options after an operand" \
  "$(comp iocptool listen -k 127.0.0.1:0 --no)" "$(prefixed listen --no)"
check "iocptool relay --no-s<TAB>" "$(comp iocptool relay --no-s)" "$(prefixed relay --no-s)"

# ---- values ----
mkdir "$work/files" "$work/files/keys.d"
touch "$work/files/a.key" "$work/files/b.key" "$work/files/notes.txt"
cd "$work/files" || exit 1
check "listen --key <TAB>: file names" "$(comp iocptool listen --key '')" "a.key b.key keys.d notes.txt"
check "listen --key a<TAB>" "$(comp iocptool listen --key a)" "a.key"
check "connect --key k<TAB>: a directory" "$(comp iocptool connect --key k)" "keys.d"
# COMP_WORDBREAKS has '=' by default: --key=b comes as "--key" "=" "b".
check "listen --key=b<TAB> (three words)" "$(comp iocptool listen --key = b)" "b.key"
check "listen --key=<TAB> (two words)" "$(comp iocptool listen --key =)" "a.key b.key keys.d notes.txt"
# Without '=' in COMP_WORDBREAKS it is one word, and so are the answers.
check "listen --key=b<TAB> (one word)" "$(comp iocptool listen --key=b)" "--key=b.key"
check "echo --stats <TAB>: a socket path" "$(comp iocptool echo --stats n)" "notes.txt"
check "keygen <TAB>: the key file" "$(comp iocptool keygen -f '')" "a.key b.key keys.d notes.txt"
check "keygen --check a<TAB>" "$(comp iocptool keygen --check a)" "a.key"
check "keygen FILE <TAB>: one operand only" "$(comp iocptool keygen a.key '')" ""
for c in listen connect echo relay; do
  check "$c --backend <TAB>" "$(comp iocptool "$c" --backend '')" "epoll iocp uring"
done
check "connect -B e<TAB>" "$(comp iocptool connect -B e)" "epoll"
check "listen --backend=u<TAB>" "$(comp iocptool listen --backend = u)" "uring"
check "listen -m <TAB>: a number, nothing proposed" "$(comp iocptool listen -m '')" ""
check "connect -p <TAB>: a port, nothing proposed" "$(comp iocptool connect -p '')" ""
check "connect -w <TAB>: seconds, nothing proposed" "$(comp iocptool connect -w '')" ""
check "listen --port -<TAB>: a value, not an option" "$(comp iocptool listen --port -)" ""

# ---- host names (from HOSTFILE, as bash's compgen -A hostname reads it) ----
printf '127.0.0.1 iocp-test-one iocp-test-two\n' >"$work/hosts"
export HOSTFILE=$work/hosts
check "connect iocp-test-o<TAB>: a host" "$(comp iocptool connect iocp-test-o)" "iocp-test-one"
check "connect -w 5 -s iocp-test-t<TAB>: --source is a host" \
  "$(comp iocptool connect -w 5 -s iocp-test-t)" "iocp-test-two"
check "connect -w 5 -4 iocp-test-t<TAB>: the host after options" \
  "$(comp iocptool connect -w 5 -4 iocp-test-t)" "iocp-test-two"
check "connect HOST <TAB>: the port, nothing proposed" "$(comp iocptool connect iocp-test-one '')" ""
check "connect -s HOST <TAB>: the host operand still" \
  "$(comp iocptool connect -s iocp-test-one iocp-test-t)" "iocp-test-two"

# ---- stats: the pids of running servers ----
mkdir -m 700 "$work/run"
export XDG_RUNTIME_DIR=$work/run
check "stats <TAB>: no server runs" "$(comp iocptool stats '')" ""
"$tool" echo 127.0.0.1:0 2>"$work/echo.err" &
server=$!
for _ in $(seq 1 100); do
  [ -S "$work/run/iocptool/$server.sock" ] && break
  sleep 0.05
done
check "stats <TAB>: the pid of the running echo" "$(comp iocptool stats '')" "$server"
check "stats --json <TAB>: the pid after an option" "$(comp iocptool stats --json '')" "$server"
check "stats ./<TAB>: a socket path" "$(comp iocptool stats ./a)" "./a.key"
kill "$server"
wait "$server" 2>/dev/null
server=
mkdir -p "$work/run/iocptool"
touch "$work/run/iocptool/999999999.sock"
check "stats <TAB>: a stale file is no server" "$(comp iocptool stats '')" ""

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
