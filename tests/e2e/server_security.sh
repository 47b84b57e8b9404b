#!/usr/bin/env bash
# `wharf serve` against hostile and careless clients: no token, wrong roles, an agent token
# for another FEC, "..", "%2e%2e" and NUL in every path and name parameter, truncated and
# mismatched uploads, a 10 GB declared size, an endless chunked body, malformed JSON.
# Each is refused with the right status and a JSON error, and leaves the store and the
# database as they were (the audit log alone records refused changes, by design).
source "$(dirname "$0")/lib.sh"

mkdir -p "$T/src" "$T/out"
make_tree "$T/src/v1" 1
make_tree "$T/src/v2" 2
for v in 1.0 2.0 3.0; do
  src=$T/src/v1; [ $v = 1.0 ] || src=$T/src/v2
  "$WHARF" pack "$src" --name demo --version $v --prefix /opt/demo -o "$T/out" >/dev/null
done
STORE=$T/store
mkdir -p "$STORE"
start_server "$STORE" --max-upload 50000000
ADMIN=$(make_token admin admin "" "$STORE")
CI=$(make_token ci publisher "" "$STORE")
OP=$(make_token op operator "" "$STORE")
AG1=$(make_token fec01 agent fec01 "$STORE")
OLD=$(make_token old operator "" "$STORE")
"$WHARF" token revoke old --store "$STORE" 2>/dev/null
S=$SERVER_URL
for v in 1.0 2.0; do "$WHARF" publish "$T/out/demo-$v.tar.zst" --server "$S" --token "$CI" >/dev/null; done
"$WHARF" assign fec01 demo@1.0 --server "$S" --token "$OP" >/dev/null
"$WHARF" assign fec02 demo@1.0 --server "$S" --token "$OP" >/dev/null
curl -sf -H "Authorization: Bearer $AG1" -d '{"generation": 1}' "$S/api/v1/fecs/fec01/heartbeat" >/dev/null

# The store's files (not its private folder) and every database table but the audit log.
snapshot() {
  { manifest "$STORE" | grep -v ' \.wharf'; ls -A "$STORE.state/uploads"
    python3 - "$STORE.state/records.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for table in ("tokens", "fecs", "activations", "generations"):
    for row in db.execute(f"SELECT * FROM {table} ORDER BY 1"):
        print(table, row)
PY
  } >"$1"
}
snapshot "$T/before"
CASES=0

# expect_status CODES DESCRIPTION CURL-ARGS...: CODES like 401 or "400|422".
expect_status() {
  local want=$1 what=$2; shift 2
  local code
  code=$(curl -s --path-as-is -o "$T/body" -w '%{http_code}' "$@" || true)
  echo "$code" | grep -Eqx "$want" || { cat "$T/body" >&2; fail "$what: HTTP $code, wanted $want"; }
  if [ "$code" -ge 400 ]; then
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert isinstance(j.get("error"), str) and j["error"]' "$T/body" \
      || fail "$what: the refusal is not a JSON error: $(head -c 300 "$T/body")"
  fi
  snapshot "$T/after"
  diff "$T/before" "$T/after" >&2 || fail "$what changed the store or the database"
  CASES=$((CASES + 1))
}

H() { echo "Authorization: Bearer $1"; }
# Uploads ask "Expect: 100-continue" (as wharf's client does), so that a refusal before the
# body is read reaches the client instead of a reset connection.
UP=(-H "Expect: 100-continue" -F "index=@$T/out/demo-3.0.package.json" -F "archive=@$T/out/demo-3.0.tar.zst")
J=(-H "Content-Type: application/json")

# --- no token, an unknown token, a revoked token: 401 ---
for tok in "" "wharf_$(printf '0%.0s' $(seq 64))" "$OLD" "Basic abc"; do
  auth=(-H "Authorization: Bearer $tok"); [ -z "$tok" ] && auth=()
  expect_status 401 "publish, token '$tok'" "${auth[@]}" "${UP[@]}" "$S/api/v1/packages"
  for verb in assign unassign rollback refresh; do
    expect_status 401 "$verb, token '$tok'" "${auth[@]}" "${J[@]}" -d '{"packages":["demo@2.0"]}' "$S/api/v1/fecs/fec01/$verb"
  done
  expect_status 401 "heartbeat, token '$tok'" "${auth[@]}" -d '{"generation":2}' "$S/api/v1/fecs/fec01/heartbeat"
  for path in fecs fecs/fec01 fecs/fec01/history audit packages generations; do
    expect_status 401 "GET $path, token '$tok'" "${auth[@]}" "$S/api/v1/$path"
  done
done
grep -q "missing_right" "$T/body" || fail "a refusal names the missing right"
pass "no, unknown, revoked or malformed token: 401 on every API route"

# --- wrong role: 403, naming the missing right ---
for verb in assign unassign rollback refresh; do
  expect_status 403 "publisher $verb" -H "$(H "$CI")" "${J[@]}" -d '{"packages":["demo@2.0"]}' "$S/api/v1/fecs/fec01/$verb"
  expect_status 403 "agent $verb" -H "$(H "$AG1")" "${J[@]}" -d '{"packages":["demo@2.0"]}' "$S/api/v1/fecs/fec01/$verb"
done
grep -q '"missing_right": "change"' "$T/body" || fail "403 names the right: $(cat "$T/body")"
expect_status 403 "operator publish" -H "$(H "$OP")" "${UP[@]}" "$S/api/v1/packages"
expect_status 403 "agent publish" -H "$(H "$AG1")" "${UP[@]}" "$S/api/v1/packages"
expect_status 403 "publisher heartbeat" -H "$(H "$CI")" -d '{"generation":2}' "$S/api/v1/fecs/fec01/heartbeat"
expect_status 403 "operator heartbeat" -H "$(H "$OP")" -d '{"generation":2}' "$S/api/v1/fecs/fec01/heartbeat"
expect_status 403 "publisher audit" -H "$(H "$CI")" "$S/api/v1/audit"
expect_status 403 "agent audit" -H "$(H "$AG1")" "$S/api/v1/audit"
expect_status 403 "agent fleet" -H "$(H "$AG1")" "$S/api/v1/fecs"
# --- an agent token for another FEC ---
expect_status 403 "fec01's token, heartbeat of fec02" -H "$(H "$AG1")" -d '{"generation":9}' "$S/api/v1/fecs/fec02/heartbeat"
expect_status 403 "fec01's token, detail of fec02" -H "$(H "$AG1")" "$S/api/v1/fecs/fec02"
expect_status 403 "fec01's token, history of fec02" -H "$(H "$AG1")" "$S/api/v1/fecs/fec02/history"
expect_status 200 "fec01's token, its own detail" -H "$(H "$AG1")" "$S/api/v1/fecs/fec01"
pass "wrong role and another FEC's agent token: 403"

# --- "..", "%2e%2e" and NUL in paths and names ---
for p in "/../.wharf/records.db" "/%2e%2e/%2e%2e/etc/passwd" "/software/%2e%2e/.wharf/signing.key" \
         "/software/demo/1.0/..%2f..%2f..%2f.wharf%2frecords.db" "/fecs/fec01/generation.json%00.txt" \
         "/software/demo%00/1.0/package.json" "/fecs/..%5c..%5cetc/passwd"; do
  expect_status 400 "GET $p" "$S$p"
done
for p in "/.wharf/records.db" "/.wharf/signing.key" "/.wharf/lock" "/.wharf/uploads/" "/software/demo/.1.0.tmp-1-1"; do
  expect_status 404 "GET $p" "$S$p"
done
for verb in assign unassign rollback refresh heartbeat; do
  for fec in %2e%2e "fec01%00" "fec01%00x" "..%00" ".hidden" "a%2fb"; do
    expect_status "400|404" "fec '$fec' in $verb" -H "$(H "$ADMIN")" "${J[@]}" -d '{"packages":["demo@2.0"]}' "$S/api/v1/fecs/$fec/$verb"
  done
done
for fec in %2e%2e "fec01%00" ".wharf"; do
  expect_status 400 "GET fecs/$fec" -H "$(H "$ADMIN")" "$S/api/v1/fecs/$fec"
  expect_status 400 "GET fecs/$fec/history" -H "$(H "$ADMIN")" "$S/api/v1/fecs/$fec/history"
done
for spec in '../demo@1.0' 'demo@../1.0' 'demo@1.0\u0000' 'demo\u0000@1.0' '/etc/passwd@1' 'demo@1.0/../../x' '%2e%2e@1'; do
  expect_status 400 "assign '$spec'" -H "$(H "$OP")" "${J[@]}" -d "{\"packages\":[\"$spec\"]}" "$S/api/v1/fecs/fec01/assign"
done
for name in '../demo' 'demo\u0000' '..'; do
  expect_status "400|404" "unassign '$name'" -H "$(H "$OP")" "${J[@]}" -d "{\"packages\":[\"$name\"]}" "$S/api/v1/fecs/fec01/unassign"
done
expect_status 400 "history at=../" -H "$(H "$ADMIN")" "$S/api/v1/fecs/fec01/history?at=..%2f"
expect_status 400 "audit limit=../" -H "$(H "$ADMIN")" "$S/api/v1/audit?limit=..%2f"
expect_status 400 "publish deltas=../" -H "$(H "$CI")" "${UP[@]}" "$S/api/v1/packages?deltas=..%2f"
# a package.json naming a package "../evil", or an archive outside its folder
python3 - "$T/out/demo-3.0.package.json" "$T" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
for field, value, name in (("name", "../evil", "evil-name"), ("archive", "../../demo-3.0.tar.zst", "evil-archive"),
                           ("version", "3.0/../../x", "evil-version"), ("prefix", "/opt/../../etc", "evil-prefix")):
    k = dict(j); k[field] = value
    open(f"{sys.argv[2]}/{name}.json", "w").write(json.dumps(k))
PY
for evil in evil-name evil-archive evil-version evil-prefix; do
  expect_status "400|422" "package.json $evil" -H "$(H "$CI")" -F "index=@$T/$evil.json" \
    -F "archive=@$T/out/demo-3.0.tar.zst" "$S/api/v1/packages"
done
pass "'..', %2e%2e and NUL in paths, FEC names, package names, versions and queries: refused"

# --- uploads: mismatched, unknown fields, missing parts, too big, cut short ---
expect_status 422 "archive of 2.0 with the package.json of 3.0" -H "$(H "$CI")" \
  -F "index=@$T/out/demo-3.0.package.json" -F "archive=@$T/out/demo-1.0.tar.zst" "$S/api/v1/packages"
cp "$T/out/demo-3.0.tar.zst" "$T/flipped.tar.zst"
printf '\xff' | dd of="$T/flipped.tar.zst" bs=1 seek=2000 conv=notrunc 2>/dev/null
expect_status 422 "archive with a flipped byte" -H "$(H "$CI")" \
  -F "index=@$T/out/demo-3.0.package.json" -F "archive=@$T/flipped.tar.zst" "$S/api/v1/packages"
expect_status 400 "no archive part" -H "$(H "$CI")" -F "index=@$T/out/demo-3.0.package.json" "$S/api/v1/packages"
expect_status 400 "unknown part" -H "$(H "$CI")" "${UP[@]}" -F "evil=@/etc/hostname" "$S/api/v1/packages"
expect_status 400 "not multipart" -H "$(H "$CI")" --data-binary "@$T/out/demo-3.0.tar.zst" "$S/api/v1/packages"
expect_status "400|422" "index that is not JSON" -H "$(H "$CI")" -F "index=@$T/out/demo-3.0.tar.zst" \
  -F "archive=@$T/out/demo-3.0.tar.zst" "$S/api/v1/packages"

# raw HTTP: a 10 GB declared size, a body cut short, an endless chunked body
raw() {  # raw MODE: prints the HTTP status (000 when the server closed without one)
  python3 - "$1" "${S#http://}" "$CI" "$T/out/demo-3.0.package.json" "$T/out/demo-3.0.tar.zst" <<'PY'
import socket, sys, time
mode, hostport, token, index, archive = sys.argv[1:6]
host, port = hostport.rsplit(":", 1)
b = b"wharfboundary"
body = (b"--" + b + b'\r\nContent-Disposition: form-data; name="index"; filename="p.json"\r\n\r\n' +
        open(index, "rb").read() + b"\r\n--" + b +
        b'\r\nContent-Disposition: form-data; name="archive"; filename="a.tar.zst"\r\n\r\n' +
        open(archive, "rb").read() + b"\r\n--" + b + b"--\r\n")
s = socket.create_connection((host, int(port)))
head = (f"POST /api/v1/packages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary=wharfboundary\r\n").encode()
try:
    if mode == "huge":
        s.sendall(head + b"Content-Length: 10000000000\r\n\r\n" + body[:1000])
    elif mode == "cut":
        s.sendall(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
        time.sleep(0.3)
        s.close()
        print("cut")
        sys.exit(0)
    elif mode == "chunked":
        s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 1000000
        for _ in range(60):
            s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    s.settimeout(10)
    data = s.recv(65536)
    print(data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "000")
except (BrokenPipeError, ConnectionResetError):
    print("000")
PY
}
code=$(raw huge); [ "$code" = 413 ] || fail "10 GB declared: HTTP $code, wanted 413"
code=$(raw chunked); [ "$code" = 000 ] || [ "$code" = 413 ] || fail "endless chunked body: HTTP $code"
code=$(raw cut)
sleep 0.5
snapshot "$T/after"; diff "$T/before" "$T/after" >&2 || fail "raw uploads changed the store or database"
[ -z "$(ls -A "$STORE.state/uploads")" ] || fail "a cut upload left files: $(ls -A "$STORE.state/uploads")"
CASES=$((CASES + 3))
pass "10 GB declared (413), endless chunked body (closed), upload cut short (nothing kept)"

# --- malformed JSON and wrong types ---
for body in '{bad' '[1]' '"x"' '{"packages":"demo@2.0"}' '{"packages":[1]}' '{"packages":["demo@2.0"],"expires_in":"forever"}' \
            '{"packages":["demo@2.0"],"dry_run":"yes"}'; do
  expect_status 400 "assign body $body" -H "$(H "$OP")" "${J[@]}" -d "$body" "$S/api/v1/fecs/fec01/assign"
done
for body in '{"to":-1}' '{"to":"1"}' '{"to":1.5}'; do
  expect_status 400 "rollback body $body" -H "$(H "$OP")" "${J[@]}" -d "$body" "$S/api/v1/fecs/fec01/rollback"
done
for body in '{' '{"generation":"x"}' '{"generation":-3}' '{"services":"up"}' '{"error":5}'; do
  expect_status 400 "heartbeat body $body" -H "$(H "$AG1")" -d "$body" "$S/api/v1/fecs/fec01/heartbeat"
done
head -c 2000000 /dev/zero | tr '\0' ' ' >"$T/big.json"
expect_status 413 "a 2 MB JSON body" -H "$(H "$OP")" "${J[@]}" --data-binary "@$T/big.json" "$S/api/v1/fecs/fec01/assign"
pass "malformed JSON and wrong types: 400; an oversized body: 413"

# --- after all that, the server works and the audit log saw the refused changes ---
expect_exit 0 "$WHARF" publish "$T/out/demo-3.0.tar.zst" --server "$S" --token "$CI"
curl -sf -H "$(H "$ADMIN")" "$S/api/v1/audit?limit=1000" >"$T/audit"
python3 - "$T/audit" <<'PY' || fail "audit of refusals"
import json, sys
log = json.load(open(sys.argv[1]))
assert any(e["action"] == "refused" and e["actor"] == "ci" for e in log), "publisher's refused assign"
assert any(e["action"] == "publish" and e["status"] == 422 for e in log), "mismatched upload"
PY
echo "server_security: $CASES hostile requests refused; all checks passed"
