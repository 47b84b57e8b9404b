#!/usr/bin/env bash
# Least privilege on the FEC (issue 13, class 1; class 2 for the services' runtime files).
# Through real sudo, as an unprivileged member of the group the shipped policy
# (packaging/sudoers.d/wharf) names: list, start, stop, restart, logs and attach work on a
# declared service, and every escape is refused, by sudo or by `wharf-agent svc`, with no
# effect: an option naming a root, socket, config or path; extra or merged words; a path or
# `..` in the service name; a service the generation does not declare; a log that is a
# symlink or hard link to a root-only file; a forged status file naming another process; a
# console socket swapped for a link or for a socket of another user. The other process stays
# alive, the root-only bytes are never printed, the other socket is never connected to.
#
# The test runs in its own mount and PID namespaces: /etc is a private copy (the throwaway
# user, outsider and group; the policy in /etc/sudoers.d), and /usr/local/bin (the policy's
# path to wharf-agent), /var, /run and /opt are private tmpfs, so the agent and its services
# run at the real paths the privileged entry uses (root /) and nothing is left on the machine.
# When the script ends, on any path, every process of the namespace ends with it.
if [ "${WHARF_SUDO_NS:-}" != 1 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "FAIL: e2e_sudo runs as root (CI does): it makes a throwaway user, group and sudoers policy in a private namespace" >&2; exit 1; }
  for tool in sudo visudo unshare runuser useradd groupadd python3; do
    command -v "$tool" >/dev/null || { echo "FAIL: e2e_sudo needs $tool (scripts/install-deps)" >&2; exit 1; }
  done
  WHARF_SUDO_NS=1 exec unshare --mount --pid --fork --mount-proc --propagation private bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
REPO=$(cd "$E2E_DIR/../.." && pwd)
POLICY=$REPO/packaging/sudoers.d/wharf
A=/usr/local/bin/wharf-agent  # where the shipped policy expects it (make install's default)
G=wharfsg$$ M=wharfsm$$ O=wharfso$$  # the group, a member, an outsider (unique names)
RUN_PID="" VICTIM="" CANARY=""
at_exit() {
  for pid in $RUN_PID $VICTIM $CANARY; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  userdel "$M" 2>/dev/null || true; userdel "$O" 2>/dev/null || true; groupdel "$G" 2>/dev/null || true
  umount -l /etc "$T/ns" 2>/dev/null || true  # the private /etc goes with its tmpfs
  cleanup
}
trap at_exit EXIT

# --- the policy files pass visudo; the build's copy names the configured prefix ---
visudo -cf "$POLICY" >/dev/null || fail "visudo rejects $POLICY"
grep -q "^Cmnd_Alias WHARF_SERVICES = $A svc list" "$POLICY" || fail "$POLICY does not name $A"
if [ -n "${WHARF_SUDOERS:-}" ]; then
  visudo -cf "$WHARF_SUDOERS" >/dev/null || fail "visudo rejects $WHARF_SUDOERS"
  grep -q "= ${WHARF_PREFIX:-/usr/local}/bin/wharf-agent svc list" "$WHARF_SUDOERS" \
    || fail "$WHARF_SUDOERS does not name ${WHARF_PREFIX:-/usr/local}/bin/wharf-agent"
fi
grep -v '^#' "$POLICY" | sed 's/\^[^$]*\$//g' | grep -q '\*' && fail "$POLICY has a glob '*', which admits any option"
pass "the policy passes visudo -c, names $A (the build's copy its prefix), and has no glob"

# --- the private namespace: /etc copied, the rest empty ---
mkdir "$T/ns"
mount -t tmpfs -o mode=0700 tmpfs "$T/ns"
cp -a /etc "$T/ns/etc"
mount --bind "$T/ns/etc" /etc
for d in /usr/local/bin /var /run /opt; do
  [ -d "$d" ] || fail "$d is missing: the namespace mounts a private one over it"
  mount -t tmpfs -o mode=0755 tmpfs "$d"
done
install -m 0755 "$WHARF_AGENT" "$A"
install -m 0755 "$(dirname "$WHARF_AGENT")/wharf-procserv" /usr/local/bin/wharf-procserv  # beside it, as make install puts it

groupadd "$G"
useradd -M -N -g nogroup -G "$G" -s /bin/sh "$M"
useradd -M -N -g nogroup -s /bin/sh "$O"
sed "s/^%wharf /%$G /" "$POLICY" >/etc/sudoers.d/wharf
[ "$(diff "$POLICY" /etc/sudoers.d/wharf | grep -c '^>')" = 1 ] || fail "the policy's group line was not found"
chmod 0440 /etc/sudoers.d/wharf
visudo -c >/dev/null || fail "sudo's configuration with the policy does not pass visudo -c"

# --- what an attacker wants: a root-only file, another process, another socket ---
mkdir -m 0700 /var/secret
echo "TOPSECRET-$$" >/var/secret/shadow
chmod 0600 /var/secret/shadow
SECRET=/var/secret/shadow
sleep 1000 &
VICTIM=$!
mkdir -m 0700 /run/canary
python3 - /run/canary/canary.sock /run/canary/connections <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(16)
while True:
    c, _ = s.accept()
    with open(sys.argv[2], "a") as f: f.write("connected\n")
    c.close()
PY
CANARY=$!
wait_for "the canary socket" test -S /run/canary/canary.sock
vstart() { awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat"; }  # field 22: the start time

# no_effect: the victim lives, the canary was never connected to, no secret was printed.
no_effect() {
  kill -0 "$VICTIM" 2>/dev/null || fail "the other process (PID $VICTIM) was signalled: $*"
  [ ! -e /run/canary/connections ] || fail "the other socket was connected to: $*"
  ! grep -q "TOPSECRET" "$T/stdout" "$T/stderr" || fail "root-only bytes were printed: $*"
}
# as USER CMD...: runs CMD as USER, output in $T/stdout and $T/stderr; sets $got to its exit code.
as() {
  local user=$1; shift
  got=0
  (cd / && runuser -u "$user" -- "$@") >"$T/stdout" 2>"$T/stderr" </dev/null || got=$?
}
# refused_by_sudo CMD...: sudo refuses CMD for the member (sudo's own message), with no effect.
refused_by_sudo() {
  as "$M" sudo -n "$@"
  [ "$got" -ne 0 ] && grep -q "^sudo: " "$T/stderr" || { cat "$T/stdout" "$T/stderr" >&2; fail "sudo did not refuse: $*"; }
  no_effect "$@"
}
# refused_by_wharf PATTERN CMD...: sudo admits CMD, wharf-agent refuses it with a message
# matching PATTERN, with no effect.
refused_by_wharf() {
  local pattern=$1; shift
  as "$M" sudo -n "$@"
  [ "$got" -ne 0 ] && ! grep -q "^sudo: " "$T/stderr" || { cat "$T/stdout" "$T/stderr" >&2; fail "exit $got (wanted wharf-agent's refusal): $*"; }
  grep -Eq -- "$pattern" "$T/stderr" || { cat "$T/stderr" >&2; fail "refusal does not match /$pattern/: $*"; }
  no_effect "$@"
}
# allowed CMD...: the member runs CMD through sudo, and it succeeds.
allowed() {
  as "$M" sudo -n "$@"
  [ "$got" -eq 0 ] || { cat "$T/stdout" "$T/stderr" >&2; fail "exit $got: sudo $*"; }
}

# --- a FEC at the real paths (root /): a generation with one service, under `wharf-agent run` ---
cd "$T"
"$WHARF" keygen --out k >/dev/null
mkdir -p ioc/bin
printf '#!/bin/sh\necho "ioc up"\nwhile read -r line; do echo "ioc got: $line"; done\n' >ioc/bin/run
chmod 755 ioc/bin/run
printf '[ioc]\ncommand = "bin/run"\nholdoff = 1\n' >ioc/services.toml
"$WHARF" pack ioc --name ioc --version 1 --prefix /opt/ioc -o out >/dev/null
"$WHARF" publish out/*.tar.zst --store store >/dev/null
"$WHARF" assign fec01 ioc@1 --store store --key k.key >/dev/null
mkdir -p /etc/wharf
cat >/etc/wharf/agent.toml <<EOF
fec = "fec01"
store = "file://$T/store"
trust = ["$T/k.pub"]
console_group = "$G"
EOF
"$A" run --root / --interval 1 >"$T/run.out" 2>"$T/run.err" &
RUN_PID=$!
RUN_ERR=$T/run.err
field() { "$A" list --json | python3 -c "import json,sys; r={s['name']: s for s in json.load(sys.stdin)}.get('$1', {}); v=r.get('$2'); print('' if v is None else v)"; }
running() { [ "$(field ioc state)" = running ]; }
wait_for "ioc running at /" running
wait_for "ioc's first line in its log" grep -q "ioc up" /var/log/wharf/ioc.log
pass "the agent runs service ioc at the real paths (/run/wharf, /var/log/wharf) of the namespace"

# --- the allowed verbs, through sudo, as the member ---
allowed "$A" svc list
grep -Eq "^ioc +running" "$T/stdout" || fail "svc list: $(cat "$T/stdout")"
allowed "$A" svc logs ioc
grep -q "ioc up" "$T/stdout" || fail "svc logs: $(cat "$T/stdout")"
allowed "$A" svc stop ioc
wait_for "ioc stopped" eval '[ "$(field ioc state)" = stopped ]'
allowed "$A" svc start ioc
wait_for "ioc started" running
P1=$(field ioc pid)
allowed "$A" svc restart ioc
wait_for "ioc restarted" eval '[ "$(field ioc pid)" != "$P1" ] && running'
as "$M" sh -c "printf 'hello from the member\n' | sudo -n $A svc attach ioc"
[ "$got" -eq 0 ] || { cat "$T/stderr" >&2; fail "svc attach: exit $got"; }
grep -q "wharf process server for ioc" "$T/stdout" && grep -q "ioc got: hello from the member" "$T/stdout" \
  || fail "svc attach: $(cat "$T/stdout")"
no_effect "the allowed verbs"
pass "the member lists, reads the log of, stops, starts, restarts and attaches to ioc through sudo"

as "$O" sudo -n "$A" svc list
[ "$got" -ne 0 ] && grep -q "^sudo: " "$T/stderr" || fail "an outsider ran svc list through sudo"
pass "a user outside the group gets nothing"

# --- options and other commands: refused by sudo ---
PID=$(field ioc pid)
EVIL=$T/evil  # a root of the member's own: a log linking to the secret, a status naming the victim
mkdir -p "$EVIL/var/log/wharf" "$EVIL/run/wharf/status" "$EVIL/run/wharf/console"
ln -s "$SECRET" "$EVIL/var/log/wharf/ioc.log"
printf '{"name": "ioc", "state": "running", "server_pid": %s, "server_start": %s}\n' "$VICTIM" "$(vstart "$VICTIM")" \
  >"$EVIL/run/wharf/status/ioc.json"
ln -s /run/canary/canary.sock "$EVIL/run/wharf/console/ioc.sock"
chown -R "$M" "$EVIL"
for cmd in \
  "attach ioc --socket /run/canary/canary.sock" "attach ioc --root $EVIL" "attach ioc" \
  "logs ioc --root $EVIL" "logs ioc" "stop ioc --root $EVIL" "stop ioc" "start ioc" "restart ioc" \
  "list" "list --root $EVIL" "status --config $EVIL/agent.toml" "sync --root $EVIL" \
  "procserv --name x -- /bin/cat $SECRET" "install-units --dest $EVIL" \
  "svc attach ioc --socket /run/canary/canary.sock" "svc logs ioc --root $EVIL" "svc stop ioc --root $EVIL" \
  "svc list --root $EVIL" "svc list --json" "svc list ioc" "svc stop ioc extra" "svc stop" "svc --root $EVIL stop ioc" \
  "svc logs ../../..$SECRET" "svc logs ioc/../../../..$SECRET" "svc logs .ioc" "svc logs -ioc" "svc logs" \
  "svc stop ioc;id" "svc attach ioc -- --socket=/run/canary/canary.sock"; do
  # shellcheck disable=SC2086
  refused_by_sudo "$A" $cmd
done
refused_by_sudo "$A" svc logs "ioc $SECRET"
refused_by_sudo "$A" svc logs "$(printf 'ioc\n--root')"
refused_by_sudo "$WHARF_AGENT" svc list  # another copy of the binary
refused_by_sudo /usr/bin/env "$A" svc list
[ "$(field ioc pid)" = "$PID" ] || fail "ioc was restarted by a refused command"
pass "sudo refuses every option (--root, --socket, --config), every other command, extra words, paths and other binaries"

# --- what sudo admits (its pattern sees the words joined) but is no svc command: wharf-agent refuses ---
refused_by_wharf "subcommand is required|not expected|svc comes first" "$A" "svc stop" ioc
refused_by_wharf "not a verb of svc" "$A" svc "stop ioc"
refused_by_wharf "subcommand is required|not expected|svc comes first" "$A" "svc list"
[ "$(field ioc pid)" = "$PID" ] || fail "ioc was touched by a refused command"
# A service the generation does not declare, with a log of root-only bytes and a status file
# naming the victim with its true start time: all root's, all in place, still refused.
cp -p "$SECRET" /var/log/wharf/ghost.log
printf '{"name": "ghost", "state": "stopped", "server_pid": %s, "server_start": %s}\n' "$VICTIM" "$(vstart "$VICTIM")" \
  >/run/wharf/status/ghost.json
for verb in logs stop start restart attach; do
  refused_by_wharf "ghost: not a service of this FEC's active generation" "$A" svc $verb ghost
done
rm /var/log/wharf/ghost.log /run/wharf/status/ghost.json
pass "wharf-agent svc refuses merged words and services the generation does not declare (their log and status untouched)"

# --- the runtime files: never followed when another user could have placed them ---
weaken() { chgrp "$G" "$1"; chmod 0775 "$1"; }  # a folder the group may write to (a mistake)
harden() { chgrp root "$1"; chmod 0755 "$1"; }
# The log: in a folder the member may write to, a symlink to the secret; then the same link in
# a folder of root's; then a hard link made by root.
weaken /var/log/wharf
as "$M" sh -c "rm -f /var/log/wharf/ioc.log && ln -s $SECRET /var/log/wharf/ioc.log"
[ "$got" -eq 0 ] || fail "the member could not plant the link"
refused_by_wharf "/var/log/wharf: writable by group or others" "$A" svc logs ioc
harden /var/log/wharf
refused_by_wharf "ioc.log: a symlink; refusing" "$A" svc logs ioc
rm /var/log/wharf/ioc.log
ln "$SECRET" /var/log/wharf/ioc.log
refused_by_wharf "ioc.log: (owned by|has other hard links)" "$A" svc logs ioc
rm /var/log/wharf/ioc.log
pass "svc logs refuses a log that is a symlink or a hard link to a root-only file, or lies in a folder others may write"

# The status file: forged by the member (a folder it may write; then its own file in root's
# folder), then root's own but stale (the PID now another process's).
cp -p /run/wharf/status/ioc.json "$T/ioc.json"
weaken /run/wharf/status
forged='{"name": "ioc", "state": "running", "server_pid": '$VICTIM', "server_start": '$(vstart "$VICTIM")'}'
as "$M" sh -c "rm -f /run/wharf/status/ioc.json && echo '$forged' >/run/wharf/status/ioc.json"
[ "$got" -eq 0 ] || fail "the member could not forge the status file"
for verb in stop start restart; do
  refused_by_wharf "/run/wharf/status: writable by group or others" "$A" svc $verb ioc
done
harden /run/wharf/status
refused_by_wharf "ioc.json: owned by uid" "$A" svc stop ioc
rm /run/wharf/status/ioc.json
echo "{\"name\": \"ioc\", \"state\": \"running\", \"server_pid\": $VICTIM, \"server_start\": $(($(vstart "$VICTIM") + 1))}" \
  >/run/wharf/status/ioc.json
refused_by_wharf "another process holds this PID now" "$A" svc restart ioc
echo "{\"name\": \"ioc\", \"state\": \"running\", \"server_pid\": $VICTIM}" >/run/wharf/status/ioc.json
refused_by_wharf "names no process server with its start time" "$A" svc stop ioc
echo '{"name": "ioc", "state": "running", "server_pid": 1, "server_start": 1}' >/run/wharf/status/ioc.json
refused_by_wharf "names no process server" "$A" svc stop ioc
cp -p "$T/ioc.json" /run/wharf/status/ioc.json
[ "$(field ioc pid)" = "$PID" ] || fail "ioc was touched by a refused stop"
pass "svc stop/start/restart refuse a forged or stale status file: the other process lives"

# The console: swapped for a link to another socket, or for the member's own socket.
weaken /run/wharf/console
as "$M" sh -c "rm -f /run/wharf/console/ioc.sock && ln -s /run/canary/canary.sock /run/wharf/console/ioc.sock"
[ "$got" -eq 0 ] || fail "the member could not swap the console socket"
refused_by_wharf "/run/wharf/console: writable by group or others" "$A" svc attach ioc
harden /run/wharf/console
refused_by_wharf "ioc.sock: not a socket" "$A" svc attach ioc
rm /run/wharf/console/ioc.sock
weaken /run/wharf/console
as "$M" python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('/run/wharf/console/ioc.sock')"
[ "$got" -eq 0 ] && [ -S /run/wharf/console/ioc.sock ] || fail "the member could not make its socket"
harden /run/wharf/console
refused_by_wharf "ioc.sock: owned by uid" "$A" svc attach ioc
rm -f /run/wharf/console/ioc.sock
pass "svc attach refuses a console that is a link to another socket, or another user's socket"

# --- no effect: the service is still whole (a new process server makes its files again) ---
SERVER=$(field ioc server_pid)
kill "$SERVER"
wait_for "ioc's process server started again" eval '[ "$(field ioc server_pid)" != "$SERVER" ] && running'
allowed "$A" svc restart ioc
wait_for "ioc restarted" eval 'running && [ -S /run/wharf/console/ioc.sock ]'
as "$M" sh -c "printf 'still here\n' | sudo -n $A svc attach ioc"
grep -q "ioc got: still here" "$T/stdout" || fail "svc attach after the attacks: $(cat "$T/stdout" "$T/stderr")"
allowed "$A" svc logs ioc
grep -q "ioc got: still here" "$T/stdout" || fail "svc logs after the attacks: $(cat "$T/stdout")"
no_effect "the whole run"
pass "after every attempt the victim lives, the canary was never reached, and ioc still works through sudo"
echo "sudo: all checks passed"
