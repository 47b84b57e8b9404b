#!/usr/bin/env bash
# The whole path against real nginx: pack, publish, assign, sync v1, v2, rollback, no-op
# sync, offline. Acceptance 2 of the foundation issue.
source "$(dirname "$0")/lib.sh"

cd "$T"
make_tree "$T/src1" 1
make_tree "$T/src2" 2
"$WHARF" keygen --out release >/dev/null
"$WHARF" pack "${SMALL_FRAMES[@]}" src1 --name demo-ioc --version 1.0 --prefix /opt/epics/demo-ioc -o out >/dev/null
"$WHARF" pack "${SMALL_FRAMES[@]}" src2 --name demo-ioc --version 2.0 --prefix /opt/epics/demo-ioc -o out >/dev/null
"$WHARF" publish out/demo-ioc-1.0.tar.zst out/demo-ioc-2.0.tar.zst --store store >/dev/null
pass "pack and publish"

# GNU tar reads the archive as it is.
mkdir gnutar && tar --zstd -xf store/software/demo-ioc/1.0/demo-ioc-1.0.tar.zst -C gnutar
same_tree gnutar/opt/epics/demo-ioc src1
pass "GNU tar extracts the archive"

# Publishing is idempotent for the same bytes and refuses other bytes.
expect_exit 0 "$WHARF" publish out/demo-ioc-1.0.tar.zst --store store
grep -q "already published" "$T/stdout" || fail "same bytes again should be a no-op"
echo changed >>src1/db/demo.db
"$WHARF" pack "${SMALL_FRAMES[@]}" src1 --name demo-ioc --version 1.0 --prefix /opt/epics/demo-ioc -o other >/dev/null
expect_refused "already published with other content" "$WHARF" publish other/demo-ioc-1.0.tar.zst --store store
make_tree "$T/src1" 1  # back to the published content
pass "a published version is immutable"

start_nginx "$T/store"
agent() { "$WHARF_AGENT" sync --root "$T/$1" --store "$STORE_URL" --fec "$1" --trust release.pub "${@:2}"; }

"$WHARF" assign fec01 demo-ioc@1.0 --store store --key release.key >/dev/null
"$WHARF" assign fec02 demo-ioc@1.0 --store store --key release.key >/dev/null
expect_exit 0 agent fec01
[ "$(agent_generation fec01)" = 1 ] || fail "fec01 should run generation 1"
same_tree fec01/opt/epics/demo-ioc src1
[ "$(readlink fec01/opt/epics/demo-ioc)" = ../../var/lib/wharf/current/demo-ioc ] || fail "prefix link not relative"
pass "v1 installed with the right content and modes"

# package.json travels compressed (package.json.zst, a fifth of it); a store without it, or
# with one that does not decode to the signed package.json, still serves the plain one.
grep -q 'GET /software/demo-ioc/1.0/package.json.zst HTTP/1.1" 200' "$NGINX_LOG" || fail "package.json.zst not fetched"
! grep -q 'GET /software/demo-ioc/1.0/package.json HTTP' "$NGINX_LOG" || fail "package.json fetched as well"
zst=store/software/demo-ioc/1.0/package.json.zst
cp "$zst" "$T/index.zst"
"$WHARF" assign fec05 demo-ioc@1.0 --store store --key release.key >/dev/null
printf 'not zstd' >"$zst"
expect_exit 0 agent fec05
same_tree fec05/opt/epics/demo-ioc src1
grep -q 'GET /software/demo-ioc/1.0/package.json HTTP/1.1" 200' "$NGINX_LOG" || fail "no fallback to package.json"
remove_tree fec05
rm "$zst"
expect_exit 0 agent fec05
same_tree fec05/opt/epics/demo-ioc src1
remove_tree fec05
cp "$T/index.zst" "$zst"
pass "package.json comes compressed, and whole where the .zst is missing or wrong"

# Package folders are read-only: no write bit anywhere under packages/.
writable=$(find fec01/var/lib/wharf/packages -mindepth 2 ! -type l -perm /0222 | head -3)
[ -z "$writable" ] || fail "writable entries in a package folder: $writable"
pass "package folders are read-only"

# A second sync with nothing new downloads nothing but the generation file.
before=$(wc -l <"$NGINX_LOG")
expect_exit 0 agent fec01 --json
grep -q '"outcome": "up-to-date"' "$T/stdout" || fail "second sync should be up to date"
new_requests=$(tail -n +$((before + 1)) "$NGINX_LOG")
echo "$new_requests" | grep -qE 'tar\.zst|package\.json' && fail "no-op sync fetched a package: $new_requests"
[ "$(echo "$new_requests" | wc -l)" -eq 1 ] || fail "no-op sync made more than one request: $new_requests"
pass "no-op sync makes one small request"

"$WHARF" assign fec01 demo-ioc@2.0 --store store --key release.key >/dev/null
expect_exit 0 agent fec01
[ "$(agent_generation fec01)" = 2 ] || fail "fec01 should run generation 2"
same_tree fec01/opt/epics/demo-ioc src2
pass "v2 switches"

"$WHARF" rollback fec01 --store store --key release.key >/dev/null
before=$(wc -l <"$NGINX_LOG")
expect_exit 0 agent fec01
[ "$(agent_generation fec01)" = 3 ] || fail "rollback should be generation 3"
same_tree fec01/opt/epics/demo-ioc src1
pass "rollback goes back (as generation 3)"

# The rollback reused the kept v1 package: the log shows no second fetch of its archive.
! tail -n +$((before + 1)) "$NGINX_LOG" | grep -q 'demo-ioc-1.0.tar.zst' || fail "rollback fetched v1 again"
pass "rollback reuses the kept package"

# The other FEC is untouched by fec01's changes and installs on its own.
expect_exit 0 agent fec02
same_tree fec02/opt/epics/demo-ioc src1
pass "fec02 syncs its own generation"

# The store's human view links each FEC's packages.
[ "$(readlink store/fecs/fec01/software/demo-ioc.tar.zst)" = ../../../software/demo-ioc/1.0/demo-ioc-1.0.tar.zst ] \
  || fail "human view link wrong: $(readlink store/fecs/fec01/software/demo-ioc.tar.zst)"
pass "human view derived"

# A small release on top of v2: only the frames of the changed file come over the wire,
# as Range requests; every other file is taken from the packages the FEC holds.
cp -a src2 src3
echo 'record(ao, "DEMO:NEW") {}' >>src3/db/demo.db
"$WHARF" pack "${SMALL_FRAMES[@]}" src3 --name demo-ioc --version 3.0 --prefix /opt/epics/demo-ioc -o out >/dev/null
"$WHARF" publish out/demo-ioc-3.0.tar.zst --store store --deltas 0 >/dev/null  # no patches: frames
"$WHARF" assign fec01 demo-ioc@3.0 --store store --key release.key >/dev/null
expect_exit 0 agent fec01 --json
same_tree fec01/opt/epics/demo-ioc src3
reused=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files_reused"])' "$T/stdout")
[ "$reused" -ge 5 ] || fail "the update reused $reused files"
grep -q 'GET /software/demo-ioc/3.0/demo-ioc-3.0.tar.zst HTTP/1.1" 206' "$NGINX_LOG" || fail "no Range request"
fetched=$(awk '/demo-ioc-3.0.tar.zst/ {n += $10} END {print n}' "$NGINX_LOG")
size=$(stat -c %s store/software/demo-ioc/3.0/demo-ioc-3.0.tar.zst)
[ "$fetched" -lt $((size / 2)) ] || fail "fetched $fetched of $size bytes for a one-line change"
pass "an update fetches only the changed frames ($fetched of $size bytes) and reuses $reused files"

# With patches (the default): the edited file and package.json itself come as patches
# against what the FEC holds, inline in deltas.json; neither the archive nor package.json
# is fetched.
cp -a src3 src4
echo 'record(ao, "DEMO:NEWER") {}' >>src4/db/demo.db
"$WHARF" pack "${SMALL_FRAMES[@]}" src4 --name demo-ioc --version 4.0 --prefix /opt/epics/demo-ioc -o out >/dev/null
"$WHARF" publish out/demo-ioc-4.0.tar.zst --store store >/dev/null
"$WHARF" assign fec01 demo-ioc@4.0 --store store --key release.key >/dev/null
expect_exit 0 agent fec01 --json
same_tree fec01/opt/epics/demo-ioc src4
patched=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files_patched"])' "$T/stdout")
[ "$patched" -ge 1 ] || fail "the update patched $patched files"
! grep -q 'GET /software/demo-ioc/4.0/demo-ioc-4.0.tar.zst' "$NGINX_LOG" || fail "the archive was fetched"
! grep -q 'GET /software/demo-ioc/4.0/package.json' "$NGINX_LOG" || fail "package.json was fetched whole"
fetched=$(awk '/demo-ioc\/4.0\// {n += $10} END {print n}' "$NGINX_LOG")
index_size=$(stat -c %s store/software/demo-ioc/4.0/package.json)
pass "with patches: $fetched bytes in all for a one-line change (package.json alone is $index_size)"

# Changes print what they would do with --dry-run and write nothing.
before=$(ls store/fecs/fec02/generations | wc -l)
expect_exit 0 "$WHARF" assign fec02 demo-ioc@2.0 --store store --key release.key --dry-run --json
grep -q '"dry_run": true' "$T/stdout" || fail "dry run not reported"
[ "$(ls store/fecs/fec02/generations | wc -l)" = "$before" ] || fail "a dry run wrote a generation"
pass "assign --dry-run writes nothing"

# A folder already at a prefix is never replaced: refused before anything switches.
mkdir -p fec05/opt/epics/demo-ioc && echo "hand-made" >fec05/opt/epics/demo-ioc/README
"$WHARF" assign fec05 demo-ioc@1.0 --store store --key release.key >/dev/null
expect_refused "exists and is not wharf's link; move it away" agent fec05
[ "$(agent_generation fec05)" = None ] || fail "fec05 switched despite the conflict"
[ "$(cat fec05/opt/epics/demo-ioc/README)" = hand-made ] || fail "the existing folder was touched"
pass "an existing folder at the prefix is left alone and named"

# Unassigning a package removes its prefix link; refresh re-signs with a later expiry.
"$WHARF" unassign fec02 demo-ioc --store store --key release.key >/dev/null
expect_exit 0 agent fec02
[ ! -e fec02/opt/epics/demo-ioc ] && [ ! -L fec02/opt/epics/demo-ioc ] || fail "prefix link left behind"
old_expiry=$("$WHARF" show fec02 --store store --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["expires"])')
sleep 1
"$WHARF" refresh --store store --key release.key >/dev/null
new_expiry=$("$WHARF" show fec02 --store store --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["expires"])')
[[ "$new_expiry" > "$old_expiry" ]] || fail "refresh did not extend the expiry ($old_expiry -> $new_expiry)"
expect_exit 0 agent fec02
pass "unassign removes the prefix link; refresh extends the expiry"

# A package whose prefix lies inside the prefix of one it replaces (/opt/epics/demo-ioc
# then /opt/epics/demo-ioc/inner): the old link goes after the switch, then the new one
# is made in a real folder; nothing is written into the old package.
"$WHARF" assign fec06 demo-ioc@1.0 --store store --key release.key >/dev/null
expect_exit 0 agent fec06
mkdir -p inner && echo inner >inner/file
"$WHARF" pack inner --name inner --version 1 --prefix /opt/epics/demo-ioc/inner -o out >/dev/null
"$WHARF" publish out/inner-1.tar.zst --store store >/dev/null
"$WHARF" unassign fec06 demo-ioc --store store --key release.key >/dev/null
"$WHARF" assign fec06 inner@1 --store store --key release.key >/dev/null
expect_exit 0 agent fec06
[ -d fec06/opt/epics/demo-ioc ] && [ ! -L fec06/opt/epics/demo-ioc ] || fail "the old prefix link is still there"
same_tree fec06/opt/epics/demo-ioc/inner inner
[ -z "$(find fec06/var/lib/wharf/packages -name inner -path '*demo-ioc*')" ] || fail "a link was written into a package"
pass "a package inside the prefix of the one it replaces"

# Offline: the active generation stays, with its own exit code.
stop_nginx
expect_exit 3 agent fec01
grep -q "no store answered" "$T/stdout" || fail "offline sync should say so"
[ "$(agent_generation fec01)" = 5 ] || fail "offline sync changed the generation"
same_tree fec01/opt/epics/demo-ioc src4
pass "offline keeps the active generation (exit 3)"

# Settings from agent.toml instead of flags; a file:// store (a DVD or NFS copy).
mkdir -p fec03/etc/wharf/keys && cp release.pub fec03/etc/wharf/keys/
cat >fec03/etc/wharf/agent.toml <<TOML
fec = "fec03"
store = ["http://127.0.0.1:9", "file://$T/store"]
trust = ["/etc/wharf/keys/release.pub"]
TOML
"$WHARF" assign fec03 demo-ioc@2.0 --store store --key release.key >/dev/null
expect_exit 0 "$WHARF_AGENT" sync --root fec03
same_tree fec03/opt/epics/demo-ioc src2
pass "agent.toml settings and a file:// mirror after a dead one"

echo "e2e sync: all passed"
