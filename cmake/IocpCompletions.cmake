# The shell completion scripts of iocptool, included from cli/CMakeLists.txt.
# iocptool writes them itself from its option tables (`iocptool --completions
# bash|powershell`, cli/completions.c), so they cannot drift from what the
# parsers accept:
#
#   ${CMAKE_BINARY_DIR}/iocptool.bash   installed on Linux as
#       ${CMAKE_INSTALL_DATADIR}/bash-completion/completions/iocptool (the DEB)
#   ${CMAKE_BINARY_DIR}/_iocptool.ps1   in the Windows ZIP (packaging/)
#
# A native build runs the iocptool it has just built.  A cross build cannot
# run its iocptool.exe: it runs the native iocptool named by
# IOCP_COMPLETIONS_TOOL, a build of the same sources for the build machine
# (tests/run.sh passes its Linux build).  The tables are the same on both
# sides but for the subcommands iocptool.exe does not have yet (stats): the
# script then offers their options too, and the subcommand says it is not
# available.  Without IOCP_COMPLETIONS_TOOL a cross build has no scripts
# and its ZIP none (packaging/validate.py fails such a ZIP).
#
# The PowerShell script is _iocptool.ps1, not iocptool.ps1: in a folder on
# PATH, PowerShell would run iocptool.ps1 for `iocptool` before iocptool.exe.

set(IOCP_COMPLETIONS_TOOL "" CACHE FILEPATH
  "Cross builds: a native iocptool of the same sources that writes the completion scripts")

set(IOCP_COMPLETION_BASH ${CMAKE_BINARY_DIR}/iocptool.bash)
set(IOCP_COMPLETION_PS1 ${CMAKE_BINARY_DIR}/_iocptool.ps1)

if(NOT CMAKE_CROSSCOMPILING)
  set(iocp_completions_tool $<TARGET_FILE:iocptool>)
  set(iocp_completions_deps iocptool)
elseif(IOCP_COMPLETIONS_TOOL)
  set(iocp_completions_tool ${IOCP_COMPLETIONS_TOOL})
  set(iocp_completions_deps ${IOCP_COMPLETIONS_TOOL})
else()
  message(STATUS "completion scripts: none in this cross build "
                 "(-DIOCP_COMPLETIONS_TOOL=<a native iocptool> makes them)")
  return()
endif()

add_custom_command(OUTPUT ${IOCP_COMPLETION_BASH} ${IOCP_COMPLETION_PS1}
  COMMAND ${CMAKE_COMMAND} -DTOOL=${iocp_completions_tool} -DWHICH=bash
          -DOUT=${IOCP_COMPLETION_BASH} -P ${PROJECT_SOURCE_DIR}/cmake/completions_write.cmake
  COMMAND ${CMAKE_COMMAND} -DTOOL=${iocp_completions_tool} -DWHICH=powershell
          -DOUT=${IOCP_COMPLETION_PS1} -P ${PROJECT_SOURCE_DIR}/cmake/completions_write.cmake
  DEPENDS ${iocp_completions_deps} ${PROJECT_SOURCE_DIR}/cmake/completions_write.cmake
  COMMENT "Completion scripts (iocptool --completions)"
  VERBATIM)
add_custom_target(iocptool_completions ALL
  DEPENDS ${IOCP_COMPLETION_BASH} ${IOCP_COMPLETION_PS1})
# Where the scripts are, for packaging/ and tests/.
set_target_properties(iocptool_completions PROPERTIES
  IOCP_BASH_SCRIPT ${IOCP_COMPLETION_BASH} IOCP_PS1_SCRIPT ${IOCP_COMPLETION_PS1})

if(NOT WIN32)
  install(FILES ${IOCP_COMPLETION_BASH}
    DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME iocptool)
endif()
