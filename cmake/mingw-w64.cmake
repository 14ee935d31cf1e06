# Cross-compile for 64-bit Windows with Debian's mingw-w64:
#   cmake -S . -B build-win -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(IOCP_MINGW_PREFIX x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${IOCP_MINGW_PREFIX}-gcc)
set(CMAKE_RC_COMPILER ${IOCP_MINGW_PREFIX}-windres)
set(CMAKE_AR ${IOCP_MINGW_PREFIX}-ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${IOCP_MINGW_PREFIX}-ranlib CACHE FILEPATH "")

set(CMAKE_FIND_ROOT_PATH /usr/${IOCP_MINGW_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Wine runs the test programs.
set(CMAKE_CROSSCOMPILING_EMULATOR wine)

# Never let pkg-config hand the Linux host's libraries to the cross build.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/${IOCP_MINGW_PREFIX}/lib/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# A prefix of libraries cross-built for this target outside the system's
# mingw-w64 tree: libsodium, which Debian does not package for it
# (tests/wine/build_sodium.sh builds it).  It is searched like that tree, its
# pkg-config files first.  The try_compile projects read this file too and
# share the process's environment: they must get the prefix as well, or
# they would set PKG_CONFIG_LIBDIR back without it.
set(IOCP_MINGW_EXTRA_PREFIX "" CACHE STRING "Extra prefixes of mingw-w64 libraries (pkg-config, headers), ;-separated")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES IOCP_MINGW_EXTRA_PREFIX)
# It may be a list (libsodium's prefix;OpenSSL's prefix).
if(IOCP_MINGW_EXTRA_PREFIX)
  list(APPEND CMAKE_FIND_ROOT_PATH ${IOCP_MINGW_EXTRA_PREFIX})
  set(iocp_pc_dirs "")
  foreach(iocp_prefix IN LISTS IOCP_MINGW_EXTRA_PREFIX)
    string(APPEND iocp_pc_dirs "${iocp_prefix}/lib/pkgconfig:")
  endforeach()
  set(ENV{PKG_CONFIG_LIBDIR} "${iocp_pc_dirs}/usr/${IOCP_MINGW_PREFIX}/lib/pkgconfig")
endif()
