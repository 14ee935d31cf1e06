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
