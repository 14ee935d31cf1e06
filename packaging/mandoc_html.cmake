# cmake -DMANDOC=... -DIN=man/iocptool.1 -DOUT=iocptool.html -P mandoc_html.cmake
# The manual as one HTML page for the Windows ZIP.
execute_process(COMMAND ${MANDOC} -Thtml ${IN} OUTPUT_FILE ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT})
  message(FATAL_ERROR "mandoc -Thtml ${IN} failed (${rc})")
endif()
