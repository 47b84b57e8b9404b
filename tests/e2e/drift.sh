#!/usr/bin/env bash
# Drift (issue 18, acceptance 3): files changed on a FEC by hand are found by `wharf-agent
# verify`, repaired from the store with Range requests by `verify --repair`, and by the next
# sync, which otherwise has nothing to do. Real nginx, real agent, as root: the package
# folders are read-only, so the "attacker" makes them writable first.
source "$(dirname "$0")/lib.sh"

cd "$T"
make_tree "$T/src1" 1
# 3 MB that does not compress (3 frames): what a repair of other files must not fetch.
head -c 3000000 /dev/urandom >"$T/src1/lib/libother.so"
"$WHARF" keygen --out release >/dev/null
"$WHARF" pack "${SMALL_FRAMES[@]}" src1 --name demo-ioc --version 1.0 --prefix /opt/epics/demo-ioc -o out >/dev/null
"$WHARF" publish out/demo-ioc-1.0.tar.zst --store store >/dev/null
"$WHARF" assign fec01 demo-ioc@1.0 --store store --key release.key >/dev/null
start_nginx "$T/store"
agent() { "$WHARF_AGENT" sync --root "$T/$1" --store "$STORE_URL" --fec "$1" --trust release.pub "${@:2}"; }
verify() { "$WHARF_AGENT" verify --root "$T/fec01" "$@"; }
expect_exit 0 agent fec01
P=fec01/opt/epics/demo-ioc  # the prefix link; the package folder behind it
same_tree "$P" src1

# A clean tree: exit 0, nothing listed.
expect_exit 0 verify
grep -q "no drift" "$T/stdout" || { cat "$T/stdout"; fail "clean tree not reported clean"; }
[ "$(grep -c 'demo-ioc@1.0:' "$T/stdout" || true)" -eq 0 ] || fail "a clean tree listed differences"
expect_exit 0 verify --json
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["clean"] and j["drift"]==[], j' "$T/stdout" \
  || fail "--json of a clean tree"
pass "a clean tree verifies with exit 0"

# damage: one byte in a file (in place, the inode kept), a file planted, a mode, a link.
damage() {
  chmod u+w "$P/" "$P/db" "$P/bin" "$P/lib" "$P/db/demo.db" "$P/lib/libdemo.so"
  printf 'X' | dd of="$P/db/demo.db" bs=1 seek=3 conv=notrunc status=none
  printf 'Y' | dd of="$P/lib/libdemo.so" bs=1 seek=1000000 conv=notrunc status=none
  chmod a-w "$P/db/demo.db" "$P/lib/libdemo.so"
  echo 'evil' >"$P/bin/planted"
  chmod 0700 "$P/iocBoot/iocdemo/st.cmd"
  ln -sfn /etc/passwd "$P/lib/libdemo.so.1"
}
damage
! (same_tree "$P" src1) 2>/dev/null || fail "the damage did not change the tree"
expect_exit 4 verify
for want in "/opt/epics/demo-ioc/db/demo.db: content" "/opt/epics/demo-ioc/bin/planted: extra" \
            "/opt/epics/demo-ioc/iocBoot/iocdemo/st.cmd: mode (want 0555, have 0700)" \
            "/opt/epics/demo-ioc/lib/libdemo.so.1: link (want -> libdemo.so, have -> /etc/passwd)" \
            "/opt/epics/demo-ioc/lib/libdemo.so: content"; do
  grep -qF "demo-ioc@1.0: $want" "$T/stdout" || { cat "$T/stdout"; fail "verify does not name: $want"; }
done
# and the four folders made writable: nine in all, one line each.
[ "$(grep -c '^demo-ioc@1.0: ' "$T/stdout")" -eq 9 ] || { cat "$T/stdout"; fail "wanted exactly 9 differences"; }
expect_exit 4 verify --json
python3 - "$T/stdout" <<'PY' || fail "--json does not list the drift"
import json, sys
j = json.load(open(sys.argv[1]))
got = sorted((d["path"], d["kind"]) for d in j["drift"])
assert not j["clean"], j
assert ("/opt/epics/demo-ioc/bin/planted", "extra") in got and ("/opt/epics/demo-ioc/db/demo.db", "content") in got, got
assert all(d["package"] == "demo-ioc@1.0" for d in j["drift"]), j
PY
pass "verify exits 4 naming the changed byte, the planted file, the mode and the link"

# Repair: only the damaged files' frames, by Range; the tree is exactly the source again.
before=$(wc -l <"$NGINX_LOG")
expect_exit 0 verify --repair --store "$STORE_URL" --fec fec01 --trust release.pub
grep -q "drift repaired" "$T/stdout" || { cat "$T/stdout" "$T/stderr"; fail "repair not reported"; }
same_tree "$P" src1
[ "$(stat -c %a "$P/iocBoot/iocdemo/st.cmd")" = 555 ] || fail "st.cmd mode not restored"
[ "$(readlink "$P/lib/libdemo.so.1")" = libdemo.so ] || fail "link not restored"
writable=$(find fec01/var/lib/wharf/packages -mindepth 2 ! -type l -perm /0222 | head -3)
[ -z "$writable" ] || fail "repair left writable entries: $writable"
requests=$(tail -n +$((before + 1)) "$NGINX_LOG")
echo "$requests" | grep -q 'tar.zst HTTP/1.1" 206' || { echo "$requests"; fail "repair made no Range request"; }
! echo "$requests" | grep -q 'tar.zst HTTP/1.1" 200' || { echo "$requests"; fail "repair fetched the whole archive"; }
archive=$(stat -c %s store/software/demo-ioc/1.0/demo-ioc-1.0.tar.zst)
fetched=$(echo "$requests" | awk '/tar.zst HTTP\/1.1" 206/ {s += $10} END {print s+0}')
[ $((fetched * 2)) -lt "$archive" ] || fail "repair fetched $fetched of $archive bytes"
expect_exit 0 verify
pass "verify --repair restores the exact tree with $fetched of $archive archive bytes (Range)"

# A repair that cannot reach any store: exit 3, the drift stays listed.
damage
dead="http://127.0.0.1:$(free_port)"
expect_exit 3 verify --repair --store "$dead" --fec fec01 --trust release.pub --json
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert not j["clean"] and j["remaining"], j' "$T/stdout" \
  || fail "an offline repair should list what remains"
pass "verify --repair with no store answering exits 3"

# The next sync, with nothing new in the store, repairs it (the stamp recorded at install
# no longer matches, the package is re-hashed, the damaged files fetched again).
expect_exit 0 agent fec01
grep -q "repaired demo-ioc@1.0" "$T/stderr" || { cat "$T/stdout" "$T/stderr"; fail "sync did not repair"; }
same_tree "$P" src1
expect_exit 0 verify
# ...and one with nothing changed re-hashes nothing and fetches nothing but the generation.
before=$(wc -l <"$NGINX_LOG")
expect_exit 0 agent fec01
! grep -q "drift" "$T/stderr" || fail "an untouched tree was re-checked"
[ "$(tail -n +$((before + 1)) "$NGINX_LOG" | wc -l)" -eq 1 ] || fail "no-op sync made more than one request"
pass "a sync re-installs what was changed by hand, and only then"

# A replaced file (new inode, same size) and a removed folder's content are found too.
chmod u+w "$P/db" "$P/bin"
cp "$P/bin/demoApp" "$T/x" && printf 'Z' | dd of="$T/x" bs=1 seek=10 conv=notrunc status=none
mv -f "$T/x" "$P/bin/demoApp"
rm -rf "$P/empty"
expect_exit 4 verify
grep -qF "/opt/epics/demo-ioc/bin/demoApp: content" "$T/stdout" || { cat "$T/stdout"; fail "replaced file not found"; }
grep -qF "/opt/epics/demo-ioc/empty: missing" "$T/stdout" || { cat "$T/stdout"; fail "missing folder not found"; }
expect_exit 0 verify --repair --store "$STORE_URL" --fec fec01 --trust release.pub
same_tree "$P" src1
pass "a replaced file and a removed folder are found and repaired"

# How long verify takes on this tree (a few MB), for docs/agent.md.
size=$(du -sbL "$P" | cut -f1)
start=$(date +%s.%N)
expect_exit 0 verify
end=$(date +%s.%N)
echo "verify of $size bytes: $(python3 -c "print(f'{$end - $start:.3f}')") s ($(tail -1 "$T/stdout"))"

# Under `run`: a background verify finds drift made after the sync, and the heartbeat says it.
start_heartbeat_listener "$T/beats.log" error
"$WHARF_AGENT" run --root "$T/fec01" --store "$STORE_URL" --fec fec01 --trust release.pub --interval 3600 \
  --heartbeat 1 --verify-interval 1 --server "http://127.0.0.1:$HB_PORT" --token t >"$T/run.out" 2>"$T/run.err" &
RUN_PID=$!
trap 'kill $RUN_PID $HB_PID 2>/dev/null || true; cleanup' EXIT
RUN_ERR=$T/run.err
wait_for "a clean heartbeat" grep -qx -- "-" "$T/beats.log"
chmod u+w "$P/db" && echo 'evil' >"$P/db/planted" && chmod a-w "$P/db"
wait_for "drift in a heartbeat" grep -q "^drift: 1 difference in demo-ioc@1.0.*db/planted" "$T/beats.log"
kill -TERM "$RUN_PID"; wait "$RUN_PID" || fail "run exits 0 on SIGTERM"
pass "run's background verify (every --verify-interval, at 8 MiB/s) puts drift into the heartbeat: $(grep -m1 '^drift' "$T/beats.log")"
