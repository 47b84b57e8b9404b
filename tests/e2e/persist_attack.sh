#!/usr/bin/env bash
# Issue 13, class 2: a service user (uid 65534 here) owns its persistent folder and plants
# links in it to get a root-only file into its snapshot, or makes the folder a link so a
# restore (run as root) writes elsewhere. The real wharf-agent, as root: the root-only
# content never reaches the snapshot or the restored tree, a restore never writes outside
# the declared folder, and restored files are the folder owner's, never root's.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { echo "ok - skipped: needs root (the agent runs as root)"; exit 0; }
SVC=65534
SECRET=root-only-secret-$$

cd "$T"
"$WHARF" keygen --out k >/dev/null
make_tree src 1
"$WHARF" pack src --name demo --version 1 --prefix /opt/demo -o out >/dev/null
"$WHARF" publish out/demo-1.tar.zst --store store >/dev/null
"$WHARF" assign fec01 demo@1 --store store --key k.key >/dev/null
"$WHARF" persist fec01 /var/lib/demo --store store --key k.key >/dev/null
mkdir -p secret && printf '%s\n' "$SECRET" >secret/shadow && chmod 600 secret/shadow
sync_fec() { expect_exit "$1" "$WHARF_AGENT" sync --root "$2" --store "file://$T/store" --fec fec01 --trust k.pub; }
snapshot() { expect_exit "$1" "$WHARF_AGENT" snapshot --root "$R" --fec fec01 --store "file://$T/store"; }
R=$T/fec01
sync_fec 0 "$R"
mkdir -p "$R/var/lib/demo/sub"
printf 'mine\n' >"$R/var/lib/demo/sub/data"
chown -R $SVC:$SVC "$R/var/lib/demo"
no_secret_in_store() {
  for f in $(find store -name '*.tar.zst' -path '*/data/*'); do
    zstd -dc "$f" | grep -qa "$SECRET" && fail "$1: the secret is in snapshot $f"
  done
  return 0
}

# A hard link to the root-only file (a kernel without protected_hardlinks lets the service
# user make it; root makes it here): the snapshot is refused.
ln secret/shadow "$R/var/lib/demo/hard"
snapshot 1
grep -q "hard: .*cannot read it\|demo/hard is owned by uid 0" "$T/stderr" || fail "hard link: $(cat "$T/stderr")"
[ ! -e store/fecs/fec01/data/latest.json ] || fail "a refused snapshot became latest"
no_secret_in_store "hard link"
rm "$R/var/lib/demo/hard"
# A root-owned file the service user cannot read, in a subfolder it owns: refused too.
cp secret/shadow "$R/var/lib/demo/sub/copied"
snapshot 1
grep -q "sub/copied is owned by uid 0" "$T/stderr" || fail "root-only file: $(cat "$T/stderr")"
rm "$R/var/lib/demo/sub/copied"
pass "a hard link to, or a copy of, a root-only file in a service user's folder fails its snapshot"

# Symbolic links to the file and to its folder: stored as links, never followed.
ln -s "$T/secret/shadow" "$R/var/lib/demo/link"
ln -s "$T/secret" "$R/var/lib/demo/sub/folder"
chown -h $SVC:$SVC "$R/var/lib/demo/link" "$R/var/lib/demo/sub/folder"
snapshot 1  # an absolute link out of the folder is not a snapshot entry anybody restores
rm "$R/var/lib/demo/link" "$R/var/lib/demo/sub/folder"
ln -s ../../../../secret/shadow "$R/var/lib/demo/link"
snapshot 1
no_secret_in_store "links"
rm "$R/var/lib/demo/link"
snapshot 0
no_secret_in_store "clean"
pass "links to a root-only file or folder never bring its contents into a snapshot"

# The persistent folder itself a link (to another user's folder): not packed.
mv "$R/var/lib/demo" "$T/moved" && ln -s "$T/secret" "$R/var/lib/demo"
snapshot 1
grep -q "is not a folder" "$T/stderr" || fail "linked folder: $(cat "$T/stderr")"
no_secret_in_store "linked folder"
rm "$R/var/lib/demo" && mv "$T/moved" "$R/var/lib/demo"
pass "a persistent folder replaced by a link is refused, not followed"

# Restore: the folder a link to an empty folder elsewhere (/etc/cron.d, say).
R2=$T/fec02
mkdir -p "$R2/var/lib" "$T/outside"
ln -s "$T/outside" "$R2/var/lib/demo"
sync_fec 0 "$R2"  # a link is not an empty folder: nothing is restored
grep -q "restored /var/lib/demo" "$T/stderr" && fail "restored through a link: $(cat "$T/stderr")"
[ -z "$(ls -A "$T/outside")" ] || fail "the restore wrote through the link: $(ls -A "$T/outside")"
[ -L "$R2/var/lib/demo" ] || fail "the link was replaced"
# A folder above it a link.
R3=$T/fec03
mkdir -p "$R3/var" "$T/outside3"
sync_fec 0 "$R3"  # its own state first (var/lib/wharf)
rm -rf "$R3/var/lib/demo" && mv "$R3/var/lib" "$T/outside3/lib" && ln -s "$T/outside3/lib" "$R3/var/lib"
rm -rf "$T/outside3/lib/demo"
"$WHARF_AGENT" sync --root "$R3" --store "file://$T/store" --fec fec01 --trust k.pub >"$T/stdout" 2>"$T/stderr" || true
[ ! -e "$T/outside3/lib/demo" ] && [ ! -e "$T/outside3/lib/.demo.wharf-restore" ] \
  || fail "the restore wrote through a linked parent: $(ls -A "$T/outside3/lib")"
pass "a restore never writes through a linked persistent folder or a linked folder above it"

# Restored into the service user's empty folder: every entry is the service user's.
R4=$T/fec04
mkdir -p "$R4/var/lib/demo" && chown $SVC:$SVC "$R4/var/lib/demo"
sync_fec 0 "$R4"
[ "$(cat "$R4/var/lib/demo/sub/data")" = mine ] || fail "restored: $(cat "$T/stderr")"
[ -z "$(find "$R4/var/lib/demo" ! -uid $SVC)" ] || fail "entries not the folder owner's: $(find "$R4/var/lib/demo" ! -uid $SVC)"
pass "a restore into a service user's folder gives every entry to that user"
