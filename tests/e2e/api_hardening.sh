#!/usr/bin/env bash
# `wharf serve` against clients that hold no token, the wrong token or a FEC's token, and
# against concurrent publishers (issue 13, classes 4, 7, 10, 11 and 14), through the real
# server: each attack is refused and leaves no effect (memory, store, database).
source "$(dirname "$0")/lib.sh"

STORE=$T/store
mkdir -p "$STORE" "$T/src" "$T/out"
make_tree "$T/src/v1" 1
"$WHARF" pack "$T/src/v1" --name demo --version 1.0 --prefix /opt/demo --level 3 -o "$T/out" >/dev/null
# Many connections from this one address: the per-address limit (server_dos.sh tests it) is
# raised so that each one meets the token check.
start_server "$STORE" --max-upload 300000000 --snapshot-quota 2000000 --per-ip-connections 400
# The server's database: one place, for when it moves to the state folder.
STATE=$(state_dir "$STORE")
DB=$STATE/records.db
ADMIN=$(make_token admin admin "" "$STORE")
CI=$(make_token ci publisher "" "$STORE")
OP=$(make_token op operator "" "$STORE")
MT=$(make_token mt maintainer "" "$STORE")
AG=$(make_token fec01 agent fec01 "$STORE")
S=$SERVER_URL
"$WHARF" publish "$T/out/demo-1.0.tar.zst" --server "$S" --token "$CI" >/dev/null
"$WHARF" assign fec01 demo@1.0 --server "$S" --token "$OP" >/dev/null

kib() { awk "/^$1:/ {print \$2}" "/proc/$SERVER_PID/status"; }
sql() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$DB" "$1"; }

# ---- class 4: refused from the headers, before a byte of the body is read ------------------
# One upload declaring 250 MB and sending it, and 300 connections each sending a 1 MiB
# chunked JSON body: no token, an unknown token, a token without the right.
flood() {  # flood TOKEN: prints the statuses seen (sorted, unique)
  python3 - "${S#http://}" "$1" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
token = sys.argv[2]
auth = f"Authorization: Bearer {token}\r\n" if token else ""
seen = set()
def status(s):
    s.settimeout(5)
    try:
        data = s.recv(4096)
    except socket.timeout:
        return "no-answer-before-the-body"
    except OSError:
        return "closed"
    return data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "closed"
# The answer must come before any body byte is sent; the body is sent after it anyway.
s = socket.create_connection((host, int(port)))
s.sendall((f"POST /api/v1/packages HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 250000000\r\n"
           "Content-Type: multipart/form-data; boundary=b\r\n\r\n").encode())
seen.add(status(s))
s.settimeout(0.5)
chunk = b"\0" * (1 << 20)
end = time.time() + 3
try:
    while time.time() < end:
        s.send(chunk)
except OSError:
    pass
s.close()
socks = []
for i in range(300):
    c = socket.create_connection((host, int(port)))
    c.sendall((f"POST /api/v1/fecs/fec01/init/x{i} HTTP/1.1\r\nHost: x\r\n{auth}"
               "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n").encode())
    socks.append(c)
for c in socks:
    seen.add(status(c))
body = b"%x\r\n" % (1000 * 1000) + b" " * (1000 * 1000) + b"\r\n"
for c in socks:
    c.settimeout(0.2)
    try:
        c.sendall(body)
    except OSError:
        pass
    c.close()
print(" ".join(sorted(seen)))
PY
}
rss0=$(kib VmRSS); hwm0=$(kib VmHWM)
for case in "401:" "401:wharf_$(printf '0%.0s' $(seq 64))" "403:$AG"; do
  want=${case%%:*} tok=${case#*:}
  got=$(flood "$tok")
  [ "$got" = "$want" ] || fail "class 4: token '${tok:0:12}': statuses '$got', wanted $want"
done
rss1=$(kib VmRSS); hwm1=$(kib VmHWM)
echo "class 4: VmRSS ${rss0} -> ${rss1} KiB, VmHWM ${hwm0} -> ${hwm1} KiB"
[ $((hwm1 - hwm0)) -lt 30000 ] || fail "class 4: the server's peak memory grew by $((hwm1 - hwm0)) KiB"
[ -z "$(ls -A "$STATE/uploads")" ] || fail "class 4: a refused upload left $(ls -A "$STATE/uploads")"
curl -sf -H "Authorization: Bearer $OP" "$S/api/v1/fecs/fec01" >/dev/null || fail "class 4: others are served"
pass "class 4: 250 MB uploads and 300 chunked bodies without a token or right: 401/403 at the headers, memory flat"

# ---- class 14: what runs as root on a FEC needs the configure right ------------------------
gen() { sql "SELECT MAX(number) FROM generations WHERE fec='fec01'"; }
state() { { cat "$STORE/fecs/fec01/generation.json"; ls -R "$STORE/fecs"; } | sha256sum; }
script=$(printf '#!/bin/sh\nid > /tmp/owned\n' | base64 -w0)
try() {  # try WANT TOKEN METHOD PATH [BODY]
  local want=$1 tok=$2 path=$3 body=${4:-}
  code=$(curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer $tok" \
    -H "Content-Type: application/json" -d "$body" "$S$path")
  [ "$code" = "$want" ] || { cat "$T/body" >&2; fail "class 14: $path as ${tok:0:10}: HTTP $code, wanted $want"; }
  [ "$(wc -l <"$T/body")" -eq 1 ] || [ "$want" -lt 400 ] || fail "class 14: the refusal is not one line"
}
before=$(state); gen0=$(gen)
for tok in "$OP" "$CI" "$AG"; do
  try 403 "$tok" /api/v1/fecs/fec01/services/demo '{"set":["command=/bin/sh","args=-c id"]}'
  try 403 "$tok" /api/v1/fecs/fec01/services/demo '{"set":["user=root"]}'
  try 403 "$tok" /api/v1/fecs/fec01/services/demo '{"set":["env.LD_PRELOAD=/tmp/x.so"]}'
  try 403 "$tok" /api/v1/fecs/fec01/init/10-owned "{\"action\":\"add\",\"content_base64\":\"$script\"}"
  try 403 "$tok" /api/v1/fecs/global/init/10-owned "{\"action\":\"add\",\"content_base64\":\"$script\"}"
  try 403 "$tok" /api/v1/fecs/fec01/init/10-owned '{"action":"link"}'
  try 403 "$tok" /api/v1/fecs/fec01/init/10-owned '{"action":"remove"}'
  try 403 "$tok" /api/v1/fecs/fec01/persist '{"paths":["/root/.ssh"]}'
done
grep -q '"missing_right": "configure"' "$T/body" || fail "class 14: the refusal names the right: $(cat "$T/body")"
grep -q 'admin or maintainer' "$T/body" || fail "class 14: the refusal says who has it: $(cat "$T/body")"
[ "$(state)" = "$before" ] && [ "$(gen)" = "$gen0" ] || fail "class 14: a refused change changed the store"
[ ! -e "$STORE/fecs/global/init/10-owned" ] || fail "class 14: a refused global script was stored"
# the maintainer can; the operator still assigns and rolls back
try 200 "$MT" /api/v1/fecs/fec01/services/demo '{"set":["env.PORT=5064"]}'
try 200 "$MT" /api/v1/fecs/fec01/init/10-setup "{\"action\":\"add\",\"content_base64\":\"$script\"}"
try 200 "$MT" /api/v1/fecs/fec01/persist '{"paths":["/var/lib/ioc"]}'
# A rollback brings back an earlier generation's settings and scripts: an operator may roll
# back only where they stay as they are.
before=$(state); genm=$(gen)
try 422 "$OP" /api/v1/fecs/fec01/rollback "{\"to\":$gen0}"
grep -q 'needs the configure right' "$T/body" || fail "class 14: the rollback refusal says why: $(cat "$T/body")"
[ "$(state)" = "$before" ] && [ "$(gen)" = "$genm" ] || fail "class 14: an operator's refused rollback changed the store"
try 200 "$MT" /api/v1/fecs/fec01/rollback "{\"to\":$gen0}"
try 200 "$OP" /api/v1/fecs/fec01/assign '{"packages":["demo@1.0"]}'
try 200 "$OP" /api/v1/fecs/fec01/rollback "{\"to\":$((gen0 + 4))}"
try 200 "$MT" /api/v1/fecs/fec01/persist '{"paths":["/var/lib/ioc"]}'
[ "$(gen)" -eq $((gen0 + 7)) ] || fail "class 14: the maintainer's and operator's changes: generation $(gen)"
pass "class 14: service command/user/env, boot scripts, persist, and a rollback to other settings or scripts refused to operator, publisher, agent (no effect); maintainer can; operator assigns and rolls back among the same settings"

# ---- class 11: a zstd bomb and an over-quota snapshot ------------------------------------
make_bomb() {  # make_bomb FILE GIB DECLARE: RLE blocks of zeros, the frame size declared or not
  python3 - "$1" "$2" "$3" <<'PY'
import struct, sys
path, gib, declare = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
total = gib << 30
block = 128 << 10
with open(path, "wb") as f:
    f.write(struct.pack("<I", 0xFD2FB528))
    if declare:
        f.write(bytes([0b11000000, 0x40]))   # 8-byte content size, window 2^(10+8) = 256 KiB
        f.write(struct.pack("<Q", total))
    else:
        f.write(bytes([0b00000000, 0x40]))
    n = total // block
    for i in range(n):
        last = 1 if i == n - 1 else 0
        header = last | (1 << 1) | (block << 3)  # RLE block
        f.write(struct.pack("<I", header)[:3] + b"\0")
PY
}
upload() {  # upload FILE: HTTP status of a snapshot upload as fec01's agent
  local size sha
  size=$(stat -c %s "$1"); sha=$(sha256sum "$1" | cut -d' ' -f1)
  curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer $AG" -H "Content-Type: application/zstd" \
    --data-binary "@$1" "$S/api/v1/fecs/fec01/data?id=20261203T120000.000Z-00a$2&sha256=$sha&size=$size&generation=1&paths=/var/lib/ioc"
}
data_state() { find "$STORE/fecs/fec01" "$STATE/uploads" -type f | sort; }
before=$(data_state)
hwm0=$(kib VmHWM)
for declare in 1 0; do
  make_bomb "$T/bomb.zst" 16 $declare
  start=$(date +%s%N)
  code=$(upload "$T/bomb.zst" $declare)
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  [ "$code" = 422 ] || { cat "$T/body" >&2; fail "class 11: a 16 GiB bomb (declared=$declare): HTTP $code"; }
  grep -q "unpacks to more" "$T/body" || fail "class 11: the refusal says why: $(cat "$T/body")"
  echo "class 11: a $(stat -c %s "$T/bomb.zst")-byte snapshot unpacking to 16 GiB (size declared: $declare) refused in $ms ms"
  [ "$ms" -lt 20000 ] || fail "class 11: the bomb took $ms ms to refuse"
done
hwm1=$(kib VmHWM)
echo "class 11: VmHWM ${hwm0} -> ${hwm1} KiB"
[ $((hwm1 - hwm0)) -lt 50000 ] || fail "class 11: decoding the bomb grew the server's peak memory by $((hwm1 - hwm0)) KiB"
head -c 3000000 /dev/urandom >"$T/big.zst"
code=$(upload "$T/big.zst" 2)
[ "$code" = 422 ] && grep -q "quota" "$T/body" || { cat "$T/body" >&2; fail "class 11: over the quota: HTTP $code"; }
sleep 0.2  # the upload's folder goes when the server has sent the answer
[ "$(data_state)" = "$before" ] || fail "class 11: a refused snapshot left files: $(diff <(echo "$before") <(data_state))"
pass "class 11: zstd bombs (declared or not) refused quickly with bounded memory; over-quota refused at the headers; nothing kept"

# ---- class 7: refused requests do not grow the audit log ---------------------------------
rows0=$(sql "SELECT COUNT(*) FROM audit")
python3 - "${S#http://}" "$OP" <<'PY'
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
for token in (sys.argv[2], "wharf_" + "1" * 64, ""):
    c = http.client.HTTPConnection(host, int(port))
    for _ in range(2000):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        try:
            c.request("POST", "/api/v1/fecs/fec01/persist", body='{"paths":["/etc"]}', headers=headers)
            r = c.getresponse()
            r.read()
            assert r.status in (401, 403), r.status
            if r.getheader("Connection", "").lower() == "close":
                raise ConnectionResetError
        except (ConnectionError, http.client.HTTPException):
            c.close()
            c = http.client.HTTPConnection(host, int(port))
PY
rows1=$(sql "SELECT COUNT(*) FROM audit")
echo "class 7: 6000 refused requests added $((rows1 - rows0)) audit rows"
[ $((rows1 - rows0)) -le 8 ] || fail "class 7: 6000 refusals added $((rows1 - rows0)) audit rows"
curl -sf -H "Authorization: Bearer $ADMIN" "$S/api/v1/audit?limit=50" >"$T/audit"
python3 - "$T/audit" <<'PY' || fail "class 7: the refusals are counted"
import json, sys
log = json.load(open(sys.argv[1]))
refused = [e for e in log if e["action"] == "refused"]
assert sum(e["count"] for e in refused if e["actor"] == "op") >= 2000, refused
assert sum(e["count"] for e in refused if e["status"] == 401) >= 4000, refused
PY
# many kinds of refusal (a new FEC name each time): at most kRefusalRowsPerMinute rows a minute
python3 - "${S#http://}" "$OP" <<'PY'
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
c = http.client.HTTPConnection(host, int(port))
for i in range(1000):
    try:
        c.request("POST", f"/api/v1/fecs/x{i}/persist", body="{}", headers={"Authorization": "Bearer " + sys.argv[2]})
        c.getresponse().read()
    except (ConnectionError, http.client.HTTPException):
        c.close()
        c = http.client.HTTPConnection(host, int(port))
PY
rows2=$(sql "SELECT COUNT(*) FROM audit")
[ $((rows2 - rows1)) -le 210 ] || fail "class 7: 1000 refusals of different targets added $((rows2 - rows1)) rows"
pass "class 7: 6000 refusals (wrong role, bad token, no token): $((rows1 - rows0)) audit rows; 1000 distinct: $((rows2 - rows1))"

# retention: rows older than --audit-days and activations older than --heartbeat-days go
stop_server
python3 - "$DB" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
old = int(time.time()) - 100 * 86400
db.execute("INSERT INTO audit(time, actor, role, remote, action, target, detail, status) VALUES(?,?,?,?,?,?,?,?)",
           (old, "old", "admin", "", "gc", "", "", 200))
db.execute("INSERT INTO activations(fec, generation, time) VALUES('fec02', 1, ?)", (old - 10,))
db.execute("INSERT INTO activations(fec, generation, time) VALUES('fec02', 2, ?)", (old,))
db.commit()
PY
start_server "$STORE" --audit-days 30 --heartbeat-days 30
S=$SERVER_URL
[ "$(sql "SELECT COUNT(*) FROM audit WHERE actor='old'")" = 0 ] || fail "class 7: an audit row past --audit-days stayed"
[ "$(sql "SELECT COUNT(*) FROM activations WHERE fec='fec02'")" = 1 ] || fail "class 7: activations past --heartbeat-days"
[ "$(sql "SELECT generation FROM activations WHERE fec='fec02'")" = 2 ] || fail "class 7: a FEC's newest activation stays"
[ "$(sql "SELECT COUNT(*) FROM audit")" -gt 3 ] || fail "class 7: recent audit rows stay"
pass "class 7: retention: --audit-days and --heartbeat-days prune at start (and hourly)"

# ---- class 10: concurrent publishes of one name as two kinds of package --------------------
for round in 1 2 3; do
  name=clash$round
  for i in 1 2 3 4; do
    "$WHARF" pack "$T/src/v1" --name $name --version $i.0 --prefix /opt/$name --level 1 -o "$T/sw$round" >/dev/null
    "$WHARF" pack "$T/src/v1" --name $name --version $i.0 --prefix /opt/$name --level 1 --configuration \
      -o "$T/cf$round" >/dev/null
  done
  pids=()
  for i in 1 2 3 4; do
    for kind in sw cf; do
      ( rc=0; "$WHARF" publish "$T/$kind$round/$name-$i.0.tar.zst" --server "$S" --token "$CI" \
          >"$T/$kind$round-$i.out" 2>&1 || rc=$?; echo $rc >"$T/$kind$round-$i.rc" ) &
      pids+=($!)
    done
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  won=""
  for kind in sw cf; do
    ok=0
    for i in 1 2 3 4; do [ "$(cat "$T/$kind$round-$i.rc")" = 0 ] && ok=$((ok + 1)); done
    [ $ok -eq 0 ] || won="$won $kind:$ok"
  done
  homes=$(for area in software configuration; do
            d=$STORE/$area/$name; if [ -d "$d" ] && [ -n "$(ls "$d")" ]; then echo "$area"; fi; done | wc -l)
  [ "$homes" -eq 1 ] || fail "class 10: round $round: $name is published as $homes kinds (winners:$won)"
  case "$won" in " sw:4"|" cf:4") ;; *) cat "$T"/*"$round"-*.out >&2; fail "class 10: round $round: winners:$won";; esac
  grep -l "one name is one package" "$T"/*"$round"-*.out >/dev/null || fail "class 10: the losers are told why"
done
pass "class 10: 8 concurrent publishes of one name as software and as configuration: one kind wins, three rounds"

echo "api_hardening: all checks passed"
