#!/bin/sh
# SPDX-License-Identifier: MIT
# signals.sh HEAPPROF PROGS LIBHEAPPROF - a signal sent to heapprof run is
# forwarded to the program and heapprof finishes the database whatever it
# is; a standalone collector (heapprof collect) ignores them.
. "$(dirname "$0")/lib.sh"
LIB=$3

# wait_for FILE: until it exists (10 s at most)
wait_for() {
	i=0
	while [ ! -e "$1" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

complete() {
	q "$1" "SELECT (SELECT value FROM meta WHERE key = 'complete') || '|' ||
		(SELECT count(*) FROM sqlite_master WHERE type = 'view' AND
		 name IN ('processes', 'chunks', 'frames'))"
}

# signals the program handles: each arrives once, heapprof lives on
"$HEAPPROF" run -o "$TMP/handled.db" "$PROGS/rec-signals" "$TMP/ready1" >"$TMP/out" 2>"$TMP/err" &
hp=$!
wait_for "$TMP/ready1"
kill -USR1 $hp
kill -ALRM $hp
kill -HUP $hp
wait $hp
check "USR1, ALRM, HUP to heapprof: the program got each once, its status" \
	"0|usr1 1 alrm 1 hup 1 int 0" "$?|$(cat "$TMP/out")"
check "and the database is complete, with its views" "1|3" "$(complete "$TMP/handled.db")"

# ^C on the terminal: the terminal sends SIGINT to the program itself
# (heapprof and it are its foreground process group): not sent twice
python3 - "$HEAPPROF" "$PROGS" "$TMP" >"$TMP/tty" 2>&1 <<'PY'
import os, pty, re, select, signal, sys, time
heapprof, progs, tmp = sys.argv[1:4]
ready = tmp + "/ready-tty"
pid, fd = pty.fork()
if pid == 0:
    os.execv(heapprof, [heapprof, "run", "-o", tmp + "/tty.db", progs + "/rec-signals", ready])
for _ in range(100):
    if os.path.exists(ready):
        break
    time.sleep(0.1)
os.write(fd, b"\x03")
time.sleep(0.3)
for sig in (signal.SIGUSR1, signal.SIGALRM, signal.SIGHUP):
    os.kill(pid, sig)
out = b""
while True:
    r, _, _ = select.select([fd], [], [], 30)
    if not r:
        break
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
got = re.search(r"usr1 \d+ alrm \d+ hup \d+ int \d+", out.decode(errors="replace"))
print("%d|%s" % (os.waitstatus_to_exitcode(status), got.group(0) if got else ""))
PY
check "^C on the terminal: the program got one SIGINT, heapprof lived on" \
	"0|usr1 1 alrm 1 hup 1 int 1" "$(tr -d '\r' <"$TMP/tty")"

# signals it does not handle end it, as they would without heapprof
for sig in USR2 TERM 40; do
	rm -f "$TMP/ready"
	"$HEAPPROF" run -o "$TMP/sig$sig.db" "$PROGS/rec-signals" "$TMP/ready" >"$TMP/out" 2>"$TMP/err" &
	hp=$!
	wait_for "$TMP/ready"
	kill -$sig $hp
	wait $hp
	rc=$?
	num=$(q "$TMP/sig$sig.db" 'SELECT exit_signal FROM processes')
	check "$sig to heapprof: the program ends by it (128 + its number), recorded so" \
		"$((128 + num))|signal" "$rc|$(q "$TMP/sig$sig.db" 'SELECT end_reason FROM processes')"
	check "$sig: the database is complete, with its views" "1|3" "$(complete "$TMP/sig$sig.db")"
done
check "USR2 is 12" 12 "$(q "$TMP/sigUSR2.db" 'SELECT exit_signal FROM processes')"

# heapprof collect, the collector of a standalone recording, is no one's
# to signal: it finishes the database all the same
env LD_PRELOAD="$LIB" HEAPPROF_OUTPUT="$TMP/alone.db" "$PROGS/rec-signals" "$TMP/ready2" \
	>"$TMP/out" 2>"$TMP/err" &
prog=$!
wait_for "$TMP/ready2"
mark=$(cat /dev/shm/heapprof-$prog-*/collector /tmp/heapprof-$prog-*/collector 2>/dev/null | head -n 1)
col=${mark%% *}
check "standalone: its collector is found" 1 "$([ -n "$col" ] && kill -0 "$col" && echo 1)"
for sig in USR1 ALRM HUP TERM INT; do
	kill -$sig "$col" 2>/dev/null
done
sleep 0.2
check "and lives through USR1, ALRM, HUP, TERM, INT" 1 "$(kill -0 "$col" 2>/dev/null && echo 1)"
kill -USR1 $prog
kill -ALRM $prog
kill -HUP $prog
wait $prog
check "the program ends normally" "0|usr1 1 alrm 1 hup 1 int 0" "$?|$(cat "$TMP/out")"
wait_complete "$TMP/alone.db"
check "and its database is complete" "1|3" "$(complete "$TMP/alone.db")"
finish
