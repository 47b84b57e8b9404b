#!/usr/bin/env bash
# wharf-procserv, the process server of one service, stays small and is started from a spec:
# it needs no library but the C library (and libm/libgcc_s/libstdc++, which it links in
# today); `wharf-procserv --spec FILE` runs what FILE says and writes its --fingerprint to
# the status file; a spec others may write is refused; `wharf-agent procserv` is the same
# program (exec, same PID) with the same errors.
source "$(dirname "$0")/lib.sh"
: "${WHARF_PROCSERV:?set WHARF_PROCSERV to the wharf-procserv binary}"
PS=$WHARF_PROCSERV
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; cleanup' EXIT

# --- what it links ---
command -v readelf >/dev/null || fail "readelf is missing (Debian package binutils)"
needed=$(readelf -d "$PS" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[ -n "$needed" ] || fail "readelf -d $PS lists no NEEDED libraries: is it a dynamic ELF file?"
for lib in $needed; do
  case $lib in
    libc.so.*|libm.so.*|libgcc_s.so.*|libstdc++.so.*|ld-linux*.so.*) ;;
    *) fail "wharf-procserv links $lib: the process server must stay small (only the C library, libm, libgcc_s, libstdc++); all: $(echo $needed)" ;;
  esac
done
pass "wharf-procserv needs only $(echo $needed)"

# --- --spec FILE and --fingerprint ---
ROOT=$T/fec
mkdir -p "$ROOT/run/wharf/services" && chmod 700 "$ROOT/run/wharf/services"
SPEC=$ROOT/run/wharf/services/s.args
# The arguments, each ended by a NUL, as WriteServiceSpec writes them; an env value with a
# space and a newline, an argument with a leading dash.
printf '%s\0' --root "$ROOT" --name s --holdoff 1 --env "GREETING=hello there
second line" --fingerprint "gen 7 sha abc" -- /bin/sh -c 'echo "[$GREETING] $1"; exec sleep 1000' sh "-x y" >"$SPEC"
chmod 600 "$SPEC"
"$PS" --spec "$SPEC" >/dev/null 2>"$T/s.err" &
PIDS+=($!)
S_PID=$!
STATUS=$ROOT/run/wharf/status/s.json
status() { python3 -c "import json,sys; print(json.load(open('$STATUS'))['$1'])" 2>/dev/null; }
wait_for "the spec's service running" eval '[ "$(status state)" = running ]'
[ "$(status fingerprint)" = "gen 7 sha abc" ] || fail "fingerprint in the status file: $(cat "$STATUS")"
[ "$(status server_pid)" = "$S_PID" ] || fail "server_pid: $(cat "$STATUS")"
wait_for "the child's output in the log" grep -q "second line\] -x y" "$ROOT/var/log/wharf/s.log"
grep -q "^\[hello there$" "$ROOT/var/log/wharf/s.log" || fail "env with a newline: $(cat "$ROOT/var/log/wharf/s.log")"
kill -TERM "$S_PID"; wait "$S_PID" || fail "wharf-procserv ends with 0 on SIGTERM: $(cat "$T/s.err")"
pass "wharf-procserv --spec runs the spec's command with its environment and writes its fingerprint"

# --- the replay ring: a client that attaches after 50,000 lines (339 kB) gets the last 64 kB, in order ---
"$PS" --root "$ROOT" --name r --log-file none -- /bin/sh -c 'seq 1 50000; echo done; exec sleep 1000' >/dev/null 2>"$T/r.err" &
PIDS+=($!)
R_PID=$!
STATUS=$ROOT/run/wharf/status/r.json
wait_for "the output's end in the status file" eval 'python3 -c "import json; exit(\"done\" not in json.load(open(\"$STATUS\"))[\"last_lines\"])"'
python3 - "$ROOT/run/wharf/console/r.sock" <<'PY' || fail "the replay after 339 kB of output"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(0.5)
data = b""
try:
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        data += d
except socket.timeout:
    pass
replay = data.split(b"starts a stopped child\r\n", 1)[1]
lines = replay.split(b"\r\n")
numbers = [int(l) for l in lines[1:] if l.isdigit()]  # the first line may be cut
assert len(replay) == 65536, len(replay)
assert lines[-2:] == [b"done", b""], lines[-3:]
assert numbers[-1] == 50000 and numbers == list(range(numbers[0], 50001)), (numbers[0], numbers[-1])
PY
kill -TERM "$R_PID"; wait "$R_PID" || fail "wharf-procserv ends with 0 on SIGTERM: $(cat "$T/r.err")"
pass "a late client gets the last 64 kB of output, in order, from the replay ring"

# --- specs it refuses ---
chmod 606 "$SPEC"
expect_exit 1 "$PS" --spec "$SPEC"
grep -q "writable by group or others" "$T/stderr" || fail "a spec others may write: $(cat "$T/stderr")"
chmod 600 "$SPEC"
chmod 777 "$ROOT/run/wharf/services"
expect_exit 1 "$PS" --spec "$SPEC"
grep -q "writable by everyone" "$T/stderr" || fail "a spec in a folder everyone may write: $(cat "$T/stderr")"
chmod 700 "$ROOT/run/wharf/services"
ln -s s.args "$ROOT/run/wharf/services/link.args"
expect_exit 1 "$PS" --spec "$ROOT/run/wharf/services/link.args"
grep -q "symlink" "$T/stderr" || fail "a spec through a symlink: $(cat "$T/stderr")"
head -c 1100000 /dev/zero | tr '\0' a >"$ROOT/run/wharf/services/big.args"
expect_exit 1 "$PS" --spec "$ROOT/run/wharf/services/big.args"
grep -q "larger than" "$T/stderr" || fail "an oversized spec: $(cat "$T/stderr")"
expect_exit 2 "$PS" --spec "$SPEC" --name other
grep -q "comes alone" "$T/stderr" || fail "words after --spec: $(cat "$T/stderr")"
pass "a spec others may write, in a folder everyone may write, through a symlink or too large is refused"

# --- usage errors: one line, exit 2; --help ---
expect_exit 2 "$PS" --name x --bogus -- true
[ "$(wc -l <"$T/stderr")" -eq 1 ] && grep -q "unknown option --bogus" "$T/stderr" || fail "unknown option: $(cat "$T/stderr")"
expect_exit 2 "$PS" --name x --stop-signal NOPE -- true
expect_exit 2 "$PS" --name x
grep -q "give the command after --" "$T/stderr" || fail "missing command: $(cat "$T/stderr")"
expect_exit 0 "$PS" --help
grep -q -- "--spec FILE" "$T/stdout" || fail "--help: $(cat "$T/stdout")"
pass "usage errors are one line with exit code 2; --help describes --spec"

# --- wharf-agent procserv is wharf-procserv ---
"$WHARF_AGENT" procserv --root "$ROOT" --name w --holdoff 1 -- /bin/sleep 1000 >/dev/null 2>"$T/w.err" &
PIDS+=($!)
W_PID=$!
STATUS=$ROOT/run/wharf/status/w.json
wait_for "wharf-agent procserv's service running" eval '[ "$(status state)" = running ]'
[ "$(status server_pid)" = "$W_PID" ] || fail "wharf-agent procserv runs the server in its own process: $(cat "$STATUS")"
[ "$(basename "$(readlink "/proc/$W_PID/exe")")" = wharf-procserv ] || fail "PID $W_PID is $(readlink "/proc/$W_PID/exe")"
kill -TERM "$W_PID"; wait "$W_PID" || fail "wharf-agent procserv ends with 0 on SIGTERM: $(cat "$T/w.err")"
expect_exit 2 "$WHARF_AGENT" procserv --name x --mode sometimes -- true
grep -q "^wharf-procserv: error: --mode sometimes" "$T/stderr" || fail "wharf-agent procserv's parser: $(cat "$T/stderr")"
pass "wharf-agent procserv execs wharf-procserv (same PID, same parser)"
echo "procserv_small: all checks passed"
