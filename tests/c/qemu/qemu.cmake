# Bare-metal test executables for QEMU mps2-an505 (Cortex-M33).
#
# Use with the toolchain file cmake/arm-none-eabi-m33.cmake:
#
#   include(${CMAKE_SOURCE_DIR}/tests/c/qemu/qemu.cmake)
#   chunkprov_qemu_executable(test_foo test_foo.c)      # -> test_foo.elf
#   target_link_libraries(test_foo PRIVATE chunkprov)   # e.g. libchunkprov.a
#   chunkprov_qemu_add_test(test_foo)                   # ctest runs it in QEMU
#
# Each executable gets the harness runtime (startup.c: vectors, reset, fault
# handlers; semihost.c: stdio/exit via semihosting; bench_clock.c), newlib-nano
# (--specs=nano.specs; add `-u _printf_float` to the link for printf("%f")),
# the linker script mps2_an505.ld and a link map <target>.map next to the ELF.
# Headers semihost.h, bench_clock.h and stack.h are on the include path.
#
#   chunkprov_qemu_stack(test_foo BUDGET 1536 [EXCEPT chunkprov_client_poll=2688])
#
# routes the program's calls of every function in include/chunkprov.h through
# stack_chunkprov.c (-Wl,--wrap=...), which measures each call's stack and,
# with a BUDGET (bytes), runs it with MSPLIM that far below the caller's SP:
# a call needing more faults (exit 103). At exit the program prints
# "STACK <function> <max bytes> <calls> <budget>" lines (stack.h).

include_guard(GLOBAL)

set(CHUNKPROV_QEMU_DIR "${CMAKE_CURRENT_LIST_DIR}")
set(CHUNKPROV_QEMU_LINKER_SCRIPT "${CHUNKPROV_QEMU_DIR}/mps2_an505.ld")
set(CHUNKPROV_QEMU_RUN "${CHUNKPROV_QEMU_DIR}/run.sh")

add_library(chunkprov_qemu_rt OBJECT
  "${CHUNKPROV_QEMU_DIR}/startup.c"
  "${CHUNKPROV_QEMU_DIR}/semihost.c"
  "${CHUNKPROV_QEMU_DIR}/bench_clock.c"
  "${CHUNKPROV_QEMU_DIR}/stack.c")
target_include_directories(chunkprov_qemu_rt PUBLIC "${CHUNKPROV_QEMU_DIR}")
target_compile_options(chunkprov_qemu_rt PRIVATE -std=c11 -O2 -g -Wall -Wextra -Werror)
target_link_options(chunkprov_qemu_rt INTERFACE
  --specs=nano.specs
  -nostartfiles
  "-T${CHUNKPROV_QEMU_LINKER_SCRIPT}")

# chunkprov_qemu_executable(<target> <source>...)
function(chunkprov_qemu_executable target)
  add_executable(${target} ${ARGN})
  target_link_libraries(${target} PRIVATE chunkprov_qemu_rt)
  target_link_options(${target} PRIVATE
    "LINKER:-Map=${CMAKE_CURRENT_BINARY_DIR}/${target}.map")
  set_target_properties(${target} PROPERTIES
    SUFFIX ".elf"
    LINK_DEPENDS "${CHUNKPROV_QEMU_LINKER_SCRIPT}")
endfunction()

# chunkprov_qemu_add_test(<target> [NAME <test name>] [QEMU_ARGS <arg>...])
# Registers a CTest test that runs the ELF through run.sh (exit status of
# main() is the test result; QEMU_TIMEOUT in the environment still applies).
function(chunkprov_qemu_add_test target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "NAME" "QEMU_ARGS")
  if(NOT arg_NAME)
    set(arg_NAME ${target})
  endif()
  add_test(NAME ${arg_NAME}
    COMMAND "${CHUNKPROV_QEMU_RUN}" "$<TARGET_FILE:${target}>" ${arg_QEMU_ARGS})
endfunction()

# chunkprov_qemu_stack(<target> [BUDGET <bytes>] [EXCEPT <function>=<bytes>...]
#                      [HEADER <chunkprov.h>])
# Measures (and with BUDGET > 0 limits) the stack of every call the target
# makes to a function declared in the header (default: include/chunkprov.h);
# EXCEPT gives single functions a budget of their own.
function(chunkprov_qemu_stack target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "BUDGET;HEADER" "EXCEPT")
  if(NOT arg_BUDGET)
    set(arg_BUDGET 0)
  endif()
  if(NOT arg_HEADER)
    get_filename_component(arg_HEADER "${CHUNKPROV_QEMU_DIR}/../../../include/chunkprov.h" ABSOLUTE)
  endif()
  # Every function the header declares: `<type> chunkprov_<name>(` at the start of a line.
  file(STRINGS "${arg_HEADER}" decls REGEX "^[a-z].* \\**chunkprov_[a-z0-9_]+\\(")
  set(functions "")
  foreach(d IN LISTS decls)
    string(REGEX MATCH "chunkprov_[a-z0-9_]+\\(" f "${d}")
    string(REPLACE "(" "" f "${f}")
    list(APPEND functions "${f}")
    target_link_options(${target} PRIVATE "LINKER:--wrap=${f}")
  endforeach()
  if(NOT functions)
    message(FATAL_ERROR "chunkprov_qemu_stack: no functions found in ${arg_HEADER}")
  endif()
  target_sources(${target} PRIVATE "${CHUNKPROV_QEMU_DIR}/stack_chunkprov.c")
  string(REPLACE ";" "," except "${arg_EXCEPT}")
  target_compile_definitions(${target} PRIVATE "CHUNKPROV_STACK_BUDGET=${arg_BUDGET}u"
    "CHUNKPROV_STACK_EXCEPT=\"${except}\"")
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${arg_HEADER}")
endfunction()
