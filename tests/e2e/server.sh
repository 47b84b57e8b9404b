#!/usr/bin/env bash
# `wharf serve` end to end: the whole demo through the server's API and HTTP only (publish,
# assign, agents syncing from the server and reporting heartbeats, rollback, fleet status,
# history, audit), the CLI's output the same on --server as on --store, store files with
# Range and ETag, /metrics checked by promtool, --rebuild-db, TLS, and nginx in front.
source "$(dirname "$0")/lib.sh"

mkdir -p "$T/src" "$T/out"
make_tree "$T/src/v1" 1
make_tree "$T/src/v2" 2
"$WHARF" pack "$T/src/v1" --name demo-ioc --version 1.0 --prefix /opt/epics/demo -o "$T/out" >/dev/null
"$WHARF" pack "$T/src/v2" --name demo-ioc --version 2.0 --prefix /opt/epics/demo -o "$T/out" >/dev/null
mkdir -p "$T/cfg" && echo "EPICS_CA_ADDR_LIST=10.0.0.255" >"$T/cfg/site.env"
"$WHARF" pack "$T/cfg" --name site-config --version 7 --prefix /etc/epics -o "$T/out" >/dev/null

STORE=$T/store
mkdir -p "$STORE"
start_server "$STORE"
ADMIN=$(make_token admin admin "" "$STORE")
CI=$(make_token ci publisher "" "$STORE")
OP=$(make_token operator operator "" "$STORE")
AG1=$(make_token fec01 agent fec01 "$STORE")
AG2=$(make_token fec02 agent fec02 "$STORE")
[ ${#ADMIN} -eq 70 ] || fail "a token is wharf_ and 64 hex digits: $ADMIN"
"$WHARF" token list --store "$STORE" | grep -q "^fec01 *agent *fec01" || fail "token list"
expect_exit 2 "$WHARF" token create x --role root --store "$STORE"
grep -q "expected admin, publisher, operator, maintainer or agent" "$T/stderr" || fail "bad role: $(cat "$T/stderr")"
expect_exit 2 "$WHARF" token create x --role agent --store "$STORE"
grep -q "pass --fec NAME" "$T/stderr" || fail "agent token without a FEC: $(cat "$T/stderr")"
expect_exit 1 "$WHARF" token create ci --role publisher --store "$STORE"
grep -q "a token named ci exists; revoke it first" "$T/stderr" || fail "duplicate token: $(cat "$T/stderr")"
for listen in nonsense 127.0.0.1:99999 "example.org:80"; do
  expect_exit 2 "$WHARF" serve --store "$STORE" --listen "$listen"
  grep -q "expected IP:PORT" "$T/stderr" || fail "--listen $listen: $(cat "$T/stderr")"
done
pass "tokens made on the server host, listed; bad roles, names and --listen refused with advice"

# --- publish through the API (streamed multipart) ---
export WHARF_SERVER=$SERVER_URL
for p in demo-ioc-1.0 demo-ioc-2.0 site-config-7; do
  expect_exit 0 env WHARF_TOKEN="$CI" "$WHARF" publish "$T/out/$p.tar.zst"
  grep -q "published" "$T/stdout" || fail "publish $p: $(cat "$T/stdout")"
done
expect_exit 0 env WHARF_TOKEN="$CI" "$WHARF" publish "$T/out/demo-ioc-1.0.tar.zst"
grep -q "already published (same bytes)" "$T/stdout" || fail "republish must be a no-op"
cmp "$STORE/software/demo-ioc/2.0/demo-ioc-2.0.tar.zst" "$T/out/demo-ioc-2.0.tar.zst" \
  || fail "the published archive differs from the upload"
[ -z "$(ls -A "$STORE.state/uploads")" ] || fail "uploads left in the staging folder"
pass "publish over the API: versions visible, same bytes, republish a no-op, staging empty"

# --- assign over the API; the server signs ---
export WHARF_TOKEN=$OP
expect_exit 0 "$WHARF" assign fec01 demo-ioc@1.0 site-config@7
grep -q "fec01: assigned generation 1: demo-ioc@1.0 site-config@7" "$T/stdout" || fail "assign: $(cat "$T/stdout")"
expect_exit 0 "$WHARF" assign fec02 demo-ioc@1.0
cp "$STORE.state/signing.pub" "$T/trusted.pub"
for f in fec01 fec02; do
  tok=$AG1; [ $f = fec02 ] && tok=$AG2
  mkdir -p "$T/$f/etc/wharf"
  cat >"$T/$f/etc/wharf/agent.toml" <<EOF
fec = "$f"
store = "$SERVER_URL"
trust = ["/etc/wharf/trusted.pub"]
server = "$SERVER_URL"
token_file = "/etc/wharf/token"
EOF
  cp "$T/trusted.pub" "$T/$f/etc/wharf/trusted.pub"
  echo "$tok" >"$T/$f/etc/wharf/token"
  expect_exit 0 env -u WHARF_TOKEN -u WHARF_SERVER "$WHARF_AGENT" sync --root "$T/$f"
  grep -Eq "warning|error" "$T/stderr" && { cat "$T/stderr" >&2; fail "$f: sync warned"; }
done
same_tree "$T/src/v1" "$T/fec01/opt/epics/demo"
[ "$(cat "$T/fec01/etc/epics/site.env")" = "EPICS_CA_ADDR_LIST=10.0.0.255" ] || fail "config package"
pass "two FECs synced generation 1 from the server"

# --- fleet status from heartbeats ---
expect_exit 0 "$WHARF" status --json
python3 - "$T/stdout" <<'PY' || fail "fleet status after sync: $(cat "$T/stdout")"
import json, sys
rows = {r["fec"]: r for r in json.load(open(sys.argv[1]))}
for f in ("fec01", "fec02"):
    r = rows[f]
    assert r["wanted"] == 1 and r["running"] == 1 and r["state"] == "ok", r
    assert r["last_heartbeat"] and r["heartbeat_age_seconds"] <= 60, r
PY
pass "fleet status: wanted 1, running 1, heartbeats fresh"

# A heartbeat's activity ("syncing: N of M bytes" while a sync runs) shows after the state,
# control characters stripped; the next heartbeat without one (idle) clears it.
curl -sf -o /dev/null -H "Authorization: Bearer $(cat "$T/fec01/etc/wharf/token")" \
  -H 'Content-Type: application/json' -X POST "$SERVER_URL/api/v1/fecs/fec01/heartbeat" \
  --data '{"generation": 1, "activity": "syncing: 1048576 of \u001b[31m3145728 bytes"}' || fail "heartbeat with an activity"
expect_exit 0 "$WHARF" status
grep -A1 '^fec01 ' "$T/stdout" | tail -1 | grep -Eq '^ +syncing: 1048576 of \[31m3145728 bytes$' \
  || fail "wharf status shows the activity under the FEC: $(cat "$T/stdout")"
expect_exit 0 "$WHARF" status fec01 --json
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); assert s['status']['activity'] == 'syncing: 1048576 of [31m3145728 bytes', s" \
  "$T/stdout" || fail "activity in the JSON: $(cat "$T/stdout")"
expect_exit 0 env -u WHARF_TOKEN -u WHARF_SERVER "$WHARF_AGENT" sync --root "$T/fec01"
expect_exit 0 "$WHARF" status --json
python3 -c "import json,sys; r={r['fec']: r for r in json.load(open(sys.argv[1]))}; assert r['fec01']['activity'] == '', r" \
  "$T/stdout" || fail "the activity stays after an idle heartbeat: $(cat "$T/stdout")"
pass "a heartbeat's activity shows in wharf status (after the state) and in the JSON, cleared when idle"

# --- upgrade, then roll back in one step ---
T_BEFORE_UPGRADE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sleep 1.1
expect_exit 0 "$WHARF" assign fec01 demo-ioc@2.0
expect_exit 0 "$WHARF" status fec01 --json
grep -q '"state": "updating"' "$T/stdout" || fail "a FEC behind its generation shows as updating"
expect_exit 0 env -u WHARF_TOKEN -u WHARF_SERVER "$WHARF_AGENT" sync --root "$T/fec01"
same_tree "$T/src/v2" "$T/fec01/opt/epics/demo"
sleep 1.1
expect_exit 0 "$WHARF" rollback fec01
grep -q "rolled back in generation 3: demo-ioc@1.0 site-config@7" "$T/stdout" || fail "rollback: $(cat "$T/stdout")"
expect_exit 0 env -u WHARF_TOKEN -u WHARF_SERVER "$WHARF_AGENT" sync --root "$T/fec01"
same_tree "$T/src/v1" "$T/fec01/opt/epics/demo"
pass "upgrade to 2.0 and one-step rollback through the API"

# --- history: what ran on fec01 at a time ---
expect_exit 0 "$WHARF" history fec01 --at "$T_BEFORE_UPGRADE" --json
python3 - "$T/stdout" <<'PY' || fail "history --at: $(cat "$T/stdout")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["running"]["generation"] == 1 and "demo-ioc@1.0" in j["running"]["packages"], j
PY
expect_exit 0 "$WHARF" history fec01 --json
python3 - "$T/stdout" <<'PY' || fail "history: $(cat "$T/stdout")"
import json, sys
j = json.load(open(sys.argv[1]))
assert [g["number"] for g in j["generations"]] == [1, 2, 3], j
assert [a["generation"] for a in j["activations"]] == [3, 2, 1], j
PY
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
expect_exit 0 "$WHARF" history fec01 --at "$NOW"
grep -q "running generation 3" "$T/stdout" || fail "history --at now: $(cat "$T/stdout")"
pass "history: generations, activations, and what ran at a given time"

# --- the CLI prints the same on --server as on --store ---
for cmd in "show fec01" "show fec01 --json" "list" "list --json" "list --packages" "list --packages --json"; do
  # shellcheck disable=SC2086
  "$WHARF" $cmd >"$T/remote.out"
  # shellcheck disable=SC2086
  env -u WHARF_SERVER -u WHARF_TOKEN "$WHARF" $cmd --store "$STORE" >"$T/local.out"
  diff "$T/local.out" "$T/remote.out" || fail "'wharf $cmd' differs between --store and --server"
done
expect_refused "fec09 has no generation" "$WHARF" show fec09
pass "show and list print the same through the server as on the store folder"

# --- audit ---
expect_exit 0 "$WHARF" audit --json
python3 - "$T/stdout" <<'PY' || fail "audit: $(cat "$T/stdout")"
import json, sys
log = json.load(open(sys.argv[1]))
acts = [(e["actor"], e["action"], e["target"]) for e in log]
assert ("ci", "publish", "demo-ioc@2.0") in acts, acts
assert ("operator", "rollback", "fec01") in acts, acts
assert all(e["remote"] == "127.0.0.1" for e in log), log
PY
pass "audit log: who published and rolled back, from where"

# --- store files over HTTP: Range, multiple ranges, ETag, HEAD, private files ---
A=$SERVER_URL/software/demo-ioc/1.0/demo-ioc-1.0.tar.zst
SRC=$T/out/demo-ioc-1.0.tar.zst
SIZE=$(stat -c %s "$SRC")
curl -sf -r 100-199 "$A" -o "$T/part" && cmp "$T/part" <(tail -c +101 "$SRC" | head -c 100) || fail "single range"
code=$(curl -s -o /dev/null -w '%{http_code}' -r "$SIZE-" "$A"); [ "$code" = 416 ] || fail "range past the end: $code"
curl -s -D "$T/h" -r 0-9,20-29 "$A" -o "$T/multi"
grep -qi "content-type: multipart/byteranges" "$T/h" || fail "two ranges: multipart"
[ "$(grep -c 'Content-Range: bytes' "$T/multi")" = 2 ] || fail "two parts"
ETAG=$(curl -sI "$A" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
[ -n "$ETAG" ] || fail "no ETag"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $ETAG" "$A"); [ "$code" = 304 ] || fail "If-None-Match: $code"
curl -sI "$A" | grep -qi "content-length: $SIZE" || fail "HEAD length"
for p in /.wharf/records.db /.wharf/signing.key /.wharf/lock /software/ /fecs/fec01; do
  code=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "$SERVER_URL$p")
  [ "$code" = 404 ] || fail "$p answered $code"
done
pass "Range (single, multiple, 416), ETag/304, HEAD; no private file or folder served"

# --- metrics ---
curl -sf "$SERVER_URL/metrics" >"$T/metrics"
promtool check metrics <"$T/metrics" || fail "promtool rejects /metrics"
grep -q '^wharf_publishes_total 3$' "$T/metrics" || fail "publish count"
grep -q '^wharf_fecs{state="ok"} 2$' "$T/metrics" || fail "FECs by state: $(grep wharf_fecs "$T/metrics")"
grep -q '^wharf_fec_heartbeat_age_seconds{fec="fec01"}' "$T/metrics" || fail "heartbeat age"
grep -q 'wharf_http_requests_total{route="static",code="200"}' "$T/metrics" || fail "requests by route"
pass "/metrics passes promtool: requests, bytes, publishes, FECs by state, heartbeat age"

# --- agent daemon: heartbeats on a timer, back-off while the server is away ---
stop_server
env -u WHARF_SERVER -u WHARF_TOKEN "$WHARF_AGENT" run --root "$T/fec02" --interval 1 --heartbeat 1 >"$T/run.out" 2>"$T/run.err" &
RUN_PID=$!
sleep 3
kill -0 $RUN_PID || fail "the agent stopped when the server went away"
[ "$(grep -c 'heartbeat not delivered' "$T/run.err")" = 1 ] || fail "one warning while away: $(cat "$T/run.err")"
kill -TERM $RUN_PID; wait $RUN_PID || fail "run must exit 0 on SIGTERM"
pass "agent run keeps syncing while the server is away, warns once"

# --- rebuild the database: the generation index comes back from the store ---
cp "$STORE.state/records.db" "$T/records.before"
echo "not a database" >"$STORE.state/records.db"
rm -f "$STORE.state/records.db-wal" "$STORE.state/records.db-shm"
"$WHARF" serve --store "$STORE" --listen 127.0.0.1:1 >/dev/null 2>"$T/broken.err" &
pid=$!; wait $pid && fail "a damaged database must stop the server"
grep -q "rebuild-db" "$T/broken.err" || fail "the error names --rebuild-db: $(cat "$T/broken.err")"
start_server "$STORE" --rebuild-db
# Tokens lived only in the damaged database: they are made again.
ADMIN=$(make_token admin admin "" "$STORE")
CI=$(make_token ci publisher "" "$STORE")
OP=$(make_token operator operator "" "$STORE")
make_token fec02 agent fec02 "$STORE" >"$T/fec02/etc/wharf/token"
curl -sf -H "Authorization: Bearer $ADMIN" "$SERVER_URL/api/v1/fecs/fec01/history" >"$T/hist"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert [g['number'] for g in j['generations']]==[1,2,3], j" "$T/hist" \
  || fail "generations re-indexed: $(cat "$T/hist")"
ls "$STORE.state/" | grep -q "records.db.broken-" || fail "the damaged database is kept aside"
stop_server
pass "--rebuild-db: damaged database moved aside, generations re-indexed from the store"

# --- TLS ---
openssl req -x509 -newkey ed25519 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" -days 2 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null \
  || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" -days 2 \
       -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
port=$(free_port)
"$WHARF" serve --store "$STORE" --listen "127.0.0.1:$port" --tls-cert "$T/tls.crt" --tls-key "$T/tls.key" 2>>"$T/tls.log" &
SERVER_PID=$!
for _ in $(seq 100); do curl -s --cacert "$T/tls.crt" -o /dev/null "https://127.0.0.1:$port/api/v1" && break; sleep 0.05; done
curl -sf --cacert "$T/tls.crt" "https://127.0.0.1:$port/api/v1" | grep -q '"service": "wharf"' || { cat "$T/tls.log" >&2; fail "https API"; }
expect_exit 0 env WHARF_CA_FILE="$T/tls.crt" "$WHARF" list --server "https://127.0.0.1:$port" --token "$ADMIN"
grep -q "^fec01 " "$T/stdout" || fail "CLI over https"
curl -s -o /dev/null "http://127.0.0.1:$port/api/v1" && fail "plain http on the TLS port"
stop_server
pass "--tls-cert/--tls-key: HTTPS for the API and the CLI"

# --- nginx in front (packaging/nginx-wharf.conf): store files from nginx, API proxied ---
start_server "$STORE"
NGINX_PORT=$(free_port)
mkdir -p "$T/nginx"
NGINX_PID_FILE=$T/nginx/nginx.pid
sed -e "s#listen 80;#listen 127.0.0.1:$NGINX_PORT;#" -e "s#/srv/wharf/store#$STORE#" \
    -e "s#127.0.0.1:8080#${SERVER_URL#http://}#" "$E2E_DIR/../../packaging/nginx-wharf.conf" >"$T/nginx/site.conf"
{
  [ "$(id -u)" -eq 0 ] && echo "user root;"
  cat <<CONF
worker_processes 1;
pid $NGINX_PID_FILE;
error_log $T/nginx/error.log;
events { worker_connections 256; }
http {
  access_log $T/nginx/access.log;
  client_body_temp_path $T/nginx/body; proxy_temp_path $T/nginx/proxy;
  fastcgi_temp_path $T/nginx/fastcgi; uwsgi_temp_path $T/nginx/uwsgi; scgi_temp_path $T/nginx/scgi;
  include $T/nginx/site.conf;
}
CONF
} >"$T/nginx/nginx.conf"
/usr/sbin/nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log"
FRONT=http://127.0.0.1:$NGINX_PORT
for _ in $(seq 50); do curl -s -o /dev/null "$FRONT/api/v1" && break; sleep 0.1; done
"$WHARF" pack "$T/src/v2" --name demo-ioc --version 3.0 --prefix /opt/epics/demo -o "$T/out" >/dev/null
expect_exit 0 "$WHARF" publish "$T/out/demo-ioc-3.0.tar.zst" --server "$FRONT" --token "$CI"
expect_exit 0 "$WHARF" assign fec02 demo-ioc@3.0 --server "$FRONT" --token "$OP"
sed -i "s#http://127.0.0.1:[0-9]*#$FRONT#g" "$T/fec02/etc/wharf/agent.toml"
expect_exit 0 env -u WHARF_SERVER -u WHARF_TOKEN "$WHARF_AGENT" sync --root "$T/fec02"
same_tree "$T/src/v2" "$T/fec02/opt/epics/demo"
grep -q "GET /software/demo-ioc/3.0/demo-ioc-3.0.tar.zst" "$T/nginx/access.log" || fail "nginx served the archive"
grep -q "POST /api/v1/fecs/fec02/heartbeat" "$T/nginx/access.log" || { echo "front $FRONT"; cat "$T/fec02/etc/wharf/agent.toml" "$T/stderr"; fail "heartbeat through nginx"; }
mkdir -p "$STORE/fecs/fec02/data" && echo '{}' >"$STORE/fecs/fec02/data/latest.json"
for p in /.wharf/records.db /.wharf/signing.key /fecs/fec02/data/latest.json; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$FRONT$p"); [ "$code" = 404 ] || [ "$code" = 403 ] || fail "nginx served $p ($code)"
done
rm -r "$STORE/fecs/fec02/data"
pass "behind nginx: files from nginx, API proxied (publish, assign, heartbeat), private files (state, persistent data) refused"

# A dev version on a FEC shows in the fleet status (its heartbeat says so), until dropped.
mkdir -p "$T/devtree/bin" && echo dev >"$T/devtree/bin/tool"
expect_exit 0 "$WHARF" dev-deploy "$T/devtree" --name demo-ioc --prefix /opt/epics/demo --root "$T/fec02"
expect_exit 0 env -u WHARF_SERVER -u WHARF_TOKEN "$WHARF_AGENT" sync --root "$T/fec02"
expect_exit 0 "$WHARF" status fec02 --server "$FRONT" --token "$OP"
grep -q "DEV demo-ioc@dev runs in place of version 3.0" "$T/stdout" || fail "status shows the dev version: $(cat "$T/stdout")"
expect_exit 0 "$WHARF_AGENT" drop-dev demo-ioc --root "$T/fec02"
expect_exit 0 env -u WHARF_SERVER -u WHARF_TOKEN "$WHARF_AGENT" sync --root "$T/fec02"
expect_exit 0 "$WHARF" status fec02 --server "$FRONT" --token "$OP" --json
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); assert s['status']['dev'] == [], s" "$T/stdout" \
  || fail "the dev mark stays after drop-dev: $(cat "$T/stdout")"
pass "wharf status shows a FEC's dev version from its heartbeats, and stops after drop-dev"
echo "server: all checks passed"
