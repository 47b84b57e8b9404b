#!/usr/bin/env bash
# Everything a FEC must refuse, each with one clear line, exit 1, the active generation
# untouched and nothing written outside the FEC's folders. Acceptance 3 of the foundation
# issue. Hostile archives and generations come from forge_tool.py, a publisher who holds
# the signing key and bypasses wharf's own tools.
source "$(dirname "$0")/lib.sh"
FORGE="python3 $E2E_DIR/forge_tool.py"

cd "$T"
make_tree src1 1
make_tree src2 2
"$WHARF" keygen --out release >/dev/null
"$WHARF" keygen --out stranger >/dev/null
"$WHARF" pack src1 --name demo --version 1 --prefix /opt/demo -o out >/dev/null
"$WHARF" pack src2 --name demo --version 2 --prefix /opt/demo -o out >/dev/null
"$WHARF" publish out/demo-1.tar.zst --store store >/dev/null
"$WHARF" assign fec01 demo@1 --store store --key release.key >/dev/null
"$WHARF" assign fec02 demo@1 --store store --key release.key >/dev/null
start_nginx "$T/store"
sync() { "$WHARF_AGENT" sync --root "$T/fec01" --store "$STORE_URL" --fec fec01 --trust release.pub; }
expect_exit 0 sync
GEN=$(agent_generation fec01)
EVIL=wharf-evil-$$
snapshot() { rm -rf "$T/fec01-generations.saved" && cp -a store/fecs/fec01 "$T/fec01-generations.saved"; }
restore() { rm -rf store/fecs/fec01 && cp -a "$T/fec01-generations.saved" store/fecs/fec01; }
snapshot

# untouched: the FEC still runs what it ran, every file right, nothing escaped.
untouched() {
  [ "$(agent_generation fec01)" = "$GEN" ] || fail "$1: the active generation changed"
  same_tree fec01/opt/demo src1
  for escaped in "$T/x" "$T/$EVIL" "$T/fec01/x" "/tmp/$EVIL" "/etc/$EVIL" "$T/outside/x"; do
    [ ! -e "$escaped" ] || fail "$1: something was written at $escaped"
  done
  restore
  pass "$1 -- $(grep -m1 "error:" "$T/stderr" | cut -c1-160)"
}

# 1. A flipped byte in an archive.
cp -a store "$T/store.clean"
"$WHARF" publish out/demo-2.tar.zst --store store >/dev/null
"$WHARF" assign fec01 demo@2 --store store --key release.key >/dev/null
python3 - store/software/demo/2/demo-2.tar.zst <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(300); b = f.read(1); f.seek(300); f.write(bytes([b[0] ^ 0x01]))
PY
expect_refused "sha256 or size differs|sha256 differs from package.json" sync
untouched "a flipped byte in an archive"

# 2. A generation signed by a key this FEC does not trust.
"$WHARF" assign fec01 demo@1 --store store --key stranger.key >/dev/null
expect_refused "not trusted" sync
untouched "a generation signed by an unknown key"

# 3. A generation for another FEC, signed and all.
"$WHARF" assign fec02 demo@1 --store store --key release.key >/dev/null
n=$(python3 -c 'import json; print(json.load(open("store/fecs/fec02/generation.json"))["number"])')
cp store/fecs/fec02/generation.json store/fecs/fec01/generation.json
mkdir -p store/fecs/fec01/generations
cp store/fecs/fec02/generations/$n.json.sig store/fecs/fec01/generations/$n.json.sig
expect_refused "is for FEC fec02, not fec01" sync
untouched "a generation for another FEC"
$FORGE sign store fec01 release.key demo@1 --fec-field fec02 --number 50
expect_refused "is for FEC fec02" sync
untouched "a forged generation naming another FEC"

# 4. An older generation replayed.
"$WHARF" assign fec01 demo@1 --store store --key release.key --expires-in 2d >/dev/null
expect_exit 0 sync
GEN=$(agent_generation fec01)
snapshot
cp store/fecs/fec01/generations/1.json store/fecs/fec01/generation.json
expect_refused "older than generation $GEN" sync
untouched "an older generation replayed"

# 5. Expired generations: a short-lived one that ran out, and a forged one born expired.
"$WHARF" assign fec01 demo@1 --store store --key release.key --expires-in 1s >/dev/null
sleep 2
expect_refused "expired at" sync
untouched "an expired generation"
$FORGE sign store fec01 release.key demo@1 --expires-in -3600
expect_refused "expired at" sync
untouched "a forged generation already expired"

# 6. A package.json that lies about a size: the archive's, then a file's.
$FORGE archive store/software/liar/1 liar 1 /opt/liar dir:opt/liar file:opt/liar/a:hello
python3 - store/software/liar/1/package.json <<'PY'
import json, sys
p = sys.argv[1]; j = json.load(open(p)); j["archive_size"] -= 10; j["frames"][0]["size"] -= 10
json.dump(j, open(p, "w"), indent=1)
PY
$FORGE sign store fec01 release.key demo@1 liar@1
expect_refused "larger than the [0-9]+ bytes declared" sync
untouched "a package.json that lies about the archive size"
rm -rf store/software/liar
$FORGE archive store/software/liar/1 liar 1 /opt/liar dir:opt/liar file:opt/liar/a:hello --size opt/liar/a=2
$FORGE sign store fec01 release.key demo@1 liar@1
expect_refused "holds 5 bytes, not the 2 declared" sync
untouched "a package.json that lies about a file size"
rm -rf store/software/liar

# 7. Hostile archives, signed with the trusted key. Each twice: listed honestly in
#    package.json (the index check refuses), and left out of it (the tar check refuses).
mkdir -p "$T/outside"
hostile() {  # NAME PATTERN SPEC...
  local name=$1 pattern=$2; shift 2
  local evil_path=${!#}; evil_path=${evil_path#*:}; evil_path=${evil_path%%:*}
  for variant in listed omitted; do
    local omit=()
    [ "$variant" = omitted ] && omit=(--omit "$evil_path")
    rm -rf store/software/evil
    $FORGE archive store/software/evil/1 evil 1 /opt/evil dir:opt/evil file:opt/evil/ok:fine "$@" "${omit[@]}"
    $FORGE sign store fec01 release.key demo@1 evil@1
    expect_refused "$pattern" sync
    [ ! -e fec01/opt/evil ] || fail "$name: the hostile package was linked"
    untouched "$name ($variant in package.json)"
  done
}
hostile "an entry ../x" "not a normalised|not in package.json|not the next entry" "file:../$EVIL:boo"
hostile "an entry opt/evil/../../x" "not a normalised|not in package.json|not the next entry" "file:opt/evil/../../$EVIL:boo"
hostile "an absolute entry /etc/x" "not a normalised|not in package.json|not the next entry" "file:/etc/$EVIL:boo"
hostile "a symlink leaving the prefix" "outside the prefix|not in package.json" "symlink:opt/evil/l:$T/outside"
hostile "a file written through a symlink that leaves" "outside the prefix|not in package.json|not the next" \
  "symlink:opt/evil/l:$T/outside" "file:opt/evil/l/x:boo"
hostile "a device node" "device|not in package.json" "chardev:opt/evil/dev"
hostile "a hard link to a file outside the prefix" "hard link|not in package.json" "hardlink:opt/evil/h:etc/passwd"
rm -rf store/software/evil
$FORGE archive store/software/evil/1 evil 1 /opt/evil dir:opt/evil file:opt/evil/big:0123456789 --size opt/evil/big=1
$FORGE sign store fec01 release.key demo@1 evil@1
expect_refused "holds 10 bytes, not the 1 declared" sync
untouched "a file larger than declared"

# wharf's own tools refuse such packages before any FEC sees them.
rm -rf store/software/evil
$FORGE archive "$T/evil-out" evil 1 /opt/evil dir:opt/evil "file:../$EVIL:boo"
mv "$T/evil-out/package.json" "$T/evil-out/evil-1.package.json"
expect_refused "not a normalised|outside the prefix" "$WHARF" publish "$T/evil-out/evil-1.tar.zst" --store store
[ ! -e store/software/evil ] || fail "a hostile archive was published"
pass "wharf publish refuses a hostile archive"

echo "e2e hostile: all passed"
