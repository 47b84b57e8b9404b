#!/usr/bin/env bash
# Keys and the server's state (issue 13, classes 12 and 13), through the real binaries:
# a private key others may read or write is refused wherever it is read; the server's state
# lives in STORE.state, never in the store, an old STORE/.wharf is moved there and keeps
# serving its tokens; `wharf serve` refuses a store holding a private key; neither wharf
# nor nginx serving the store ever hands out the key or the database.
source "$(dirname "$0")/lib.sh"
cd "$T"

make_tree src 1
"$WHARF" pack src --name demo --version 1.0 --prefix /opt/demo -o out >/dev/null
"$WHARF" keygen --out release >/dev/null
"$WHARF" publish out/demo-1.0.tar.zst --store store >/dev/null

# serve STORE [ARGS...]: `wharf serve` without start_server's key making; waits until it
# answers (exit 0) or has exited (exit 1, its stderr in $T/serve.err).
serve() {
  local store=$1; shift
  SERVER_URL="http://127.0.0.1:$(free_port)"
  "$WHARF" serve --store "$store" --listen "${SERVER_URL#http://}" "$@" 2>"$T/serve.err" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "$SERVER_URL/api/v1" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { wait "$SERVER_PID" || true; SERVER_PID=""; return 1; }
    sleep 0.05
  done
  fail "wharf serve neither answered nor stopped"
}
serve_refused() {  # serve_refused PATTERN STORE [ARGS...]
  local pattern=$1; shift
  serve "$@" && { stop_server; fail "wharf serve started: $*"; }
  grep -Eq -- "$pattern" "$T/serve.err" || { cat "$T/serve.err" >&2; fail "serve's error does not match /$pattern/"; }
}

# --- class 12: group- or world-accessible keys are refused, with the fix ---
for mode in 0640 0604 0620 0602 0660; do
  chmod $mode release.key
  expect_refused "release.key: .*\(mode $mode\); run .chmod 600 .*release.key., and make a new key" \
    "$WHARF" assign fec01 demo@1.0 --store store --key release.key
  [ ! -e store/fecs/fec01/generation.json ] || fail "assign with a mode $mode key wrote a generation"
done
chmod 0640 release.key
expect_refused "readable by its group \(mode 0640\)" "$WHARF" assign fec01 demo@1.0 --store store --key release.key
chmod 600 release.key
if [ "$(id -u)" -eq 0 ]; then
  chown 65534 release.key
  expect_refused "release.key: owned by uid 65534, not by this user" \
    "$WHARF" assign fec01 demo@1.0 --store store --key release.key
  chown 0 release.key
fi
"$WHARF" assign fec01 demo@1.0 --store store --key release.key >/dev/null
[ -e store/fecs/fec01/generation.json ] || fail "assign with a 0600 key"
"$WHARF" keygen --out fresh/keys/k >/dev/null
[ "$(stat -c %a fresh/keys)" = 700 ] && [ "$(stat -c %a fresh)" = 700 ] || fail "keygen's folders must be 0700"
[ "$(stat -c %a fresh/keys/k.key)" = 600 ] || fail "keygen's key must be 0600"

"$WHARF" keygen --out store.state/signing >/dev/null
[ "$(stat -c %a store.state)" = 700 ] || fail "the state folder keygen made is 0700"
for mode in 0640 0604; do
  chmod $mode store.state/signing.key
  serve_refused "signing.key: .*\(mode $mode\); run .chmod 600 " store
done
chmod 600 store.state/signing.key
# The TLS key is a private key too.
openssl req -x509 -newkey ed25519 -nodes -keyout tls.key -out tls.crt -days 1 -subj /CN=localhost 2>/dev/null
chmod 0644 tls.key
serve_refused "tls.key: readable by its group and others \(mode 0644\)" store --tls-cert tls.crt --tls-key tls.key
serve store || { cat "$T/serve.err" >&2; fail "serve with a 0600 key"; }
stop_server
pass "keys of mode 0640/0604/0620/0602/0660 or another owner refused by assign --key and serve (signing and TLS), 0600 accepted; keygen folders 0700"

# --- class 13: the state beside the store, never in it ---
[ ! -e store/.wharf/records.db ] && [ ! -e store/.wharf/signing.key ] || fail "state inside the store"
start_server "$T/store"
ADMIN=$(make_token admin admin "" store)
[ -f store.state/records.db ] || fail "records.db not in store.state"
[ "$(ls -A store/.wharf)" = lock ] || fail "the store's .wharf holds more than its lock: $(ls -A store/.wharf)"
[ "$(stat -c %a store.state)" = 700 ] || fail "store.state must be 0700"
grep -q "state in $T/store.state" "$SERVER_LOG" || fail "serve names its state folder"

# Nothing reachable by URL is the key or the database: every file under the store, and
# the tricks that would climb out of it, through wharf serve and through nginx.
secret_free() {  # secret_free URL_BASE WHAT
  local base=$1 what=$2 p code
  (cd store && find . -type f -o -type l) | sed 's#^\.##' >"$T/paths"
  for p in /.wharf/records.db /.wharf/signing.key /.wharf/lock /../store.state/signing.key \
           /../store.state/records.db /%2e%2e/store.state/signing.key /software/%2e%2e/%2e%2e/store.state/records.db \
           /software/..%2f..%2fstore.state%2fsigning.key /.%2e/store.state/signing.key /..%2fstore.state/records.db \
           "/store.state/signing.key" "/%2e%2e%2fstore.state%2fsigning.key"; do
    echo "$p" >>"$T/paths"
  done
  while read -r p; do
    code=$(curl -s --path-as-is -o "$T/body" -w '%{http_code}' "$base$p")
    if grep -aq -e 'PRIVATE KEY' -e 'SQLite format 3' "$T/body" || cmp -s "$T/body" store.state/signing.key; then
      fail "$what served a secret at $p ($code)"
    fi
  done <"$T/paths"
  [ "$(wc -l <"$T/paths")" -gt 15 ] || fail "too few paths tried"
}
secret_free "$SERVER_URL" "wharf serve"
start_nginx "$T/store"
secret_free "$STORE_URL" "nginx"
stop_nginx
pass "state in STORE.state (0700), the store's .wharf holds only its lock; no path through wharf serve or nginx returns the key or the database"

# A private key inside the served tree stops the server, whatever its name or form.
stop_server
refuse_inside() {  # refuse_inside FILE: serve refuses while FILE is in the store
  serve_refused "refusing to serve $T/store: it holds a private key at $T/store/$1.*move it out" store
  rm -f "store/$1"
  serve store || { cat "$T/serve.err" >&2; fail "serve after removing $1"; }
  stop_server
}
cp release.key store/software/release.key; refuse_inside software/release.key
echo "not really a key" >store/fecs/fec01/old.key; refuse_inside fecs/fec01/old.key
cp tls.key store/fecs/fec01/notes.txt; refuse_inside fecs/fec01/notes.txt
openssl pkey -in release.key -outform DER -out store/software/demo/blob.bin; refuse_inside software/demo/blob.bin
ln -s "$T/store.state/signing.key" store/software/current; refuse_inside software/current
cp store.state/signing.key store/.wharf/signing.key  # an old server's key, left beside the new one
serve_refused "store/.wharf/signing.key and $T/store.state/signing.key both exist" store
rm store/.wharf/signing.key
serve_refused "the state folder $T/store/private lies inside the store" store --state "$T/store/private"
[ ! -e store/private ] || fail "a refused --state inside the store was made"
expect_refused "lies inside the store" "$WHARF" token create x --role admin --store store --state "$T/store/.wharf"
[ ! -e store/.wharf/records.db ] || fail "token create put the database inside the store"
cp release.key store/fecs/signing
serve_refused "it holds a private key at $T/store/fecs/signing" store --key "$T/store/fecs/signing"
rm -f store/fecs/signing
pass "serve refuses a store holding a private key (*.key, PEM under another name, DER, a link to the signing key, a second one in .wharf) or the state folder"

# --- migration: a store of an older wharf, its state in STORE/.wharf ---
# legacy_token STORE NAME ROLE: a token as an older wharf made it, its database in
# STORE/.wharf (today's commands refuse a state inside the store, so it is made beside and
# put there by hand).
legacy_token() {
  local store=$1 name=$2 role=$3
  rm -rf "$T/legacy.state"
  "$WHARF" token create "$name" --role "$role" --store "$store" --state "$T/legacy.state" 2>/dev/null
  mkdir -p "$store/.wharf"
  mv "$T/legacy.state"/* "$store/.wharf/"
  rm -rf "$T/legacy.state"
}
mkdir old
"$WHARF" publish out/demo-1.0.tar.zst --store old >/dev/null
"$WHARF" keygen --out old/.wharf/signing >/dev/null
cp old/.wharf/signing.pub old-signing.pub
OLD_ADMIN=$(legacy_token old admin admin)
serve old || { cat "$T/serve.err" >&2; fail "serve of an old store"; }
[ "$(grep -c "moved the server's state from $T/old/.wharf to $T/old.state" "$T/serve.err")" = 1 ] \
  || { cat "$T/serve.err" >&2; fail "one line says the state moved"; }
[ "$(ls -A old/.wharf)" = lock ] || fail "left in old/.wharf: $(ls -A old/.wharf)"
[ -f old.state/records.db ] && cmp -s old.state/signing.pub old-signing.pub || fail "the state moved whole"
[ "$(stat -c %a old.state)" = 700 ] || fail "old.state must be 0700"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $OLD_ADMIN" "$SERVER_URL/api/v1/fecs")
[ "$code" = 200 ] || fail "the old token after the move: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${OLD_ADMIN}x" "$SERVER_URL/api/v1/fecs")
[ "$code" = 401 ] || fail "a wrong token after the move: $code"
stop_server
serve old || fail "second start"
grep -q "moved" "$T/serve.err" && fail "moved twice"
stop_server
"$WHARF" token list --store old >/dev/null 2>&1 || fail "token list with the default state"
# State in both places: refused, nothing moved.
cp old.state/records.db old/.wharf/records.db
serve_refused "old/.wharf/records.db and $T/old.state/records.db both exist" old
expect_refused "both exist" "$WHARF" token list --store old
rm old/.wharf/records.db
# token commands move it too.
mkdir old2 && "$WHARF" publish out/demo-1.0.tar.zst --store old2 >/dev/null
TOK=$(legacy_token old2 ci publisher)
"$WHARF" token list --store old2 >"$T/list" 2>"$T/list.err"
grep -q "moved the server's state" "$T/list.err" && grep -q '^ci ' "$T/list" || fail "token list moves the state and finds the token"
[ "$(ls -A old2/.wharf)" = lock ] || fail "token list left state in old2/.wharf"
pass "an old STORE/.wharf is moved to STORE.state once, with one line; its tokens and key still serve; state in two places refused"

# Across file systems (a store that is its own mount): copied, verified, then removed.
SHM=$(mktemp -d /dev/shm/wharf-keys.XXXXXX 2>/dev/null || true)
if [ -n "$SHM" ] && [ "$(stat -c %d "$SHM")" != "$(stat -c %d "$T")" ]; then
  trap 'rm -rf "$SHM"; cleanup' EXIT
  "$WHARF" publish out/demo-1.0.tar.zst --store "$SHM/store" >/dev/null
  "$WHARF" keygen --out "$SHM/store/.wharf/signing" >/dev/null
  XTOK=$(legacy_token "$SHM/store" admin admin)
  serve "$SHM/store" --state "$T/xstate" || { cat "$T/serve.err" >&2; fail "serve across file systems"; }
  grep -q "moved the server's state" "$T/serve.err" || fail "no move line across file systems"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $XTOK" "$SERVER_URL/api/v1/fecs")
  [ "$code" = 200 ] || fail "the token after a move across file systems: $code"
  [ "$(ls -A "$SHM/store/.wharf")" = lock ] || fail "left after the copy: $(ls -A "$SHM/store/.wharf")"
  [ "$(stat -c %a "$T/xstate/signing.key")" = 600 ] || fail "the copied key keeps mode 0600"
  stop_server
  pass "moved across file systems (tmpfs to $T), the key still 0600, the token still valid"
else
  echo "skip - no second file system for the cross-device move"
fi
