#!/usr/bin/env bash
# Issue 13, class 6: a FEC's agent token puts terminal escape sequences (an OSC that
# retitles the window and rings the bell, a clear screen, a C1 CSI) into every field a
# heartbeat carries. `wharf status` and `wharf status FEC` print them escaped, never raw;
# `--json` returns them exactly.
source "$(dirname "$0")/lib.sh"

mkdir -p "$T/src" "$T/out"
make_tree "$T/src/v1" 1
"$WHARF" pack "$T/src/v1" --name demo --version 1.0 --prefix /opt/demo -o "$T/out" >/dev/null
STORE=$T/store
mkdir -p "$STORE"
start_server "$STORE"
CI=$(make_token ci publisher "" "$STORE")
OP=$(make_token op operator "" "$STORE")
AG1=$(make_token fec01 agent fec01 "$STORE")
S=$SERVER_URL
"$WHARF" publish "$T/out/demo-1.0.tar.zst" --server "$S" --token "$CI" >/dev/null
"$WHARF" assign fec01 demo@1.0 --server "$S" --token "$OP" >/dev/null

python3 - "$T/beat.json" <<'PY'
import json, sys
evil = "\x1b]0;pwned\x07\x1b[2J\u009b31m\r"
json.dump({"generation": 1, "error": "boom " + evil, "agent_version": "1.0" + evil,
           "services": [{"name": "ioc" + evil, "state": "up" + evil, "pid": 1}],
           "dev": [{"name": "demo", "replaces": "1.0" + evil}]}, open(sys.argv[1], "w"))
PY
curl -sf -H "Authorization: Bearer $AG1" --data-binary @"$T/beat.json" "$S/api/v1/fecs/fec01/heartbeat" >/dev/null \
  || fail "the heartbeat is accepted (its text is data)"

raw_free() {  # no ESC, BEL, CR or UTF-8 C1 byte pair in the file
  python3 - "$1" <<'PY' || fail "raw control characters in $1: $(od -c "$1" | head)"
import sys
b = open(sys.argv[1], "rb").read()
bad = [c for c in b"\x1b\x07\r" if c in b] + (["C1"] if b"\xc2\x9b" in b else [])
sys.exit(1 if bad else 0)
PY
}
for args in "" "fec01"; do
  expect_exit 0 "$WHARF" status $args --server "$S" --token "$OP"
  raw_free "$T/stdout"
  raw_free "$T/stderr"
  grep -qF 'boom \x1b]0;pwned\x07\x1b[2J\u009b31m\x0d' "$T/stdout" || fail "status $args shows the error escaped: $(cat "$T/stdout")"
  grep -qF 'version 1.0\x1b]0;pwned' "$T/stdout" || fail "status $args shows the dev version escaped: $(cat "$T/stdout")"
done
pass "wharf status and wharf status FEC print a heartbeat's escape sequences escaped"

expect_exit 0 "$WHARF" status fec01 --server "$S" --token "$OP" --json
python3 - "$T/stdout" <<'PY' || fail "--json is exact: $(cat "$T/stdout")"
import json, sys
j = json.load(open(sys.argv[1]))
s = j["status"] if "status" in j else j
evil = "\x1b]0;pwned\x07\x1b[2J\u009b31m\r"
assert s["last_error"] == "boom " + evil, s
PY
pass "wharf status --json returns the heartbeat's text exactly"

# Errors printed from a server's answer are escaped too: a FEC name the server refuses
# comes back in its message.
"$WHARF" history "$(printf 'x\033]0;pwned\007')" --server "$S" --token "$OP" >"$T/stdout" 2>"$T/stderr" \
  && fail "a FEC name with control characters is refused"
grep -qF 'x\x1b]0;pwned\x07' "$T/stderr" || fail "the refusal names it escaped: $(cat "$T/stderr")"
raw_free "$T/stdout"
raw_free "$T/stderr"
pass "errors naming hostile input print it escaped"
