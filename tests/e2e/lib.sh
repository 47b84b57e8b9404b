# Shared helpers of wharf's end-to-end tests. Source it; it needs $WHARF and $WHARF_AGENT
# (the binaries under test; ctest sets them) and makes $T, a scratch folder removed at exit.
set -euo pipefail

: "${WHARF:?set WHARF to the wharf binary}"
: "${WHARF_AGENT:?set WHARF_AGENT to the wharf-agent binary}"
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# With KEEP_T=1 and T set (the demo), the folder stays for people to look at.
if [ "${KEEP_T:-0}" != 1 ]; then
  T=$(mktemp -d /tmp/wharf-e2e.XXXXXX)
fi
mkdir -p "$T" && chmod 755 "$T"
NGINX_PID_FILE=""
SERVER_PID=""

cleanup() {
  # Process servers live in sessions of their own and outlive the agent that started them:
  # those of this test (their command lines name its folder) end with it.
  if pkill -TERM -f -- "$T/" 2>/dev/null; then
    for _ in $(seq 30); do pgrep -f -- "$T/" >/dev/null || break; sleep 0.1; done
    pkill -KILL -f -- "$T/" 2>/dev/null || true
  fi
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$NGINX_PID_FILE" ] && [ -f "$NGINX_PID_FILE" ]; then
    kill "$(cat "$NGINX_PID_FILE")" 2>/dev/null || true
  fi
  [ "${KEEP_T:-0}" = 1 ] && return
  chmod -R u+w "$T" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

# remove_tree DIR: also when wharf made its folders read-only (as a non-root user).
remove_tree() { chmod -R u+w "$1" 2>/dev/null || true; rm -rf "$1"; }

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }

# expect_exit CODE CMD...: runs CMD, fails unless it exits with CODE; its stderr is in $T/stderr.
expect_exit() {
  local want=$1; shift
  local got=0
  "$@" >"$T/stdout" 2>"$T/stderr" || got=$?
  [ "$got" -eq "$want" ] || { cat "$T/stdout" "$T/stderr" >&2; fail "exit $got, wanted $want: $*"; }
}

# expect_refused PATTERN CMD...: CMD must fail with exit 1 and one error line (progress
# lines may come before it) matching PATTERN.
expect_refused() {
  local pattern=$1; shift
  expect_exit 1 "$@"
  [ "$(grep -c 'error:' "$T/stderr")" -eq 1 ] || { cat "$T/stderr" >&2; fail "wanted one error line: $*"; }
  grep 'error:' "$T/stderr" | grep -Eq -- "$pattern" || { cat "$T/stderr" >&2; fail "error does not match /$pattern/"; }
}

# free_port: a TCP port on loopback that nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_heartbeat_listener LOG FIELD [--time]: a stand-in for the server's heartbeat route on
# a free port ($HB_PORT, process $HB_PID) that appends FIELD of each heartbeat to LOG
# (heartbeat_listener.py says how).
start_heartbeat_listener() {
  HB_PORT=$(free_port)
  python3 "$E2E_DIR/heartbeat_listener.py" "$HB_PORT" "$@" &
  HB_PID=$!
  wait_for "the heartbeat listener on port $HB_PORT" \
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $HB_PORT), 1)"
}

# start_nginx STORE: serves STORE on loopback; sets $STORE_URL and $NGINX_LOG (access log).
# $NGINX_EXTRA, when set, goes into the server block (e.g. a throttled location).
start_nginx() {
  local store=$1 port conf
  port=$(free_port)
  mkdir -p "$T/nginx"
  conf=$T/nginx/nginx.conf
  NGINX_PID_FILE=$T/nginx/nginx.pid
  NGINX_LOG=$T/nginx/access.log
  {
    [ "$(id -u)" -eq 0 ] && echo "user root;"
    cat <<CONF
worker_processes 1;
pid $NGINX_PID_FILE;
error_log $T/nginx/error.log;
events { worker_connections 512; }
http {
  access_log $NGINX_LOG;
  client_body_temp_path $T/nginx/body;
  proxy_temp_path $T/nginx/proxy;
  fastcgi_temp_path $T/nginx/fastcgi;
  uwsgi_temp_path $T/nginx/uwsgi;
  scgi_temp_path $T/nginx/scgi;
  sendfile on;
  server {
    listen 127.0.0.1:$port;
    root $store;
    location /.wharf { deny all; }
    ${NGINX_EXTRA:-}
  }
}
CONF
  } >"$conf"
  /usr/sbin/nginx -p "$T/nginx" -c "$conf" -e "$T/nginx/error.log" 2>/dev/null \
    || /usr/sbin/nginx -p "$T/nginx" -c "$conf"
  for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
  STORE_URL="http://127.0.0.1:$port"
}

# state_dir STORE: the server's state folder by default (signing key, records.db, uploads),
# a sibling of the store: STORE.state.
state_dir() { echo "${1%/}.state"; }

# start_server STORE [ARGS...]: runs `wharf serve` on a loopback port with a signing key in
# the server's state folder (made once); sets $SERVER_URL, $SERVER_PID, $SERVER_LOG.
start_server() {
  local store=$1 port state; shift
  state=$(state_dir "$store")
  [ -f "$state/signing.key" ] || "$WHARF" keygen --out "$state/signing" >/dev/null
  port=$(free_port)
  SERVER_LOG=$T/server.log
  "$WHARF" serve --store "$store" --listen "127.0.0.1:$port" "$@" 2>>"$SERVER_LOG" &
  SERVER_PID=$!
  SERVER_URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    curl -s -o /dev/null "$SERVER_URL/api/v1" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SERVER_LOG" >&2; fail "wharf serve did not start"; }
    sleep 0.05
  done
  fail "wharf serve did not answer on $SERVER_URL"
}

# stop_server [SIGNAL]: stops the running `wharf serve` (TERM by default, KILL for a crash).
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -"${1:-TERM}" "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# token NAME ROLE [FEC] STORE: a new API token, printed.
make_token() {
  local name=$1 role=$2 fec=$3 store=$4
  if [ -n "$fec" ]; then
    "$WHARF" token create "$name" --role "$role" --fec "$fec" --store "$store" 2>/dev/null
  else
    "$WHARF" token create "$name" --role "$role" --store "$store" 2>/dev/null
  fi
}

stop_nginx() {
  [ -f "$NGINX_PID_FILE" ] && kill "$(cat "$NGINX_PID_FILE")" 2>/dev/null || true
  for _ in $(seq 50); do [ -f "$NGINX_PID_FILE" ] || break; sleep 0.1; done
}

# The demo trees are a few MB; packed with 1 MiB frames they span several frames, as a real
# tree does with the default 8 MiB ones (for the tests of what is fetched frame by frame).
SMALL_FRAMES=(--frame-size 1048576)

# make_tree DIR VARIANT: a small EPICS-IOC-like install tree; VARIANT 1 or 2 differ the way
# a release does (a binary rebuilt, a file added, one removed, a config edited).
make_tree() {
  local dir=$1 variant=$2
  mkdir -p "$dir/bin" "$dir/db" "$dir/lib" "$dir/iocBoot/iocdemo" "$dir/empty"
  cp /bin/true "$dir/bin/demoApp"
  chmod 0755 "$dir/bin/demoApp"
  printf 'record(ai, "DEMO:T%s") { field(SCAN, "1 second") }\n' "$variant" >"$dir/db/demo.db"
  printf '#!../../bin/demoApp\ndbLoadRecords("db/demo.db")\niocInit\n' >"$dir/iocBoot/iocdemo/st.cmd"
  chmod 0755 "$dir/iocBoot/iocdemo/st.cmd"
  printf 'secret=%s\n' "$variant" >"$dir/db/private.cfg"
  chmod 0600 "$dir/db/private.cfg"
  # a file above SMALL_FRAMES's frame size, so that it spans several frames
  head -c 3000000 /usr/bin/bash >"$dir/lib/libdemo.so"
  printf 'build %s\n' "$variant" >>"$dir/lib/libdemo.so"
  ln -sf libdemo.so "$dir/lib/libdemo.so.1"
  if [ "$variant" = 1 ]; then
    echo "only in v1" >"$dir/db/old.db"
  else
    cp /bin/false "$dir/bin/demoTool"
    echo "only in v2" >"$dir/db/new.db"
  fi
}

# manifest DIR: one line per entry below DIR (type, mode less write bits, sha256 or link
# target), sorted; identical for a source tree and its installed copy.
manifest() {
  python3 - "$1" <<'PY'
import hashlib, os, stat, sys
root = sys.argv[1]
rows = []
for base, dirs, files in os.walk(root):
    for name in dirs + files:
        path = os.path.join(base, name)
        rel = os.path.relpath(path, root)
        st = os.lstat(path)
        mode = oct(stat.S_IMODE(st.st_mode) & 0o555)
        if stat.S_ISLNK(st.st_mode):
            rows.append(f"l {rel} -> {os.readlink(path)}")
        elif stat.S_ISDIR(st.st_mode):
            rows.append(f"d {mode} {rel}")
        else:
            h = hashlib.sha256(open(path, "rb").read()).hexdigest()
            rows.append(f"f {mode} {rel} {h}")
print("\n".join(sorted(rows)))
PY
}

# same_tree A B: fails with a diff unless the two trees have the same manifest.
same_tree() {
  diff <(manifest "$1") <(manifest "$2") >"$T/tree.diff" || { cat "$T/tree.diff" >&2; fail "trees differ: $1 $2"; }
}

# agent_generation ROOT: the generation number the agent under ROOT runs ("null" if none).
agent_generation() {
  "$WHARF_AGENT" status --root "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])'
}

# service_field ROOT SERVICE KEY: one field of `wharf-agent list --json` under ROOT ('' when absent).
service_field() {
  "$WHARF_AGENT" list --root "$1" --json | python3 -c "
import json, sys
rows = {r['name']: r for r in json.load(sys.stdin)}
v = rows.get('$2', {}).get('$3')
print('' if v is None else v)"
}

# wait_for DESCRIPTION COMMAND...: up to 10 s; on a time-out shows $RUN_ERR (a `wharf-agent run`
# log, when set) and fails.
wait_for() {
  local what=$1; shift
  for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done
  [ -n "${RUN_ERR:-}" ] && cat "$RUN_ERR" >&2
  fail "timed out: $what"
}
