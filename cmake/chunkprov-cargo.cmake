# Builds libchunkprov.a (the `chunkprov-ffi` crate) with cargo as part of a CMake build and
# imports it with chunkprov_import() (cmake/chunkprov.cmake). Used by the Zephyr module
# (zephyr/CMakeLists.txt) and by the plain CMake project at the repository root.
#
#   include(cmake/chunkprov-cargo.cmake)
#   chunkprov_cargo_library(<target>
#       TRIPLE <rust target triple>       # e.g. thumbv8m.main-none-eabi, x86_64-unknown-linux-gnu
#       [TARGET_DIR <dir>]                # cargo's target directory (default: <binary dir>/cargo;
#                                         #  the cache variable CHUNKPROV_CARGO_TARGET_DIR wins, so
#                                         #  several builds can share one, e.g. the repository's
#                                         #  target/)
#       [PROFILE <name>]                  # cargo profile (default: release)
#       [NO_DEFAULT_FEATURES]             # without chunkprov-ffi's default features (`log`) ...
#       [FEATURES <feature>...]           # ... and with these
#       [LIBC_MEM ON|OFF])                # memcpy & co. from the C library (chunkprov_import's
#                                         #  default: ON for bare-metal Arm)
#   target_link_libraries(<your target> PRIVATE <target>)
#
# The archive is linked as an ordinary static library: only the members that resolve a symbol
# are taken. Never put it inside --whole-archive: it carries compiler_builtins and the whole
# library, and every member would be forced into the image.
#
# cargo runs on every build (it returns at once when nothing changed, and it alone knows the
# Rust sources' dependencies); its archive is copied into the build directory only when its
# content changed (when features change cargo may put back an older archive with its older time
# stamp, which the link step would take for unchanged). The Rust target must be installed:
# `rustup target add <triple>`.

include_guard(GLOBAL)

get_filename_component(CHUNKPROV_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
include(${CMAKE_CURRENT_LIST_DIR}/chunkprov.cmake)

find_program(CHUNKPROV_CARGO cargo HINTS "$ENV{HOME}/.cargo/bin" "$ENV{CARGO_HOME}/bin")
find_program(CHUNKPROV_RUSTC rustc HINTS "$ENV{HOME}/.cargo/bin" "$ENV{CARGO_HOME}/bin")

function(chunkprov_cargo_library name)
  cmake_parse_arguments(ARG "NO_DEFAULT_FEATURES" "TRIPLE;TARGET_DIR;PROFILE;LIBC_MEM" "FEATURES"
                        ${ARGN})
  if(NOT ARG_TRIPLE)
    message(FATAL_ERROR "chunkprov_cargo_library(${name}): TRIPLE is required")
  endif()
  if(CHUNKPROV_CARGO_TARGET_DIR)
    set(ARG_TARGET_DIR "${CHUNKPROV_CARGO_TARGET_DIR}")
  elseif(NOT ARG_TARGET_DIR)
    set(ARG_TARGET_DIR "${CMAKE_BINARY_DIR}/cargo")
  endif()
  if(NOT ARG_PROFILE)
    set(ARG_PROFILE release)
  endif()
  if(NOT CHUNKPROV_CARGO OR NOT CHUNKPROV_RUSTC)
    message(FATAL_ERROR "chunkprov: cargo/rustc not found. Install Rust (https://rustup.rs) "
                        "or put cargo on PATH.")
  endif()

  # A missing Rust target fails late and obscurely inside cargo: check it now.
  execute_process(COMMAND "${CHUNKPROV_RUSTC}" --print sysroot
                  OUTPUT_VARIABLE sysroot OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT IS_DIRECTORY "${sysroot}/lib/rustlib/${ARG_TRIPLE}")
    message(FATAL_ERROR "chunkprov: the Rust target ${ARG_TRIPLE} is not installed "
                        "(rustc sysroot ${sysroot}). Install it with: rustup target add ${ARG_TRIPLE}")
  endif()

  # `dev` builds land in .../debug, every other profile in a folder of its name. For the host's
  # own triple no --target is given (target/release, as `cargo build --release` makes it).
  if(ARG_PROFILE STREQUAL "dev")
    set(profile_dir debug)
  else()
    set(profile_dir "${ARG_PROFILE}")
  endif()
  execute_process(COMMAND "${CHUNKPROV_RUSTC}" -vV OUTPUT_VARIABLE vv)
  string(REGEX MATCH "host: ([^\n]+)" _ "${vv}")
  if(ARG_TRIPLE STREQUAL CMAKE_MATCH_1)
    set(target_arg "")
    set(built "${ARG_TARGET_DIR}/${profile_dir}/libchunkprov.a")
  else()
    set(target_arg --target "${ARG_TRIPLE}")
    set(built "${ARG_TARGET_DIR}/${ARG_TRIPLE}/${profile_dir}/libchunkprov.a")
  endif()

  set(features_arg "")
  if(ARG_NO_DEFAULT_FEATURES)
    list(APPEND features_arg --no-default-features)
  endif()
  if(ARG_FEATURES)
    list(JOIN ARG_FEATURES "," joined)
    list(APPEND features_arg --features "${joined}")
  endif()

  set(copy "${CMAKE_CURRENT_BINARY_DIR}/${name}-cargo/libchunkprov.a")
  add_custom_target(${name}_cargo ALL
    COMMAND "${CHUNKPROV_CARGO}" build --locked -p chunkprov-ffi
            --manifest-path "${CHUNKPROV_ROOT}/Cargo.toml"
            ${target_arg} --profile "${ARG_PROFILE}"
            --target-dir "${ARG_TARGET_DIR}" ${features_arg}
    COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${built}" "${copy}"
    BYPRODUCTS "${copy}"
    WORKING_DIRECTORY "${CHUNKPROV_ROOT}"
    COMMENT "cargo: libchunkprov.a for ${ARG_TRIPLE} (${ARG_PROFILE} ${features_arg})"
    USES_TERMINAL
    VERBATIM)

  set(import_args LIB "${copy}" INCLUDE "${CHUNKPROV_ROOT}/include")
  if(DEFINED ARG_LIBC_MEM)
    list(APPEND import_args LIBC_MEM ${ARG_LIBC_MEM})
  endif()
  chunkprov_import(${name} ${import_args})
  add_dependencies(${name} ${name}_cargo)
  if(TARGET ${name}_libc_mem)
    add_dependencies(${name}_libc_mem ${name}_cargo)
  endif()
  message(STATUS "chunkprov: libchunkprov.a for ${ARG_TRIPLE} (${ARG_PROFILE} ${features_arg}) "
                 "from ${built}")
endfunction()
