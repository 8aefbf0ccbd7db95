# Fails when a folder of src/attnspec includes from a folder above it. io/ reads files into plain
# data and common/ holds what every folder shares; the folders that build on them (tokenize/,
# model/, run/, ...) include them, so neither may include those folders back: a circle such as
# io -> tokenize -> io would come back unnoticed otherwise.
#
#   cmake -DSOURCE_DIR=<repository>/src/attnspec -P cmake/check_layers.cmake   (a ctest, see CMakeLists.txt)
if(NOT SOURCE_DIR)
  message(FATAL_ERROR "pass -DSOURCE_DIR=<repository>/src/attnspec")
endif()

# folder -> the folders of src/attnspec its files may include from
set(allowed_common common)
set(allowed_io common io)

set(failures "")
foreach(folder common io)
  if(NOT IS_DIRECTORY "${SOURCE_DIR}/${folder}")
    message(FATAL_ERROR "${SOURCE_DIR}/${folder} is not a folder")
  endif()
  file(GLOB_RECURSE files "${SOURCE_DIR}/${folder}/*")
  foreach(file IN LISTS files)
    file(STRINGS "${file}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]attnspec/")
    foreach(line IN LISTS includes)
      set(from "")
      if(line MATCHES "attnspec/([A-Za-z0-9_]+)/")
        set(from "${CMAKE_MATCH_1}")
      endif()
      if(NOT from IN_LIST allowed_${folder})
        file(RELATIVE_PATH name "${SOURCE_DIR}" "${file}")
        string(STRIP "${line}" line)
        string(REPLACE ";" ", " allowed "${allowed_${folder}}")
        string(APPEND failures "\n  ${name}: ${line} (${folder}/ may include only from ${allowed})")
      endif()
    endforeach()
  endforeach()
endforeach()

if(failures)
  message(FATAL_ERROR "include outside the folder's layer:${failures}")
endif()
message(STATUS "common/ and io/ include nothing from the folders above them")
