# What every cross toolchain of the FEC side shares; each target's file sets
# WHARF_CROSS_TRIPLET (Debian's g++-12-<triplet>), CMAKE_SYSTEM_PROCESSOR,
# WHARF_CROSS_ARCH (scripts/cross-build's name for it), WHARF_CROSS_32BIT and
# WHARF_CROSS_EXTRA_LIBS, then includes this. Used by scripts/cross-build (docs/embedded.md),
# which passes WHARF_CROSS_PREFIX: the static dependencies (zstd, libarchive, libcurl,
# OpenSSL, GoogleTest) it builds from Debian's source packages.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${WHARF_CROSS_TRIPLET}-gcc-12)
set(CMAKE_CXX_COMPILER ${WHARF_CROSS_TRIPLET}-g++-12)
set(WHARF_CROSS_SYSROOT /usr/${WHARF_CROSS_TRIPLET})
set(CMAKE_FIND_ROOT_PATH ${WHARF_CROSS_PREFIX} ${WHARF_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Each function in its own section, so the link keeps only what is called. 32-bit: 64-bit
# off_t and time_t (glibc >= 2.34), the same flags the dependencies are built with.
set(wharf_cross_flags "-ffunction-sections -fdata-sections")
if(WHARF_CROSS_32BIT)
  set(wharf_cross_flags "-D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64 ${wharf_cross_flags}")
endif()
set(CMAKE_C_FLAGS_INIT "${wharf_cross_flags}")
set(CMAKE_CXX_FLAGS_INIT "${wharf_cross_flags}")
# libstdc++ and libgcc linked in: the agent needs only the C library on the FEC; unused
# sections dropped (the dependencies are built with -ffunction-sections too).
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static-libstdc++ -static-libgcc -Wl,--gc-sections")
if(WHARF_CROSS_EXTRA_LIBS)
  set(CMAKE_C_STANDARD_LIBRARIES "${WHARF_CROSS_EXTRA_LIBS}")
  set(CMAKE_CXX_STANDARD_LIBRARIES "${WHARF_CROSS_EXTRA_LIBS}")
endif()
# ctest runs the unit tests under qemu-user (no binfmt registration needed).
set(CMAKE_CROSSCOMPILING_EMULATOR ${CMAKE_CURRENT_LIST_DIR}/../../tests/cross/qemu-run ${WHARF_CROSS_ARCH})
# Every try_compile sees the prefix too.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES WHARF_CROSS_PREFIX)
