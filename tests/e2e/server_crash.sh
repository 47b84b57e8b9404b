#!/usr/bin/env bash
# Stop or kill `wharf serve` in the middle of an upload: no partial version is ever visible,
# the staging folder is emptied at the next start, and the retried upload succeeds.
source "$(dirname "$0")/lib.sh"

mkdir -p "$T/big/lib" "$T/out"
head -c 40000000 /dev/urandom >"$T/big/lib/blob.so"   # incompressible: 40 MB on the wire
echo "v1" >"$T/big/VERSION"
"$WHARF" pack "$T/big" --name big --version 1.0 --prefix /opt/big -o "$T/out" >/dev/null
ARCHIVE=$T/out/big-1.0.tar.zst
INDEX=$T/out/big-1.0.package.json
STORE=$T/store
mkdir -p "$STORE"
start_server "$STORE"
CI=$(make_token ci publisher "" "$STORE")

# Every visible version is whole: its archive matches the package.json beside it.
check_store() {
  local what=$1
  python3 - "$STORE" <<'PY' || fail "$what: a visible version is not whole"
import hashlib, json, os, sys
root = os.path.join(sys.argv[1], "software")
for name in os.listdir(root):
    if name.startswith("."):
        continue
    for version in os.listdir(os.path.join(root, name)):
        if version.startswith("."):
            continue
        d = os.path.join(root, name, version)
        index = json.load(open(os.path.join(d, "package.json")))
        data = open(os.path.join(d, index["archive"].split("/")[-1]), "rb").read()
        assert len(data) == index["archive_size"], (d, len(data))
        assert hashlib.sha256(data).hexdigest() == index["archive_sha256"], d
PY
  code=$(curl -s -o /dev/null -w '%{http_code}' "$SERVER_URL/software/big/1.0/package.json")
  if [ -d "$STORE/software/big/1.0" ]; then [ "$code" = 200 ] || fail "$what: whole version not served ($code)"
  else [ "$code" = 404 ] || fail "$what: a missing version answered $code"; fi
}

upload_slowly() {  # a client at 10 MB/s, so that the server can be stopped mid-way
  curl -s -o /dev/null --limit-rate 10M -H "Authorization: Bearer $CI" \
    -F "index=@$INDEX" -F "archive=@$ARCHIVE" "$SERVER_URL/api/v1/packages" &
  UPLOAD_PID=$!
  for _ in $(seq 100); do  # until the server has bytes of it
    [ -n "$(find "$STORE.state/uploads" -name archive.part -size +1M 2>/dev/null)" ] && return 0
    sleep 0.05
  done
  fail "the upload did not start"
}

for signal in KILL TERM; do
  upload_slowly
  stop_server $signal
  wait $UPLOAD_PID || true
  [ -d "$STORE/software/big/1.0" ] && fail "SIG$signal mid-upload: a partial version is visible"
  start_server "$STORE"
  check_store "SIG$signal mid-upload"
  [ -z "$(ls -A "$STORE.state/uploads")" ] || fail "SIG$signal: staging not emptied at start"
  pass "SIG$signal in the middle of an upload: nothing visible, staging emptied on restart"
done

# Kills at random moments: during the transfer, the server's check, or the rename.
for i in $(seq 8); do
  "$WHARF" publish "$ARCHIVE" --server "$SERVER_URL" --token "$CI" >/dev/null 2>&1 &
  pub=$!
  sleep "$(python3 -c "import random; print(random.uniform(0.05, 1.2))")"
  stop_server KILL
  wait $pub || true
  start_server "$STORE"
  check_store "kill $i"
  [ -z "$(ls -A "$STORE.state/uploads")" ] || fail "kill $i: staging not emptied"
  if [ -d "$STORE/software/big/1.0" ]; then
    remove_tree "$STORE/software/big"  # visible and whole: start over for the next kill
  fi
done
pass "8 kills at random moments of a publish: every visible version whole"

expect_exit 0 "$WHARF" publish "$ARCHIVE" --server "$SERVER_URL" --token "$CI"
grep -q "big@1.0: published" "$T/stdout" || fail "retry: $(cat "$T/stdout")"
cmp "$ARCHIVE" "$STORE/software/big/1.0/big-1.0.tar.zst" || fail "retry: bytes differ"
check_store "after the retry"
pass "the retried upload succeeds"
echo "server_crash: all checks passed"
