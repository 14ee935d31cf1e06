# The Debian packages, included from packaging/CMakeLists.txt on Linux before
# CPack.  One DEB per install component, named as Debian names them:
#
#   component  package        contents
#   tool       iocptool       /usr/bin/iocptool (libiocp linked in), the
#                             manual page, the bash completion, README
#   runtime    libiocp<SOVER> the shared library, libiocp.so.<SOVER>
#   dev        libiocp-dev    headers, libiocp.a, the libiocp.so link, the
#                             CMake package and iocp.pc
#
# The runtime package is named after the soname (Debian Policy 8.1:
# libiocp.so.0.2 is shipped by libiocp0.2), so that programs linked against
# two 0.x releases, whose ABIs differ, can have both installed.  Each package
# carries its own copyright and changelog.Debian.gz under /usr/share/doc/.
# Configure with -DCMAKE_INSTALL_PREFIX=/usr: GNUInstallDirs then sets
# CMAKE_INSTALL_LIBDIR to Debian's multiarch directory (lib/<triplet>).

get_target_property(iocp_soversion iocp_shared SOVERSION)
set(iocp_deb_release 1)
set(iocp_deb_version ${PROJECT_VERSION}-${iocp_deb_release})
set(iocp_runtime_package libiocp${iocp_soversion})

set(CPACK_DEB_COMPONENT_INSTALL ON)
# Each package's description below starts with its own synopsis.  CPack puts
# the project's summary before it unless that is CPack's own default.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${CMAKE_PROJECT_NAME} built using CMake")
# Manual pages compressed, binaries without .comment and .note, static
# libraries without debug information, as in Debian's own packages.
list(APPEND CPACK_PRE_BUILD_SCRIPTS ${CMAKE_CURRENT_SOURCE_DIR}/deb_finish.cmake)
set(CPACK_COMPONENTS_ALL tool runtime dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${iocp_deb_release})
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE ${PROJECT_HOMEPAGE_URL})
# Depends from what the binaries link (libc6, liburing2, libsodium23), by
# dpkg-shlibdeps, so it cannot drift from the build.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)

set(CPACK_DEBIAN_TOOL_PACKAGE_NAME iocptool)
set(CPACK_DEBIAN_TOOL_PACKAGE_SECTION net)
string(CONCAT CPACK_DEBIAN_TOOL_DESCRIPTION
  "netcat-style network tool on I/O completion ports\n"
  "iocptool listens, connects, echoes, relays and shows live statistics, the\n"
  "same way on Linux and Windows, with an optional encrypted channel between\n"
  "two ends that share a key.  It runs on libiocp (io_uring or epoll on Linux),\n"
  "linked in: the library's packages are needed only to build against it.")

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME ${iocp_runtime_package})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
# The shlibs file that programs built against this package get their
# Depends from: any later 0.2.x (same soname) will do.
# (CPack writes it for every package that has a shared library: this one.)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
# ldconfig through dpkg's trigger, as Debian's libraries run it (lintian
# requires it).  CPack adds a postinst and a postrm that call ldconfig all
# the same, which only runs it once more (lintian: maintscript-calls-ldconfig).
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_SOURCE_DIR}/deb/triggers)
string(CONCAT CPACK_DEBIAN_RUNTIME_DESCRIPTION
  "I/O completion ports on every platform - shared library\n"
  "libiocp is a small C11 library that brings the I/O-completion-port model\n"
  "to every platform: IOCP on Windows, io_uring and epoll on Linux.  Servers\n"
  "and clients post operations and get completions on worker threads, with\n"
  "pooled connections, back-pressure, timers and live statistics.\n"
  ".\n"
  "This package contains the shared library.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libiocp-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_SHLIBDEPS OFF)
# The .so link points into the runtime package of this very build; the
# static library's users link liburing too (iocp.pc's Libs.private).
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "${iocp_runtime_package} (= ${iocp_deb_version})")
if(IOCP_WITH_URING)
  string(APPEND CPACK_DEBIAN_DEV_PACKAGE_DEPENDS ", liburing-dev (>= 2.3)")
endif()
string(CONCAT CPACK_DEBIAN_DEV_DESCRIPTION
  "I/O completion ports on every platform - development files\n"
  "libiocp is a small C11 library that brings the I/O-completion-port model\n"
  "to every platform: IOCP on Windows, io_uring and epoll on Linux.\n"
  ".\n"
  "This package contains the headers, the static library, the CMake package\n"
  "(find_package(iocp)) and the pkg-config file (iocp.pc).")

# /usr/share/doc/<package>/copyright (Debian's machine-readable format, from
# LICENSE) and changelog.Debian.gz in each package.  Only the DEB has them:
# `cmake --install` leaves them out (EXCLUDE_FROM_ALL).
file(READ ${PROJECT_SOURCE_DIR}/LICENSE iocp_license)
string(REGEX MATCH "Copyright \\(c\\) ([^\n]*)" iocp_copyright_line "${iocp_license}")
set(iocp_copyright_holders "${CMAKE_MATCH_1}")
# The license text after its copyright line, each line indented by one
# space and an empty line as " .", as the format wants.
string(REGEX REPLACE "^.*Copyright \\(c\\) [^\n]*\n\n" "" iocp_license_text "${iocp_license}")
string(REGEX REPLACE "\n+$" "" iocp_license_text "${iocp_license_text}")
string(REPLACE "\n\n" "\n.\n" iocp_license_text "${iocp_license_text}")
string(REPLACE "\n" "\n " iocp_license_text " ${iocp_license_text}")
string(TIMESTAMP iocp_deb_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
set(iocp_deb_dir ${CMAKE_CURRENT_BINARY_DIR}/deb)
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/deb/copyright.in ${iocp_deb_dir}/copyright @ONLY)
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/deb/changelog.in ${iocp_deb_dir}/changelog @ONLY)
# gzip -9n: maximum compression and no name or time stamp in the header
# (Debian's changelogs are reproducible); gzip is essential on Debian.
execute_process(COMMAND gzip -9nc ${iocp_deb_dir}/changelog
  OUTPUT_FILE ${iocp_deb_dir}/changelog.Debian.gz RESULT_VARIABLE iocp_gzip_rc)
if(NOT iocp_gzip_rc EQUAL 0)
  message(FATAL_ERROR "gzip -9n failed on ${iocp_deb_dir}/changelog")
endif()
set(iocp_deb_packages iocptool ${iocp_runtime_package} libiocp-dev)
foreach(component package IN ZIP_LISTS CPACK_COMPONENTS_ALL iocp_deb_packages)
  install(FILES ${iocp_deb_dir}/copyright ${iocp_deb_dir}/changelog.Debian.gz
    DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${package}
    COMPONENT ${component} EXCLUDE_FROM_ALL)
endforeach()

if(NOT CMAKE_INSTALL_LIBDIR MATCHES "^lib/[a-z0-9_]+-linux-[a-z0-9_]+$")
  message(STATUS "DEB: libraries go to /usr/${CMAKE_INSTALL_LIBDIR}; "
                 "-DCMAKE_INSTALL_PREFIX=/usr gives Debian's multiarch directory")
endif()
