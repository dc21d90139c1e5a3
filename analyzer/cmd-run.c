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
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "collect.h"
#include "db.h"
#include "events.h"
#include "load.h"
#include "selfcheck.h"
#include "util.h"

#ifndef HP_LIBDIR
#define HP_LIBDIR "/usr/local/lib"
#endif

/* ---- signals ----
 *
 * A signal someone sends heapprof run is meant for the program: it is
 * forwarded, and heapprof goes on collecting (it never dies of one, or the
 * program would be orphaned and the database left unfinished). Before the
 * program runs it waits its turn; after the program has ended it is
 * ignored. What the terminal sends the foreground process group (^C, ^\)
 * the program got itself: not sent twice. The job control signals keep
 * their default action (^Z stops heapprof with the program). heapprof
 * collect, detached, ignores them all. Signals ignored when heapprof
 * started stay ignored, for heapprof and for the program.
 */
static volatile sig_atomic_t target_pid;   /* 0: not started, or reaped */
static volatile sig_atomic_t target_done;
static volatile sig_atomic_t pending_sig;  /* sent before the program ran */
static pid_t self_pid;
static struct sigaction orig_action[NSIG];
static bool changed[NSIG];

/* Machine faults: a real one (not one sent by someone) is heapprof's own,
 * and kills it as it would have. */
static bool
is_fault(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
	       sig == SIGTRAP || sig == SIGSYS;
}

static void
on_signal(int sig, siginfo_t *si, void *ctx)
{
	int saved = errno;

	(void)ctx;
	/* sent by a process (kill, sigqueue, tgkill) other than heapprof
	 * itself (raise, abort, and the kernel's SIGPIPE and SIGXFSZ for
	 * heapprof's own writes, which then fail with EPIPE, EFBIG) */
	bool sent = (si->si_code == SI_USER || si->si_code == SI_QUEUE ||
		     si->si_code == SI_TKILL) && si->si_pid != self_pid;
	if (!sent) {
		if (is_fault(sig) && si->si_code > 0) {
			signal(sig, SIG_DFL);
			raise(sig);
		}
	} else if (target_pid > 0) {
		kill((pid_t)target_pid, sig);
	} else if (!target_done) {
		pending_sig = sig;
	}
	errno = saved;
}

/* Job control: stopping and continuing are not fatal, and heapprof stops
 * with its program on ^Z. */
static bool
keeps_default(int sig)
{
	return sig == SIGKILL || sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN ||
	       sig == SIGTTOU || sig == SIGCONT;
}

/* Every catchable signal to `handler` (or SIG_IGN when NULL), except
 * those ignored already; the originals are kept for the program. */
static void
take_signals(void (*handler)(int, siginfo_t *, void *))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigfillset(&sa.sa_mask);
	if (handler) {
		sa.sa_sigaction = handler;
		sa.sa_flags = SA_SIGINFO | SA_RESTART;
	} else {
		sa.sa_handler = SIG_IGN;
	}
	self_pid = getpid();
	for (int sig = 1; sig < NSIG; sig++) {
		if (keeps_default(sig) || (!handler && sig == SIGCHLD))
			continue;
		if (sigaction(sig, NULL, &orig_action[sig]) != 0 ||
		    orig_action[sig].sa_handler == SIG_IGN)
			continue; /* glibc's own (32, 33), or ignored already */
		if (sigaction(sig, &sa, NULL) == 0)
			changed[sig] = true;
	}
}

/* In the program's process, before exec: the dispositions heapprof got. */
static void
restore_signals(void)
{
	for (int sig = 1; sig < NSIG; sig++)
		if (changed[sig])
			sigaction(sig, &orig_action[sig], NULL);
}

/* The program exists now: signals go to it. */
static void
set_target(pid_t pid)
{
	target_pid = pid;
	int sig = pending_sig;
	if (sig)
		kill(pid, sig);
}

/* It was reaped: its pid may be another process's soon. */
static void
clear_target(void)
{
	target_done = 1;
	target_pid = 0;
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

/*
 * In a spool: "PID START-TICKS PID-NAMESPACE lock" of its collector, which
 * holds a lock (flock) on it for as long as it runs. A later heapprof that
 * can take the lock knows the spool is abandoned; a mark without "lock"
 * (an older heapprof's) is judged by its pid and start time, which needs
 * the same pid namespace and the same view of /proc.
 */
#define SPOOL_MARK "collector"
/* In a spool: what its collector writes ("full" or "snapshots", the
 * database file's "DEV INO", its absolute path), for heapprof snapshot. */
#define SPOOL_OUTPUT "output"

static int mark_fd = -1; /* the mark's lock: held until this process ends */

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

/*
 * How this process sees pids and start times: the inode of the pid
 * namespace it reads /proc in, or 0 if another process's pid and start
 * time cannot be judged from here: /proc is another pid namespace's
 * (mounted for an ancestor, so its pids are not the ones getpid gives), or
 * a time namespace shifts the boot time that start times count from.
 */
static unsigned long long
pid_view(void)
{
	char buf[256];
	struct stat st;
	long long secs, nsecs;
	ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (strtol(buf, NULL, 10) != (long)getpid())
		return 0;
	int fd = open("/proc/self/timens_offsets", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) { /* Linux 5.6+; "boottime SECS NSECS" */
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		const char *b = strstr(buf, "boottime");
		if (b && sscanf(b + 8, "%lld %lld", &secs, &nsecs) == 2 && (secs || nsecs))
			return 0;
	}
	return stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

/* Mark the spool as this process's (replacing the mark of the program that
 * made it, in standalone recording). The mark is written and locked under
 * another name first, then renamed into place, so that no one sees it
 * unlocked; the lock is held until this process ends. */
static void
mark_spool(const char *dir)
{
	char path[PATH_MAX + 32], tmp[PATH_MAX + 64], line[96];
	int fd, n;

	snprintf(path, sizeof(path), "%s/%s", dir, SPOOL_MARK);
	snprintf(tmp, sizeof(tmp), "%s/%s.%ld", dir, SPOOL_MARK, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%ld %llu %llu lock\n", (long)getpid(),
		     start_ticks_of(getpid()), pid_view());
	if (flock(fd, LOCK_EX | LOCK_NB) != 0 || write(fd, line, (size_t)n) != n ||
	    rename(tmp, path) != 0) {
		close(fd);
		unlink(tmp);
		return;
	}
	mark_fd = fd;
}

/* Whether the spool whose mark is `mark` is abandoned: its collector is
 * gone. Anything unclear (no mark, an unreadable one, an old mark of
 * another pid namespace's, or one that cannot be judged from this one's
 * view: `ns` 0) is not. */
static bool
spool_abandoned(const char *mark, unsigned long long ns)
{
	char line[128], word[8] = "";
	long pid = 0;
	unsigned long long ticks = 0, their_ns = 0;
	ssize_t n;
	int fd = open(mark, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
		close(fd); /* locked: its collector runs */
		return false;
	}
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n <= 0)
		return false;
	line[n] = '\0';
	int got = sscanf(line, "%ld %llu %llu %7s", &pid, &ticks, &their_ns, word);
	if (got == 4 && strcmp(word, "lock") == 0)
		return true; /* its collector would hold the lock */
	return got >= 3 && pid > 0 && ns != 0 && their_ns == ns && start_ticks_of(pid) != ticks;
}

static void remove_spool(const char *dir);

/* Remove the spools of collectors that are gone (killed: nothing of theirs
 * cleaned up), which would otherwise hold their rings, in memory when in
 * /dev/shm, until reboot: only this user's directories, and never one
 * whose collector runs. */
static void
sweep_spools(void)
{
	unsigned long long ns = pid_view();

	for (size_t i = 0; i < 3; i++) {
		const char *base = spool_base(i);
		DIR *d = base ? opendir(base) : NULL;
		struct dirent *de;

		if (!d)
			continue;
		while ((de = readdir(d)) != NULL) {
			char dir[PATH_MAX], mark[PATH_MAX + 32];
			struct stat st;

			if (strncmp(de->d_name, "heapprof-", 9) != 0)
				continue;
			snprintf(dir, sizeof(dir), "%s/%s", base, de->d_name);
			if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
				continue;
			snprintf(mark, sizeof(mark), "%s/%s", dir, SPOOL_MARK);
			if (spool_abandoned(mark, ns))
				remove_spool(dir);
		}
		closedir(d);
	}
}

/* Free bytes of the filesystem of `dir` (0 if unknown). */
static unsigned long long
free_bytes(const char *dir)
{
	struct statvfs fs;

	return statvfs(dir, &fs) == 0 ? (unsigned long long)fs.f_bavail * fs.f_frsize : 0;
}

/* The spool goes in the first base with HP_SPOOL_ROOM free bytes, else in
 * the one with the most: rings in a small /dev/shm would take the space
 * the program may need there (and get small). */
static bool
make_spool(char *dir, size_t cap)
{
	unsigned long long room[3];
	size_t order[3], k = 0;

	sweep_spools();
	for (size_t i = 0; i < 3; i++) {
		room[i] = spool_base(i) ? free_bytes(spool_base(i)) : 0;
		if (room[i] >= HP_SPOOL_ROOM)
			order[k++] = i;
	}
	for (size_t i = 0; i < 3; i++) /* the others, most room first */
		if (spool_base(i) && room[i] < HP_SPOOL_ROOM) {
			size_t j = k++;
			for (; j > 0 && room[order[j - 1]] < room[i] &&
			       room[order[j - 1]] < HP_SPOOL_ROOM; j--)
				order[j] = order[j - 1];
			order[j] = i;
		}
	for (size_t j = 0; j < k; j++) {
		snprintf(dir, cap, "%s/heapprof-XXXXXX", spool_base(order[j]));
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

	/* Only our own files (P*.proc, P*.r*, the mark, a mark being made,
	 * the output note, requests) live there. */
	d = opendir(dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] == 'P' ||
			    strncmp(de->d_name, SPOOL_MARK, strlen(SPOOL_MARK)) == 0 ||
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

/* DB-journal: SQLite's rollback journal of the database DB. */
static void
journal_of(char *buf, size_t cap, const char *db)
{
	snprintf(buf, cap, "%s-journal", db);
}

/*
 * SQLite opens DB-journal with O_CREAT, not O_EXCL: one that another user
 * made first (in a shared directory like /tmp) would get every page
 * heapprof writes. So heapprof makes it itself, exclusively, mode 0600
 * (SQLite then uses that file); one of ours already there is the journal a
 * killed run left, removed first (with `keep_ours`, of a database being
 * replaced, only checked: that database may need it until the new one is
 * renamed over it); any other is refused.
 */
static int
create_journal(const char *db, bool keep_ours, char *why, size_t whycap)
{
	char path[PATH_MAX + 16];
	struct stat st;
	int fd;

	journal_of(path, sizeof(path), db);
	if (lstat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1) {
			snprintf(why, whycap, "its journal %.160s-journal already exists and is "
					      "not heapprof's: remove it or write elsewhere",
				 path_base(db));
			return -1;
		}
		if (keep_ours)
			return 0;
		unlink(path);
	} else if (keep_ours) {
		return 0;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, whycap, "cannot create its journal: %s", strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

/* Remove a database file heapprof made and its journal. */
static void
remove_output(const char *path)
{
	char j[PATH_MAX + 16];

	journal_of(j, sizeof(j), path);
	unlink(path);
	unlink(j);
}

/* Create `path` exclusively (0600, no symlink followed), and its journal.
 * With force, an existing file is replaced at the end: we write to a
 * temporary name in the same directory (returned in tmp) and rename it. */
static int
create_output(const char *path, bool force, char *tmp, size_t cap, char *why, size_t whycap)
{
	int fd;

	tmp[0] = '\0';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
		if (create_journal(path, false, why, whycap) != 0) {
			unlink(path);
			return -1;
		}
		return 0;
	}
	if (errno == EEXIST && force) {
		struct stat st;
		if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
			snprintf(why, whycap, "exists and is not a regular file");
			return -1;
		}
		if (create_journal(path, true, why, whycap) != 0)
			return -1;
		snprintf(tmp, cap, "%s.heapprof-XXXXXX", path);
		fd = mkstemp(tmp);
		if (fd < 0) {
			snprintf(why, whycap, "cannot create a file next to it: %s", strerror(errno));
			return -1;
		}
		fchmod(fd, 0600);
		close(fd);
		if (create_journal(tmp, false, why, whycap) != 0) {
			unlink(tmp);
			return -1;
		}
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

/* Whether `path` is a whole heapprof database with a process in it (a
 * report can read it). */
static bool
readable_db(const char *path)
{
	char err[256];
	struct ld_db *db = ld_open(path, err, sizeof(err));
	const char *check[] = { "PRAGMA quick_check", "SELECT count(*) > 0 FROM process" };
	const char *want[] = { "ok", "1" };
	bool ok = db != NULL;

	for (size_t i = 0; ok && i < 2; i++) {
		sqlite3_stmt *s;
		ok = sqlite3_prepare_v2(db->h, check[i], -1, &s, NULL) == SQLITE_OK &&
		     sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) &&
		     strcmp((const char *)sqlite3_column_text(s, 0), want[i]) == 0;
		sqlite3_finalize(s);
	}
	ld_close(db);
	return ok;
}

/*
 * The database could not be finished (err: the disk full, the file size
 * limit reached): what was committed before stays if it is a whole
 * database with a process in it, marked incomplete; otherwise (nothing
 * was committed, or it is the temporary file of --force, which must not
 * replace a whole file) it is removed, with its journal. One line says
 * which.
 */
static void
output_failed(const char *out, const char *file, bool replacing, const char *err)
{
	if (!replacing && readable_db(file)) {
		hp_error(out, "%s: the rest of the recording is lost; what was written before is "
			      "kept, marked incomplete", err);
		return;
	}
	remove_output(file);
	if (replacing)
		hp_error(out, "%s: the recording is lost; the file was left as it was", err);
	else
		hp_error(out, "%s: the recording is lost; no database was kept", err);
}

/* ---- running ---- */

/* The kind of recording, in meta. */
static void
record_mode(struct db *db, bool snapshots, int64_t every_ns)
{
	char v[32];

	db_meta(db, "recording", snapshots ? "snapshots" : "full");
	if (snapshots)
		db_bounded(db);
	snprintf(v, sizeof(v), "%lld", (long long)(every_ns > 0 ? every_ns : 60000000000LL));
	db_meta(db, "interval_ns", v);
}

static void
usage_run(void)
{
	fputs("usage: heapprof run [-o FILE] [--force] [--max-depth N] [--snapshots]\n"
	      "                    [--snapshot-every SECONDS] [--] PROGRAM [ARGS...]\n"
	      "\n"
	      "Run PROGRAM with heapprof's allocator and record every chunk it obtains, with\n"
	      "its call stack, into a SQLite database; then say what its heaps hold at its\n"
	      "end. The exit status is PROGRAM's (128+N if signal N ended it); 125: heapprof\n"
	      "failed, 126: PROGRAM cannot be run, 127: not found. Options take their value\n"
	      "as --opt VALUE or --opt=VALUE.\n"
	      "\n"
	      "  -o, --output FILE   the database (default heapprof.PROGRAM.PID.db)\n"
	      "  -f, --force         replace FILE if it exists (once the new one is complete)\n"
	      "  --max-depth N       frames per call stack, 1 to 256 (64)\n"
	      "  --snapshots         keep snapshots of the heaps instead of every chunk: at\n"
	      "                      each process's end, its peak extent and worst untrimmable\n"
	      "                      instant, every interval and on demand (heapprof snapshot\n"
	      "                      FILE); the file grows with the heap, not with the run\n"
	      "  --snapshot-every SECONDS\n"
	      "                      the interval of snapshots and sites (60; implies\n"
	      "                      --snapshots)\n"
	      "\n"
	      "Then: heapprof report FILE (heapprof report --help).\n",
	      stdout);
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
		const char *v;

		if (strcmp(a, "-o") == 0 || hp_option(a, "--output", &v)) {
			if (strcmp(a, "-o") == 0 || !v)
				v = ++i < argc ? argv[i] : NULL;
			if (!v || v[0] == '\0') {
				hp_error(a, "needs a file name");
				return 2;
			}
			o->output = v;
		} else if (strcmp(a, "--force") == 0 || strcmp(a, "-f") == 0) {
			o->force = true;
		} else if (hp_option(a, "--max-depth", &v)) {
			if (!v)
				v = ++i < argc ? argv[i] : NULL;
			if (!parse_long(v, 1, HP_MAX_DEPTH_LIMIT, &o->max_depth)) {
				hp_error("--max-depth", "'%s' is not a number from 1 to %d",
					 v ? v : "", HP_MAX_DEPTH_LIMIT);
				return 2;
			}
		} else if (strcmp(a, "--snapshots") == 0) {
			o->snapshots = true;
		} else if (hp_option(a, "--snapshot-every", &v)) {
			if (!v)
				v = ++i < argc ? argv[i] : NULL;
			if (!parse_every(v, &o->every_ns)) {
				hp_error("--snapshot-every", "'%s' is not a number of seconds (at least 0.001)",
					 v ? v : "");
				return 2;
			}
			o->snapshots = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage_run();
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
			if (pid == root) {
				clear_target();
				root_status = status;
				root_done = true;
			}
			collect_reaped(col, pid, status);
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
	if (strcmp(r->pin_state, "stashed") == 0) {
		snprintf(buf, cap, "free space the allocator keeps in a tcache or fastbin");
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
		(long long)s->procs, s->procs == 1 ? "" : "es", (long long)s->chunks,
		s->chunks == 1 ? "" : "s", fmt_size(peak, sizeof(peak), s->peak_live_bytes),
		fmt_size(leak, sizeof(leak), s->leaked_bytes), (unsigned long long)s->leaked_chunks,
		s->leaked_chunks == 1 ? "" : "s");
	if (s->dropped || s->truncated || s->bad)
		fprintf(stderr,
			"heapprof: incomplete: %llu events dropped, %llu records truncated, "
			"%llu bad records dropped\n",
			(unsigned long long)s->dropped, (unsigned long long)s->truncated,
			(unsigned long long)s->bad);
	if (s->has_root) {
		const struct db_summary *r = &s->root;
		char a[32], b[32], c[32], d[32], e[32], f[32], site[512];
		fprintf(stderr,
			"heapprof: pid %lld at exit: heap extent %s (%s resident), live %s, "
			"untrimmable %s\n",
			(long long)s->root_pid, fmt_size(a, sizeof(a), r->extent),
			fmt_size(f, sizeof(f), r->resident), fmt_size(b, sizeof(b), r->live + r->mmap),
			fmt_size(c, sizeof(c), r->untrimmable));
		fprintf(stderr,
			"heapprof: malloc_trim(0) would return %s; worst untrimmable %s at %.3f s\n",
			fmt_size(d, sizeof(d), r->trim_reclaimable),
			fmt_size(e, sizeof(e), r->worst_untrimmable),
			(double)(r->worst_ns - s->root_started_ns) / 1e9);
		if (r->untrimmable && r->pin_bytes)
			fprintf(stderr, "heapprof: top pin: %s, %s, %s %s\n",
				fmt_size(a, sizeof(a), r->pin_bytes), r->pin_state,
				strcmp(r->pin_state, "live") == 0 ||
						strcmp(r->pin_state, "cached") == 0
					? "from"
					: "is",
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
	/* SIGPIPE and SIGXFSZ (writing into a closed pipe, past the file
	 * size limit) are handled as ignored: the writes fail instead */
	take_signals(on_signal);
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
		restore_signals();
		if (read(gate[0], &go, 1) != 1)
			_exit(125);
		execve(prog, o.argv, env);
		int e = errno;
		if (write(errpipe[1], &e, sizeof(e)) < 0)
			_exit(126);
		_exit(e == ENOENT ? 127 : 126);
	}
	set_target(pid);
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
		remove_output(tmp[0] ? tmp : out);
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

	if (write(gate[1], "g", 1) != 1) {
		hp_error("pipe", "%s", strerror(errno));
	}
	close(gate[1]);
	if (read(errpipe[0], &child_errno, sizeof(child_errno)) == (ssize_t)sizeof(child_errno)) {
		hp_error(prog, "cannot execute: %s", strerror(child_errno));
		waitpid(pid, NULL, 0);
		collect_free(col);
		db_abandon(db);
		remove_output(tmp[0] ? tmp : out);
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
	if (st.procs == 0)
		fprintf(stderr, "heapprof: %s: no events arrived: the program was not recorded "
				"(static, setuid, or its own malloc?)\n", prog);
	/* The program ran: its status is the run's, whatever becomes of the
	 * database (what did is said on stderr). */
	if (db_finish(db, err, sizeof(err)) != 0) {
		output_failed(out, tmp[0] ? tmp : out, tmp[0] != '\0', err);
	} else {
		if (tmp[0])
			db_remove_journal(out); /* the replaced file's, if a run was cut off */
		if (tmp[0] && rename(tmp, out) != 0) {
			snprintf(why, sizeof(why), "cannot replace: %s", strerror(errno));
			output_failed(out, tmp, true, why);
		} else {
			summary(out, &st);
			if (selfcheck_wanted() && selfcheck_run(out, err, sizeof(err)) != 0) {
				hp_error("self-check", "%s: %s", out, err);
				return 125;
			}
		}
	}
	rc = 0;
	if (WIFEXITED(status))
		rc = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		rc = 128 + WTERMSIG(status);
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
		const char *v;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs("usage: heapprof collect --spool DIR [--attach PID] [--snapshots SECONDS]\n"
			      "                        -- OUTPUT\n"
			      "\n"
			      "The collector a recorded program starts itself when HEAPPROF_OUTPUT\n"
			      "names the database (see heapprof run for the usual way): it reads\n"
			      "the spool directory DIR into the database OUTPUT until every\n"
			      "process of the tree (and PID, with --attach) is gone.\n",
			      stdout);
			return 0;
		}
		if (hp_option(argv[i], "--spool", &v) && (v || i + 1 < argc))
			spool = v ? v : argv[++i];
		else if (hp_option(argv[i], "--snapshots", &v) && (v || i + 1 < argc)) {
			if (!v)
				v = argv[++i];
			if (!parse_every(v, &every_ns)) {
				hp_error("--snapshots", "'%s' is not a number of seconds", v);
				return 2;
			}
			snapshots = true;
		} else if (hp_option(argv[i], "--attach", &v) && (v || i + 1 < argc)) {
			if (!v)
				v = argv[++i];
			if (!parse_long(v, 1, INT_MAX, &attach)) {
				hp_error("--attach", "'%s' is not a process id", v);
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
	/* Detach: the program waits for this process, not for the collector.
	 * The spool is the collector's before the program goes on: the
	 * collector marks it (and holds the mark's lock) before this process
	 * returns, so that no heapprof sweeps it if the program ends at once. */
	int marked[2];
	if (pipe2(marked, O_CLOEXEC) != 0) {
		hp_error("pipe", "%s", strerror(errno));
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		hp_error("fork", "%s", strerror(errno));
		return 1;
	}
	if (pid > 0) {
		char byte;
		close(marked[1]);
		if (read(marked[0], &byte, 1) != 1)
			_exit(1);
		_exit(0);
	}
	close(marked[0]);
	setsid();
	take_signals(NULL);
	mark_spool(spool);
	if (mark_fd < 0 || write(marked[1], "m", 1) != 1)
		_exit(1);
	close(marked[1]);
	int devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		if (devnull > 2)
			close(devnull);
	}
	/* all but the mark's lock */
	if (mark_fd != 3) {
		dup2(mark_fd, 3);
		close(mark_fd);
		mark_fd = 3;
	}
	closefrom(4);
	sweep_spools();
	db = db_create(out, err, sizeof(err));
	if (db == NULL) {
		hp_error(out, "%s", err);
		remove_output(out);
		remove_spool(spool);
		return 1;
	}
	db_meta(db, "command", "(recorded with HEAPPROF_OUTPUT)");
	record_mode(db, snapshots, every_ns);
	note_output(spool, out, out, snapshots);
	col = collect_new(db, spool, true);
	collect_options(col, snapshots, every_ns);
	/* Until every process is gone, and nothing new for a moment
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
		output_failed(out, out, false, err);
		return 1;
	}
	if (selfcheck_wanted() && selfcheck_run(out, err, sizeof(err)) != 0) {
		hp_error("self-check", "%s: %s", out, err);
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
