/* SPDX-License-Identifier: MIT */
/*
 * cmd-run.c - `heapprof run [-o FILE] [--force] [--max-depth N] [--snapshots]
 * [--snapshot-every SECONDS] [--] PROGRAM [ARGS...]`, `heapprof collect` (the
 * collector a program started with HEAPPROF_OUTPUT launches for itself) and
 * `heapprof snapshot FILE` (ask the collector writing FILE for a snapshot).
 *
 * run: checks the program can be recorded at all (found, executable,
 * dynamically linked, not setuid), creates the database safely (never
 * following a symlink, never overwriting without --force, mode 0600),
 * starts the program with libheapprof.so preloaded, becomes the subreaper
 * of everything it starts so that every descendant's end is known, and
 * loads events until the last one ends. Exit status: the program's (128+N
 * for signal N); 125 if heapprof itself failed, 126 if the program cannot
 * be run, 127 if it is not found.
 */
#include "config.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "collect.h"
#include "db.h"
#include "events.h"
#include "load.h"
#include "util.h"

#ifndef HP_LIBDIR
#define HP_LIBDIR "/usr/local/lib"
#endif

static volatile sig_atomic_t forward_sig;
static pid_t target_pid;

static void
on_signal(int sig)
{
	forward_sig = sig;
	if (target_pid > 0)
		kill(target_pid, sig);
}

/* ---- the program ---- */

/* Find PROGRAM like execvp: with a slash as is, else along PATH. Returns
 * 0, or 127 (not found) / 126 (found but not executable). */
static int
resolve(const char *prog, char *out, size_t cap)
{
	const char *path = getenv("PATH");
	bool found_noexec = false;

	if (strchr(prog, '/')) {
		struct stat st;

		if (snprintf(out, cap, "%s", prog) >= (int)cap)
			return 127;
		if (stat(out, &st) != 0)
			return 127;
		return S_ISREG(st.st_mode) && access(out, X_OK) == 0 ? 0 : 126;
	}
	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path;; p = strchr(p, ':') + 1) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		struct stat st;

		if (snprintf(out, cap, "%.*s%s%s", (int)n, p, n ? "/" : "", prog) < (int)cap &&
		    stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(out, X_OK) == 0)
				return 0;
			found_noexec = true;
		}
		if (!end)
			break;
	}
	return found_noexec ? 126 : 127;
}

/* Why ld.so would not preload into it: NULL if it would. */
static const char *
unrecordable(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	Elf64_Ehdr eh;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)) &&
	    (st.st_uid != geteuid() || (st.st_mode & S_ISGID)))
		goto setuid;
	if (read(fd, &eh, sizeof(eh)) != (ssize_t)sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG)) {
		close(fd);
		return NULL; /* a script: its interpreter is what runs */
	}
	if (eh.e_ident[EI_CLASS] == ELFCLASS64) {
		bool interp = false;

		for (int i = 0; i < eh.e_phnum; i++) {
			Elf64_Phdr ph;
			if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * eh.e_phentsize)) !=
			    (ssize_t)sizeof(ph))
				break;
			interp |= ph.p_type == PT_INTERP;
		}
		if (!interp) {
			close(fd);
			return "statically linked: LD_PRELOAD cannot load heapprof into it";
		}
	}
	close(fd);
	return NULL;
setuid:
	close(fd);
	return "set-user-ID or set-group-ID: ld.so ignores LD_PRELOAD for it";
}

/* libheapprof.so next to this command in a build tree, or installed. */
static bool
find_library(char *out, size_t cap)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *env = getenv("HEAPPROF_LIB");

	if (env && *env) {
		snprintf(out, cap, "%s", env);
		return access(out, R_OK) == 0;
	}
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			if (snprintf(out, cap, "%s/../preload/libheapprof.so", self) < (int)cap &&
			    access(out, R_OK) == 0 && realpath(out, self)) {
				snprintf(out, cap, "%s", self);
				return true;
			}
		}
	}
	snprintf(out, cap, "%s/libheapprof.so", HP_LIBDIR);
	return access(out, R_OK) == 0;
}

/* ---- the spool ---- */

/* In a spool: "PID START-TICKS PID-NAMESPACE" of its collector. */
#define SPOOL_MARK "collector"
/* In a spool: what its collector writes ("full" or "snapshots", the
 * database file's "DEV INO", its absolute path), for heapprof snapshot. */
#define SPOOL_OUTPUT "output"

static const char *
spool_base(size_t i)
{
	const char *bases[] = { "/dev/shm", getenv("TMPDIR"), "/tmp" };

	return i < 3 && bases[i] && bases[i][0] == '/' ? bases[i] : NULL;
}

/* A process's start time, 0 if there is no such process. */
static unsigned long long
start_ticks_of(long pid)
{
	char state;
	unsigned long long ticks;

	return proc_stat(pid, &state, &ticks) ? ticks : 0;
}

/* The pid namespace pids are read in (0 if unknown). */
static unsigned long long
pid_namespace(void)
{
	struct stat st;

	return stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

/* Mark the spool as this process's: a later heapprof that finds the mark's
 * process gone knows the spool is abandoned. */
static void
mark_spool(const char *dir)
{
	char path[PATH_MAX + 32];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, SPOOL_MARK);
	if ((f = fopen(path, "wxe"))) {
		fprintf(f, "%ld %llu %llu\n", (long)getpid(), start_ticks_of(getpid()),
			pid_namespace());
		fclose(f);
	}
}

static void remove_spool(const char *dir);

/* Remove the spools of collectors that are gone (killed: nothing of theirs
 * cleaned up), which would otherwise hold their rings, in memory when in
 * /dev/shm, until reboot. Only directories of this user's with a mark
 * written in this pid namespace (a container sharing /dev/shm sees other
 * pids), so never another heapprof's that still runs. */
static void
sweep_spools(void)
{
	unsigned long long ns = pid_namespace();

	if (ns == 0)
		return;
	for (size_t i = 0; i < 3; i++) {
		const char *base = spool_base(i);
		DIR *d = base ? opendir(base) : NULL;
		struct dirent *de;

		if (!d)
			continue;
		while ((de = readdir(d)) != NULL) {
			char dir[PATH_MAX], mark[PATH_MAX + 32];
			struct stat st;
			long pid = 0;
			unsigned long long ticks = 0, their_ns = 0;
			FILE *f;

			if (strncmp(de->d_name, "heapprof-", 9) != 0)
				continue;
			snprintf(dir, sizeof(dir), "%s/%s", base, de->d_name);
			if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
				continue;
			snprintf(mark, sizeof(mark), "%s/%s", dir, SPOOL_MARK);
			if (!(f = fopen(mark, "re")))
				continue;
			int got = fscanf(f, "%ld %llu %llu", &pid, &ticks, &their_ns);
			fclose(f);
			if (got == 3 && pid > 0 && their_ns == ns && start_ticks_of(pid) != ticks)
				remove_spool(dir);
		}
		closedir(d);
	}
}

static bool
make_spool(char *dir, size_t cap)
{
	sweep_spools();
	for (size_t i = 0; i < 3; i++) {
		const char *base = spool_base(i);
		if (!base)
			continue;
		snprintf(dir, cap, "%s/heapprof-XXXXXX", base);
		if (mkdtemp(dir)) {
			mark_spool(dir);
			return true;
		}
	}
	return false;
}

static void
remove_spool(const char *dir)
{
	char cmd[PATH_MAX + 16];
	DIR *d;

	/* Only our own files (P*.proc, P*.r*, the mark, the output note,
	 * requests) live there. */
	d = opendir(dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] == 'P' || strcmp(de->d_name, SPOOL_MARK) == 0 ||
			    strcmp(de->d_name, SPOOL_OUTPUT) == 0 ||
			    strncmp(de->d_name, SNAPSHOT_REQUEST, sizeof(SNAPSHOT_REQUEST) - 1) == 0) {
				snprintf(cmd, sizeof(cmd), "%s/%s", dir, de->d_name);
				unlink(cmd);
			}
		closedir(d);
	}
	rmdir(dir);
}

/* The absolute path `path` names (its directory resolved), into out. */
static bool
absolute_path(const char *path, char *out, size_t cap)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (!realpath(dir, real) || !*base)
		return false;
	return snprintf(out, cap, "%s/%s", strcmp(real, "/") ? real : "", base) < (int)cap;
}

/* Note in the spool which database its collector writes (`file`, the one
 * being written; `target`, the name it gets) and how. */
static void
note_output(const char *spool, const char *file, const char *target, bool snapshots)
{
	char path[PATH_MAX + 32], abs[PATH_MAX];
	struct stat st;
	FILE *f;

	if (stat(file, &st) != 0 || !absolute_path(target, abs, sizeof(abs)))
		return;
	snprintf(path, sizeof(path), "%s/%s", spool, SPOOL_OUTPUT);
	if ((f = fopen(path, "wxe"))) {
		fprintf(f, "%s\n%llu %llu\n%s\n", snapshots ? "snapshots" : "full",
			(unsigned long long)st.st_dev, (unsigned long long)st.st_ino, abs);
		fclose(f);
	}
}

/* ---- the database file ---- */

/* Create `path` exclusively (0600, no symlink followed). With force, an
 * existing file is replaced at the end: we write to a temporary name in
 * the same directory (returned in tmp) and rename it. */
static int
create_output(const char *path, bool force, char *tmp, size_t cap, char *why, size_t whycap)
{
	int fd;

	tmp[0] = '\0';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == EEXIST && force) {
		struct stat st;
		if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
			snprintf(why, whycap, "exists and is not a regular file");
			return -1;
		}
		snprintf(tmp, cap, "%s.heapprof-XXXXXX", path);
		fd = mkstemp(tmp);
		if (fd < 0) {
			snprintf(why, whycap, "cannot create a file next to it: %s", strerror(errno));
			return -1;
		}
		fchmod(fd, 0600);
		close(fd);
		return 0;
	}
	if (errno == EEXIST)
		snprintf(why, whycap, "already exists (use --force to replace it)");
	else if (errno == ELOOP)
		snprintf(why, whycap, "is a symbolic link");
	else
		snprintf(why, whycap, "cannot create: %s", strerror(errno));
	return -1;
}

/* ---- running ---- */

/* The kind of recording, in meta. */
static void
record_mode(struct db *db, bool snapshots, int64_t every_ns)
{
	char v[32];

	db_meta(db, "recording", snapshots ? "snapshots" : "full");
	snprintf(v, sizeof(v), "%lld", (long long)(every_ns > 0 ? every_ns : 60000000000LL));
	db_meta(db, "interval_ns", v);
}

static void
usage_run(FILE *f)
{
	fputs("usage: heapprof run [-o FILE] [--force] [--max-depth N] [--snapshots]\n"
	      "                    [--snapshot-every SECONDS] [--] PROGRAM [ARGS...]\n"
	      "\n"
	      "  -o, --output FILE     the database (default heapprof.PROGRAM.PID.db)\n"
	      "  -f, --force           replace FILE if it exists (once the new one is complete)\n"
	      "  --max-depth N         frames per call stack, 1 to 256 (default 64)\n"
	      "  --snapshots           record snapshots of the heaps instead of every chunk:\n"
	      "                        at each process's end, peak extent and worst\n"
	      "                        untrimmable instant, every interval and on demand\n"
	      "                        (heapprof snapshot FILE); the file grows with the heap,\n"
	      "                        not with the run\n"
	      "  --snapshot-every SECONDS\n"
	      "                        the interval of snapshots and sites (default 60; implies\n"
	      "                        --snapshots)\n",
	      f);
}

struct run_opts {
	const char *output;
	bool force;
	long max_depth;
	bool snapshots;
	int64_t every_ns;
	char **argv; /* the program and its arguments */
};

/* The interval of --snapshot-every or HEAPPROF_SNAPSHOTS: seconds, at least
 * a millisecond. */
static bool
parse_every(const char *v, int64_t *ns)
{
	return parse_seconds(v, ns) && *ns >= 1000000;
}

static int
parse_run(int argc, char **argv, struct run_opts *o)
{
	int i;

	o->output = NULL;
	o->force = false;
	o->max_depth = 64;
	o->snapshots = false;
	o->every_ns = 0;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-')
			break;
		if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
			if (++i >= argc || argv[i][0] == '\0') {
				hp_error(a, "needs a file name");
				return 2;
			}
			o->output = argv[i];
		} else if (strncmp(a, "--output=", 9) == 0) {
			o->output = a + 9;
		} else if (strcmp(a, "--force") == 0 || strcmp(a, "-f") == 0) {
			o->force = true;
		} else if (strcmp(a, "--max-depth") == 0 || strncmp(a, "--max-depth=", 12) == 0) {
			const char *v = a[11] == '=' ? a + 12 : (++i < argc ? argv[i] : NULL);
			if (!parse_long(v, 1, HP_MAX_DEPTH_LIMIT, &o->max_depth)) {
				hp_error("--max-depth", "'%s' is not a number from 1 to %d",
					 v ? v : "", HP_MAX_DEPTH_LIMIT);
				return 2;
			}
		} else if (strcmp(a, "--snapshots") == 0) {
			o->snapshots = true;
		} else if (strcmp(a, "--snapshot-every") == 0 ||
			   strncmp(a, "--snapshot-every=", 17) == 0) {
			const char *v = a[16] == '=' ? a + 17 : (++i < argc ? argv[i] : NULL);
			if (!parse_every(v, &o->every_ns)) {
				hp_error("--snapshot-every", "'%s' is not a number of seconds (at least 0.001)",
					 v ? v : "");
				return 2;
			}
			o->snapshots = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage_run(stdout);
			return 0;
		} else {
			hp_error(a, "unknown option (see heapprof run --help)");
			return 2;
		}
	}
	if (i >= argc) {
		hp_error("run", "no program given (see heapprof run --help)");
		return 2;
	}
	o->argv = argv + i;
	return -1;
}

/* The environment of the program: ours plus the preload and the spool. */
/* The 4 entries child_env adds at the end of the environment. */
static void
free_child_env(char **env)
{
	size_t n = 0;

	while (env[n])
		n++;
	for (size_t i = n >= 4 ? n - 4 : 0; i < n; i++)
		free(env[i]);
	free(env);
}

static char **
child_env(const char *lib, const char *spool, long depth)
{
	extern char **environ;
	size_t n = 0;
	char **env;
	const char *old = getenv("LD_PRELOAD");
	char *v;

	while (environ[n])
		n++;
	env = xcalloc(n + 5, sizeof(char *));
	n = 0;
	/* HEAPPROF_UNWIND_CHECK (preload/unwind.h) is for the program. */
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11) &&
		    (strncmp(*e, "HEAPPROF_", 9) || !strncmp(*e, "HEAPPROF_UNWIND_CHECK=", 22)))
			env[n++] = *e;
	v = xmalloc(strlen(lib) + (old ? strlen(old) : 0) + 16);
	sprintf(v, "LD_PRELOAD=%s%s%s", lib, old && *old ? ":" : "", old && *old ? old : "");
	env[n++] = v;
	v = xmalloc(strlen(spool) + 32);
	sprintf(v, "%s=%s", HP_ENV_SPOOL, spool);
	env[n++] = v;
	v = xmalloc(64);
	sprintf(v, "%s=%d", HP_ENV_COLLECTOR, (int)getpid());
	env[n++] = v;
	v = xmalloc(64);
	sprintf(v, "%s=%ld", HP_ENV_MAX_DEPTH, depth);
	env[n++] = v;
	env[n] = NULL;
	return env;
}

/* Collect until every process is gone. Returns the root's wait status. */
static int
collect_until_done(struct collector *col, pid_t root)
{
	int root_status = 0;
	bool root_done = false;

	for (;;) {
		int status;
		pid_t pid;
		bool any = collect_poll(col);

		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			collect_reaped(col, pid, status);
			if (pid == root) {
				root_status = status;
				root_done = true;
			}
		}
		if (pid < 0 && errno == ECHILD && root_done)
			break;
		if (!any) {
			struct timespec ts = { 0, collect_waiting(col) ? 20000 : 2000000 };
			nanosleep(&ts, NULL);
		}
	}
	return root_status;
}

/* The top pin's site, from the finished database, into buf. */
static const char *
pin_site(const char *db_path, const struct db_summary *r, char *buf, size_t cap)
{
	char err[256];
	struct ld_db *db;

	if (strcmp(r->pin_state, "allocator") == 0) {
		snprintf(buf, cap, "the allocator's own memory");
		return buf;
	}
	if (!(db = ld_open(db_path, err, sizeof(err)))) {
		snprintf(buf, cap, "(the database cannot be read: %s)", err);
		return buf;
	}
	ld_site_text(db, r->pin_stack_id, buf, cap);
	ld_close(db);
	return buf;
}

static void
summary(const char *db_path, const struct collect_stats *s)
{
	char peak[32], leak[32];

	fprintf(stderr,
		"heapprof: %lld process%s, %lld chunk%s, peak live %s, leaked %s in %llu chunk%s\n",
		(long long)s->images, s->images == 1 ? "" : "es", (long long)s->chunks,
		s->chunks == 1 ? "" : "s", fmt_size(peak, sizeof(peak), s->peak_live_bytes),
		fmt_size(leak, sizeof(leak), s->leaked_bytes), (unsigned long long)s->leaked_chunks,
		s->leaked_chunks == 1 ? "" : "s");
	if (s->dropped || s->truncated)
		fprintf(stderr, "heapprof: incomplete: %llu events dropped, %llu records truncated\n",
			(unsigned long long)s->dropped, (unsigned long long)s->truncated);
	if (s->has_root) {
		const struct db_summary *r = &s->root;
		char a[32], b[32], c[32], d[32], e[32], site[512];
		fprintf(stderr,
			"heapprof: pid %lld at exit: heap extent %s, live %s, untrimmable %s "
			"(malloc_trim(0) would return %s); worst untrimmable %s at %.3f s\n",
			(long long)s->root_pid, fmt_size(a, sizeof(a), r->extent),
			fmt_size(b, sizeof(b), r->live + r->mmap),
			fmt_size(c, sizeof(c), r->untrimmable),
			fmt_size(d, sizeof(d), r->trim_reclaimable),
			fmt_size(e, sizeof(e), r->worst_untrimmable),
			(double)(r->worst_ns - s->root_started_ns) / 1e9);
		if (r->untrimmable && r->pin_bytes)
			fprintf(stderr, "heapprof: top pin: %s, %s, from %s\n",
				fmt_size(a, sizeof(a), r->pin_bytes), r->pin_state,
				pin_site(db_path, r, site, sizeof(site)));
	}
	fprintf(stderr, "heapprof: wrote %s (heapprof report %s: pins, holes, stacks)\n", db_path,
		db_path);
}

int
cmd_run(int argc, char **argv)
{
	struct run_opts o;
	char prog[PATH_MAX], lib[PATH_MAX], spool[PATH_MAX], out[PATH_MAX], tmp[PATH_MAX];
	char why[256], err[512];
	const char *reason;
	int rc, gate[2], errpipe[2], status, child_errno = 0;
	struct collector *col;
	struct db *db;
	pid_t pid;

	rc = parse_run(argc, argv, &o);
	if (rc >= 0)
		return rc == 2 ? 125 : rc;
	rc = resolve(o.argv[0], prog, sizeof(prog));
	if (rc == 127) {
		hp_error(o.argv[0], "not found");
		return 127;
	}
	if (rc == 126) {
		hp_error(o.argv[0], "not executable");
		return 126;
	}
	if ((reason = unrecordable(prog)) != NULL) {
		hp_error(prog, "%s", reason);
		return 126;
	}
	if (!find_library(lib, sizeof(lib))) {
		hp_error("libheapprof.so", "not found (set HEAPPROF_LIB)");
		return 125;
	}
	if (!make_spool(spool, sizeof(spool))) {
		hp_error("spool", "cannot create a private directory: %s", strerror(errno));
		return 125;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1);

	/* The child waits on `gate` until the database exists (its name may
	 * hold the child's pid), then execs; an exec failure comes back
	 * through `errpipe` (closed on exec). */
	if (pipe2(gate, O_CLOEXEC) != 0 || pipe2(errpipe, O_CLOEXEC) != 0) {
		hp_error("pipe", "%s", strerror(errno));
		remove_spool(spool);
		return 125;
	}
	char **env = child_env(lib, spool, o.max_depth);
	pid = fork();
	if (pid < 0) {
		hp_error("fork", "%s", strerror(errno));
		free_child_env(env);
		remove_spool(spool);
		return 125;
	}
	if (pid == 0) {
		char go;
		close(gate[1]);
		close(errpipe[0]);
		if (read(gate[0], &go, 1) != 1)
			_exit(125);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGXFSZ, SIG_DFL);
		execve(prog, o.argv, env);
		int e = errno;
		if (write(errpipe[1], &e, sizeof(e)) < 0)
			_exit(126);
		_exit(e == ENOENT ? 127 : 126);
	}
	target_pid = pid;
	free_child_env(env);
	close(gate[0]);
	close(errpipe[1]);

	if ((o.output ? snprintf(out, sizeof(out), "%s", o.output)
		      : snprintf(out, sizeof(out), "heapprof.%s.%d.db", path_base(prog), (int)pid)) >=
	    (int)sizeof(out)) {
		hp_error("output", "file name too long");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		remove_spool(spool);
		return 125;
	}
	if (create_output(out, o.force, tmp, sizeof(tmp), why, sizeof(why)) != 0) {
		hp_error(out, "%s", why);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		remove_spool(spool);
		return 125;
	}
	db = db_create(tmp[0] ? tmp : out, err, sizeof(err));
	if (db == NULL) {
		hp_error(out, "%s", err);
		unlink(tmp[0] ? tmp : out);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		remove_spool(spool);
		return 125;
	}
	{
		struct buf cmd = { 0 };
		for (char **a = o.argv; *a; a++) {
			if (a != o.argv)
				buf_add(&cmd, " ", 1);
			buf_add(&cmd, *a, strlen(*a));
		}
		buf_add(&cmd, "", 1);
		db_meta(db, "command", cmd.p);
		buf_free(&cmd);
	}
	record_mode(db, o.snapshots, o.every_ns);
	note_output(spool, tmp[0] ? tmp : out, out, o.snapshots);
	col = collect_new(db, spool, false);
	collect_options(col, o.snapshots, o.every_ns);
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);

	if (write(gate[1], "g", 1) != 1) {
		hp_error("pipe", "%s", strerror(errno));
	}
	close(gate[1]);
	if (read(errpipe[0], &child_errno, sizeof(child_errno)) == (ssize_t)sizeof(child_errno)) {
		hp_error(prog, "cannot execute: %s", strerror(child_errno));
		waitpid(pid, NULL, 0);
		collect_free(col);
		db_abandon(db);
		unlink(tmp[0] ? tmp : out);
		remove_spool(spool);
		return child_errno == ENOENT ? 127 : 126;
	}
	close(errpipe[0]);

	status = collect_until_done(col, pid);
	collect_finish(col);
	struct collect_stats st;
	collect_stats(col, &st);
	collect_free(col);
	remove_spool(spool);
	if (st.images == 0)
		fprintf(stderr, "heapprof: %s: no events arrived: the program was not recorded "
				"(static, setuid, or its own malloc?)\n", prog);
	if (db_finish(db, err, sizeof(err)) != 0) {
		hp_error(out, "%s", err);
		rc = 125;
	} else {
		if (tmp[0])
			db_remove_journal(out); /* the replaced file's, if a run was cut off */
		if (tmp[0] && rename(tmp, out) != 0) {
			hp_error(out, "cannot replace: %s", strerror(errno));
			unlink(tmp);
			rc = 125;
		} else {
			summary(out, &st);
			rc = 0;
		}
	}
	if (rc == 0) {
		if (WIFEXITED(status))
			rc = WEXITSTATUS(status);
		else if (WIFSIGNALED(status))
			rc = 128 + WTERMSIG(status);
	}
	return rc;
}

/* ---- collect (started by a program recording on its own) ---- */

/* The process runs: it exists and is not a zombie (its parent may wait for
 * the output the collector still holds before it reaps it). */
static bool
alive(long pid)
{
	char state;
	unsigned long long ticks;

	return proc_stat(pid, &state, &ticks) && state != 'Z' && state != 'X';
}

int
cmd_collect(int argc, char **argv)
{
	const char *spool = NULL, *out = NULL;
	long attach = 0;
	bool snapshots = false;
	int64_t every_ns = 0;
	char err[512], why[256], tmp[PATH_MAX];
	struct collector *col;
	struct db *db;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--spool") == 0 && i + 1 < argc)
			spool = argv[++i];
		else if (strcmp(argv[i], "--snapshots") == 0 && i + 1 < argc) {
			if (!parse_every(argv[++i], &every_ns)) {
				hp_error("--snapshots", "'%s' is not a number of seconds", argv[i]);
				return 2;
			}
			snapshots = true;
		} else if (strcmp(argv[i], "--attach") == 0 && i + 1 < argc) {
			if (!parse_long(argv[++i], 1, INT_MAX, &attach)) {
				hp_error("--attach", "'%s' is not a process id", argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--") == 0 && i + 1 < argc) {
			out = argv[++i];
		} else {
			hp_error(argv[i], "unexpected argument");
			return 2;
		}
	}
	if (!spool || !out) {
		fputs("usage: heapprof collect --spool DIR [--attach PID] [--snapshots SECONDS] "
		      "-- OUTPUT\n",
		      stderr);
		return 2;
	}
	if (create_output(out, false, tmp, sizeof(tmp), why, sizeof(why)) != 0) {
		hp_error(out, "%s", why);
		remove_spool(spool);
		return 1;
	}
	/* Detach: the program waits for this process, not for the collector. */
	pid_t pid = fork();
	if (pid < 0) {
		hp_error("fork", "%s", strerror(errno));
		return 1;
	}
	if (pid > 0)
		_exit(0);
	setsid();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	int devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		if (devnull > 2)
			close(devnull);
	}
	closefrom(3);
	sweep_spools();
	mark_spool(spool);
	db = db_create(out, err, sizeof(err));
	if (db == NULL) {
		hp_error(out, "%s", err);
		unlink(out);
		remove_spool(spool);
		return 1;
	}
	db_meta(db, "command", "(recorded with HEAPPROF_OUTPUT)");
	record_mode(db, snapshots, every_ns);
	note_output(spool, out, out, snapshots);
	col = collect_new(db, spool, true);
	collect_options(col, snapshots, every_ns);
	/* Until every process image is gone, and nothing new for a moment
	 * (a child may still be creating its files as its parent ends). */
	uint64_t quiet_since = 0;
	for (;;) {
		bool any = collect_poll(col);
		uint64_t now = mono_ns();
		if (any || collect_pending(col) > 0 || (attach && alive(attach)))
			quiet_since = now;
		else if (now - quiet_since > 500000000ULL)
			break;
		if (!any) {
			struct timespec ts = { 0, collect_waiting(col) ? 20000 : 5000000 };
			nanosleep(&ts, NULL);
		}
	}
	collect_finish(col);
	collect_free(col);
	remove_spool(spool);
	if (db_finish(db, err, sizeof(err)) != 0) {
		hp_error(out, "%s", err);
		return 1;
	}
	return 0;
}

/* ---- snapshot: ask a running collector for one ---- */

/* The spool of the collector that writes `abs` (or the file dev/ino), into
 * dir; its mode into mode. */
static bool
find_writer(const char *abs, const struct stat *st, char *dir, size_t cap, char *mode,
	    size_t modecap)
{
	for (size_t i = 0; i < 3; i++) {
		const char *base = spool_base(i);
		DIR *d = base ? opendir(base) : NULL;
		struct dirent *de;

		if (!d)
			continue;
		while ((de = readdir(d)) != NULL) {
			char path[PATH_MAX + 64], target[PATH_MAX], m[16];
			unsigned long long dev, ino;
			struct stat ds;
			FILE *f;

			if (strncmp(de->d_name, "heapprof-", 9) != 0)
				continue;
			snprintf(dir, cap, "%s/%s", base, de->d_name);
			if (lstat(dir, &ds) != 0 || !S_ISDIR(ds.st_mode) || ds.st_uid != getuid())
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, SPOOL_OUTPUT);
			if (!(f = fopen(path, "re")))
				continue;
			bool got = fscanf(f, "%15s %llu %llu ", m, &dev, &ino) == 3 &&
				   fgets(target, sizeof(target), f) != NULL;
			fclose(f);
			if (!got)
				continue;
			target[strcspn(target, "\n")] = '\0';
			if (strcmp(target, abs) == 0 ||
			    (st && st->st_dev == (dev_t)dev && st->st_ino == (ino_t)ino)) {
				snprintf(mode, modecap, "%s", m);
				closedir(d);
				return true;
			}
		}
		closedir(d);
	}
	return false;
}

int
cmd_snapshot(int argc, char **argv)
{
	char abs[PATH_MAX], dir[PATH_MAX], mode[16], req[PATH_MAX + 64];
	struct stat st;
	const char *file = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs("usage: heapprof snapshot FILE\n"
			      "  ask the heapprof run (or collect) writing FILE with --snapshots for\n"
			      "  a snapshot of every process it records, now\n",
			      stdout);
			return 0;
		}
		if (argv[i][0] == '-' || file) {
			hp_error(argv[i], "unexpected argument (see heapprof snapshot --help)");
			return 2;
		}
		file = argv[i];
	}
	if (!file) {
		hp_error("snapshot", "which database? (heapprof snapshot FILE)");
		return 2;
	}
	if (!absolute_path(file, abs, sizeof(abs))) {
		hp_error(file, "%s", strerror(errno ? errno : ENOENT));
		return 2;
	}
	bool exists = stat(file, &st) == 0;
	if (!find_writer(abs, exists ? &st : NULL, dir, sizeof(dir), mode, sizeof(mode))) {
		hp_error(file, "no heapprof run of yours is writing it");
		return 2;
	}
	if (strcmp(mode, "snapshots") != 0) {
		hp_error(file, "a full recording, not --snapshots: every instant can be reported "
			       "after the run (heapprof report --at SECONDS)");
		return 2;
	}
	snprintf(req, sizeof(req), "%s/%s.%ld", dir, SNAPSHOT_REQUEST, (long)getpid());
	int fd = open(req, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		hp_error(file, "cannot ask its collector: %s", strerror(errno));
		return 1;
	}
	close(fd);
	/* the collector removes the request once the snapshots are taken */
	for (int waited = 0; waited < 1000; waited++) {
		struct timespec ts = { 0, 10000000 };
		if (access(req, F_OK) != 0) {
			fprintf(stderr, "heapprof: %s: snapshot taken (it is in the file once the "
					"run ends)\n",
				file);
			return 0;
		}
		if (access(dir, F_OK) != 0)
			break;
		nanosleep(&ts, NULL);
	}
	unlink(req);
	hp_error(file, "its collector did not answer within 10 s");
	return 1;
}
