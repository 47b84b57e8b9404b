# Cross toolchain for the FEC side on PowerPC 32-bit big-endian (powerpc-linux-gnu): Debian's g++-12-powerpc-linux-gnu.
# Used by scripts/cross-build (docs/embedded.md), which passes WHARF_CROSS_PREFIX: the
# static dependencies (zstd, libarchive, libcurl, OpenSSL, GoogleTest) it builds from
# Debian's source packages.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ppc)
set(CMAKE_C_COMPILER powerpc-linux-gnu-gcc-12)
set(CMAKE_CXX_COMPILER powerpc-linux-gnu-g++-12)
set(WHARF_CROSS_SYSROOT /usr/powerpc-linux-gnu)
set(CMAKE_FIND_ROOT_PATH ${WHARF_CROSS_PREFIX} ${WHARF_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# 32-bit: 64-bit off_t and time_t (glibc >= 2.34), the same flags the dependencies are built
# with. Each function in its own section, so the link keeps only what is called.
set(CMAKE_C_FLAGS_INIT "-D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64 -ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "-D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64 -ffunction-sections -fdata-sections")
# libstdc++ and libgcc linked in: the agent needs only the C library on the FEC; unused
# sections dropped (the dependencies are built with -ffunction-sections too).
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static-libstdc++ -static-libgcc -Wl,--gc-sections")
# No 8-byte atomic instructions on 32-bit PowerPC: GCC's libatomic, linked in.
set(CMAKE_C_STANDARD_LIBRARIES "-l:libatomic.a")
set(CMAKE_CXX_STANDARD_LIBRARIES "-l:libatomic.a")
# ctest runs the unit tests under qemu-user (no binfmt registration needed).
set(CMAKE_CROSSCOMPILING_EMULATOR ${CMAKE_CURRENT_LIST_DIR}/../../tests/cross/qemu-run powerpc)
# Every try_compile sees the prefix too.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES WHARF_CROSS_PREFIX)
