# The Scoop and winget manifests of a release, from templates:
#   cmake -DZIP=... -DVERSION=... -DURL=... -DSUMMARY=... -DHOMEPAGE=...
#         -DTEMPLATES=packaging -DOUT=<build>/packaging -P manifests.cmake
# Run by the `manifests` target of a Windows build right after it made ZIP.
# Writes OUT/scoop/iocptool.json and, in winget-pkgs' layout,
# OUT/winget/manifests/i/iocptool/iocptool/VERSION/*.yaml.
foreach(var ZIP VERSION URL SUMMARY HOMEPAGE TEMPLATES OUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "manifests.cmake: -D${var}=... is missing")
  endif()
endforeach()
if(NOT EXISTS "${ZIP}")
  message(FATAL_ERROR "manifests.cmake: ${ZIP} does not exist")
endif()

file(SHA256 "${ZIP}" IOCP_ZIP_SHA256)
string(TOUPPER "${IOCP_ZIP_SHA256}" IOCP_ZIP_SHA256_UPPER)
set(IOCP_VERSION "${VERSION}")
set(IOCP_ZIP_URL "${URL}")
set(IOCP_SUMMARY "${SUMMARY}")
set(IOCP_HOMEPAGE "${HOMEPAGE}")

set(id iocptool.iocptool)
set(winget_dir "${OUT}/winget/manifests/i/iocptool/iocptool/${VERSION}")
file(REMOVE_RECURSE "${OUT}/scoop" "${OUT}/winget")
configure_file("${TEMPLATES}/scoop/iocptool.json.in" "${OUT}/scoop/iocptool.json" @ONLY)
foreach(kind version installer locale.en-US)
  set(suffix ".${kind}")
  if(kind STREQUAL "version")
    set(suffix "")
  endif()
  configure_file("${TEMPLATES}/winget/${id}${suffix}.yaml.in" "${winget_dir}/${id}${suffix}.yaml" @ONLY)
endforeach()
message(STATUS "manifests for ${VERSION}, sha256 ${IOCP_ZIP_SHA256}: ${OUT}/scoop, ${winget_dir}")
