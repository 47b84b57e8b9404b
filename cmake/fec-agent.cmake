# The FEC side's configuration, as an initial cache (cmake -C): scripts/cross-build and the
# Yocto recipe (packaging/yocto/meta-wharf) both configure wharf with this file, so the
# build the suite tests under qemu is the recipe's (tests/yocto_layer.sh checks both use it).
set(WHARF_AGENT_ONLY ON CACHE BOOL "Build only the FEC side")
set(WHARF_UNIT_TESTS OFF CACHE BOOL "Build the unit tests (scripts/cross-build --tests: ON)")
