# Cross toolchain for the FEC side on ARM 64-bit (aarch64-linux-gnu): Debian's g++-12-aarch64-linux-gnu.
# Used by scripts/cross-build (docs/embedded.md), which passes WHARF_CROSS_PREFIX: the
# static dependencies (zstd, libarchive, libcurl, OpenSSL, GoogleTest) it builds from
# Debian's source packages.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc-12)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++-12)
set(WHARF_CROSS_SYSROOT /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH ${WHARF_CROSS_PREFIX} ${WHARF_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Each function in its own section, so the link keeps only what is called.
set(CMAKE_C_FLAGS_INIT "-ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "-ffunction-sections -fdata-sections")
# libstdc++ and libgcc linked in: the agent needs only the C library on the FEC; unused
# sections dropped (the dependencies are built with -ffunction-sections too).
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static-libstdc++ -static-libgcc -Wl,--gc-sections")
# ctest runs the unit tests under qemu-user (no binfmt registration needed).
set(CMAKE_CROSSCOMPILING_EMULATOR ${CMAKE_CURRENT_LIST_DIR}/../../tests/cross/qemu-run arm64)
# Every try_compile sees the prefix too.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES WHARF_CROSS_PREFIX)
