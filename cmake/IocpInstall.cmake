# libiocp's install rules, included from lib/CMakeLists.txt: both libraries,
# the public headers with the generated iocp/version.h, the CMake package
# (iocpConfig.cmake, iocpConfigVersion.cmake, iocpTargets*.cmake) and iocp.pc.
# Nothing from lib/src is installed or named by the package.
#
# Components: "runtime" is the shared library alone; "dev" is what a program
# needs to build against libiocp (static library, .so link, headers, package
# files).
include(CMakePackageConfigHelpers)

set(IOCP_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/iocp" CACHE STRING
  "Where iocpConfig.cmake is installed, relative to the prefix")
mark_as_advanced(IOCP_INSTALL_CMAKEDIR)

install(TARGETS ${IOCP_LIBRARIES} EXPORT iocpTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
  FILES_MATCHING PATTERN "*.h")
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/include/iocp/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/iocp COMPONENT dev)

# The CMake package.  Its config file recreates what the static library links
# (Threads, liburing) before it loads the targets.
set(IOCP_PACKAGE_NEEDS_THREADS OFF)
if(Threads::Threads IN_LIST IOCP_SYSTEM_LIBS)
  set(IOCP_PACKAGE_NEEDS_THREADS ON)
endif()
set(IOCP_PACKAGE_NEEDS_URING OFF)
if(PkgConfig::LIBURING IN_LIST IOCP_SYSTEM_LIBS)
  set(IOCP_PACKAGE_NEEDS_URING ON)
endif()
install(EXPORT iocpTargets NAMESPACE iocp:: DESTINATION ${IOCP_INSTALL_CMAKEDIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/iocpConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/iocpConfig.cmake
  INSTALL_DESTINATION ${IOCP_INSTALL_CMAKEDIR})
# Same major version, as the shared library's SOVERSION says.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/iocpConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/iocpConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/iocpConfigVersion.cmake
  DESTINATION ${IOCP_INSTALL_CMAKEDIR} COMPONENT dev)

# iocp.pc.  Its prefix is found from the file's own place (${pcfiledir}), so
# the tree can be installed with `cmake --install --prefix` anywhere.  A
# static link adds Libs.private (pkg-config --static).
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(IOCP_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(IOCP_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH iocp_pc_up "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" iocp_pc_up "${iocp_pc_up}")
  set(IOCP_PC_PREFIX "\${pcfiledir}/${iocp_pc_up}")
  set(IOCP_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(IOCP_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(IOCP_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
set(IOCP_PC_CFLAGS "")
if(WIN32)
  set(IOCP_PC_LIBS_PRIVATE "-lws2_32 -lmswsock")
  if(TARGET iocp_shared)
    set(IOCP_PC_CFLAGS " -DIOCP_USING_SHARED")
  endif()
else()
  set(IOCP_PC_LIBS_PRIVATE "-lpthread")
  if(IOCP_PACKAGE_NEEDS_URING)
    set(IOCP_PC_LIBS_PRIVATE "-luring ${IOCP_PC_LIBS_PRIVATE}")
  endif()
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/iocp.pc.in ${CMAKE_CURRENT_BINARY_DIR}/iocp.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/iocp.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
