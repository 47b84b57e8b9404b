#!/usr/bin/env bash
# "make install" (issue 5): the example device server is packed from its own install rules
# by the CMake module (1.0, to a file:// store) and by the Makefile include (1.1, through
# `wharf serve`); a FEC syncs both in turn and the counter carries on across the upgrade;
# stale staged files never ship; wrong uses stop with a message that says what to do.
source "$(dirname "$0")/lib.sh"

REPO=$(cd "$E2E_DIR/../.." && pwd)
EXAMPLE=$REPO/examples/counter
cd "$T"
"$WHARF" keygen --out release >/dev/null
mkdir store

# run LOG CMD...: CMD's output goes to LOG, and to stderr if it fails.
run() {
  local log=$1; shift
  "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "$*"; }
}
listing() { tar --zstd -tf "store/software/counter/$1/counter-$1.tar.zst" | sed 's|^\./||'; }

# 1.0 with the CMake module. The source folder is used as it is: CMake writes only to the
# build folder.
run configure.log cmake -S "$EXAMPLE" -B cmake-build -G Ninja -DWHARF_EXECUTABLE="$WHARF" \
  -DWHARF_MODULE_DIR="$REPO/cmake" -DWHARF_STORE="file://$T/store"
run publish.log cmake --build cmake-build --target wharf-publish
grep -q "counter@1.0: published" publish.log || { cat publish.log >&2; fail "cmake: no publish line"; }
[ -f cmake-build/wharf-out/counter-1.0.package.json ] || fail "cmake: no package.json in wharf-out"
[ ! -e cmake-build/file: ] || fail "the file:// store was taken for a relative folder"
pass "CMake: wharf-publish builds, installs, packs and publishes counter 1.0"

# A file left in the stage by an earlier build must not ship: the stage is made afresh, so
# packing again gives the same bytes and publishing them is a no-op. Without STORE, wharf
# takes the store from WHARF_STORE when the target runs.
touch cmake-build/wharf-stage/opt/counter/bin/stale
run configure2.log cmake -S "$EXAMPLE" -B cmake-build -DWHARF_STORE=
WHARF_STORE=$T/store run publish2.log cmake --build cmake-build --target wharf-publish
grep -q "counter@1.0: already published (same bytes)" publish2.log || { cat publish2.log >&2; fail "repack changed bytes"; }
listing 1.0 | grep -q stale && fail "a stale staged file shipped"
pass "CMake: the stage is rebuilt every time (same bytes again); the store comes from WHARF_STORE"

# 1.1 with the Makefile include, in a copy (make builds in its source folder), published
# through the server: an http:// WHARF_STORE becomes --server, the token comes from WHARF_TOKEN.
cp -r "$EXAMPLE" make-src
run clean.log make -C make-src clean
start_server "$T/store"
CI=$(make_token ci publisher "" "$T/store")
WHARF_TOKEN=$CI run make.log make -C make-src wharf-publish WHARF="$WHARF" WHARF_MK="$REPO/make/wharf.mk" \
  WHARF_VERSION=1.1 WHARF_STORE="$SERVER_URL"
stop_server
grep -q "counter@1.1: published" make.log || { cat make.log >&2; fail "make: no publish line"; }
pass "make: wharf-publish installs with DESTDIR and PREFIX, packs and publishes counter 1.1"

[ "$(ls store/software/counter | tr '\n' ' ')" = "1.0 1.1 " ] || fail "store holds: $(ls store/software/counter)"
for v in 1.0 1.1; do
  listing $v >"list-$v" || fail "GNU tar cannot read counter $v"
  for f in opt/counter/bin/counterd opt/counter/etc/counter.conf; do
    grep -qx "$f" "list-$v" || { cat "list-$v" >&2; fail "counter $v lacks $f"; }
  done
  grep -q '"command": "bin/counterd"' "store/software/counter/$v/package.json" \
    || fail "counter $v: the service from services.toml is not in package.json"
done
pass "both versions are in the store, GNU tar reads them, with bin/counterd and the service"

# On a FEC: 1.0 counts to 3, the upgrade to 1.1 goes on from the stored value.
sync_fec() {
  "$WHARF" assign fec01 "counter@$1" --store store --key release.key >/dev/null
  expect_exit 0 "$WHARF_AGENT" sync --root "$T/fec01" --store "file://$T/store" --fec fec01 --trust release.pub
}
counterd() { fec01/opt/counter/bin/counterd --state "$T/var/count" --interval-ms 10 "$@" | tr '\n' ' '; }
sync_fec 1.0
[ "$(counterd --count 3)" = "counter 1 counter 2 counter 3 " ] || fail "1.0 did not count 1 to 3 from no state"
sync_fec 1.1
[ "$(agent_generation fec01)" = 2 ] || fail "fec01 should run generation 2"
[ "$(counterd --count 2)" = "counter 4 counter 5 " ] || fail "1.1 did not resume from 3"
[ "$(cat var/count)" = 5 ] || fail "state file holds $(cat var/count)"
[ "$(ls var)" = count ] || fail "left over in the state folder: $(ls var)"
pass "the synced counterd resumes from its state file across versions"

# Wrong uses of the CMake module stop configure with a message naming the fix.
mkdir bad
bad_cmake() {  # bad_cmake PATTERN ARGS...: wharf_package(ARGS) must fail configure with PATTERN
  local pattern=$1; shift
  printf 'cmake_minimum_required(VERSION 3.19)\nproject(bad NONE)\nlist(APPEND CMAKE_MODULE_PATH %s)\ninclude(Wharf)\n%s\nwharf_package(%s)\n' \
    "$REPO/cmake" "install(FILES CMakeLists.txt DESTINATION /etc/bad)" "$*" >bad/CMakeLists.txt
  rm -rf bad/build
  expect_exit 1 cmake -S bad -B bad/build
  grep -q "$pattern" "$T/stderr" || { cat "$T/stderr" >&2; fail "configure error does not say /$pattern/"; }
}
bad_cmake "wharf_package: PREFIX is missing" NAME bad VERSION 1 WHARF "$WHARF"
bad_cmake "PREFIX \"opt/bad\" is not an absolute folder" NAME bad VERSION 1 PREFIX opt/bad WHARF "$WHARF"
bad_cmake "STORE \"store\" is neither an absolute folder" NAME bad VERSION 1 PREFIX /opt/bad STORE store WHARF "$WHARF"
bad_cmake "WHARF=/nonexistent/wharf is not an existing file" NAME bad VERSION 1 PREFIX /opt/bad WHARF /nonexistent/wharf
if ! PATH=/usr/bin:/bin command -v wharf >/dev/null; then
  PATH=/usr/bin:/bin bad_cmake "no \`wharf\` program on the PATH" NAME bad VERSION 1 PREFIX /opt/bad
fi
pass "CMake: a missing NAME/VERSION/PREFIX, a relative PREFIX or STORE, no wharf binary: clear errors"

# A file installed outside the prefix would be missing from the package: wharf-pack refuses.
sed -i 's|^wharf_package(.*|wharf_package(NAME bad VERSION 1 PREFIX /opt/bad WHARF '"$WHARF"')|' bad/CMakeLists.txt
rm -rf bad/build
run bad-configure.log cmake -S bad -B bad/build -G Ninja
expect_exit 1 cmake --build bad/build --target wharf-pack
# (CMake wraps its messages: one line each)
grep -q "installed outside PREFIX /opt/bad, so not in the package:" "$T/stdout" \
  && grep -q "/etc/bad/CMakeLists.txt; make these install() DESTINATIONs relative" "$T/stdout" \
  || { cat "$T/stdout" "$T/stderr" >&2; fail "no error for a file outside the prefix"; }
[ ! -e bad/build/wharf-out/bad-1.tar.zst ] || fail "packed despite a file outside the prefix"
pass "CMake: a file installed outside PREFIX stops wharf-pack"

# The Makefile include: missing variables stop before anything is installed.
mk() { make -C make-src WHARF="$WHARF" WHARF_MK="$REPO/make/wharf.mk" "$@"; }
rm -rf make-src/wharf-stage
expect_exit 2 mk wharf-pack WHARF_NAME=
grep -q "WHARF_NAME is not set; wharf.mk needs WHARF_NAME, WHARF_VERSION and WHARF_PREFIX" "$T/stderr" \
  || { cat "$T/stderr" >&2; fail "make: no clear error for a missing WHARF_NAME"; }
expect_exit 2 mk wharf-publish WHARF_PREFIX=opt/counter
grep -q 'WHARF_PREFIX "opt/counter" is not an absolute folder' "$T/stderr" \
  || { cat "$T/stderr" >&2; fail "make: no clear error for a relative WHARF_PREFIX"; }
[ ! -e make-src/wharf-stage ] || fail "make installed something before failing"
expect_exit 0 mk all WHARF_NAME=
pass "make: a missing WHARF_NAME or a relative WHARF_PREFIX stops wharf-pack; other targets still work"

# An install rule that writes outside $(DESTDIR)$(PREFIX) is caught too.
mkdir stray && cat >stray/Makefile <<MAKE
WHARF_NAME = stray
WHARF_VERSION = 1
WHARF_PREFIX = /opt/stray
install:
	mkdir -p '\$(DESTDIR)\$(PREFIX)/bin' '\$(DESTDIR)/etc'
	touch '\$(DESTDIR)\$(PREFIX)/bin/tool' '\$(DESTDIR)/etc/stray.conf'
include $REPO/make/wharf.mk
MAKE
expect_exit 2 make -C stray wharf-pack WHARF="$WHARF"
grep -q "installed outside WHARF_PREFIX /opt/stray, so not in the package: /etc/stray.conf" "$T/stderr" \
  || { cat "$T/stderr" >&2; fail "make: no error for a file outside the prefix"; }
pass "make: a file installed outside WHARF_PREFIX stops wharf-pack"

echo "e2e make_install: all passed"
