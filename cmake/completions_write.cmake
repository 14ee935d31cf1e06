# cmake -DTOOL=iocptool -DWHICH=bash|powershell -DOUT=FILE -P completions_write.cmake
# Run `TOOL --completions WHICH` into FILE (all or nothing).
execute_process(COMMAND ${TOOL} --completions ${WHICH}
  OUTPUT_FILE ${OUT}.tmp ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT}.tmp)
  message(FATAL_ERROR "${TOOL} --completions ${WHICH} failed (${rc}): ${err}")
endif()
file(RENAME ${OUT}.tmp ${OUT})
