#!/usr/bin/env bash
# Dev versions (issue 5): `wharf dev-deploy` packs a tree as version dev and installs it
# straight on a FEC, never through the store: into a FEC folder (--root, in-process) or over
# ssh into `wharf-agent install-dev`. It replaces the generation's version until the next
# generation or `wharf-agent drop-dev`; status marks it; its services are not started; a
# sync of the same generation keeps it, a new one replaces it and leaves nothing behind.
# Bad streams, names and prefixes are refused with the FEC unchanged, and a kill at any step
# of install-dev or drop-dev leaves the old or the new state whole.
source "$(dirname "$0")/lib.sh"

cd "$T"
"$WHARF" keygen --out k >/dev/null
mk() {  # mk DIR TEXT: a tree whose bin/run prints TEXT and waits, as a service does
  mkdir -p "$1/bin" "$1/etc"
  printf '#!/bin/sh\necho "%s"\nexec sleep 1000\n' "$2" >"$1/bin/run"
  chmod 755 "$1/bin/run"
  echo "$2" >"$1/etc/version"
}
mk app1 "app 1"; mk app2 "app 2"; mk other1 "other 1"; mk dev "app dev"; mk dev0 "app dev0"; mk tool "tool dev"
printf '[a]\ncommand = "bin/run"\nholdoff = 1\n' | tee app1/services.toml app2/services.toml dev/services.toml >/dev/null
printf '[adev]\ncommand = "bin/run"\n' >>dev/services.toml  # one the generation never had
printf '[b]\ncommand = "bin/run"\nholdoff = 1\n' >other1/services.toml
mkdir empty
pack() { "$WHARF" pack "$1" --name "$2" --version "$3" --prefix "$4" -o out >/dev/null; }
pack app1 app 1 /opt/app; pack app2 app 2 /opt/app; pack other1 other 1 /opt/other
"$WHARF" publish out/*.tar.zst --store store >/dev/null
ch() { "$WHARF" "$@" --store store --key k.key >/dev/null; }
ch assign fec01 app@1 other@1
ch assign fec02 app@1
ch assign fec03 app@1
agent_sync() { "$WHARF_AGENT" sync --root "$T/$1" --store "file://$T/store" --fec "$1" --trust k.pub; }
for f in fec01 fec02 fec03; do agent_sync $f >/dev/null 2>&1 || fail "first sync of $f"; done
F=$T/fec01
W=$F/var/lib/wharf
deploy() { "$WHARF" dev-deploy "$@"; }
# dev_json ROOT EXPR: a Python expression over the "dev" list of `wharf-agent status --json`
dev_json() {
  "$WHARF_AGENT" status --root "$1" --json | python3 -c "import json, sys; dev = json.load(sys.stdin)['dev']; print($2)"
}
dev_profiles() { ls "$1/var/lib/wharf/profiles" | grep -c -- '-dev-' || true; }
dev_packages() { ls "$1/var/lib/wharf/packages/$2" 2>/dev/null | grep -c '^dev-' || true; }

# --- dev-deploy into a FEC folder ---
expect_exit 0 deploy dev --name app --prefix /opt/app --root "$F"
grep -q "^fec01: app@dev installed at /opt/app in place of app 1 of generation 1 " "$T/stdout" \
  || fail "dev-deploy output: $(cat "$T/stdout")"
same_tree "$F/opt/app" dev
same_tree "$F/opt/other" other1
[ "$(readlink "$W/current")" = profiles/1-dev-1 ] || fail "current: $(readlink "$W/current")"
expect_exit 0 "$WHARF_AGENT" status --root "$F"
grep -Eq "^DEV  app  replaces 1 at /opt/app \(installed [0-9T:Z-]+, sha256 [0-9a-f]{8}; until the next generation or wharf-agent drop-dev app; its services are not started\)$" "$T/stdout" \
  || fail "status does not mark the dev version: $(cat "$T/stdout")"
[ "$(dev_json "$F" '[(d["name"], d["version"], d["replaces"], d["prefix"]) for d in dev]')" = "[('app', 'dev', '1', '/opt/app')]" ] \
  || fail "status --json dev list: $(dev_json "$F" dev)"
pass "dev-deploy --root: the prefix holds the dev tree; status says DEV (text and --json)"

# --- the supervisor leaves a dev version's services down ---
"$WHARF_AGENT" run --root "$F" --store "file://$T/store" --fec fec01 --trust k.pub --interval 1 >run.out 2>run.err &
RUN_PID=$!
trap 'kill $RUN_PID 2>/dev/null || true; wait $RUN_PID 2>/dev/null || true; cleanup' EXIT
field() { service_field "$F" "$@"; }
RUN_ERR=$PWD/run.err
running() { [ "$(field "$1" state)" = running ]; }
wait_for "b running" running b
sleep 1.5  # a sync and a reconcile more
[ -z "$(field a state)" ] && [ -z "$(field adev state)" ] || fail "a dev version's service was started: $(field a state) $(field adev state)"
grep -q "fec01: app is a dev version here: its services are not started" run.err || fail "run says why a is down: $(cat run.err)"
expect_refused "the services of dev versions \(app\) are not started" "$WHARF_AGENT" procserv --root "$F" --name a --from-generation
pass "run starts other's service b but none of app's while app is a dev version, and says so"

B=$(field b pid)
expect_exit 0 "$WHARF_AGENT" drop-dev app --root "$F"
wait_for "a started again from app 1" running a
"$WHARF_AGENT" logs a --root "$F" | grep -q "app 1" || fail "a runs app 1"
A=$(field a pid)
expect_exit 0 deploy dev --name app --prefix /opt/app --root "$F"
wait_for "a stopped for the dev version" eval '! running a'
kill -0 "$A" 2>/dev/null && fail "a's child $A still runs under a dev version"
[ "$(field b pid)" = "$B" ] || fail "b was restarted by a dev version of app"
pass "drop-dev starts app 1's service again; a new dev version stops it; b is left alone (PID $B)"
kill -TERM $RUN_PID
wait $RUN_PID || fail "run must exit 0 on SIGTERM"
trap cleanup EXIT

# --- a sync of the same generation keeps it; drop-dev goes back ---
expect_exit 0 agent_sync fec01
grep -q "generation 1 is current; nothing to do" "$T/stdout" || fail "same-generation sync: $(cat "$T/stdout")"
same_tree "$F/opt/app" dev
[ "$(dev_json "$F" 'len(dev)')" = 1 ] || fail "the dev mark is gone after a sync of the same generation"
pass "a sync of the same generation keeps the dev version"

expect_exit 0 "$WHARF_AGENT" drop-dev app --root "$F"
grep -q "^fec01: dropped the dev version of app: app 1 of generation 1 is back at /opt/app$" "$T/stdout" \
  || fail "drop-dev output: $(cat "$T/stdout")"
same_tree "$F/opt/app" app1
[ "$(readlink "$W/current")" = profiles/1 ] || fail "current after drop-dev: $(readlink "$W/current")"
expect_exit 0 "$WHARF_AGENT" status --root "$F"
grep -q "^DEV" "$T/stdout" && fail "status still says DEV: $(cat "$T/stdout")"
[ "$(dev_json "$F" 'len(dev)')" = 0 ] || fail "status --json still lists a dev version"
[ "$(dev_profiles "$F")" = 0 ] && [ "$(dev_packages "$F" app)" = 0 ] || fail "drop-dev left a dev profile or package"
pass "drop-dev brings back app 1's files and clears the mark; nothing of the dev version is left"

# --- a new generation replaces the dev version ---
expect_exit 0 deploy dev --name app --prefix /opt/app --root "$F"
ch assign fec01 app@2
expect_exit 0 agent_sync fec01
grep -q "fec01: the dev version of app is gone: generation 2 runs its own version" "$T/stderr" \
  || fail "the sync says the dev version is gone: $(cat "$T/stderr")"
same_tree "$F/opt/app" app2
[ "$(dev_json "$F" 'len(dev)')" = 0 ] || fail "a new generation keeps the dev mark"
[ "$(dev_profiles "$F")" = 0 ] && [ "$(dev_packages "$F" app)" = 0 ] || fail "a dev profile or package is left: $(ls "$W/profiles" "$W/packages/app")"
pass "a new generation (app 2) replaces the dev version; no dev profile or package is left"

# --- a package the generation does not assign ---
expect_exit 0 deploy tool --name tool --prefix /opt/tools/tool --root "$F"
grep -q "at /opt/tools/tool beside generation 2, which does not have it" "$T/stdout" || fail "added: $(cat "$T/stdout")"
same_tree "$F/opt/tools/tool" tool
[ "$(readlink "$F/opt/tools/tool")" = ../../var/lib/wharf/current/tool ] || fail "tool's prefix link"
expect_exit 0 "$WHARF_AGENT" status --root "$F"
grep -q "^DEV  tool  added (generation 2 does not have it) at /opt/tools/tool" "$T/stdout" || fail "status: $(cat "$T/stdout")"
expect_exit 0 "$WHARF_AGENT" drop-dev tool --root "$F"
[ ! -e "$F/opt/tools/tool" ] && [ ! -L "$F/opt/tools/tool" ] || fail "drop-dev left tool's prefix link"
same_tree "$F/opt/app" app2
pass "a dev version of a package the generation lacks gets its own prefix link; drop-dev removes it"

# --- over ssh ---
cat >fake-ssh <<'EOF'
#!/bin/sh
# ssh as far as wharf uses it: the host, then one command for the remote shell, run here.
echo "$1" >>"$FAKE_SSH_LOG"
shift
exec sh -c "$*"
EOF
chmod 755 fake-ssh
export FAKE_SSH_LOG=$T/ssh.log
R2="$T/fec 02"  # a space: the remote command quotes the root
mv fec02 "$R2"
expect_exit 0 deploy dev --name app --prefix /opt/app --fec fec02.example --ssh "$T/fake-ssh" \
  --remote-agent "$WHARF_AGENT" --remote-root "$R2"
grep -q "^fec02: app@dev installed at /opt/app in place of app 1" "$T/stdout" || fail "the FEC's answer comes back: $(cat "$T/stdout")"
[ "$(cat ssh.log)" = fec02.example ] || fail "ssh was given the host: $(cat ssh.log)"
same_tree "$R2/opt/app" dev
# The default agent name, found on the FEC's PATH, and WHARF_SSH instead of --ssh.
expect_exit 0 env PATH="$(dirname "$WHARF_AGENT"):$PATH" WHARF_SSH="$T/fake-ssh" "$WHARF" dev-deploy dev0 --name app \
  --prefix /opt/app --fec fec02.example --remote-root "$R2" --json
python3 -c "import json, sys; j = json.load(open(sys.argv[1])); assert j['action'] == 'install-dev' and j['replaces'] == '1', j" "$T/stdout" \
  || fail "--json through ssh: $(cat "$T/stdout")"
same_tree "$R2/opt/app" dev0
pass "dev-deploy --fec: the stream goes through ssh into install-dev on the FEC; its answer comes back"

expect_refused "overlaps app at /opt/app" deploy tool --name tool --prefix /opt/app/tool --fec fec02 --ssh "$T/fake-ssh" \
  --remote-agent "$WHARF_AGENT" --remote-root "$R2"
expect_exit 2 deploy tool --name tool --prefix /opt/tool --fec fec02 --ssh "$T/fake-ssh" \
  --remote-agent "$WHARF_AGENT --no-such-flag" --remote-root "$R2"
printf '#!/bin/sh\necho "ssh: connect to host $1 port 22: Connection refused" >&2\nexit 255\n' >down-ssh
chmod 755 down-ssh
expect_refused "fec02: ssh failed \(exit 255\); check that .* fec02 true. works" deploy tool --name tool --prefix /opt/tool \
  --fec fec02 --ssh "$T/down-ssh"
expect_refused "fec02: .no-wharf-agent. could not run there \(exit 127\)" deploy tool --name tool --prefix /opt/tool \
  --fec fec02 --ssh "$T/fake-ssh" --remote-agent no-wharf-agent
expect_refused "cannot run .$T/no-ssh.: No such file" deploy tool --name tool --prefix /opt/tool --fec fec02 --ssh "$T/no-ssh"
same_tree "$R2/opt/app" dev0
pass "the remote's exit codes come back: 1 (refused), 2 (usage); ssh's 255, a missing agent and a missing ssh are named"

# --- bad inputs ---
make_stream() {  # make_stream DIR NAME PREFIX OUT: the stream dev-deploy sends
  local out=$T/stream-pack
  remove_tree "$out"
  "$WHARF" pack "$1" --name "$2" --version dev --prefix "$3" -o "$out" >/dev/null
  printf 'wharf-dev 1 %s %s\n' "$(stat -c %s "$out/$2-dev.package.json")" "$(stat -c %s "$out/$2-dev.tar.zst")" >"$4"
  cat "$out/$2-dev.package.json" "$out/$2-dev.tar.zst" >>"$4"
}
make_stream dev app /opt/app good.stream
snapshot() {  # what must not change on a refusal
  { readlink "$W/current"; ls "$W/profiles" "$W/packages/app" "$W/tmp"; manifest "$F/opt/app"; } 2>&1
}
before=$(snapshot)
install_dev() { "$WHARF_AGENT" install-dev --name app --root "$F" "$@"; }
expect_refused "app is not a dev version here \(dev versions: there are none\); nothing to drop" \
  "$WHARF_AGENT" drop-dev app --root "$F"
expect_refused "fresh: no generation is active here.*run .wharf-agent sync. first" \
  "$WHARF_AGENT" install-dev --name app --root "$T/fresh" <good.stream
[ ! -e fresh ] || fail "install-dev on a FEC that never synced wrote into it"
expect_refused "the dev stream ended after [0-9]+ of the [0-9]+ archive bytes \(cut off\?\)" install_dev < <(head -c -20 good.stream)
python3 - good.stream garbled.stream <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[-200] ^= 0xFF  # a byte of the archive
open(sys.argv[2], "wb").write(data)
PY
expect_refused "app@dev: the archive's size or sha256 differs from its package.json" install_dev <garbled.stream
expect_refused "bytes follow the archive" install_dev < <(cat good.stream; echo more)
expect_refused "not a dev stream" install_dev < <(echo "GET / HTTP/1.1"; cat good.stream)
expect_refused "nothing came on stdin" install_dev </dev/null
expect_refused "the package.json sent is app's, not tool's" "$WHARF_AGENT" install-dev --name tool --root "$F" <good.stream
make_stream dev app /opt/elsewhere moved.stream
expect_refused "fec01: generation 2 has app at /opt/app, not /opt/elsewhere; deploy its dev version with --prefix /opt/app" \
  install_dev <moved.stream
expect_refused "fec01: tool at /opt/other overlaps other at /opt/other" deploy tool --name tool --prefix /opt/other --root "$F"
mkdir -p "$F/opt/mine"
expect_refused "$F/opt/mine exists and is not wharf's link; move it away" deploy tool --name mine --prefix /opt/mine --root "$F"
expect_exit 2 deploy dev --name app --prefix /opt/app
grep -q "say where: --fec HOST (over ssh) or --root DIR" "$T/stderr" || fail "dev-deploy without a FEC: $(cat "$T/stderr")"
[ "$(snapshot)" = "$before" ] || { diff <(echo "$before") <(snapshot) >&2; fail "a refused install changed the FEC"; }
expect_exit 0 install_dev --dry-run <good.stream
grep -q "^dry run: fec01: app@dev would go to /opt/app in place of app 2" "$T/stdout" || fail "dry run: $(cat "$T/stdout")"
[ "$(snapshot)" = "$before" ] || fail "a dry run changed the FEC"
pass "refused, the FEC unchanged: drop-dev of a non-dev name, a FEC that never synced, cut, garbled, padded and foreign streams, another prefix, an overlap, a path that is not wharf's; --dry-run changes nothing"

# --- a kill at any step leaves the old or the new state whole ---
which_tree() {  # PATH OLD NEW: "old" or "new", whichever PATH holds exactly
  local m; m=$(manifest "$1")
  [ "$m" = "$(manifest "$2")" ] && { echo old; return; }
  [ "$m" = "$(manifest "$3")" ] && { echo new; return; }
  fail "$1 holds neither $2 nor $3"
}
# crash_loop BASE PREFIX OLD NEW DEV_PROFILES DEV_PACKAGES CMD...: kills CMD (run on a copy
# of BASE, @ROOT@ replaced by the copy) at every abort point it passes; each time the prefix
# holds OLD or NEW whole, a sync recovers without leftovers, and CMD then completes, leaving
# DEV_PROFILES dev profiles and DEV_PACKAGES dev entries (folder, index) of the package.
crash_loop() {
  local base=$1 prefix=$2 old=$3 new=$4 profiles=$5 packages=$6 name point state code; shift 6
  name=$(basename "$prefix")
  run_on() { local root=$1; shift; "${@//@ROOT@/$root}"; }
  remove_tree trace && cp -a "$base" trace
  WHARF_TEST_TRACE_POINTS=1 run_on "$T/trace" "$@" >/dev/null 2>trace.err || { cat trace.err >&2; fail "traced: $*"; }
  mapfile -t points < <(sed -n 's/^abort-point: //p' trace.err | awk '!seen[$0]++')
  [ "${#points[@]}" -ge 4 ] || fail "only ${#points[@]} abort points: ${points[*]}"
  for point in "${points[@]}"; do
    remove_tree cut && cp -a "$base" cut
    code=0
    WHARF_TEST_ABORT_AT="$point" run_on "$T/cut" "$@" >/dev/null 2>&1 || code=$?
    [ "$code" -eq 137 ] || fail "not killed at $point (exit $code)"
    state=$(which_tree "cut$prefix" "$old" "$new")
    "$WHARF_AGENT" sync --root "$T/cut" --store "file://$T/store" --fec fec03 --trust k.pub >/dev/null 2>"$T/stderr" \
      || { cat "$T/stderr" >&2; fail "sync after a kill at $point"; }
    [ "$(which_tree "cut$prefix" "$old" "$new")" = "$state" ] || fail "the sync after a kill at $point changed the state"
    [ "$("$WHARF_AGENT" status --root cut --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["half_done"]))')" = 0 ] \
      || fail "leftovers after a kill at $point and a sync"
    if [ "$state" = old ]; then
      run_on "$T/cut" "$@" >/dev/null 2>"$T/stderr" || { cat "$T/stderr" >&2; fail "$* after a kill at $point"; }
    fi
    [ "$(which_tree "cut$prefix" "$old" "$new")" = new ] || fail "not on the new state after a kill at $point"
    [ "$(dev_profiles cut)" = "$profiles" ] && [ "$(dev_packages cut "$name")" = "$packages" ] \
      || fail "after a kill at $point: $(ls cut/var/lib/wharf/profiles cut/var/lib/wharf/packages/"$name")"
    pass "killed at $point: $state state whole; a sync recovers; the rest completes"
  done
}
make_stream dev0 app /opt/app dev0.stream
make_stream tool tool /opt/tool tool.stream
cp -a fec03 base-dev0
"$WHARF_AGENT" install-dev --name app --root "$T/base-dev0" <dev0.stream >/dev/null || fail "install dev0"
cp -a fec03 base-dev
"$WHARF_AGENT" install-dev --name app --root "$T/base-dev" <good.stream >/dev/null || fail "install dev"
crash_loop fec03 /opt/app app1 dev 1 2 sh -c "exec \"$WHARF_AGENT\" install-dev --name app --root @ROOT@ <good.stream"
crash_loop base-dev0 /opt/app dev0 dev 1 2 sh -c "exec \"$WHARF_AGENT\" install-dev --name app --root @ROOT@ <good.stream"
crash_loop base-dev /opt/app dev app1 0 0 "$WHARF_AGENT" drop-dev app --root @ROOT@
crash_loop fec03 /opt/tool empty tool 1 2 sh -c "exec \"$WHARF_AGENT\" install-dev --name tool --root @ROOT@ <tool.stream"
echo "dev: all checks passed"
