/*
 * proc.c: what a child process of the supervisor knows of itself: its
 * scoreboard slot, the flags its signal handlers set, the read end of
 * the supervisor-death pipe, and the one poll wrapper that lets the
 * blocked signals in only while it sleeps; and, in the supervisor, the
 * descriptors and signal handlers a child it forks must let go of.
 *
 * Client workers and mirror workers both run the code of net.c, pool.c
 * and relay.c, which must stop when their process is told to (SIGINT:
 * the session ends now) or is orphaned (the death pipe reads EOF):
 * they ask proc_interrupted() and never look at a worker's own
 * variables.  Each process's handlers set these flags and nothing
 * else; the loops act on them.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgmirror.h"

volatile sig_atomic_t proc_sig_term;	/* leave when idle */
volatile sig_atomic_t proc_sig_int;	/* end what is going on, now */
volatile sig_atomic_t proc_sig_usr1;	/* a pool has waiters */
int		 proc_slot = -1;	/* our scoreboard slot, -1: none */
int		 proc_death_fd = -1;	/* EOF when the supervisor dies */

sigset_t	 proc_waitmask;		/* signals let through while waiting */
int		 proc_use_waitmask;

/* Must what this process does stop at once (told so, or orphaned)? */
int
proc_interrupted(void)
{
	return proc_sig_int != 0;
}

/* The supervisor is gone: stop as SIGINT would. */
void
proc_orphaned(void)
{
	proc_sig_int = 1;
}

/*
 * poll(2) that lets the process's blocked signals in only while it
 * sleeps, so a signal that arrives between checking a flag and
 * sleeping still wakes it.
 */
int
proc_poll(struct pollfd *pfd, nfds_t n, int timeout)
{
	struct timespec	 ts, *tp = NULL;
	sigset_t	 pending;
	int		 rc;

	if (!proc_use_waitmask)
		return poll(pfd, n, timeout);
	if (timeout >= 0) {
		ts.tv_sec = timeout / 1000;
		ts.tv_nsec = (long)(timeout % 1000) * 1000000;
		tp = &ts;
	}
	rc = ppoll(pfd, n, tp, &proc_waitmask);
	/*
	 * When descriptors were ready, ppoll restores the mask without
	 * delivering signals that came meanwhile: let them in now, or a
	 * loop that is always busy would never see them.
	 */
	if (rc > 0 && sigpending(&pending) == 0 &&
	    (sigismember(&pending, SIGTERM) == 1 ||
	    sigismember(&pending, SIGINT) == 1 ||
	    sigismember(&pending, SIGUSR1) == 1)) {
		ts.tv_sec = 0;
		ts.tv_nsec = 0;
		(void)ppoll(NULL, 0, &ts, &proc_waitmask);
	}
	return rc;
}

/*
 * The supervisor's own descriptors (its self-pipe, the write end of the
 * death pipe, the control socket and its connections, the listening
 * sockets), which a child it forks must not keep: each module of the
 * supervisor registers what it opens, and the child closes them all
 * (proc_forked), without knowing those modules.
 */
#define PROC_MAXFD	128

static struct {
	int		 fd;
	int		 listening;
} proc_fds[PROC_MAXFD];
static int	 proc_nfds;

/* The supervisor opened fd (a listening socket, when listening). */
void
proc_own_fd(int fd, int listening)
{
	if (fd < 0 || proc_nfds == PROC_MAXFD) {
		if (fd >= 0)
			log_warnx("too many descriptors of the supervisor to "
			    "track; a child may keep fd %d", fd);
		return;
	}
	proc_fds[proc_nfds].fd = fd;
	proc_fds[proc_nfds++].listening = listening;
}

/* The supervisor closes fd. */
void
proc_disown_fd(int fd)
{
	int		 i;

	for (i = 0; i < proc_nfds; i++)
		if (proc_fds[i].fd == fd) {
			proc_fds[i] = proc_fds[--proc_nfds];
			return;
		}
}

/* The signals the supervisor handles (proc_handlers). */
static const int proc_sup_signals[] = { SIGCHLD, SIGTERM, SIGINT, SIGQUIT,
    SIGHUP };

/* Give the signals the supervisor acts on to handler h. */
void
proc_handlers(void (*h)(int), int flags)
{
	struct sigaction sa;
	size_t		 i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(proc_sup_signals) / sizeof(proc_sup_signals[0]);
	    i++)
		sigaction(proc_sup_signals[i], &sa, NULL);
}

/*
 * In a child the supervisor just forked: let go of the supervisor's
 * descriptors, keeping the listening sockets when the child serves
 * clients.  (Its signal handlers stay until the child sets its own, or
 * proc_handlers(SIG_DFL, 0).)
 */
void
proc_forked(int keep_listening)
{
	int		 i;

	for (i = 0; i < proc_nfds; i++)
		if (!keep_listening || !proc_fds[i].listening)
			close(proc_fds[i].fd);
	proc_nfds = 0;
}
