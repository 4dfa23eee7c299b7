# CMake toolchain file: arm-none-eabi-gcc for a bare-metal Cortex-M33
# (nRF9160 class device; also QEMU's mps2-an505 machine).
#
#   cmake -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi-m33.cmake \
#         -DCHUNKPROV_FLOAT_ABI=soft|hard  -S <src> -B <build>
#
# CHUNKPROV_FLOAT_ABI selects the C ABI; it must match the Rust target the
# library was built for (CHUNKPROV_RUST_TARGET is set accordingly):
#   soft (default)  -mfloat-abi=soft                        thumbv8m.main-none-eabi
#   hard            -mfloat-abi=hard -mfpu=fpv5-sp-d16      thumbv8m.main-none-eabihf
#
# Compile flags include -ffunction-sections -fdata-sections and executables
# link with -Wl,--gc-sections. No C library/startup choice is made here: a
# plain add_executable() gets newlib's default crt0 and needs syscalls; the
# QEMU harness (tests/c/qemu/qemu.cmake) supplies its own startup code.

set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CHUNKPROV_FLOAT_ABI "soft" CACHE STRING
    "Float ABI for Cortex-M33: soft (thumbv8m.main-none-eabi) or hard (thumbv8m.main-none-eabihf)")
set_property(CACHE CHUNKPROV_FLOAT_ABI PROPERTY STRINGS soft hard)
# try_compile() projects re-read this file; pass the choice on to them.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES CHUNKPROV_FLOAT_ABI)

if(CHUNKPROV_FLOAT_ABI STREQUAL "soft")
  set(_chunkprov_fp_flags "-mfloat-abi=soft")
  set(CHUNKPROV_RUST_TARGET "thumbv8m.main-none-eabi")
elseif(CHUNKPROV_FLOAT_ABI STREQUAL "hard")
  set(_chunkprov_fp_flags "-mfloat-abi=hard -mfpu=fpv5-sp-d16")
  set(CHUNKPROV_RUST_TARGET "thumbv8m.main-none-eabihf")
else()
  message(FATAL_ERROR "CHUNKPROV_FLOAT_ABI must be 'soft' or 'hard', not '${CHUNKPROV_FLOAT_ABI}'")
endif()

set(CMAKE_C_COMPILER   arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)

# No host-runnable executables can be linked before startup code exists.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(_chunkprov_cpu_flags "-mcpu=cortex-m33 -mthumb ${_chunkprov_fp_flags}")
set(CMAKE_C_FLAGS_INIT   "${_chunkprov_cpu_flags} -ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "${_chunkprov_cpu_flags} -ffunction-sections -fdata-sections")
set(CMAKE_ASM_FLAGS_INIT "${_chunkprov_cpu_flags}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,--gc-sections")

# Programs (objcopy, python, ...) come from the host; headers/libraries
# only from the target sysroot.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
