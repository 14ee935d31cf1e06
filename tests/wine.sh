# Run the unit tests of a mingw-w64 build under Wine; sourced by tests/run.sh.
#
#   iocp_wine_ctest BUILD_DIR [CTEST_ARGS...]
#
# A fresh prefix in a temporary directory, so nothing depends on ~/.wine, and
# a persistent wineserver started first: a program then starts in 0.1-0.2 s
# instead of 1.2-1.7 s (measured with Wine 8).  No X server is needed for
# console programs.  CTest starts each test as `wine test.exe` (the
# toolchain's CMAKE_CROSSCOMPILING_EMULATOR) and kills it at its TIMEOUT;
# everything else that runs wine here runs under timeout(1).  The server is
# killed and the prefix removed when the calling shell exits.

iocp_wine_cleanup() {
  if [ -n "${IOCP_WINE_PREFIX:-}" ]; then
    WINEPREFIX=$IOCP_WINE_PREFIX timeout -k 5 30 wineserver -k >/dev/null 2>&1 || true
    WINEPREFIX=$IOCP_WINE_PREFIX timeout -k 5 30 wineserver -w >/dev/null 2>&1 || true
    rm -rf "$IOCP_WINE_PREFIX"
    IOCP_WINE_PREFIX=
  fi
}

iocp_wine_setup() {
  if ! command -v wine >/dev/null || ! command -v wineserver >/dev/null; then
    echo "wine.sh: wine and wineserver are needed (Debian: apt-get install wine64)" >&2
    return 1
  fi
  IOCP_WINE_PREFIX=$(mktemp -d "${TMPDIR:-/tmp}/iocp-wine.XXXXXX")
  trap iocp_wine_cleanup EXIT
  export WINEPREFIX=$IOCP_WINE_PREFIX
  export WINEDEBUG=-all
  export WINEDLLOVERRIDES="mscoree,mshtml="
  unset DISPLAY
  # A server left over for this prefix would make -p fail.
  timeout -k 5 30 wineserver -k >/dev/null 2>&1 || true
  timeout -k 5 30 wineserver -w >/dev/null 2>&1 || true
  mkdir -p "$WINEPREFIX"
  timeout -k 5 30 wineserver -p
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    # 7-8 s and about 700 MB.  Its chatter is shown only if it fails.
    timeout -k 5 300 wine wineboot -i >"$WINEPREFIX/wineboot.log" 2>&1 || {
      cat "$WINEPREFIX/wineboot.log" >&2
      echo "wine.sh: wineboot failed" >&2
      return 1
    }
  fi
}

iocp_wine_ctest() {
  local dir=$1
  shift
  iocp_wine_setup
  (cd "$dir" && ctest --output-on-failure "$@")
}
