# Warnings and sanitizers, as an interface target that every target of the
# project links: nothing edits CMAKE_C_FLAGS.
add_library(iocp_build_flags INTERFACE)

if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(iocp_build_flags INTERFACE
    -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes
    -Wformat=2 -Wvla -Wno-unused-parameter -Wno-missing-field-initializers)
  if(IOCP_WERROR)
    target_compile_options(iocp_build_flags INTERFACE -Werror)
  endif()
endif()

if(IOCP_SANITIZE STREQUAL "address")
  target_compile_options(iocp_build_flags INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(iocp_build_flags INTERFACE -fsanitize=address,undefined)
elseif(IOCP_SANITIZE STREQUAL "thread")
  target_compile_options(iocp_build_flags INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(iocp_build_flags INTERFACE -fsanitize=thread)
elseif(NOT IOCP_SANITIZE STREQUAL "")
  message(FATAL_ERROR "IOCP_SANITIZE must be empty, 'address' or 'thread', not '${IOCP_SANITIZE}'")
endif()
