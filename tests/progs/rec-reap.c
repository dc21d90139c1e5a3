/*
 * rec-reap - a tree of processes that end every way there is, each reaped
 * by its own parent with a different call of the wait family, and what
 * each wait call returned, printed by the waiter. Every process allocates
 * one chunk of 2000+R bytes and keeps it, R being its role, so a test can
 * find its row: tests/record/reap.sh has the table of roles and ends.
 *
 * The output and the exit status must be the same with and without
 * heapprof: statuses, errno (ECHILD, EINTR, and errno left alone by a
 * successful call), rusage, stopped and continued children, WNOHANG,
 * WNOWAIT, NULL status pointers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *self;
static char *volatile kept;

/* Each process's own chunk: 2000 + role bytes, live at its end. */
static void
mark(int role)
{
	kept = malloc(2000 + (size_t)role);
	kept[0] = (char)role;
}

/* One line on stdout, written at once (children share it). */
static void
say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (write(1, buf, strlen(buf)) < 0)
		_exit(99);
}

static void
show(const char *who, int st)
{
	if (WIFEXITED(st))
		say("%s: exit %d\n", who, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		say("%s: signal %d\n", who, WTERMSIG(st));
	else if (WIFSTOPPED(st))
		say("%s: stopped %d\n", who, WSTOPSIG(st));
	else if (WIFCONTINUED(st))
		say("%s: continued\n", who);
	else
		say("%s: status %#x\n", who, st);
}

static void
show_info(const char *who, const siginfo_t *si)
{
	const char *how = si->si_code == CLD_EXITED   ? "exit"
			  : si->si_code == CLD_KILLED ? "signal"
			  : si->si_code == CLD_DUMPED ? "dumped"
						      : "other";
	say("%s: %s %d\n", who, how, si->si_status);
}

/* exec this program as `role` (argv: self role) */
static void
become(int role)
{
	char arg[16];
	char *argv[] = { (char *)self, arg, NULL };

	snprintf(arg, sizeof(arg), "%d", role);
	execv(self, argv);
	_exit(127);
}

static void
burn_cpu(void)
{
	volatile unsigned long x = 0;

	for (unsigned long i = 0; i < 60000000UL; i++)
		x += i;
}

/* Wait until this process's parent is no longer `parent`. */
static void
wait_orphaned(pid_t parent)
{
	while (getppid() == parent)
		usleep(1000);
}

/* A child that marks itself as `role` and then waits to be signalled;
 * returns once it has marked itself (a signal sent at once could kill it
 * before it ran at all, and then there is nothing to record). */
static pid_t
pausing_child(int role)
{
	int fds[2];
	char c;
	pid_t p;

	if (pipe(fds) != 0)
		exit(98);
	if ((p = fork()) == 0) {
		mark(role);
		if (write(fds[1], "r", 1) != 1)
			_exit(98);
		for (;;)
			pause();
	}
	close(fds[1]);
	if (read(fds[0], &c, 1) != 1)
		exit(98);
	close(fds[0]);
	return p;
}

static void
on_alarm(int sig)
{
	(void)sig;
}

/* Images started by exec (argv[1] is their role). */
static int
leaf(int role)
{
	mark(role);
	switch (role) {
	case 6: /* replaced role 5 by exec */
		_exit(16);
	case 7: /* vfork + exec */
		kill(getpid(), SIGHUP);
		break;
	case 8: /* posix_spawn */
		return 18;
	case 13: /* a grandchild replaced by exec */
		raise(SIGTERM);
		break;
	case 33: /* exec-late */
		raise(SIGTERM);
		break;
	case 34:
		return 34;
	case 35:
		become(36);
		break;
	case 36:
		return 36;
	}
	return 100;
}

/*
 * exec-late: children (roles 30-32) that exec a while after they began,
 * into images that end at once (33: a signal, 34: an exit, 35: another
 * exec, into 36), each reaped by this process (29) as soon as it ends. A
 * collector that read the spool directory before a child's exec and looks
 * at the child only after its end (tests/record/exec-gone.sh makes it
 * that slow) must still see the exec, and give the end to the last image.
 */
static int
exec_late(void)
{
	int st;
	pid_t p;

	mark(29);
	usleep(600000);
	for (int i = 0; i < 3; i++) {
		if ((p = fork()) == 0) {
			mark(30 + i);
			usleep(100000);
			become(33 + i);
		}
		waitpid(p, &st, 0);
		show(i == 0 ? "30" : i == 1 ? "31" : "32", st);
		usleep(600000);
	}
	return 0;
}

/* Role 9: a child with grandchildren of its own, each reaped by it. */
static int
parent_of_three(void)
{
	siginfo_t si;
	int st;
	pid_t p;

	mark(9);
	if ((p = fork()) == 0) {
		mark(10);
		exit(20);
	}
	waitpid(p, &st, 0);
	show("10", st);
	p = pausing_child(11);
	kill(p, SIGKILL);
	waitid(P_PID, (id_t)p, &si, WEXITED);
	show_info("11", &si);
	if ((p = fork()) == 0) {
		mark(12);
		become(13);
	}
	wait3(&st, 0, NULL);
	show("12/13", st);
	return 19;
}

/* Role 14: starts two daemons (they outlive it) and _exits. */
static void
daemons(void)
{
	pid_t me;

	mark(14);
	me = getpid();
	if (fork() == 0) {
		mark(15);
		wait_orphaned(me);
		exit(25);
	}
	if (fork() == 0) {
		mark(16);
		wait_orphaned(me);
		raise(SIGUSR2);
		_exit(100);
	}
	_exit(14);
}

/* Role 17: ignores SIGCHLD, so its children are reaped by the kernel at
 * once; its wait() then fails with ECHILD. */
static int
careless_parent(void)
{
	int e;

	mark(17);
	signal(SIGCHLD, SIG_IGN);
	if (fork() == 0) {
		mark(18);
		exit(256 + 28); /* a waiter would see 28 */
	}
	if (fork() == 0) {
		mark(19);
		_exit(29);
	}
	if (fork() == 0) {
		mark(20);
		sleep(1); /* long enough for heapprof to see it alive */
		raise(SIGTERM);
		_exit(100);
	}
	errno = 0;
	pid_t r = wait(NULL);
	e = errno;
	say("17: wait %d %s\n", (int)r, e == ECHILD ? "ECHILD" : strerror(e));
	return 27;
}

/* Whether the kernel keeps a reaped process's end for its pidfds
 * (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15): prints yes or no. */
static int
pidfd_exit_info(void)
{
	struct {
		uint64_t mask, cgroupid;
		uint32_t ids[11];
		int32_t exit_code;
	} info = { .mask = 1ULL << 3 };
	pid_t p = fork();
	int fd;

	if (p == 0)
		_exit(7);
	fd = (int)syscall(SYS_pidfd_open, p, 0);
	waitpid(p, NULL, 0);
	bool yes = fd >= 0 && ioctl(fd, _IOWR(0xFF, 11, info), &info) == 0 &&
		   (info.mask & (1ULL << 3)) && info.exit_code == 7 << 8;
	say("%s\n", yes ? "yes" : "no");
	return 0;
}

int
main(int argc, char **argv)
{
	struct rusage ru;
	siginfo_t si;
	int st;
	pid_t p, q;

	self = argv[0];
	if (argc > 1 && strcmp(argv[1], "pidfd-exit-info") == 0)
		return pidfd_exit_info();
	if (argc > 1 && strcmp(argv[1], "exec-late") == 0)
		return exec_late();
	if (argc > 1)
		return leaf(atoi(argv[1]));
	mark(0);
	setvbuf(stdout, NULL, _IONBF, 0);

	/* _exit, reaped by waitpid; a successful call leaves errno alone */
	if ((p = fork()) == 0) {
		mark(1);
		_exit(11);
	}
	errno = 1234;
	q = waitpid(p, &st, 0);
	show("1", st);
	say("1: waitpid returned the child: %d, errno %d\n", q == p, errno);

	/* _Exit, reaped by wait with no status pointer */
	if ((p = fork()) == 0) {
		mark(2);
		_Exit(12);
	}
	say("2: wait(NULL) returned the child: %d\n", wait(NULL) == p);

	/* exit after using the CPU, reaped by wait3 with its rusage */
	if ((p = fork()) == 0) {
		mark(3);
		burn_cpu();
		exit(13);
	}
	memset(&ru, 0, sizeof(ru));
	q = wait3(&st, 0, &ru);
	show("3", st);
	say("3: wait3 returned the child: %d, its CPU time in rusage: %d\n", q == p,
	    ru.ru_utime.tv_sec + ru.ru_utime.tv_usec > 0);

	/* a signal, reaped by wait4 */
	if ((p = fork()) == 0) {
		mark(4);
		raise(SIGUSR1);
		_exit(100);
	}
	q = wait4(p, &st, 0, &ru);
	show("4", st);

	/* exec, then _exit; seen by waitid with WNOWAIT, then reaped by
	 * waitid with no siginfo (Linux allows that) */
	if ((p = fork()) == 0) {
		mark(5);
		become(6);
	}
	memset(&si, 0, sizeof(si));
	waitid(P_PID, (id_t)p, &si, WEXITED | WNOWAIT);
	show_info("5/6 (WNOWAIT)", &si);
	say("5/6: waitid(NULL siginfo) %d\n", waitid(P_PID, (id_t)p, NULL, WEXITED));
	say("5/6: gone: %d\n", waitpid(p, &st, WNOHANG) == -1 && errno == ECHILD);

	/* vfork + exec, ended by a signal */
	if ((p = vfork()) == 0)
		become(7);
	waitpid(p, &st, 0);
	show("7", st);

	/* posix_spawn, returning from main; polled with WNOHANG */
	char *spawn_argv[] = { (char *)self, "8", NULL };
	if (posix_spawn(&p, self, NULL, NULL, spawn_argv, environ) != 0)
		return 1;
	while ((q = waitpid(p, &st, WNOHANG)) == 0)
		usleep(1000);
	show("8", st);

	/* grandchildren reaped by their own parent */
	if ((p = fork()) == 0)
		exit(parent_of_three());
	waitpid(p, &st, 0);
	show("9", st);

	/* daemons: their parent _exits first, they end on their own */
	if ((p = fork()) == 0)
		daemons();
	waitpid(p, &st, 0);
	show("14", st);

	/* a parent ignoring SIGCHLD */
	if ((p = fork()) == 0)
		exit(careless_parent());
	waitpid(p, &st, 0);
	show("17", st);

	/* stopped, continued, then killed: only the last is an end */
	p = pausing_child(21);
	kill(p, SIGSTOP);
	waitpid(p, &st, WUNTRACED);
	show("21", st);
	kill(p, SIGCONT);
	waitpid(p, &st, WCONTINUED);
	show("21", st);
	kill(p, SIGTERM);
	waitpid(p, &st, 0);
	show("21", st);

	/* a wait interrupted by a signal: EINTR, then the real end */
	p = pausing_child(22);
	struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { .it_value = { 0, 50000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	q = waitpid(p, &st, 0);
	say("22: waitpid %d, %s\n", (int)q, q < 0 && errno == EINTR ? "EINTR" : "not EINTR");
	kill(p, SIGKILL);
	waitpid(p, &st, 0);
	show("22", st);

	/* exit's status as the waiter sees it: its low 8 bits */
	if ((p = fork()) == 0) {
		mark(23);
		exit(256 + 23);
	}
	waitpid(p, &st, 0);
	show("23", st);

	/* no children left (the daemons are someone else's now) */
	errno = 0;
	q = waitpid(-1, &st, WNOHANG);
	say("0: waitpid %d %s\n", (int)q, errno == ECHILD ? "ECHILD" : strerror(errno));
	return 0;
}
