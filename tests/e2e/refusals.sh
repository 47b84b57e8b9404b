#!/usr/bin/env bash
# Everything a FEC must refuse (DESIGN, "Guarantees" 1 and 4): a generation that is not
# signed by a trusted key, not for this FEC, older than one it has seen or expired; a
# package.json that lies; hostile archives. Each is refused by `wharf-agent sync` with exit 1
# and one clear error line, after which the FEC runs the generation it ran, its files are
# untouched and nothing was written outside its root. Hostile inputs come from forge.py, a
# publisher who holds the signing key and bypasses wharf's own tools.
source "$(dirname "$0")/lib.sh"
FORGE=(python3 "$E2E_DIR/forge.py")
EVIL=wharf-evil-$$
# Should a case fail, leave nothing behind outside $T either.
trap 'rm -rf "/etc/$EVIL" "/tmp/$EVIL"; cleanup' EXIT

cd "$T"
make_tree src1 1
make_tree src2 2
# 16 KiB of new bytes near the start of v2's library: every frame of it shifts, so a patch
# from v1 is far smaller than its frames, and larger than deltas.json carries inline, so
# `wharf publish` writes it as a file beside the archive (the deltas the cases below attack).
head -c 16384 /dev/urandom >"$T/insert"
python3 - src2/lib/libdemo.so "$T/insert" <<'PY'
import sys
path, insert = sys.argv[1:]
data = open(path, "rb").read()
open(path, "wb").write(data[:4096] + open(insert, "rb").read() + data[4096:])
PY
"$WHARF" keygen --out release >/dev/null
"$WHARF" pack "${SMALL_FRAMES[@]}" src1 --name demo --version 1.0 --prefix /opt/demo -o out >/dev/null
"$WHARF" pack "${SMALL_FRAMES[@]}" src2 --name demo --version 2.0 --prefix /opt/demo -o out >/dev/null
"$WHARF" publish out/demo-1.0.tar.zst --store store >/dev/null
"$WHARF" assign fec01 demo@1.0 --store store --key release.key >/dev/null
start_nginx "$T/store"

sync() { "$WHARF_AGENT" sync --root "$T/fec01" --store "$STORE_URL" --fec fec01 --trust "$T/release.pub"; }
# agent_state: "<active generation> <highest generation applied>" of fec01.
agent_state() {
  "$WHARF_AGENT" status --root "$T/fec01" --json |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["generation"], j["floor"]["number"])'
}

expect_exit 0 sync
[ "$(agent_generation fec01)" = 1 ] || fail "the first sync did not apply generation 1"
same_tree fec01/opt/demo src1
MANIFEST=$(manifest src1)
pass "setup: fec01 runs generation 1 (demo@1.0)"

# The FEC's state a refusal must leave as it is; the store's generation files to put back.
remember() {
  STATE=$(agent_state)
  rm -rf "$T/saved-fec01" && cp -a store/fecs/fec01 "$T/saved-fec01"
}
restore_store() { rm -rf store/fecs/fec01 && cp -a "$T/saved-fec01" store/fecs/fec01; }
remember

mkdir -p "$T/outside"
PASSWD_LINKS=$(stat -c %h /etc/passwd)
# Where a hostile archive would land if anything followed it.
ESCAPES=("$T/x" "$T/$EVIL" "$T/fec01/../$EVIL" "/tmp/$EVIL" "/etc/$EVIL" "$T/outside/$EVIL"
         "$T/fec01/$EVIL" "$T/fec01/etc/$EVIL" "$T/fec01/tmp/$EVIL" "$T/fec01/opt/$EVIL")

# untouched CASE: the FEC runs what it ran with every file right, and nothing escaped.
untouched() {
  local case=$1 found
  [ "$(agent_state)" = "$STATE" ] ||
    fail "$case: the active or highest generation changed ($STATE -> $(agent_state))"
  diff <(echo "$MANIFEST") <(manifest fec01/opt/demo) >"$T/tree.diff" ||
    { cat "$T/tree.diff" >&2; fail "$case: the files of /opt/demo changed"; }
  [ "$(ls -A fec01/opt)" = demo ] || fail "$case: fec01/opt holds $(ls -A fec01/opt | tr '\n' ' ')"
  for path in "${ESCAPES[@]}"; do
    [ ! -e "$path" ] && [ ! -L "$path" ] || fail "$case: something was written at $path"
  done
  [ -z "$(ls -A "$T/outside")" ] || fail "$case: something was written in $T/outside"
  found=$(find "$T" -name "*$EVIL*" ! -path "$T/fec01/var/lib/wharf/*" | head -5)
  [ -z "$found" ] || fail "$case: written outside the FEC's own folders: $found"
  found=$(find "$T/fec01" \( -type b -o -type c -o -type p \) | head -5)
  [ -z "$found" ] || fail "$case: a device node or fifo was made: $found"
  found=$(find "$T/fec01" -samefile /etc/passwd | head -5)
  [ -z "$found" ] && [ "$(stat -c %h /etc/passwd)" = "$PASSWD_LINKS" ] ||
    fail "$case: /etc/passwd got a hard link: $found"
  [ "$(du -sk --apparent-size "$T/fec01" | cut -f1)" -lt 65536 ] || fail "$case: fec01 grew past 64 MiB"
  # Only what a generation named is installed (half-done hidden folders go at the next sync).
  found=$(find fec01/var/lib/wharf/packages -mindepth 2 -maxdepth 2 ! -name '.*' ! -path '*/demo/*')
  [ -z "$found" ] || fail "$case: a refused package was installed: $found"
  restore_store
  pass "$case"
  echo "#   $(grep -m1 'error:' "$T/stderr" | cut -c1-200)"
}

# refused CASE PATTERN: the sync is refused for the reason PATTERN names, and nothing changed.
refused() {
  expect_refused "$2" sync
  untouched "$1"
}

# 1. A flipped byte in an archive: the archive the signed generation pins is not what is
#    served. The byte is flipped in the frame of db/new.db, a file only demo@2.0 has, so
#    that every way of installing it (whole archive, frames, deltas) must read that frame.
#    Then the deltas `wharf publish` wrote beside it (unsigned, checked by what they make).
"$WHARF" publish out/demo-2.0.tar.zst --store store >/dev/null
V2=store/software/demo/2.0
cp -a "$V2" "$T/demo-2.0.pristine"
v2() {  # demo@2.0 as published, assigned to fec01
  rm -rf "$V2" && cp -a "$T/demo-2.0.pristine" "$V2"
  "$WHARF" assign fec01 demo@2.0 --store store --key release.key >/dev/null
}
# tamper HOW: flip (one byte of the frame of db/new.db), delta-flip (one byte of a delta),
# delta-rewrite (the same, and deltas.json says so), delta-bomb (a delta that inflates to
# 32 MiB, and deltas.json says so).
tamper() {
  python3 - "$V2" "$1" <<'PY'
import hashlib, json, os, subprocess, sys
folder, how = sys.argv[1:]
def flip(path, where):
    with open(path, "r+b") as f:
        f.seek(where); b = f.read(1); f.seek(where); f.write(bytes([b[0] ^ 0x10]))
if how == "flip":
    index = json.load(open(os.path.join(folder, "package.json")))
    entry = next(e for e in index["files"] if e["path"] == "opt/demo/db/new.db")
    frame = index["frames"][entry["frame"]]
    flip(os.path.join(folder, index["archive"]), frame["offset"] + frame["size"] // 2)
    sys.exit(0)
deltas_path = os.path.join(folder, "deltas.json")
deltas = json.load(open(deltas_path))
d = next(d for d in deltas["deltas"] if d.get("file"))
patch = os.path.join(folder, d["file"])
if how in ("delta-flip", "delta-rewrite"):
    flip(patch, os.path.getsize(patch) // 2)
else:
    bomb = subprocess.run(["zstd", "-q", "-3", "-c", f"--stream-size={32 << 20}"],
                          input=bytes(32 << 20), stdout=subprocess.PIPE, check=True).stdout
    open(patch, "wb").write(bomb)
if how != "delta-flip":
    data = open(patch, "rb").read()
    d["size"], d["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    open(deltas_path, "w").write(json.dumps(deltas, indent=1) + "\n")
PY
}
v2 && tamper flip
refused "a flipped byte in an archive" "sha256 (or size )?differs"
[ -f "$V2/deltas.json" ] && grep -q '"file"' "$V2/deltas.json" ||
  fail "setup: publish wrote no delta file for demo@2.0 (its library moved 16 KiB of code)"
v2 && tamper delta-flip
refused "a flipped byte in a delta" "sha256 differs from deltas.json"
v2 && tamper delta-rewrite
refused "a flipped byte in a delta that deltas.json vouches for" \
  "delta does not apply|delta is truncated|does not match its sha256"
v2 && tamper delta-bomb
refused "a delta that inflates past the file's size" \
  "delta produces more than the file's declared size|delta does not apply"
rm -rf "$V2" && cp -a "$T/demo-2.0.pristine" "$V2"

# 2. Signatures: a key this FEC does not trust; a trusted signature over other bytes.
"$WHARF" keygen --out other >/dev/null
"$WHARF" assign fec01 demo@1.0 --store store --key other.key >/dev/null
refused "a generation signed by an unknown key" "signed by key [0-9a-f]{16}, which is not trusted"
"${FORGE[@]}" sign-generation --store store --fec fec01 --key release.key --package demo@1.0 >/dev/null
sed -i 's#"prefix": "/opt/demo"#"prefix": "/opt/demx"#' store/fecs/fec01/generation.json
refused "a trusted signature over tampered bytes" "does not match the content"

# 3. A generation for another FEC, signed and all: fec02's own, and one forged to name fec02.
"$WHARF" assign fec02 demo@1.0 --store store --key release.key >/dev/null
"$WHARF" assign fec02 demo@1.0 --store store --key release.key >/dev/null
cp store/fecs/fec02/generation.json store/fecs/fec01/generation.json
cp store/fecs/fec02/generations/2.json.sig store/fecs/fec01/generations/2.json.sig
refused "fec02's generation served to fec01" "generation 2 is for FEC fec02, not fec01"
"${FORGE[@]}" sign-generation --store store --fec fec01 --key release.key --package demo@1.0 \
  --fec-field fec02 >/dev/null
refused "a generation forged for another FEC" "is for FEC fec02, not fec01"

# 4. Replays. The FEC moves to generation 2, then the store offers generation 1 again, and
#    then another generation numbered 2.
"$WHARF" assign fec01 demo@1.0 --store store --key release.key >/dev/null
expect_exit 0 sync
[ "$(agent_generation fec01)" = 2 ] || fail "generation 2 was not applied"
remember
cp store/fecs/fec01/generations/1.json store/fecs/fec01/generation.json
cp store/fecs/fec01/generations/1.json.sig store/fecs/fec01/generation.json.sig
refused "an older generation replayed" "generation 1 is older than generation 2 already applied"
"${FORGE[@]}" sign-generation --store store --fec fec01 --key release.key --package demo@1.0 \
  --number 2 >/dev/null
refused "another generation with the number already applied" "different generation numbered 2"

# 5. Expired: a short-lived one that ran out, and a forged one born expired.
"$WHARF" assign fec01 demo@1.0 --store store --key release.key --expires-in 1s >/dev/null
sleep 2
refused "an expired generation" "generation 3 expired at"
"${FORGE[@]}" sign-generation --store store --fec fec01 --key release.key --package demo@1.0 \
  --expires-in -60 >/dev/null
refused "a forged generation already expired" "generation 3 expired at"

# 6. A package.json that lies about a size. liar@1 is forged into the store, then a generation
#    naming it is signed.
liar() {  # ARCHIVE-OPTIONS... -- SIGN-OPTIONS...
  local archive=() sign=()
  while [ "$1" != -- ]; do archive+=("$1"); shift; done
  shift
  sign=("$@")
  rm -rf store/software/liar
  "${FORGE[@]}" archive --store store --name liar --version 1 --prefix /opt/liar \
    --entry dir:opt/liar file:opt/liar/a:hello "${archive[@]}"
  "${FORGE[@]}" sign-generation --store store --fec fec01 --key release.key \
    --package demo@1.0 liar@1 "${sign[@]}" >/dev/null
}
# The archive's size: the generation pins the real archive, package.json claims less...
liar --index-archive-size -10 --
refused "package.json claims a smaller archive than the signed one" \
  "liar/1/package.json: does not describe the archive the generation names"
# ...or the generation pins what package.json claims, as `wharf assign` would.
liar --index-archive-size -10 -- --refs-from-index
refused "package.json and the generation claim a smaller archive" "larger than the [0-9]+ bytes declared"
liar --index-archive-size +10 -- --refs-from-index
refused "package.json and the generation claim a larger archive" "(sha256|size) (or size )?differs"
# A file's size, smaller and larger than the file the archive holds.
liar --index-size opt/liar/a=2 --
refused "package.json claims a file smaller than it is" "\"opt/liar/a\" holds 5 bytes, not the 2 declared"
liar --index-size opt/liar/a=50 --
refused "package.json claims a file larger than it is" "\"opt/liar/a\" holds 5 bytes, not the 50 declared"
rm -rf store/software/liar

# 7. Hostile archives, signed with the trusted key: each listed honestly in package.json
#    (the index checks refuse), and left out of it (the tar checks refuse); links and
#    devices also disguised in package.json as empty files.
hostile() {  # CASE PATTERN FORGE-ARCHIVE-OPTIONS...
  local case=$1 pattern=$2; shift 2
  rm -rf store/software/evil
  "${FORGE[@]}" archive --store store --name evil --version 1 --prefix /opt/evil "$@"
  "${FORGE[@]}" sign-generation --store store --fec fec01 --key release.key \
    --package demo@1.0 evil@1 >/dev/null
  refused "$case" "$pattern"
}
OK=(dir:opt/evil file:opt/evil/ok:fine)

# First a control: what forge.py writes is what wharf reads. A benign forged package (a
# folder, files, a link inside, two frames), signed for another FEC, installs there.
"${FORGE[@]}" archive --store store --name good --version 1 --prefix /opt/good \
  --entry dir:opt/good file:opt/good/a:hello dir:opt/good/d symlink:opt/good/l:d/b \
  file:opt/good/d/b:world cut "copy:opt/good/libdemo.so:src1/lib/libdemo.so"
"${FORGE[@]}" sign-generation --store store --fec fec03 --key release.key \
  --package good@1 demo@1.0 >/dev/null
expect_exit 0 "$WHARF_AGENT" sync --root "$T/fec03" --store "$STORE_URL" --fec fec03 --trust release.pub
[ "$(cat fec03/opt/good/a)$(cat fec03/opt/good/l)" = helloworld ] &&
  cmp -s fec03/opt/good/libdemo.so src1/lib/libdemo.so || fail "the forged package installed wrong"
same_tree fec03/opt/demo src1
remove_tree fec03
pass "control: a benign forged package and generation are accepted"
NOT_LISTED="is not in package.json"

# 7a. ../x
hostile "../x, listed" "\"../$EVIL\" is not a normalised relative path" \
  --entry "${OK[@]}" "file:../$EVIL:boo"
hostile "../x, not listed" "\"../$EVIL\" $NOT_LISTED" \
  --entry "${OK[@]}" "file:../$EVIL:boo" --index-omit "../$EVIL"
hostile "opt/evil/../../../x, listed" "is not a normalised relative path" \
  --entry "${OK[@]}" "file:opt/evil/../../../$EVIL:boo"
hostile "opt/evil/../../../x, not listed" "$NOT_LISTED" \
  --entry "${OK[@]}" "file:opt/evil/../../../$EVIL:boo" --index-omit "opt/evil/../../../$EVIL"

# 7b. Absolute paths: /etc/wharf-evil-PID/x and /tmp/wharf-evil-PID.
hostile "/etc/x/y, listed" "\"/etc/$EVIL\" is not a normalised relative path" \
  --entry "${OK[@]}" "dir:/etc/$EVIL" "file:/etc/$EVIL/x:boo"
hostile "/etc/x/y, not listed" "\"/etc/$EVIL/?\" $NOT_LISTED" \
  --entry "${OK[@]}" "dir:/etc/$EVIL" "file:/etc/$EVIL/x:boo" --index-omit "/etc/$EVIL" "/etc/$EVIL/x"
hostile "/tmp/x, listed" "is not a normalised relative path" --entry "${OK[@]}" "file:/tmp/$EVIL:boo"
hostile "/tmp/x, not listed" "$NOT_LISTED" \
  --entry "${OK[@]}" "file:/tmp/$EVIL:boo" --index-omit "/tmp/$EVIL"

# 7c. A symlink leaving the prefix (absolute and relative), alone and then written through.
hostile "a symlink to an absolute path outside, listed" "outside the prefix /opt/evil" \
  --entry "${OK[@]}" "symlink:opt/evil/l:$T/outside"
hostile "a symlink to an absolute path outside, not listed" "$NOT_LISTED" \
  --entry "${OK[@]}" "symlink:opt/evil/l:$T/outside" --index-omit opt/evil/l
hostile "a symlink up and out, then a file through it, listed" "outside the prefix /opt/evil" \
  --entry "${OK[@]}" "symlink:opt/evil/l:../../../outside" "file:opt/evil/l/$EVIL:boo"
hostile "a symlink up and out, then a file through it, link not listed" \
  "\"opt/evil/l\" is not the next entry of package.json" \
  --entry "${OK[@]}" "symlink:opt/evil/l:../../../outside" "file:opt/evil/l/$EVIL:boo" \
  --index-omit opt/evil/l
hostile "a symlink up and out, then a file through it, neither listed" "$NOT_LISTED" \
  --entry "${OK[@]}" "symlink:opt/evil/l:$T/outside" "file:opt/evil/l/$EVIL:boo" \
  --index-omit opt/evil/l "opt/evil/l/$EVIL"
# A link that stays inside passes every index check; the file behind it must still not be
# written through it (whole download, then with the rest of the package held locally so
# that the agent assembles it from frames: the other install path).
hostile "a file through a symlink inside the prefix" "refusing to write through it" \
  --entry "${OK[@]}" dir:opt/evil/d symlink:opt/evil/l:d "file:opt/evil/l/$EVIL:boo"
: >"$NGINX_LOG"
hostile "a file through a symlink inside the prefix, assembled from frames" \
  "refusing to write through it" \
  --entry "${OK[@]}" dir:opt/evil/d symlink:opt/evil/l:d "file:opt/evil/l/$EVIL:boo" \
  cut "copy:opt/evil/libdemo.so:src1/lib/libdemo.so"
grep -q '"GET /software/evil/1/evil-1.tar.zst HTTP/1.1" 206 ' "$NGINX_LOG" ||
  fail "the agent downloaded the whole archive: the frame path this case attacks was not taken"

# 7d. Device nodes and a fifo.
hostile "a character device, listed" "entry type \"chardev\" is not allowed" \
  --entry "${OK[@]}" "chardev:opt/evil/$EVIL"
hostile "a character device, disguised as a file" "\"opt/evil/$EVIL\" is a device, fifo or socket" \
  --entry "${OK[@]}" "chardev:opt/evil/$EVIL" --index-type "opt/evil/$EVIL=file"
hostile "a character device, not listed" "\"opt/evil/$EVIL\" $NOT_LISTED" \
  --entry "${OK[@]}" "chardev:opt/evil/$EVIL" --index-omit "opt/evil/$EVIL"
hostile "a block device, disguised as a file" "is a device, fifo or socket" \
  --entry "${OK[@]}" "blockdev:opt/evil/$EVIL" --index-type "opt/evil/$EVIL=file"
hostile "a fifo, disguised as a file" "is a device, fifo or socket" \
  --entry "${OK[@]}" "fifo:opt/evil/$EVIL" --index-type "opt/evil/$EVIL=file"

# 7e. A hard link to a file outside the prefix.
hostile "a hard link to /etc/passwd, listed" "entry type \"hardlink\" is not allowed" \
  --entry "${OK[@]}" "hardlink:opt/evil/$EVIL:etc/passwd"
hostile "a hard link to /etc/passwd, disguised as a file" "\"opt/evil/$EVIL\" is a hard link" \
  --entry "${OK[@]}" "hardlink:opt/evil/$EVIL:etc/passwd" --index-type "opt/evil/$EVIL=file"
hostile "a hard link to /etc/passwd (absolute), disguised as a file" "is a hard link" \
  --entry "${OK[@]}" "hardlink:opt/evil/$EVIL:/etc/passwd" --index-type "opt/evil/$EVIL=file"
hostile "a hard link to /etc/passwd, not listed" "$NOT_LISTED" \
  --entry "${OK[@]}" "hardlink:opt/evil/$EVIL:etc/passwd" --index-omit "opt/evil/$EVIL"

# 7f. Files larger than declared: 1 MB declared as 10 bytes, and a header claiming 1 TiB in
#     a stream that ends after 4 KiB.
hostile "a file larger than declared" "\"opt/evil/$EVIL\" holds 1000000 bytes, not the 10 declared" \
  --entry "${OK[@]}" "bigfile:opt/evil/$EVIL:1000000" --index-size "opt/evil/$EVIL=10"
hostile "a file larger than declared, not listed" "$NOT_LISTED" \
  --entry "${OK[@]}" "bigfile:opt/evil/$EVIL:1000000" --index-omit "opt/evil/$EVIL"
hostile "a 1 TiB file header, listed" "\"opt/evil/$EVIL\" has its data outside the tar stream" \
  --entry "${OK[@]}" "hugefile:opt/evil/$EVIL:1099511627776"
hostile "a 1 TiB file header, declared as 4 KiB" "holds 1099511627776 bytes, not the 4096 declared" \
  --entry "${OK[@]}" "hugefile:opt/evil/$EVIL:1099511627776" --index-size "opt/evil/$EVIL=4096"
hostile "a 1 TiB file header, not listed" "$NOT_LISTED" \
  --entry "${OK[@]}" "hugefile:opt/evil/$EVIL:1099511627776" --index-omit "opt/evil/$EVIL"
rm -rf store/software/evil

# wharf's own tools refuse such packages before any FEC sees them.
before=$(sha256sum store/fecs/fec01/generation.json)
"${FORGE[@]}" archive --store store --name unsafe --version 1 --prefix /opt/unsafe \
  --entry dir:opt/unsafe "file:../$EVIL:boo"
expect_refused "\"../$EVIL\" is not a normalised relative path" \
  "$WHARF" assign fec01 demo@1.0 unsafe@1 --store store --key release.key
[ "$(sha256sum store/fecs/fec01/generation.json)" = "$before" ] || fail "wharf assign wrote a generation"
pass "wharf assign refuses a package.json with an unsafe path"
rm -rf store/software/unsafe
"${FORGE[@]}" archive --store store --name unsafe --version 1 --prefix /opt/unsafe \
  --entry dir:opt/unsafe "symlink:opt/unsafe/l:/etc"
expect_refused "outside the prefix /opt/unsafe" \
  "$WHARF" assign fec01 demo@1.0 unsafe@1 --store store --key release.key
[ "$(sha256sum store/fecs/fec01/generation.json)" = "$before" ] || fail "wharf assign wrote a generation"
pass "wharf assign refuses a package.json with a symlink leaving the prefix"
rm -rf store/software/unsafe
"${FORGE[@]}" archive --out evil-out --name unsafe --version 1 --prefix /opt/unsafe \
  --entry dir:opt/unsafe file:opt/unsafe/ok:fine "hardlink:opt/unsafe/h:etc/passwd" \
  --index-type opt/unsafe/h=file
expect_refused "is a hard link" "$WHARF" publish evil-out/unsafe-1.tar.zst --store store
[ ! -e store/software/unsafe/1 ] || fail "wharf publish stored a hostile archive"
pass "wharf publish refuses a hostile archive"

# After all that, the FEC still syncs what the store offers.
expect_exit 0 sync
same_tree fec01/opt/demo src1
pass "the FEC is still in working order"
echo "e2e refusals: all passed"
