# CPACK_PRE_BUILD_SCRIPTS of the DEBs (packaging/deb.cmake): what
# dh_compress and dh_strip do in a Debian build, on CPack's staging tree
# (one folder per component) before the packages are made:
#   - manual pages gzip -9n (no name or time stamp: reproducible)
#   - executables and shared libraries lose .comment and .note (CPack's
#     strip has already removed the symbols and debug information)
#   - static libraries lose their debug information, .comment and .note
find_program(IOCP_GZIP gzip REQUIRED)
find_program(IOCP_STRIP NAMES strip REQUIRED)
file(GLOB iocp_components LIST_DIRECTORIES true "${CPACK_TEMPORARY_DIRECTORY}/*")
foreach(root IN LISTS iocp_components)
  if(NOT IS_DIRECTORY "${root}/usr")
    continue()
  endif()
  file(GLOB_RECURSE pages "${root}/usr/share/man/*")
  foreach(page IN LISTS pages)
    if(NOT page MATCHES "\\.gz$" AND NOT IS_SYMLINK "${page}")
      execute_process(COMMAND ${IOCP_GZIP} -9nf "${page}" COMMAND_ERROR_IS_FATAL ANY)
    endif()
  endforeach()
  file(GLOB_RECURSE objects "${root}/usr/bin/*" "${root}/usr/lib/*.so.*" "${root}/usr/lib/*.a")
  foreach(obj IN LISTS objects)
    if(IS_SYMLINK "${obj}")
      continue()
    elseif(obj MATCHES "\\.a$")
      execute_process(COMMAND ${IOCP_STRIP} --strip-debug --remove-section=.comment
        --remove-section=.note --enable-deterministic-archives "${obj}" COMMAND_ERROR_IS_FATAL ANY)
    else()
      execute_process(COMMAND ${IOCP_STRIP} --remove-section=.comment --remove-section=.note
        "${obj}" COMMAND_ERROR_IS_FATAL ANY)
    endif()
  endforeach()
endforeach()
