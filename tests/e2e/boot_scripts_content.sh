#!/usr/bin/env bash
# Boot scripts by content (issue 18, acceptance 2): each version of a script is a blob
# fecs/<FEC|global>/init-sha256/<sha256> that generations name. A global script updated after
# FEC A got it: FEC B, wiped and synced again on a generation signed before the update, runs
# the old bytes; a new generation runs the new bytes; a rollback runs the old ones again.
# A blob altered in or removed from the store: the generation is not activated (sync exits 1,
# one line naming the script, the store's answer and the fix; the previous generation stays).
# gc removes the blobs no kept generation names and keeps the rest.
source "$(dirname "$0")/lib.sh"

cd "$T"
"$WHARF" keygen --out k >/dev/null
mkdir -p src/bin out scripts && printf '#!/bin/sh\necho app\n' >src/bin/app && chmod 755 src/bin/app
"$WHARF" pack src --name app --version 1 --prefix /opt/app -o out >/dev/null
"$WHARF" publish out/app-1.tar.zst --store store >/dev/null
ch() { "$WHARF" "$@" --store store --key k.key >/dev/null; }
gen_of() { python3 -c "import json; print(json.load(open('store/fecs/$1/generation.json'))['number'])"; }
sync_ok() { expect_exit 0 "$WHARF_AGENT" sync --root "$T/$1" --store "${2:-file://$T/store}" --fec "$1" --trust k.pub; }
# version V: a script that records which bytes ran ("V" and the generation) under the FEC's root.
version() { printf '#!/bin/sh\necho "%s $WHARF_GENERATION" >>"$WHARF_ROOT/ran"\n' "$1" >scripts/10-boot; }
last_ran() { tail -n 1 "$T/$1/ran" | cut -d' ' -f1; }

for f in feca fecb; do ch assign $f app@1; done
version old
old=$(sha256sum scripts/10-boot | cut -d' ' -f1)
"$WHARF" init add global scripts/10-boot --store store >/dev/null
for f in feca fecb; do ch init link $f 10-boot; done
signed_old=$(gen_of fecb)
sync_ok feca
[ "$(last_ran feca)" = old ] || fail "feca runs the script it was given: $(cat feca/ran)"
cmp scripts/10-boot "feca/var/lib/wharf/profiles/$(gen_of feca)/.init/$old" \
  || fail "the script is staged in the generation's profile by its sha256"

# The global script is updated: a new blob beside the old one; signed generations keep theirs.
cp scripts/10-boot scripts/10-boot.old
version new
new=$(sha256sum scripts/10-boot | cut -d' ' -f1)
"$WHARF" init add global scripts/10-boot --store store >/dev/null
[ -f "store/fecs/global/init-sha256/$old" ] && [ -f "store/fecs/global/init-sha256/$new" ] \
  && [ "$(readlink store/fecs/global/init/10-boot)" = "../../global/init-sha256/$new" ] \
  || fail "both versions stored by content, the name points at the newest: $(ls -l store/fecs/global/init store/fecs/global/init-sha256)"
[ "$(gen_of fecb)" = "$signed_old" ] || fail "updating a global script signs no generation"
remove_tree fecb
sync_ok fecb
[ "$(last_ran fecb)" = old ] || fail "fecb, wiped, synced on the generation signed before the update, runs: $(cat fecb/ran)"
# The same over HTTP (wharf serve), wiped again.
start_server "$T/store" --key "$T/k.key"
remove_tree fecb
sync_ok fecb "$SERVER_URL"
[ "$(last_ran fecb)" = old ] && [ "$(agent_generation fecb)" = "$signed_old" ] \
  || fail "fecb, wiped, synced from wharf serve, runs: $(cat fecb/ran)"
stop_server
pass "a global script updated after it was linked: a FEC wiped and synced again on the old generation runs the old bytes (store folder and wharf serve)"

ch init link fecb 10-boot
signed_new=$(gen_of fecb)
grep -q "\"path\": \"fecs/global/init-sha256/$new\"" store/fecs/fecb/generation.json || fail "the new generation names the new blob"
sync_ok fecb
[ "$(last_ran fecb)" = new ] && [ "$(tail -n 1 fecb/ran)" = "new $signed_new" ] || fail "the new generation runs the new bytes: $(cat fecb/ran)"
pass "a new generation (init link again) runs the new bytes"

ch rollback fecb --to "$signed_old"
rolled=$(gen_of fecb)
grep -q "\"path\": \"fecs/global/init-sha256/$old\"" store/fecs/fecb/generation.json || fail "the rollback names the old blob"
sync_ok fecb
[ "$(tail -n 1 fecb/ran)" = "old $rolled" ] || fail "the rollback runs the old bytes: $(cat fecb/ran)"
remove_tree fecb
sync_ok fecb
[ "$(tail -n 1 fecb/ran)" = "old $rolled" ] || fail "wiped, the rollback still runs the old bytes: $(cat fecb/ran)"
pass "rollback to the generation of the old script runs the old bytes (also on a wiped FEC)"

# A blob altered in the store: not activated, the previous generation stays current.
ch init link fecb 10-boot
next=$(gen_of fecb)
cp "store/fecs/global/init-sha256/$new" "$T/new.blob"
printf '#!/bin/sh\necho EVIL >>"$WHARF_ROOT/ran"\n' >"store/fecs/global/init-sha256/$new"
expect_refused "fecb: generation $next not activated \(generation $rolled stays\): boot script 10-boot \(fecs/global/init-sha256/$new\): file://$T/store/fecs/global/init-sha256/$new has other bytes .*the store was altered; put those exact bytes back in the store" \
  "$WHARF_AGENT" sync --root "$T/fecb" --store "file://$T/store" --fec fecb --trust k.pub
[ "$(agent_generation fecb)" = "$rolled" ] || fail "after a refused script the FEC runs $(agent_generation fecb), not $rolled"
! grep -q EVIL fecb/ran || fail "the altered script ran"
[ ! -e "fecb/var/lib/wharf/profiles/$next" ] && [ ! -e "fecb/var/lib/wharf/profiles/.$next.building" ] \
  || fail "a profile of the refused generation was left: $(ls -A fecb/var/lib/wharf/profiles)"
# ... and removed from the store.
rm "store/fecs/global/init-sha256/$new"
expect_refused "fecb: generation $next not activated \(generation $rolled stays\): boot script 10-boot \(fecs/global/init-sha256/$new\): .*no such file in the store.*put those exact bytes back" \
  "$WHARF_AGENT" sync --root "$T/fecb" --store "file://$T/store" --fec fecb --trust k.pub
[ "$(agent_generation fecb)" = "$rolled" ] || fail "after a missing script the FEC runs $(agent_generation fecb), not $rolled"
# A wiped FEC on that generation activates nothing.
remove_tree fecb
expect_refused "fecb: generation $next not activated: boot script 10-boot .*no such file in the store" \
  "$WHARF_AGENT" sync --root "$T/fecb" --store "file://$T/store" --fec fecb --trust k.pub
[ "$(agent_generation fecb)" = None ] && [ -z "$(ls -A fecb/var/lib/wharf/profiles)" ] \
  || fail "a wiped FEC activated (or kept a part of) a generation whose script is missing: $(ls -A fecb/var/lib/wharf/profiles)"
cp "$T/new.blob" "store/fecs/global/init-sha256/$new"
sync_ok fecb
[ "$(tail -n 1 fecb/ran)" = "new $next" ] || fail "with the blob back, the generation runs: $(cat fecb/ran)"
pass "a script blob altered in or removed from the store: sync exits 1 naming the script, the store and the fix; the previous generation stays current"

# gc: a global version nobody's generation names (added, then replaced before any link) goes;
# the versions that kept generations name stay.
printf '#!/bin/sh\necho unused\n' >scripts/10-boot
unused=$(sha256sum scripts/10-boot | cut -d' ' -f1)
"$WHARF" init add global scripts/10-boot --store store >/dev/null
cp "$T/new.blob" scripts/10-boot
"$WHARF" init add global scripts/10-boot --store store >/dev/null
expect_exit 0 "$WHARF" gc --store store
grep -q "^removed boot script fecs/global/init-sha256/$unused " "$T/stdout" || fail "gc reports the unnamed blob: $(cat "$T/stdout")"
[ ! -e "store/fecs/global/init-sha256/$unused" ] && [ -f "store/fecs/global/init-sha256/$old" ] \
  && [ -f "store/fecs/global/init-sha256/$new" ] || fail "gc: $(ls store/fecs/global/init-sha256)"
# Once no kept generation names the old script (three newer ones), gc removes it, and a
# rollback to a generation naming it is refused with the fix.
for i in 1 2 3; do ch init add fecb scripts/10-boot --timeout $((10 + i)); done
ch init link feca 10-boot; for i in 1 2 3; do ch init add feca scripts/10-boot --timeout $((10 + i)); done
expect_exit 0 "$WHARF" gc --store store
grep -q "^removed boot script fecs/global/init-sha256/$old " "$T/stdout" || fail "gc removes the old version: $(cat "$T/stdout")"
expect_refused "boot script 10-boot \(fecs/global/init-sha256/$old\) is no longer in the store; add it again" \
  "$WHARF" rollback fecb --to "$signed_old" --store store --key k.key
pass "gc removes the script blobs no kept generation names (reported), keeps the others; a rollback needing a removed one is refused"
# A boot with every store away: `run` runs the scripts staged in the active profile.
mv store store.away
lines=$(wc -l <fecb/ran)
RUN_ERR=$T/run.err
"$WHARF_AGENT" run --root "$T/fecb" --store "file://$T/store" --fec fecb --trust k.pub --interval 60 \
  >"$T/run.out" 2>"$RUN_ERR" &
RUN_PID=$!
trap 'kill ${RUN_PID:-} 2>/dev/null || true; cleanup' EXIT
wait_for "the boot scripts run at the start of run" eval '[ "$(wc -l <fecb/ran)" -gt "$lines" ]'
kill -TERM "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true
RUN_PID=""
[ "$(tail -n 1 fecb/ran)" = "new $next" ] || fail "the boot ran other bytes: $(cat fecb/ran)"
pass "a boot with no store runs the exact bytes staged in the active profile"
echo "boot_scripts_content: all checks passed"
