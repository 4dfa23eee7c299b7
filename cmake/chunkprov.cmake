# libchunkprov.a as a CMake target, with memcpy & co. from the firmware's C library.
#
#   include(cmake/chunkprov.cmake)
#   chunkprov_import(chunkprov LIB <path>/libchunkprov.a INCLUDE <path>/include [LIBC_MEM ON|OFF])
#   target_link_libraries(app PRIVATE chunkprov)
#
# Why LIBC_MEM. A Rust static library for a bare-metal target carries compiler_builtins, whose
# memcpy, memmove, memset, memcmp, bcmp, strlen and ARM EABI helpers (__aeabi_memcpy[48],
# __aeabi_memmove[48], __aeabi_memset[48], __aeabi_memclr[48]) are weak, hidden definitions
# (~2.2 KiB on the Cortex-M33). The linker takes an archive member for the first definition of
# a symbol still undefined, weak or not, and the archive is scanned before the C library that
# the compiler driver appends at the end (-lc / -lc_nano): so these copies win and also serve
# the firmware's own C code, while the C library's versions (newlib-nano's memcpy is 236 bytes,
# and usually linked anyway) are left out. Putting -lc first does not help (the archive's
# references are not undefined yet when -lc is scanned) unless every symbol is also forced
# undefined with -Wl,-u,<symbol>.
#
# With LIBC_MEM (default: ON for bare-metal Arm, CMAKE_SYSTEM_NAME Generic) the archive is
# copied with those symbols made local (objcopy --localize-symbol), so they are no longer in its
# symbol index: the library's calls resolve to the firmware's C library, whatever the link
# order. That C library must define them all: newlib, newlib-nano and picolibc (Zephyr's
# default) do; Zephyr's minimal libc has no __aeabi_mem* helpers: use LIBC_MEM OFF with it.
# Without CMake the same is one command:
#
#   arm-none-eabi-objcopy $(printf -- '--localize-symbol=%s ' <the symbols below>) \
#       libchunkprov.a libchunkprov-libc.a

set(CHUNKPROV_LIBC_MEM_SYMBOLS
  memcpy memmove memset memcmp bcmp strlen
  __aeabi_memcpy __aeabi_memcpy4 __aeabi_memcpy8
  __aeabi_memmove __aeabi_memmove4 __aeabi_memmove8
  __aeabi_memset __aeabi_memset4 __aeabi_memset8
  __aeabi_memclr __aeabi_memclr4 __aeabi_memclr8)

# chunkprov_import(<target> LIB <libchunkprov.a> [INCLUDE <dir>] [LIBC_MEM ON|OFF])
function(chunkprov_import target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "LIB;INCLUDE;LIBC_MEM" "")
  if(NOT arg_LIB)
    message(FATAL_ERROR "chunkprov_import: LIB <path to libchunkprov.a> is required")
  endif()
  if(NOT DEFINED arg_LIBC_MEM)
    if(CMAKE_SYSTEM_NAME STREQUAL "Generic" AND CMAKE_SYSTEM_PROCESSOR MATCHES "^arm")
      set(arg_LIBC_MEM ON)
    else()
      set(arg_LIBC_MEM OFF)
    endif()
  endif()
  set(lib "${arg_LIB}")
  if(arg_LIBC_MEM)
    if(NOT CMAKE_OBJCOPY)
      message(FATAL_ERROR "chunkprov_import: LIBC_MEM needs objcopy (CMAKE_OBJCOPY)")
    endif()
    set(lib "${CMAKE_CURRENT_BINARY_DIR}/${target}-libc-mem/libchunkprov.a")
    set(localize "")
    foreach(s IN LISTS CHUNKPROV_LIBC_MEM_SYMBOLS)
      list(APPEND localize "--localize-symbol=${s}")
    endforeach()
    # Run on every build (cargo may put back an older archive, with its older time stamp, when
    # features change); the copy only changes, and the programs relink, when its content does.
    add_custom_target(${target}_libc_mem
      COMMAND "${CMAKE_COMMAND}" -E make_directory "${CMAKE_CURRENT_BINARY_DIR}/${target}-libc-mem"
      COMMAND "${CMAKE_OBJCOPY}" ${localize} "${arg_LIB}" "${lib}.new"
      COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${lib}.new" "${lib}"
      BYPRODUCTS "${lib}"
      COMMENT "libchunkprov.a with memcpy & co. from the C library"
      VERBATIM)
  endif()
  add_library(${target} STATIC IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${lib}")
  if(arg_INCLUDE)
    set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${arg_INCLUDE}")
  endif()
  if(arg_LIBC_MEM)
    add_dependencies(${target} ${target}_libc_mem)
  endif()
endfunction()
