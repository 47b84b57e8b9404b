# The FEC side on ARM 64-bit: Debian's g++-12-aarch64-linux-gnu.
set(WHARF_CROSS_TRIPLET aarch64-linux-gnu)
set(WHARF_CROSS_ARCH arm64)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(WHARF_CROSS_32BIT OFF)
include(${CMAKE_CURRENT_LIST_DIR}/wharf-cross.cmake)
