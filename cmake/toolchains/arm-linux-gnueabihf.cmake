# The FEC side on ARM 32-bit hard-float: Debian's g++-12-arm-linux-gnueabihf.
set(WHARF_CROSS_TRIPLET arm-linux-gnueabihf)
set(WHARF_CROSS_ARCH armhf)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(WHARF_CROSS_32BIT ON)
include(${CMAKE_CURRENT_LIST_DIR}/wharf-cross.cmake)
