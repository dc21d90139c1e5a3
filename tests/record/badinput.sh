#!/bin/sh
# SPDX-License-Identifier: MIT
# badinput.sh HEAPPROF PROGS - bad input to heapprof run gets one line
# "heapprof: what: why" on stderr and a distinct status, and never harms
# an existing file.
. "$(dirname "$0")/lib.sh"

# expect STATUS PATTERN CMD...: run, check status, single stderr line.
expect() {
	want=$1 pattern=$2
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	check "$* -> status" "$want" "$rc"
	check "$* -> one line" 1 "$(wc -l < "$TMP/err")"
	check "$* -> says why" 1 "$(grep -c -- "$pattern" "$TMP/err")"
}

cd "$TMP" || exit 99
expect 127 "heapprof: no-such-program: not found" "$HEAPPROF" run no-such-program
expect 127 "not found" "$HEAPPROF" run ./nope/nothing
printf '#!/bin/sh\necho hi\n' > script
chmod 644 script
expect 126 "heapprof: ./script: not executable" "$HEAPPROF" run ./script
expect 126 "not executable" "$HEAPPROF" run "$TMP"
expect 125 "heapprof: run: no program given" "$HEAPPROF" run
expect 125 "heapprof: --bogus: unknown option" "$HEAPPROF" run --bogus true
expect 125 "heapprof: --max-depth: 'abc' is not a number" "$HEAPPROF" run --max-depth abc true
expect 125 "heapprof: --max-depth: '0' is not a number" "$HEAPPROF" run --max-depth 0 true
expect 125 "heapprof: -o: needs a file name" "$HEAPPROF" run -o
expect 2 "heapprof: frobnicate: unknown command" "$HEAPPROF" frobnicate

# an existing output is never overwritten without --force, and kept intact
echo "precious" > existing.db
expect 125 "heapprof: existing.db: already exists (use --force to replace it)" \
	"$HEAPPROF" run -o existing.db true
check "existing file untouched" precious "$(cat existing.db)"
"$HEAPPROF" run --force -o existing.db true >/dev/null 2>&1
check "--force replaces it with a database" ok "$(q existing.db 'PRAGMA integrity_check')"
check "--force result is private" 600 "$(stat -c %a existing.db)"

# a symbolic link is never followed
ln -s "$TMP/target-of-link" link.db
expect 125 "heapprof: link.db: already exists" "$HEAPPROF" run -o link.db true
check "link target not created" no "$( [ -e target-of-link ] && echo yes || echo no)"

# a directory we cannot write into
mkdir ro && chmod 555 ro
if [ "$(id -u)" -ne 0 ]; then
	expect 125 "heapprof: ro/x.db: cannot create" "$HEAPPROF" run -o ro/x.db true
fi
expect 125 "heapprof: missing/x.db: cannot create" "$HEAPPROF" run -o missing/x.db true

# a statically linked program cannot be recorded: said before running it
if printf 'int main(void){return 0;}\n' > s.c && cc -static -o static s.c 2>/dev/null; then
	expect 126 "statically linked" "$HEAPPROF" run ./static
fi

# the program's own failure to exec is not heapprof's
printf '#!/nonexistent/interpreter\n' > badinterp
chmod 755 badinterp
expect 127 "heapprof: $TMP/badinterp: cannot execute" "$HEAPPROF" run "$TMP/badinterp"
check "no database left behind after a failed exec" 0 "$(ls heapprof.badinterp.*.db 2>/dev/null | wc -l)"
finish
