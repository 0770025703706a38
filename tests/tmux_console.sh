#!/usr/bin/env bash
# Runs the real `engage-console` in tmux in a fresh folder (first run: demo key and set),
# types at it as an operator would and checks the captured screen after each step; then again
# at 80x24, ended by SIGTERM.
# Usage: tests/tmux_console.sh [path-to-engage-console]   (needs tmux; exit 0 = all checks passed)
set -euo pipefail

CONSOLE=${1:-${ENGAGE_CONSOLE:-engage-console}}
PYTHON=${PYTHON:-$(dirname "$(command -v "$CONSOLE")")/python}
[ -x "$PYTHON" ] || PYTHON=python3
SESSION="engage-console-test-$$"
WORK=$(mktemp -d)
SCREEN="$WORK/screen.txt"

# A tmux server of our own (its own socket, no user config): nothing else's sizes or keys apply.
tmux() { command tmux -L "$SESSION" -f /dev/null "$@"; }

cleanup() {
    tmux kill-server 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

capture() { tmux capture-pane -p -t "$SESSION" > "$SCREEN" 2>/dev/null || true; }

# wait_for TEXT [SECONDS]: poll the screen until TEXT shows (fails with the screen shown).
wait_for() {
    local text=$1 limit=${2:-15} waited=0
    while :; do
        capture
        grep -qF -- "$text" "$SCREEN" && return 0
        if [ "$waited" -ge $((limit * 10)) ]; then
            echo "FAIL: '$text' not on screen after ${limit}s; the screen was:" >&2
            cat "$SCREEN" >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# wait_gone TEXT [SECONDS]: poll the screen until TEXT no longer shows.
wait_gone() {
    local text=$1 limit=${2:-15} waited=0
    while capture; grep -qF -- "$text" "$SCREEN"; do
        if [ "$waited" -ge $((limit * 10)) ]; then
            echo "FAIL: '$text' still on screen after ${limit}s" >&2
            cat "$SCREEN" >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

http_port() { grep -oE 'HTTP +RUNNING +127\.0\.0\.1 +[0-9]+' "$SCREEN" | awk '{print $4}'; }

step() { echo "ok - $1"; }

# next_session ARGS...: a new session in place of the current one (started first: the server
# exits with its last session, and a new-session racing that exit fails).
next_session() {
    tmux new-session -d -s "$SESSION-next" "$@"
    tmux kill-session -t "$SESSION"
    tmux rename-session -t "$SESSION-next" "$SESSION"
}

cd "$WORK"
# COLUMNS/LINES state the pane's size: seen started from some parents, the console read 80x24.
tmux new-session -d -s "$SESSION" -x 120 -y 36 \
    "cd '$WORK' && COLUMNS=120 LINES=36 '$CONSOLE' --bind 127.0.0.1 --http-port 0 --tls-port 0; echo \"exit code \$?\"; sleep 30"

wait_for "Lock log" 30
wait_for "TLS       RUNNING"
wait_for "HTTP      RUNNING"
grep -qF "NOTICE: DEMO" "$SCREEN" || { echo "FAIL: demo material not labelled" >&2; exit 1; }
step "both listeners RUNNING, demo material labelled"

HTTP_PORT=$(http_port)
[ -n "$HTTP_PORT" ] || { echo "FAIL: no HTTP port on screen" >&2; exit 1; }
"$PYTHON" - "$HTTP_PORT" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/swordfish/lock/certificates/current",
                            timeout=5) as resp:
    assert resp.status == 200
PY
wait_for "GET /swordfish/lock/certificates/current 200"
step "a request to port $HTTP_PORT appears in the lock log"

tmux send-keys -t "$SESSION" h
wait_for "Stop listener"  # stopping asks first, as quitting does
tmux send-keys -t "$SESSION" y
wait_for "HTTP      STOPPED"
tmux send-keys -t "$SESSION" h
wait_for "HTTP      RUNNING"
HTTP_PORT=$(http_port)
step "h stops (after asking) and starts the HTTP listener (now on port $HTTP_PORT)"

tmux send-keys -t "$SESSION" 2
wait_for "Certificate sets"
wait_for "ACTIVE"
wait_for "Anchor SHA-256"
step "certificates screen lists the demo set with its report"

tmux send-keys -t "$SESSION" '?'
wait_for "Keys: Certificates"
wait_for "Roll back"
tmux send-keys -t "$SESSION" Escape
step "? shows the keys of the certificates screen"

tmux send-keys -t "$SESSION" Escape
wait_for "Lock log"
step "esc backs out to the dashboard"

tmux send-keys -t "$SESSION" q
wait_for "Quit engage-console"
tmux send-keys -t "$SESSION" n
wait_gone "Quit engage-console"
grep -qF "HTTP      RUNNING" "$SCREEN" || { echo "FAIL: 'n' did not keep the console" >&2; exit 1; }
tmux send-keys -t "$SESSION" q
wait_for "Quit engage-console"
if ! "$PYTHON" - "$HTTP_PORT" 2>/dev/null <<'PY'
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
PY
then
    echo "FAIL: the HTTP port closed while the console was still asking whether to quit" >&2
    exit 1
fi
tmux send-keys -t "$SESSION" y
wait_for "exit code 0"
step "q asks first (listeners still serving), y quits with exit code 0"

# The console stopped the listeners itself (requests in flight finish) before it closed: it
# says so on the way out, before the exit code. A listener it left running is reported so.
if grep -qF "still RUNNING" "$SCREEN" || ! grep -qF "HTTP listener STOPPED" "$SCREEN" \
        || ! grep -qF "TLS listener STOPPED" "$SCREEN"; then
    echo "FAIL: the console did not stop both listeners before it closed; the screen was:" >&2
    cat "$SCREEN" >&2
    exit 1
fi
step "the console stopped both listeners cleanly before it closed"

# Again at 80x24 (the stated minimum), then `kill` (SIGTERM) instead of q: the same clean exit.
next_session -x 80 -y 24 \
    "cd '$WORK' && COLUMNS=80 LINES=24 '$CONSOLE' --bind 127.0.0.1 --http-port 0 --tls-port 0; echo \"exit code \$?\"; sleep 30"
wait_for "Lock log" 30
wait_for "HTTP      RUNNING"
wait_for "TLS       RUNNING"
for key in "? Help" "q Quit"; do
    grep -qF -- "$key" "$SCREEN" || { echo "FAIL: '$key' not in the footer at 80x24:" >&2; cat "$SCREEN" >&2; exit 1; }
done
step "at 80x24 the footer shows ? Help and q Quit"
HTTP_PORT=$(http_port)
[ "$(tmux display -p -t "$SESSION" '#{alternate_on}')" = 1 ] || { echo "FAIL: not in the alternate screen" >&2; exit 1; }
CONSOLE_PID=$(pgrep -P "$(tmux display -p -t "$SESSION" '#{pane_pid}')" -f engage-console)
[ -n "$CONSOLE_PID" ] || { echo "FAIL: no engage-console process in the pane" >&2; exit 1; }
kill -HUP "$CONSOLE_PID"
wait_for "SIGHUP: reloaded"
grep -qF "HTTP      RUNNING" "$SCREEN" || { echo "FAIL: SIGHUP stopped a listener" >&2; exit 1; }
step "SIGHUP reloads the active set and keeps serving"
kill -TERM "$CONSOLE_PID"
wait_for "exit code 0"
if ! grep -qF "HTTP listener STOPPED" "$SCREEN" || ! grep -qF "TLS listener STOPPED" "$SCREEN"; then
    echo "FAIL: no summary after SIGTERM; the screen was:" >&2
    cat "$SCREEN" >&2
    exit 1
fi
FLAGS=$(tmux display -p -t "$SESSION" '#{alternate_on} #{mouse_any_flag} #{cursor_flag}')
[ "$FLAGS" = "0 0 1" ] || { echo "FAIL: terminal not restored after SIGTERM (alternate mouse cursor: $FLAGS)" >&2; exit 1; }
if "$PYTHON" - "$HTTP_PORT" 2>/dev/null <<'PY'
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
PY
then
    echo "FAIL: the HTTP port $HTTP_PORT is still open after SIGTERM" >&2
    exit 1
fi
step "SIGTERM stops both listeners, prints the summary, exits 0 and restores the terminal"

echo "all tmux checks passed"
