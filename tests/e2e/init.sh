#!/usr/bin/env bash
# Boot scripts (issue 5, init): run after activation in name order with WHARF_FEC,
# WHARF_GENERATION, WHARF_ROOT and WHARF_STORE; a timeout kills a hanging one; a failing one
# is reported with its exit code and last lines; "stop" skips the rest; a global script
# linked by two FECs is stored once; a script altered in the store is refused.
source "$(dirname "$0")/lib.sh"

cd "$T"
"$WHARF" keygen --out k >/dev/null
mkdir -p src/bin out && printf '#!/bin/sh\necho app\n' >src/bin/app && chmod 755 src/bin/app
"$WHARF" pack src --name app --version 1 --prefix /opt/app -o out >/dev/null
"$WHARF" publish out/app-1.tar.zst --store store >/dev/null
ch() { "$WHARF" "$@" --store store --key k.key >/dev/null; }
for f in fec01 fec02 fec03; do ch assign $f app@1; done

mkdir -p scripts
step() { printf '#!/bin/sh\necho "%s ran"\nprintf "%s " >>"$WHARF_ROOT/order"\n%s\n' "$1" "$1" "$2" >scripts/$1; }
step 00-common ""
step 05-first 'env | grep -E "^WHARF_(FEC|GENERATION|ROOT|STORE)=" | sort >"$WHARF_ROOT/env"'
step 20-order ""
step 30-slow 'sleep 10'
step 40-fail 'echo "boom: no such device"; exit 3'
step 50-after ""
"$WHARF" init add global scripts/00-common --store store >/dev/null
for f in fec01 fec02; do ch init link $f 00-common; done
for s in 05-first 20-order 40-fail 50-after; do ch init add fec01 scripts/$s; done
ch init add fec01 scripts/30-slow --timeout 1

common=$(sha256sum scripts/00-common | cut -d' ' -f1)
[ -f "store/fecs/global/init-sha256/$common" ] && [ "$(ls store/fecs/global/init-sha256)" = "$common" ] \
  && [ "$(readlink store/fecs/global/init/00-common)" = "../../global/init-sha256/$common" ] \
  && [ -L store/fecs/fec01/init/00-common ] && [ -L store/fecs/fec02/init/00-common ] \
  || fail "the global script is one file (by content), linked from each FEC"
[ "$(grep -c "\"path\": \"fecs/global/init-sha256/$common\"" store/fecs/fec01/generation.json store/fecs/fec02/generation.json | grep -c ':1')" = 2 ] \
  || fail "both generations name the one global copy"
pass "a global script linked by two FECs is stored once"

start=$(date +%s)
expect_exit 0 "$WHARF_AGENT" sync --root "$T/fec01" --store "file://$T/store" --fec fec01 --trust k.pub
took=$(( $(date +%s) - start ))
[ "$took" -lt 8 ] || fail "the hanging script was not killed at its 1 s timeout (sync took $took s)"
[ "$(cat fec01/order)" = "00-common 05-first 20-order 30-slow 40-fail 50-after " ] || fail "order: $(cat fec01/order)"
grep -q "init script 30-slow timed out and was killed" "$T/stderr" || fail "timeout report: $(cat "$T/stderr")"
grep -q "init script 40-fail failed with exit 3; last output: boom: no such device" "$T/stderr" || fail "failure report: $(cat "$T/stderr")"
gen=$(python3 -c "import json; print(json.load(open('store/fecs/fec01/generation.json'))['number'])")
cat >"$T/env.want" <<EOF
WHARF_FEC=fec01
WHARF_GENERATION=$gen
WHARF_ROOT=$T/fec01
WHARF_STORE=file://$T/store
EOF
diff "$T/env.want" fec01/env || fail "the scripts' environment"
grep -q "== .* generation $gen: 40-fail" fec01/var/lib/wharf/init.log && grep -q "boom: no such device" fec01/var/lib/wharf/init.log \
  || fail "output in the agent's init.log"
expect_exit 0 "$WHARF_AGENT" status --root "$T/fec01"
grep -q "30-slow *TIMED OUT" "$T/stdout" && grep -q "40-fail *FAILED exit 3" "$T/stdout" && grep -q "| boom: no such device" "$T/stdout" \
  || fail "status shows the scripts: $(cat "$T/stdout")"
pass "scripts run in name order with the WHARF_ environment; a 1 s timeout kills the hanging one; exit 3 and its last line are reported (stderr, init.log, status)"

# "stop": a failing script skips the ones after it.
ch init remove fec01 30-slow --on-failure stop
rm fec01/order
expect_exit 0 "$WHARF_AGENT" sync --root "$T/fec01" --store "file://$T/store" --fec fec01 --trust k.pub
[ "$(cat fec01/order)" = "00-common 05-first 20-order 40-fail " ] || fail "stop policy: $(cat fec01/order)"
expect_exit 0 "$WHARF_AGENT" status --root "$T/fec01"
grep -q "50-after *SKIPPED" "$T/stdout" || fail "status shows the skipped script: $(cat "$T/stdout")"
pass "on-failure stop: the scripts after a failing one are skipped and shown as such"

# A script altered in the store after it was signed is refused; nothing runs, and the
# generation is not activated (boot scripts by content, issue 18).
ch init link fec03 00-common
printf '#!/bin/sh\nprintf "EVIL " >>"$WHARF_ROOT/order"\n' >"store/fecs/global/init-sha256/$common"
expect_refused "fec03: generation [0-9]+ not activated: boot script 00-common \(fecs/global/init-sha256/$common\): .* has other bytes .* than the signed generation names .*the store was altered; put those exact bytes back" \
  "$WHARF_AGENT" sync --root "$T/fec03" --store "file://$T/store" --fec fec03 --trust k.pub
[ ! -e fec03/order ] && [ ! -e fec03/var/lib/wharf/current ] || fail "a tampered script ran, or its generation became current"
pass "a script changed in the store after signing is refused, does not run, and its generation is not activated"
# The same through the server's API (the global script restored first).
cp scripts/00-common "store/fecs/global/init-sha256/$common"
start_server "$T/store" --key "$T/k.key"
# Boot scripts run as root: they need the configure right (admin, maintainer), which
# neither a publisher nor an operator has.
OP=$(make_token op operator "" "$T/store")
CI=$(make_token ci publisher "" "$T/store")
expect_refused "lacks the right to configure" "$WHARF" init add fec02 scripts/20-order --server "$SERVER_URL" --token "$CI"
expect_refused "lacks the right to configure" "$WHARF" init add fec02 scripts/20-order --server "$SERVER_URL" --token "$OP"
OP=$(make_token mt maintainer "" "$T/store")
expect_exit 0 "$WHARF" init add fec02 scripts/20-order --server "$SERVER_URL" --token "$OP" --timeout 5
grep -q "^fec02: init scripts in generation [0-9]*: 00-common 20-order (on failure: continue)$" "$T/stdout" \
  || fail "init add over the API: $(cat "$T/stdout")"
expect_exit 0 "$WHARF_AGENT" sync --root "$T/fec02" --store "$SERVER_URL" --fec fec02 --trust k.pub
[ "$(cat fec02/order)" = "00-common 20-order " ] || fail "fec02 runs what the API added: $(cat fec02/order)"
printf '#!/bin/sh\nprintf "shared " >>"$WHARF_ROOT/order"\n' >scripts/60-shared
expect_exit 0 "$WHARF" init add global scripts/60-shared --server "$SERVER_URL" --token "$OP"
cmp scripts/60-shared store/fecs/global/init/60-shared || fail "a global script added through the API"
expect_exit 0 "$WHARF" init link fec02 60-shared --server "$SERVER_URL" --token "$OP"
rm fec02/order
expect_exit 0 "$WHARF_AGENT" sync --root "$T/fec02" --store "$SERVER_URL" --fec fec02 --trust k.pub
[ "$(cat fec02/order)" = "00-common 20-order shared " ] || fail "fec02 runs the global script linked through the API: $(cat fec02/order)"
stop_server
pass "wharf init through the server: operators add scripts (publishers are refused); the FEC runs them"
echo "init: all checks passed"
