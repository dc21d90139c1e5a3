#!/bin/sh
# SPDX-License-Identifier: MIT
# dlopen.sh HEAPPROF PROGS - a library dlopen'ed, dlclose'd and dlopen'ed
# again: both rounds' stacks name its function in its file.
. "$(dirname "$0")/lib.sh"
DB=$TMP/dl.db
lib=$PROGS/librec-dl-lib.so
out=$("$HEAPPROF" run -o "$DB" "$PROGS/rec-dl" "$lib" 2>"$TMP/err")
check "exit status and output" "0 ok" "$? $out"
for size in 3333 4444; do
	check "$size: frames name rec_dl_alloc in the library, at its line" \
		"rec_dl_alloc|librec-dl-lib.so|$(line "$SRC/rec-dl-lib.c" SITE_DL)" \
		"$(q "$DB" "SELECT DISTINCT f.function, replace(f.module, rtrim(f.module, replace(f.module, '/', '')), ''), f.line FROM frames f JOIN chunk c ON c.stack_id = f.stack_id AND f.depth = 0 WHERE c.size = $size")"
done
check "chunk counts" "30|20" "$(q "$DB" 'SELECT sum(size = 3333), sum(size = 4444) FROM chunk')"
check "the library was loaded twice and unloaded twice" "2|2" \
	"$(q "$DB" "SELECT count(*), sum(unloaded_ns IS NOT NULL) FROM module m JOIN image i USING (image_id) WHERE i.path LIKE '%librec-dl-lib.so'")"
finish
