#!/usr/bin/env bash
# Persistent data (issue 5): a generation declares folders; the agent snapshots them (now,
# at an interval, on clean shutdown) to the server or a file:// store; a FEC whose folders
# are missing or empty gets the latest snapshot back before its services start. A snapshot
# becomes latest only whole and checked: 10 kills at random moments of a snapshot through
# the server and 10 through a file:// store never damage or replace the previous latest.
source "$(dirname "$0")/lib.sh"

cd "$T"
"$WHARF" keygen --out k >/dev/null
# The service records what it finds in its data folder when it starts, then stays up.
mkdir -p src/bin out
cat >src/bin/ioc <<'SH'
#!/bin/sh
(cd "$DATA" 2>/dev/null && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) >"$DATA.seen-at-start"
exec sleep 1000
SH
chmod 755 src/bin/ioc
"$WHARF" pack src --name ioc --version 1 --prefix /opt/ioc --service 'ioc=bin/ioc' -o out >/dev/null
"$WHARF" publish out/ioc-1.tar.zst --store store >/dev/null
ch() { "$WHARF" "$@" --store store --key k.key; }
ch assign fec01 ioc@1 >/dev/null

# Bad declarations are refused before anything is signed.
expect_exit 2 "$WHARF" persist fec01 --store store --key k.key
expect_refused "not an absolute, normalised path" ch persist fec01 var/lib/demo
expect_refused "overlaps the prefix of ioc" ch persist fec01 /opt/ioc/data
expect_refused "persistent paths /data and /data/x overlap" ch persist fec01 /data /data/x
expect_exit 2 "$WHARF" persist fec01 /data --interval 5x --store store --key k.key
expect_refused "interval must be 1 minute to 30 days" ch persist fec01 /data --interval 10s
ch persist fec01 /var/lib/demo /var/lib/autosave --interval 1m >/dev/null
python3 -c "
import json; g = json.load(open('store/fecs/fec01/generation.json'))
assert g['persist'] == {'paths': ['/var/lib/autosave', '/var/lib/demo'], 'interval': 60}, g.get('persist')"
expect_exit 0 "$WHARF" show fec01 --store store
grep -q "persistent data: /var/lib/autosave /var/lib/demo, every 60s" "$T/stdout" || fail "show: $(cat "$T/stdout")"
[ ! -e store/fecs/fec02 ] && [ ! -e store/fecs/fec01/data ] || fail "no data folder before a FEC sends data"
pass "wharf persist declares folders and an interval in the signed generation; bad paths are refused"

R=$T/fec01
sync_fec() { expect_exit 0 "$WHARF_AGENT" sync --root "$R" --store "file://$T/store" --fec fec01 --trust k.pub "$@"; }
sync_fec
grep -q "persistent folders are empty and the store has no snapshot yet" "$T/stderr" || fail "first boot: $(cat "$T/stderr")"
# Data of all kinds: nested folders, binary files, a link, modes, an empty folder.
mkdir -p "$R/var/lib/demo/sub/deeper" "$R/var/lib/demo/empty" "$R/var/lib/autosave"
head -c 300000 /dev/urandom >"$R/var/lib/demo/sub/deeper/blob"
printf 'current=12.5\n' >"$R/var/lib/autosave/ps.sav" && chmod 600 "$R/var/lib/autosave/ps.sav"
printf '41\n' >"$R/var/lib/demo/counter"
ln -s sub/deeper/blob "$R/var/lib/demo/latest"
want() { (cd "$R/var/lib" && find demo autosave -printf '%p %y %m %l\n' | sort && find demo autosave -type f -print0 | sort -z | xargs -0 sha256sum); }
want >"$T/want"
expect_exit 0 "$WHARF_AGENT" snapshot --root "$R" --fec fec01 --store "file://$T/store"
grep -q "fec01: snapshot .* stored at file://$T/store (9 entries" "$T/stderr" || fail "snapshot: $(cat "$T/stderr")"
id1=$(python3 -c "import json; print(json.load(open('store/fecs/fec01/data/latest.json'))['id'])")
tar --zstd -tvf "store/fecs/fec01/data/$id1.tar.zst" >"$T/listing" || fail "GNU tar reads the snapshot"
grep -q "var/lib/demo/sub/deeper/blob" "$T/listing" && grep -q "var/lib/autosave/ps.sav" "$T/listing" || fail "listing: $(cat "$T/listing")"
expect_exit 0 "$WHARF" data list fec01 --store store
grep -Eq "^\* $id1 " "$T/stdout" || fail "data list marks the latest: $(cat "$T/stdout")"
pass "wharf-agent snapshot packs the folders to the store (GNU tar reads it); wharf data list shows it as latest"

# A replaced FEC: the whole folder wiped; the data is back before the service starts.
remove_tree "$R"
ch service set fec01 ioc "env.DATA=$R/var/lib/demo" >/dev/null
"$WHARF_AGENT" run --root "$R" --fec fec01 --store "file://$T/store" --trust "$T/k.pub" --interval 1 --stop-services >"$T/run.out" 2>"$T/run.err" &
RUN_PID=$!
trap 'kill $RUN_PID 2>/dev/null || true; wait $RUN_PID 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 100); do [ -s "$R/var/lib/demo.seen-at-start" ] && break; sleep 0.1; done
[ -s "$R/var/lib/demo.seen-at-start" ] || { cat "$T/run.err"; fail "the service did not start"; }
grep -q "restored /var/lib/autosave from snapshot $id1" "$T/run.err" && grep -q "restored /var/lib/demo from snapshot $id1" "$T/run.err" \
  || fail "restore messages: $(cat "$T/run.err")"
diff <(cd "$R/var/lib/demo" && find . -type f -print0 | sort -z | xargs -0 sha256sum) "$R/var/lib/demo.seen-at-start" \
  || fail "the service did not find its data at start"
rm "$R/var/lib/demo.seen-at-start"
diff "$T/want" <(want) || fail "restored data differs"
pass "wiped FEC folder: run restores every declared folder byte-identical (modes, links, empty folders) before the service starts"

# Restored at boot only: a folder the service empties later stays empty.
cp -a "$R/var/lib/demo" "$T/saved"
find "$R/var/lib/demo" -mindepth 1 -delete
sleep 2.5  # two sync rounds
[ -z "$(ls -A "$R/var/lib/demo")" ] || fail "run refilled a folder the service emptied"
cp -a "$T/saved/." "$R/var/lib/demo/"
pass "while running, a folder the service emptied is left empty (restores happen at boot and on a new generation)"

# Clean shutdown: services stop, then a last snapshot.
echo 42 >"$R/var/lib/demo/counter"
kill -TERM $RUN_PID; wait $RUN_PID || true
grep -q "fec01: snapshot .* stored at file://" "$T/run.err" || fail "no snapshot at shutdown: $(cat "$T/run.err")"
id2=$(python3 -c "import json; print(json.load(open('store/fecs/fec01/data/latest.json'))['id'])")
[ "$id2" != "$id1" ] && tar --zstd -xOf "store/fecs/fec01/data/$id2.tar.zst" var/lib/demo/counter | grep -qx 42 \
  || fail "the shutdown snapshot is the latest and holds the last data"
pass "SIGTERM: the services stop, then a snapshot of the data at rest becomes the latest"

# Data that is there is never overwritten by a restore.
echo 43 >"$R/var/lib/demo/counter"
sync_fec
[ "$(cat "$R/var/lib/demo/counter")" = 43 ] || fail "a sync replaced data that was there"
# An older snapshot chosen for the next boot (a replaced FEC that needs yesterday's data).
expect_refused "fec01 has no snapshot 20200101T000000.000Z-0000" "$WHARF" data restore fec01 --snapshot 20200101T000000.000Z-0000 --store store
expect_exit 2 "$WHARF" data restore fec01 --snapshot ../../x --store store
expect_exit 0 "$WHARF" data restore fec01 --snapshot "$id1" --store store
remove_tree "$R/var/lib/demo"; mkdir "$R/var/lib/demo"  # empty counts as missing
sync_fec
[ "$(cat "$R/var/lib/demo/counter")" = 41 ] || fail "data restore: the chosen snapshot is restored"
[ "$(cat "$R/var/lib/autosave/ps.sav")" = "current=12.5" ] || fail "a folder with data kept its data"
pass "a restore never overwrites data; wharf data restore picks the snapshot an empty folder gets back"

# Retention: the newest 5 stay (and always the latest).
for i in 1 2 3 4 5 6; do expect_exit 0 "$WHARF_AGENT" snapshot --root "$R" --fec fec01 --store "file://$T/store"; done
[ "$(ls store/fecs/fec01/data/*.tar.zst | wc -l)" = 5 ] && [ "$(ls store/fecs/fec01/data/2*.json | wc -l)" = 5 ] \
  || fail "5 snapshots kept: $(ls store/fecs/fec01/data)"
pass "the store keeps the newest 5 snapshots"

# --- Through the server: security and 10 kills at random moments; then 10 over file://.
start_server "$T/store" --key "$T/k.key"
AG1=$(make_token fec01 agent fec01 "$T/store")
AG2=$(make_token fec02 agent fec02 "$T/store")
OP=$(make_token op operator "" "$T/store")
latest() { python3 -c "import json; print(json.load(open('$T/store/fecs/fec01/data/latest.json'))['id'])"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code "$SERVER_URL/fecs/fec01/data/latest.json")" = 404 ] || fail "data is not served as a static file"
[ "$(code "$SERVER_URL/fecs/fec01/data/$(latest).tar.zst")" = 404 ] || fail "snapshots are not static files"
[ "$(code -H "Authorization: Bearer $AG2" "$SERVER_URL/api/v1/fecs/fec01/data/latest")" = 403 ] || fail "another FEC's agent reads fec01's data"
[ "$(code -H "Authorization: Bearer $AG2" -X POST --data-binary @/etc/hostname "$SERVER_URL/api/v1/fecs/fec01/data?id=20260101T000000.000Z-0000&sha256=$(printf %064d 0)&size=1&generation=1&paths=/var/lib/demo")" = 403 ] \
  || fail "another FEC's agent writes fec01's data"
[ "$(code -H "Authorization: Bearer $AG1" "$SERVER_URL/api/v1/fecs/fec01/data/latest")" = 200 ] || fail "the FEC's own agent reads its latest"
[ "$(code -H "Authorization: Bearer $OP" "$SERVER_URL/api/v1/fecs/fec01/data")" = 200 ] || fail "operators list data"
# Hostile or broken uploads: never stored, never latest.
before=$(latest)
mkdir -p evil/etc && echo "root::0:0" >evil/etc/passwd && tar --zstd -C evil -cf evil.tar.zst etc
post() {  # post FILE QUERY-OVERRIDES...
  local f=$1; shift
  local sha size; sha=$(sha256sum "$f" | cut -d' ' -f1); size=$(stat -c %s "$f")
  curl -s -o "$T/answer" -w '%{http_code}' -H "Authorization: Bearer $AG1" -H 'Content-Type: application/zstd' \
    --data-binary "@$f" "$SERVER_URL/api/v1/fecs/fec01/data?id=${ID:-20260101T000000.000Z-0001}&sha256=${SHA:-$sha}&size=${SIZE:-$size}&generation=1&paths=${PATHS:-/var/lib/demo}"
}
[[ "$(post evil.tar.zst)" == 4* ]] && grep -q "outside the persistent folders" "$T/answer" \
  || fail "entries outside the folders: $(cat "$T/answer")"
[[ "$(PATHS=/etc post evil.tar.zst)" == 4* ]] && grep -q "/etc is not a persistent folder of fec01" "$T/answer" \
  || fail "paths the generation does not declare: $(cat "$T/answer")"
[ "$(SHA=$(printf %064d 0) post "store/fecs/fec01/data/$before.tar.zst")" = 422 ] && grep -q "another sha256 than declared" "$T/answer" \
  || fail "wrong sha256: $(cat "$T/answer")"
[ "$(ID=../../../x post evil.tar.zst)" = 400 ] || fail "a hostile id: $(cat "$T/answer")"
[ "$(SIZE=5 post evil.tar.zst)" = 400 ] || fail "a size that is not the body's: $(cat "$T/answer")"
[ "$(latest)" = "$before" ] && [ -z "$(ls "$T/store/fecs/fec01/data" | grep -v -E '^(2[0-9T.]+Z-[0-9a-f]{4}\.(json|tar\.zst)|latest\.json)$')" ] \
  || fail "a refused upload left something: $(ls "$T/store/fecs/fec01/data")"
pass "data is private to the FEC's agent and operators (never a static file); hostile, mislabelled and cut uploads are refused"

# Enough data that a snapshot takes a while: kills land in packing, upload and checking.
head -c 40000000 /dev/urandom >"$R/var/lib/demo/sub/big"
check_latest() {  # the latest snapshot is whole: its bytes match its record
  # The server may still be finishing the killed agent's upload (it places the archive, then
  # its record; pruning removes them in the other order): the check is of the folder at
  # rest, so it is given a moment to settle.
  local try
  for try in 1 2 3 4 5 6 7 8 9 10; do check_latest_once 2>/dev/null && return 0; sleep 0.2; done
  check_latest_once || fail "latest snapshot damaged after a kill"
}
check_latest_once() {
  python3 - "$T/store/fecs/fec01/data" <<'PY'
import hashlib, json, sys, os
d = sys.argv[1]
r = json.load(open(os.path.join(d, "latest.json")))
data = open(os.path.join(d, r["id"] + ".tar.zst"), "rb").read()
assert len(data) == r["size"] and hashlib.sha256(data).hexdigest() == r["sha256"], r["id"]
# Nothing half-made is visible: every record has its archive. An archive appears before its
# record and goes after it, so a kill in between leaves at most one archive no record names
# (never listed; the next snapshot removes it).
names = [n for n in os.listdir(d) if not n.startswith(".") and n != "latest.json"]
ids = {n[:-5] for n in names if n.endswith(".json")}
archives = {n[:-8] for n in names if n.endswith(".tar.zst")}
assert ids <= archives and len(archives - ids) <= 1 and len(ids) + len(archives) == len(names), names
PY
}
kill_rounds() {  # kill_rounds LABEL AGENT-ARGS...
  local label=$1; shift
  local start end took kept=0 i
  took=100000
  for i in 1 2 3; do  # the quickest of three whole snapshots: kills land inside one
    start=$(date +%s%N)
    "$WHARF_AGENT" snapshot --root "$R" --fec fec01 "$@" >/dev/null 2>&1 || fail "$label: a whole snapshot"
    end=$(date +%s%N); took=$(( (end - start) / 1000000 < took ? (end - start) / 1000000 : took ))
  done
  for i in $(seq 10); do
    before=$(latest)
    "$WHARF_AGENT" snapshot --root "$R" --fec fec01 "$@" >/dev/null 2>&1 &
    local pid=$!
    sleep "$(python3 -c "import random; print(random.uniform(0, $took / 1000))")"
    kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
    check_latest
    now=$(latest)
    if [ "$now" = "$before" ]; then kept=$((kept + 1)); else
      [ "$now" \> "$before" ] || fail "$label: latest went backwards"
    fi
  done
  # (the server may still be checking the last killed agent's upload: one per FEC at a time)
  local ok=0
  for i in $(seq 20); do
    "$WHARF_AGENT" snapshot --root "$R" --fec fec01 "$@" >/dev/null 2>"$T/snap.err" && { ok=1; break; }
    sleep 0.5
  done
  [ $ok = 1 ] || fail "$label: a whole snapshot after the kills: $(cat "$T/snap.err")"
  python3 - "$T/store/fecs/fec01/data" <<'PY' || fail "$label: an archive without a record outlived the next snapshot"
import os, sys
names = [n for n in os.listdir(sys.argv[1]) if not n.startswith(".") and n != "latest.json"]
assert {n[:-5] for n in names if n.endswith(".json")} == {n[:-8] for n in names if n.endswith(".tar.zst")}, names
PY
  pass "$label: 10 kills at random moments of a $took ms snapshot: the latest stayed whole every time ($kept kills left the previous one latest, the others came after it was replaced)"
}
kill_rounds "server" --server "$SERVER_URL" --token "$AG1"
kill_rounds "file:// store" --store "file://$T/store"
# Cut uploads at 10 random byte offsets: the body stops short and the connection closes.
before=$(latest)
arch="$T/store/fecs/fec01/data/$before.tar.zst"
python3 - "$SERVER_URL" "$AG1" "$arch" <<'PY' || fail "cut uploads"
import hashlib, random, socket, sys, time, urllib.parse
url, token, path = sys.argv[1:]
host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
body = open(path, "rb").read()
sha = hashlib.sha256(body).hexdigest()
for i in range(10):
    cut = random.randrange(0, len(body))
    query = f"id=20991231T000000.{i:03d}Z-cafe&sha256={sha}&size={len(body)}&generation=1&paths=/var/lib/autosave,/var/lib/demo"
    s = socket.create_connection((host, port))
    s.sendall(f"POST /api/v1/fecs/fec01/data?{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
              f"Content-Type: application/zstd\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:cut])
    time.sleep(0.05)
    s.close()
PY
sleep 0.5
[ "$(latest)" = "$before" ] && check_latest && [ -z "$(ls "$T/store/fecs/fec01/data" | grep 2099)" ] \
  || fail "a cut upload became visible or latest"
pass "10 uploads cut at random byte offsets: none is stored, the previous latest stays latest"
# A cut upload's staging (never served) goes when the server drops the connection, at the
# latest after its 60 s idle timeout; a restart empties it at once.
stop_server
start_server "$T/store" --key "$T/k.key"
[ -z "$(ls -A "$T/store.state/uploads" 2>/dev/null)" ] || fail "staging left after a restart: $(ls "$T/store.state/uploads")"
# After all that, a wiped FEC still gets the latest back.
want >"$T/want"
remove_tree "$R/var/lib"
expect_exit 0 "$WHARF_AGENT" sync --root "$R" --store "$SERVER_URL" --fec fec01 --trust k.pub --server "$SERVER_URL" --token "$AG1"
diff "$T/want" <(want) || fail "restored through the server"
pass "through the server's API, a wiped FEC gets its latest data back byte-identical"
