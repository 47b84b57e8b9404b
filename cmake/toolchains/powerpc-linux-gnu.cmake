# The FEC side on PowerPC 32-bit big-endian: Debian's g++-12-powerpc-linux-gnu.
set(WHARF_CROSS_TRIPLET powerpc-linux-gnu)
set(WHARF_CROSS_ARCH powerpc)
set(CMAKE_SYSTEM_PROCESSOR ppc)
set(WHARF_CROSS_32BIT ON)
# No 8-byte atomic instructions on 32-bit PowerPC: GCC's libatomic, linked in.
set(WHARF_CROSS_EXTRA_LIBS "-l:libatomic.a")
include(${CMAKE_CURRENT_LIST_DIR}/wharf-cross.cmake)
