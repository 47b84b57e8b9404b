#!/usr/bin/env bash
# The agent updating itself (docs/agent.md, "Updating the agent"), with a real server:
# 1. wharf-agent 2 (this build, packed as the package wharf-agent) assigned to a running
#    FEC: the launcher hands over to it, the services keep their PIDs.
# 2. a broken wharf-agent 3 (exits 1 at start): the FEC is back on 2 by itself within the
#    health deadline, says why in its heartbeat, and the services keep their PIDs.
source "$(dirname "$0")/lib.sh"

mkdir -p "$T/out"
mk_pkg() {  # mk_pkg NAME SERVICE
  local dir=$T/src/$1
  mkdir -p "$dir/bin"
  printf '#!/bin/sh\nexec sleep 1000\n' >"$dir/bin/run"
  chmod 755 "$dir/bin/run"
  "$WHARF" pack "$dir" --name "$1" --version 1 --prefix "/opt/$1" -o "$T/out" --service "$2=bin/run" >/dev/null
}
mk_pkg alpha a
mk_pkg beta b
PROCSERV=$(dirname "$WHARF_AGENT")/wharf-procserv
mkdir -p "$T/src/agent2/bin" "$T/src/agent3/bin"
# Build 2: this build with a few bytes after its end (an ELF file runs the same), so that it
# is another build than the boot binary.
{ cat "$WHARF_AGENT"; printf 'wharf-agent 2\n'; } >"$T/src/agent2/bin/wharf-agent"
chmod 755 "$T/src/agent2/bin/wharf-agent"
cp "$PROCSERV" "$T/src/agent2/bin/"
printf '#!/bin/sh\necho "wharf-agent 3: broken" >&2\nexit 1\n' >"$T/src/agent3/bin/wharf-agent"
chmod 755 "$T/src/agent3/bin/wharf-agent"
cp "$PROCSERV" "$T/src/agent3/bin/"
"$WHARF" pack "$T/src/agent2" --name wharf-agent --version 2 --prefix /opt/wharf-agent -o "$T/out" >/dev/null
"$WHARF" pack "$T/src/agent3" --name wharf-agent --version 3 --prefix /opt/wharf-agent -o "$T/out" >/dev/null

STORE=$T/store
mkdir -p "$STORE"
start_server "$STORE"
CI=$(make_token ci publisher "" "$STORE")
OP=$(make_token op operator "" "$STORE")
for p in alpha-1 beta-1 wharf-agent-2 wharf-agent-3; do
  "$WHARF" publish "$T/out/$p.tar.zst" --server "$SERVER_URL" --token "$CI" >/dev/null
done
"$WHARF" assign fec01 alpha@1 beta@1 --server "$SERVER_URL" --token "$OP" >/dev/null

R=$T/fec01
mkdir -p "$R/etc/wharf"
cp "$(state_dir "$STORE")/signing.pub" "$R/etc/wharf/trusted.pub"
make_token fec01 agent fec01 "$STORE" >"$R/etc/wharf/token"
cat >"$R/etc/wharf/agent.toml" <<EOF
fec = "fec01"
store = "$SERVER_URL"
trust = ["/etc/wharf/trusted.pub"]
server = "$SERVER_URL"
token_file = "/etc/wharf/token"
agent_health_deadline = 10
EOF
"$WHARF_AGENT" run --root "$R" --interval 1 --heartbeat 1 >"$T/run.out" 2>"$T/run.err" &
RUN_PID=$!
trap '[ -n "${RUN_PID:-}" ] && { kill $RUN_PID 2>/dev/null; wait $RUN_PID 2>/dev/null; }; cleanup' EXIT
RUN_ERR=$T/run.err
field() { service_field "$R" "$@"; }
running() { [ "$(field "$1" state)" = running ]; }
# The agent build that runs now: the launcher's child.
delegate_exe() {
  local child
  child=$(pgrep -P "$RUN_PID" -f "run --delegate" | head -1)
  [ -n "$child" ] && readlink "/proc/$child/exe"
}
fec_error() {
  curl -sf -H "Authorization: Bearer $OP" "$SERVER_URL/api/v1/fecs/fec01" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["last_error"] or "")'
}
wait_for "a and b running" eval 'running a && running b'
[ "$(delegate_exe)" = "$(readlink -f "$WHARF_AGENT")" ] || fail "the boot binary runs first: $(delegate_exe)"
A=$(field a pid); B=$(field b pid); AS=$(field a server_pid); BS=$(field b server_pid)
same_services() {
  [ "$(field a pid)" = "$A" ] && [ "$(field b pid)" = "$B" ] && [ "$(field a server_pid)" = "$AS" ] &&
    [ "$(field b server_pid)" = "$BS" ] || fail "$1: a service was restarted: a $A/$AS -> $(field a pid)/$(field a server_pid), b $B/$BS -> $(field b pid)/$(field b server_pid)"
}

# --- 1. wharf-agent 2 delivered through a generation ---
"$WHARF" assign fec01 alpha@1 beta@1 wharf-agent@2 --server "$SERVER_URL" --token "$OP" >/dev/null
wait_for "wharf-agent 2 running" eval 'delegate_exe | grep -q "/packages/wharf-agent/2-.*/bin/wharf-agent$"'
grep -q "delivers another wharf-agent build; handing over" "$T/run.err" || fail "no hand-over said: $(cat "$T/run.err")"
wait_for "wharf-agent 2 adopted a and b" grep -q "adopted b" "$T/run.err"
sleep 2
same_services "an agent upgrade"
pass "wharf-agent 2 delivered through a generation runs; a and b keep their PIDs"

# --- 2. a broken wharf-agent 3 ---
"$WHARF" assign fec01 alpha@1 beta@1 wharf-agent@3 --server "$SERVER_URL" --token "$OP" >/dev/null
ASSIGNED=$(date +%s)
wait_for "wharf-agent 3 refused" grep -q "refused" "$T/run.err"
for _ in $(seq 150); do
  delegate_exe | grep -q "/packages/wharf-agent/2-.*/bin/wharf-agent$" && fec_error | grep -q "wharf-agent@3 refused" && break
  sleep 0.1
done
delegate_exe | grep -q "/packages/wharf-agent/2-.*/bin/wharf-agent$" || fail "not back on wharf-agent 2: $(delegate_exe); $(cat "$T/run.err")"
back=$(( $(date +%s) - ASSIGNED ))
[ "$back" -le 10 ] || fail "back on wharf-agent 2 only after $back s (deadline 10 s)"
fec_error | grep -q "agent wharf-agent@3 refused: exited with status 1 .* after its start; running wharf-agent@2" \
  || fail "the heartbeat does not say why: '$(fec_error)'"
same_services "a broken agent"
"$WHARF_AGENT" status --root "$R" >/dev/null || fail "status after the fallback"
pass "a broken wharf-agent 3 (exit 1): back on 2 after $back s, the heartbeat says why, a and b untouched"

kill -TERM "$RUN_PID"; wait "$RUN_PID" || fail "run exits 0 on SIGTERM"
RUN_PID=
running a && running b || fail "the services stopped with the agent"
pass "SIGTERM through the launcher stops the agent, not the services"
echo "agent_update: all checks passed"
