#!/usr/bin/env bash
# systemd integration without a running systemd: the units install-units writes pass
# `systemd-analyze verify` (a broken one does not, so the check can fail); --user installs
# under $HOME; the sudoers policy passes visudo; and `wharf-agent run` speaks the notify
# protocol (READY=1, WATCHDOG=1, STOPPING=1) to a real datagram socket.
source "$(dirname "$0")/lib.sh"

command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (Debian package systemd; scripts/install-deps)"
"$WHARF_AGENT" install-units --dest "$T/units" --root "$T/fec" --console-group wharf 2>"$T/install.err"
for f in wharf-agent.service wharf-svc@.service agent.env; do [ -f "$T/units/$f" ] || fail "install-units: no $f"; done
grep -q "^ExecStart=$WHARF_AGENT run --root \${WHARF_ROOT}" "$T/units/wharf-agent.service" || fail "ExecStart names this binary"
grep -q "^WHARF_ROOT=$T/fec$" "$T/units/agent.env" || fail "agent.env: $(cat "$T/units/agent.env")"
cp "$T/units/wharf-svc@.service" "$T/units/wharf-svc@demo-ioc.service"
out=$(cd "$T/units" && systemd-analyze verify ./wharf-agent.service ./wharf-svc@demo-ioc.service 2>&1) || true
[ -z "$out" ] || fail "systemd-analyze verify: $out"
sed 's/^Type=notify/Type=notifyy/' "$T/units/wharf-agent.service" >"$T/units/broken.service"
out=$(cd "$T/units" && systemd-analyze verify ./broken.service 2>&1) || true
[ -n "$out" ] || fail "systemd-analyze verify did not flag a broken unit: the check above proves nothing"
# The services outlive the agent: systemd signals only the agent, and nothing ties a
# service's unit to the agent's (no PartOf=, Requires=, BindsTo=).
grep -q "^KillMode=process$" "$T/units/wharf-agent.service" || fail "the agent's unit must signal the agent only (KillMode=process)"
grep -Eq "^(PartOf|Requires|BindsTo|Requisite)=" "$T/units/wharf-svc@.service" && fail "wharf-svc@.service depends on the agent's unit"
grep -q "^ExecStart=$(dirname "$WHARF_AGENT")/wharf-procserv --spec \${WHARF_ROOT}/run/wharf/services/%i.args$" "$T/units/wharf-svc@.service" \
  || fail "wharf-svc@.service runs wharf-procserv with the agent's spec: $(grep ExecStart "$T/units/wharf-svc@.service")"
grep -q "^TimeoutStartSec=infinity$" "$T/units/wharf-agent.service" || fail "a slow first boot must not hit the start timeout"
pass "install-units writes units that pass systemd-analyze verify; services are not tied to the agent's unit"

HOME=$T/home "$WHARF_AGENT" install-units --user --root "$T/fec" 2>"$T/user.err" || fail "install-units --user: $(cat "$T/user.err")"
[ -f "$T/home/.config/systemd/user/wharf-agent.service" ] || fail "--user: unit not under ~/.config/systemd/user"
grep -q "EnvironmentFile=-$T/home/.config/wharf/agent.env" "$T/home/.config/systemd/user/wharf-svc@.service" \
  || fail "--user: the units read the user's agent.env"
pass "install-units --user: the user's own systemd, no root"

if command -v visudo >/dev/null; then
  visudo -cf "$E2E_DIR/../../packaging/sudoers.d/wharf" >/dev/null || fail "visudo rejects packaging/sudoers.d/wharf"
  pass "packaging/sudoers.d/wharf passes visudo -c"
else
  fail "visudo is missing (Debian package sudo; scripts/install-deps)"
fi

# The notify protocol, on a real socket, with an agent that has nothing to sync yet.
mkdir -p "$T/fec/etc/wharf"
"$WHARF" keygen --out "$T/k" >/dev/null
python3 - "$T/notify.sock" "$T/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(15)
with open(sys.argv[2], "w") as log:
    try:
        while True:
            msg = s.recv(4096).decode()
            log.write(msg.replace("\n", " ") + "\n")
            log.flush()
            if "STOPPING=1" in msg:
                break
    except socket.timeout:
        pass
PY
LISTENER=$!
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.05; done
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=2000000 "$WHARF_AGENT" run --root "$T/fec" --fec fec01 \
  --store "file://$T/nostore" --trust "$T/k.pub" --interval 60 --supervisor none >/dev/null 2>&1 &
RUN=$!
sleep 2.5
kill -TERM $RUN; wait $RUN || fail "run exits 0 on SIGTERM"
wait $LISTENER || true
grep -q "READY=1" "$T/notify.log" || fail "no READY=1: $(cat "$T/notify.log")"
[ "$(grep -c "WATCHDOG=1" "$T/notify.log")" -ge 2 ] || fail "WATCHDOG=1 every second with WatchdogSec=2: $(cat "$T/notify.log")"
grep -q "STOPPING=1" "$T/notify.log" || fail "no STOPPING=1"
pass "run speaks systemd's notify protocol: READY=1, WATCHDOG=1 within the period, STOPPING=1"
expect_exit 2 "$WHARF_AGENT" procserv --root "$T/ps" --name x --socket-mode 0666 -- true
grep -q "never world-writable" "$T/stderr" || fail "a world-writable console: $(cat "$T/stderr")"
expect_exit 2 "$WHARF_AGENT" procserv --root "$T/ps" --name ../x -- true
grep -q "a service name has no '/'" "$T/stderr" || fail "a service name with a slash: $(cat "$T/stderr")"
pass "procserv refuses a world-writable console socket and a service name with a '/'"
echo "units: all checks passed"
