#!/usr/bin/env bash
# The whole test suite, as the README's second command and as CI runs it:
#   1. install what is missing: the build's and the tests' packages
#      (.ci/deps test; the README's build command installs only the build's)
#   2. a normal build, warnings as errors, and every CTest suite; the
#      manual page checked with mandoc -Tlint
#   3. the same suites under AddressSanitizer + UndefinedBehaviorSanitizer
#   4. the library suites and the tool suites that cross its threads under
#      ThreadSanitizer (built against the minicrit
#      harness in tests/support/minicrit: Criterion cannot start under TSan)
#   5. the Windows cross-build with mingw-w64, with encryption and TLS:
#      libsodium cross-built from Debian's source first
#      (tests/wine/build_sodium.sh, kept in build/ci-win-sodium), and OpenSSL
#      (tests/wine/build_openssl.sh, cached outside the clone by version,
#      built in the background from the start of the run)
#   6. the portable unit tests of that build, under Wine (tests/wine.sh)
#   7. iocptool.exe under Wine against Linux peers (tests/wine/cli.sh and,
#      for UDP, tests/wine/udp.sh), and
#      the batch examples of docs/SCRIPTING.md in Wine's cmd.exe
#      (tests/wine/scripting.sh), and the encrypted channel between
#      iocptool.exe and the Linux build (tests/wine/secure.sh), and unix:
#      addresses (tests/wine/unix.sh), and TLS against openssl s_server,
#      s_client and the Linux build (tests/wine/tls.sh)
#   8. the encrypted channel's parsers under libFuzzer (tests/fuzz/run.sh,
#      $IOCP_FUZZ_SECONDS seconds, 30 by default here)
#   9. that build's ZIP and its Scoop and winget manifests, checked against
#      the official schemas and the ZIP (packaging/validate.py); the packaged
#      iocptool.exe --version under Wine
#  10. an install into a temporary prefix, used by tests/consumer through the
#      CMake package and pkg-config (tests/consumer/run.sh)
#  11. the ABI of that build's libiocp.so against the previous release's
#      (packaging/abi/check.sh, abigail-tools): an incompatible change
#      without a new soname fails, one with a new soname is reported
#  12. the DEBs of that build, iocptool, libiocp<SOVERSION> and libiocp-dev:
#      control fields, contents, lintian (no error), all three installed,
#      iocptool --version, tests/consumer against the installed libiocp-dev,
#      all three purged (packaging/check_deb.sh)
# Any failure stops the run with a non-zero status.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc 2>/dev/null || echo 2)
# The suites spend most of their time waiting on sockets, timers and child
# processes, not computing: two at a time per CPU keeps the CPUs busy.
test_jobs=$((jobs * 2))

# Each step says when it starts (seconds since the run began); the end of
# the run lists how long each took, so a step that grows is seen at once.
run_start=$SECONDS
step_name=""
step_start=$SECONDS
step_times=""
step() {
  if [ -n "$step_name" ]; then
    step_times+=$(printf '%6ds  %s' "$((SECONDS - step_start))" "$step_name")$'\n'
  fi
  step_name="$*"
  step_start=$SECONDS
  printf '\n==== [%ds] %s ====\n' "$((SECONDS - run_start))" "$*"
}

step "dependencies"
bash .ci/deps test

# OpenSSL for the Windows build (tests/wine/build_openssl.sh) is kept in a
# cache outside the clone; on a fresh machine its build takes several
# minutes of CPU.  It starts now, at the lowest priority, so that it runs
# in the time the suites below spend waiting on sockets and child
# processes; the Windows cross-build waits for it.  Its own process group,
# so a run that stops early stops it too.
mkdir -p build
openssl_out=build/ci-win-openssl.out
setsid -w nice -n 19 bash tests/wine/build_openssl.sh >"$openssl_out" 2>&1 &
openssl_pid=$!
trap 'kill -- -"$openssl_pid" 2>/dev/null || true' EXIT

# Sanitizer runtimes: any report fails the test that caused it.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
# A suite that cannot run a backend must fail here, not skip.
export IOCP_TEST_REQUIRE_ALL=1

# build_and_test DIR [CTEST_ARGS --] CMAKE_ARGS...
build_and_test() {
  local dir=$1; shift
  local ctest_args=()
  if [[ " $* " == *" -- "* ]]; then
    while [ "$1" != "--" ]; do ctest_args+=("$1"); shift; done
    shift
  fi
  step "build $dir ($*)"
  cmake -S . -B "$dir" -DIOCP_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  step "test $dir"
  (cd "$dir" && ctest --output-on-failure --timeout 900 -j "$test_jobs" "${ctest_args[@]}")
}

build_and_test build/ci-release -DCMAKE_BUILD_TYPE=RelWithDebInfo

step "manual page (mandoc -Tlint)"
mandoc -Tlint -W warning man/iocptool.1

# A sanitizer build runs several times slower: the tests' time-outs (there
# to catch hangs) stretch with it.
export MINICRIT_TIMEOUT_SCALE=3
build_and_test build/ci-asan -DCMAKE_BUILD_TYPE=Debug -DIOCP_SANITIZE=address
# ThreadSanitizer watches the engine: every library suite, and the tool's
# suites whose runs cross its own threads (stdin and stdout threads, the
# stats thread, relay legs on several workers, signals).  The other tool
# suites exercise the same threads through the same code; they run in the
# two builds above.
build_and_test build/ci-tsan -E '^test_cli_' -- -DCMAKE_BUILD_TYPE=Debug -DIOCP_SANITIZE=thread
(cd build/ci-tsan && ctest --output-on-failure --timeout 900 -j "$jobs" \
  -R '^test_cli_(eof|stats|relay|signals|listen|hostile)\.')

unset MINICRIT_TIMEOUT_SCALE

step "libsodium for mingw-w64 (Debian's source, built once per build tree)"
bash tests/wine/build_sodium.sh build/ci-win-sodium

step "OpenSSL for mingw-w64 (Debian's source, cached by version; started at the beginning)"
openssl_status=0
wait "$openssl_pid" || openssl_status=$?
trap - EXIT
cat "$openssl_out"
[ "$openssl_status" -eq 0 ] || { echo "tests/wine/build_openssl.sh failed" >&2; exit 1; }
openssl_prefix=$(tail -n 1 "$openssl_out")

step "windows cross-build (mingw-w64)"
# The Linux iocptool writes the completion scripts of this build (the ZIP's
# _iocptool.ps1): iocptool.exe cannot run at build time.
cmake -S . -B build/ci-win -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake -DIOCP_WERROR=ON \
  -DIOCP_COMPLETIONS_TOOL="$root/build/ci-release/iocptool" \
  -DIOCP_MINGW_EXTRA_PREFIX="$root/build/ci-win-sodium/prefix;$openssl_prefix" >/dev/null
# The encrypted channel and TLS are part of the Windows build: no silent
# build without (tests/wine/tls.sh checks iocptool.exe --version).
grep -q '^IOCP_WITH_SODIUM:BOOL=ON' build/ci-win/CMakeCache.txt &&
  grep -q '^SODIUM_FOUND:INTERNAL=1' build/ci-win/CMakeCache.txt || {
  echo "the Windows build did not find the cross-built libsodium" >&2
  exit 1
}
grep -qxF "OPENSSL_INCLUDE_DIR:PATH=$openssl_prefix/include" build/ci-win/CMakeCache.txt || {
  echo "the Windows build did not find the cross-built OpenSSL in $openssl_prefix" >&2
  exit 1
}
cmake --build build/ci-win -j "$jobs"
# iocptool.exe must need only system DLLs.
dlls=$(x86_64-w64-mingw32-objdump -p build/ci-win/iocptool.exe | awk '/DLL Name/ {print tolower($3)}')
for dll in $dlls; do
  case "$dll" in
    kernel32.dll|msvcrt.dll|ws2_32.dll|mswsock.dll|advapi32.dll|user32.dll|ntdll.dll|bcrypt.dll|shell32.dll|crypt32.dll) ;;
    *) echo "iocptool.exe needs a non-system DLL: $dll" >&2; exit 1 ;;
  esac
done
echo "iocptool.exe imports: $(echo $dlls | tr '\n' ' ')"

step "windows unit tests (wine)"
# shellcheck source=tests/wine.sh
. tests/wine.sh
iocp_wine_ctest build/ci-win --timeout 900 -j "$jobs"

step "windows CLI scenarios (wine, Linux peers)"
bash tests/wine/cli.sh build/ci-win build/ci-release/iocptool

step "windows UDP scenarios (wine, Linux peers)"
bash tests/wine/udp.sh build/ci-win build/ci-release/iocptool

step "the batch examples of docs/SCRIPTING.md (wine cmd.exe, Linux peers)"
bash tests/wine/scripting.sh build/ci-win build/ci-release/iocptool

step "the encrypted channel: iocptool.exe and the Linux build (wine)"
bash tests/wine/secure.sh build/ci-win build/ci-release/iocptool

step "unix: in the Windows build (wine: data where it has AF_UNIX, the clear error where not)"
bash tests/wine/unix.sh build/ci-win build/ci-release/iocptool

step "the proxy client of the Windows build through a Linux Dante (wine)"
bash tests/wine/proxy.sh build/ci-win build/ci-release/iocptool

step "TLS in the Windows build: s_server, s_client and the Linux build (wine)"
bash tests/wine/tls.sh build/ci-win build/ci-release/iocptool

step "fuzz the encrypted channel and the PROXY protocol parser (libFuzzer)"
# fuzz_secure runs for the whole time, each of the other targets for half of it.
IOCP_FUZZ_SECONDS=${IOCP_FUZZ_SECONDS:-30} bash tests/fuzz/run.sh

step "windows package: ZIP, Scoop and winget manifests"
cmake --build build/ci-win --target manifests
python3 packaging/validate.py build/ci-win --run-exe wine

step "install tree and consumers (tests/consumer)"
# The packages' build takes Debian's compiler and linker flags with every
# hardening feature (dpkg-buildflags: fortify, stack protector, relro, bind
# now), as a Debian package's build does.  Without -Werror: what fortify adds
# (an unused read() or write() result) is printed, and the release build
# above holds the line on warnings.
debflags() { DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1"; }
bash tests/consumer/run.sh build/ci-pkg -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_C_FLAGS="$(debflags CPPFLAGS) $(debflags CFLAGS)" \
  -DCMAKE_EXE_LINKER_FLAGS="$(debflags LDFLAGS)" -DCMAKE_SHARED_LINKER_FLAGS="$(debflags LDFLAGS)"

step "ABI against the previous release (packaging/abi)"
# The check's own verdicts first, then this build against the newest
# packaging/abi/libiocp-MAJOR.MINOR.abi: an incompatible change with the
# same soname fails, a new soname's break is reported.
bash packaging/abi/test_check.sh build/ci-pkg
bash packaging/abi/check.sh build/ci-pkg

step "debian packages (lintian, install, consumer, remove)"
bash packaging/check_deb.sh build/ci-pkg

step "all suites passed"
printf '\nstep times:\n%s%6ds  in all\n' "$step_times" "$((SECONDS - run_start))"
