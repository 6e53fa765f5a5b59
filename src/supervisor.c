/*
 * supervisor.c: the supervisor process.
 *
 * It opens the listening sockets (or takes them from systemd), creates
 * the shared memory, forks client workers and keeps between
 * workers.min_spare and workers.max_spare of them idle, up to
 * workers.max, re-forks the ones that die, and throttles re-forking
 * when workers die before serving anyone, so a broken setup cannot
 * fork-bomb.  It never reads client traffic.  Signal handlers only set
 * a flag and write a byte to a self-pipe; the main loop acts on the
 * flags: child exits, then shutdown (SIGTERM smart, SIGINT fast,
 * SIGQUIT immediate), then reload (SIGHUP: a new config generation),
 * then worker upkeep, including the refuser when every worker is busy.
 * Workers hold the read end of a pipe whose write end only the
 * supervisor has: when it dies, the pipe reads EOF and they leave.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
#define sd_notify(u, s)		0
#define sd_notifyf(u, f, ...)	0
#define sd_listen_fds(u)	0
#define sd_watchdog_enabled(u, p) 0
#define SD_LISTEN_FDS_START	3
#endif

#include "pgmirror.h"

#define SUP_MAX_LISTEN		63
#define SUP_SPAWN_MAX_RATE	32	/* forks per second at most */
#define SUP_THROTTLE_MAX	30000	/* ms, longest pause in re-forking */
#define SUP_FAST_GRACE		5000	/* ms from fast shutdown to SIGKILL */
#define SUP_FULL_GRACE		1000	/* ms all busy before refusing */

static volatile sig_atomic_t sup_sig_chld, sup_sig_term, sup_sig_int;
static volatile sig_atomic_t sup_sig_quit, sup_sig_hup;
static int	 sup_selfpipe[2] = { -1, -1 };
static int	 sup_lfd[SUP_MAX_LISTEN];
static char	*sup_unix_path[SUP_MAX_LISTEN];
static int	 sup_nlfd;
static int	 sup_death[2] = { -1, -1 };

/* Signal handler: set a flag, wake the main loop. */
static void
sup_signal(int sig)
{
	int		 saved = errno;

	switch (sig) {
	case SIGCHLD:
		sup_sig_chld = 1;
		break;
	case SIGTERM:
		sup_sig_term = 1;
		break;
	case SIGINT:
		sup_sig_int = 1;
		break;
	case SIGQUIT:
		sup_sig_quit = 1;
		break;
	case SIGHUP:
		sup_sig_hup = 1;
		break;
	}
	(void)write(sup_selfpipe[1], "", 1);
	errno = saved;
}

/* Give the signals the supervisor acts on to handler h. */
static void
sup_handle(void (*h)(int), int flags)
{
	static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGQUIT,
	    SIGHUP };
	struct sigaction sa;
	size_t		 i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* Install the supervisor's signal handlers. */
static void
sup_signals(void)
{
	struct sigaction sa;

	if (pipe2(sup_selfpipe, O_NONBLOCK | O_CLOEXEC) == -1)
		fatal("pipe");
	sup_handle(sup_signal, SA_RESTART);
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
}

/* Refuse to take over a Unix socket another live server answers on. */
static void
sup_unix_check(const struct sockaddr_un *sun)
{
	if (net_unix_in_use(sun))
		fatalx("%s is in use by a running server", sun->sun_path);
	(void)unlink(sun->sun_path);
}

/* Open one listen entry's sockets. */
static void
sup_listen_one(const struct pgm_listen *l)
{
	struct addrinfo	 hints, *res, *ai;
	char		 port[16];
	int		 fd, one = 1, e;

	if (l->path != NULL) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
		    "%s/.s.PGSQL.%d", l->path, l->port) >=
		    sizeof(sun.sun_path))
			fatalx("socket path in %s is too long", l->path);
		sup_unix_check(&sun);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
		if (fd == -1)
			fatal("socket");
		if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
			fatal("bind %s", sun.sun_path);
		if (chmod(sun.sun_path, 0777) == -1)
			fatal("chmod %s", sun.sun_path);
		if (listen(fd, 1024) == -1)
			fatal("listen %s", sun.sun_path);
		if (sup_nlfd == SUP_MAX_LISTEN)
			fatalx("too many listening sockets");
		sup_unix_path[sup_nlfd] = strdup(sun.sun_path);
		sup_lfd[sup_nlfd++] = fd;
		log_info("listening on %s", sun.sun_path);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", l->port);
	e = getaddrinfo(l->host == NULL || strcmp(l->host, "*") == 0 ? NULL :
	    l->host, port, &hints, &res);
	if (e != 0)
		fatalx("listen %s:%d: %s", l->host, l->port, gai_strerror(e));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		char	 name[80];

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			fatal("socket");
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			    sizeof(one));
		net_addr_str((struct sockaddr_storage *)ai->ai_addr, name,
		    sizeof(name));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1)
			fatal("bind %s", name);
		if (listen(fd, 1024) == -1)
			fatal("listen %s", name);
		if (sup_nlfd == SUP_MAX_LISTEN)
			fatalx("too many listening sockets");
		sup_unix_path[sup_nlfd] = NULL;
		sup_lfd[sup_nlfd++] = fd;
		log_info("listening on %s", name);
	}
	freeaddrinfo(res);
}

/* Open every listening socket, or take them from systemd. */
static void
sup_listen(const struct pgm_config *c)
{
	int		 i, n;

	n = sd_listen_fds(1);
	if (n > 0) {
		for (i = 0; i < n && sup_nlfd < SUP_MAX_LISTEN; i++) {
			int	 fd = SD_LISTEN_FDS_START + i;

			if (net_set_nonblock(fd) == -1)
				fatal("socket from systemd");
			fcntl(fd, F_SETFD, FD_CLOEXEC);
			sup_unix_path[sup_nlfd] = NULL;
			sup_lfd[sup_nlfd++] = fd;
		}
		log_info("using %d listening sockets from systemd", n);
		return;
	}
	for (i = 0; i < c->nlisten; i++)
		sup_listen_one(&c->listen[i]);
}

/* Close the listening sockets (shutdown): no new clients. */
static void
sup_listen_close(void)
{
	int		 i;

	for (i = 0; i < sup_nlfd; i++) {
		/*
		 * Busy workers share these sockets: shutdown(2) stops the
		 * listening in every process, so new clients are refused at
		 * once instead of waiting in a backlog nobody serves.
		 */
		(void)shutdown(sup_lfd[i], SHUT_RDWR);
		close(sup_lfd[i]);
		if (sup_unix_path[i] != NULL) {
			(void)unlink(sup_unix_path[i]);
			free(sup_unix_path[i]);
			sup_unix_path[i] = NULL;
		}
	}
	sup_nlfd = 0;
}

/*
 * Started as root with user (and maybe group) in the config: give the
 * sockets we made to that user, then become it for good.  Listening
 * sockets stay open; nothing needs root afterwards.
 */
static void
sup_drop_privileges(const struct pgm_config *c)
{
	struct passwd	*pw;
	struct group	*gr;
	uid_t		 uid;
	gid_t		 gid;
	int		 i;

	if (geteuid() != 0 || c->user == NULL)
		return;
	if ((pw = getpwnam(c->user)) == NULL)
		fatalx("user \"%s\" does not exist", c->user);
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (c->group != NULL) {
		if ((gr = getgrnam(c->group)) == NULL)
			fatalx("group \"%s\" does not exist", c->group);
		gid = gr->gr_gid;
	}
	for (i = 0; i < sup_nlfd; i++)
		if (sup_unix_path[i] != NULL &&
		    chown(sup_unix_path[i], uid, gid) == -1)
			log_warn("chown %s", sup_unix_path[i]);
	control_chown(uid, gid);
	if (setgroups(0, NULL) == -1 || initgroups(pw->pw_name, gid) == -1 ||
	    setresgid(gid, gid, gid) == -1 || setresuid(uid, uid, uid) == -1)
		fatal("cannot run as user %s", c->user);
	if (setuid(0) != -1)
		fatalx("could drop root but get it back: refusing to run");
	log_info("running as user %s, group %ld", c->user, (long)gid);
}

/* Fork a worker (or the refuser) into a free slot.  Returns 0, or -1. */
static int
sup_spawn(int refuser)
{
	struct pgm_slot	*slot = NULL;
	pid_t		 pid;
	int		 i;

	for (i = 0; i < pgm_shm->nslots; i++)
		if (shm_slot(i)->state == SLOT_FREE) {
			slot = shm_slot(i);
			break;
		}
	if (slot == NULL)
		return -1;
	memset((void *)slot, 0, sizeof(*slot));
	slot->state = refuser ? SLOT_REFUSING : SLOT_STARTING;
	slot->generation = pgm_shm->generation;
	switch ((pid = fork())) {
	case -1:
		log_warn("fork");
		slot->state = SLOT_FREE;
		return -1;
	case 0:
		close(sup_selfpipe[0]);
		close(sup_selfpipe[1]);
		close(sup_death[1]);
		control_child();
		slot->pid = getpid();
		worker_main(i, sup_lfd, sup_nlfd, sup_death[0], refuser);
	}
	slot->pid = pid;
	log_debug("worker %d started (pid %ld)", i, (long)pid);
	return 0;
}

/*
 * In a child of the supervisor that is not a worker (the sequence
 * copy): let go of the supervisor's descriptors and signal handlers.
 */
void
supervisor_child(void)
{
	int		 i;

	control_child();
	close(sup_selfpipe[0]);
	close(sup_selfpipe[1]);
	close(sup_death[1]);
	for (i = 0; i < sup_nlfd; i++)
		close(sup_lfd[i]);
	sup_handle(SIG_DFL, 0);
}

/* Fork mirror worker w.  Returns 0, or -1. */
static int
sup_spawn_mirror(int w)
{
	struct pgm_mworker *mw = &pgm_shm->mworkers[w];
	pid_t		 pid;
	int		 w2;

	switch ((pid = fork())) {
	case -1:
		log_warn("fork");
		return -1;
	case 0:
		close(sup_selfpipe[0]);
		close(sup_selfpipe[1]);
		close(sup_death[1]);
		control_child();
		for (w2 = 0; w2 < sup_nlfd; w2++)
			close(sup_lfd[w2]);	/* mirror workers take no clients */
		mirror_main(w, sup_death[0]);
	}
	mw->pid = pid;
	log_debug("mirror worker %d started (pid %ld)", w, (long)pid);
	return 0;
}

/* Number of live mirror workers. */
static int
sup_nmirror(void)
{
	int		 w, n = 0;

	for (w = 0; w < pgm_shm->nmworkers; w++)
		if (pgm_shm->mworkers[w].pid > 0)
			n++;
	return n;
}

/* Send a signal to every live mirror worker. */
static void
sup_signal_mirrors(int sig)
{
	int		 w;

	for (w = 0; w < pgm_shm->nmworkers; w++)
		if (pgm_shm->mworkers[w].pid > 0)
			kill(pgm_shm->mworkers[w].pid, sig);
}

/* Send a signal to every live worker. */
static void
sup_signal_workers(int sig)
{
	int		 i;

	for (i = 0; i < pgm_shm->nslots; i++) {
		struct pgm_slot *slot = shm_slot(i);

		if (slot->state != SLOT_FREE && slot->pid > 0)
			kill(slot->pid, sig);
	}
}

/*
 * Ask one idle worker to exit, preferring one that parks no server
 * connection, so pooled connections outlive the retirement.
 */
static void
sup_retire_one(void)
{
	struct pgm_slot	*slot, *pick = NULL;
	int		 i;

	for (i = 0; i < pgm_shm->nslots; i++) {
		slot = shm_slot(i);
		if (slot->state != SLOT_IDLE || slot->pid <= 0)
			continue;
		if (pick == NULL || (pick->idle_servers > 0 &&
		    slot->idle_servers == 0))
			pick = slot;
	}
	if (pick == NULL)
		return;
	pick->state = SLOT_EXITING;
	kill(pick->pid, SIGTERM);
}

/*
 * Do two configs size shared memory the same: the settings that size
 * it, the same databases and users in the same order, the same mirrors?
 */
static int
sup_same_shape(const struct pgm_config *a, const struct pgm_config *b)
{
	const struct pgm_setting *s;
	int		 i;

	if (a->ndatabases != b->ndatabases || a->nusers != b->nusers ||
	    a->nmirrors != b->nmirrors)
		return 0;
	for (s = config_settings; s->key != NULL; s++)
		if (((s->flags & SET_SHM) || ((s->flags & SET_SHM_MIRRORS) &&
		    a->nmirrors > 0)) && !config_setting_same(s, a, b))
			return 0;
	for (i = 0; i < a->nmirrors; i++)
		if (a->mirrors[i].src != b->mirrors[i].src ||
		    a->mirrors[i].dst != b->mirrors[i].dst ||
		    a->mirrors[i].queue != b->mirrors[i].queue ||
		    a->mirrors[i].queue_bytes != b->mirrors[i].queue_bytes)
			return 0;
	for (i = 0; i < a->ndatabases; i++)
		if (strcmp(a->databases[i].name, b->databases[i].name) != 0)
			return 0;
	for (i = 0; i < a->nusers; i++)
		if (strcmp(a->users[i].name, b->users[i].name) != 0 ||
		    (a->users[i].database == NULL) !=
		    (b->users[i].database == NULL) ||
		    (a->users[i].database != NULL &&
		    strcmp(a->users[i].database, b->users[i].database) != 0))
			return 0;
	return 1;
}

/* Do two databases entries lead to the same server and database? */
static int
sup_same_server(const struct pgm_database *a, const struct pgm_database *b)
{
	return strcmp(a->host, b->host) == 0 && a->port == b->port &&
	    strcmp(a->dbname, b->dbname) == 0 && a->tls_mode == b->tls_mode;
}

/* Do two strings, either maybe NULL, say the same? */
static int
sup_same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/*
 * Would mirror workers connect to the destinations the same way under
 * both configs (same servers, credentials, TLS, clear-text password
 * policy and timeouts)?  The
 * shapes are known to be the same.
 */
static int
sup_same_mirroring(const struct pgm_config *a, const struct pgm_config *b)
{
	int		 i;

	for (i = 0; i < a->nmirrors; i++)
		if (!sup_same_server(&a->databases[a->mirrors[i].dst],
		    &b->databases[b->mirrors[i].dst]) ||
		    config_allow_cleartext(a, &a->databases[a->mirrors[i].dst])
		    != config_allow_cleartext(b,
		    &b->databases[b->mirrors[i].dst]))
			return 0;
	for (i = 0; i < a->nusers; i++) {
		const struct pgm_user *x = &a->users[i], *y = &b->users[i];

		if (!sup_same_str(x->plain, y->plain) ||
		    x->has_md5 != y->has_md5 ||
		    memcmp(x->md5, y->md5, sizeof(x->md5)) != 0 ||
		    x->has_scram != y->has_scram ||
		    memcmp(&x->scram, &y->scram, sizeof(x->scram)) != 0)
			return 0;
	}
	return a->tls_server_mode == b->tls_server_mode &&
	    sup_same_str(a->tls_ca_file, b->tls_ca_file) &&
	    sup_same_str(a->tls_server_cert_file, b->tls_server_cert_file) &&
	    sup_same_str(a->tls_server_key_file, b->tls_server_key_file) &&
	    a->server_connect_timeout == b->server_connect_timeout &&
	    a->mirror_retry_max == b->mirror_retry_max &&
	    a->mirror_replay_timeout == b->mirror_replay_timeout;
}

/*
 * Make producers send their sessions' startup parameters again with
 * their next record to the rings of mirror worker w (-1: all), whose
 * next consumer will not know the sessions.
 */
static void
sup_bump_epochs(int w)
{
	int		 m, k;

	for (m = 0; m < pgm_shm->nmirrors; m++)
		for (k = 0; k < pgm_shm->nmworkers; k++)
			if (w == -1 || k == w)
				__atomic_add_fetch(&pgm_shm->mqueues[m *
				    pgm_shm->nmworkers + k].epoch, 1,
				    __ATOMIC_SEQ_CST);
}

/* Do two configs listen on the same addresses? */
static int
sup_same_listen(const struct pgm_config *a, const struct pgm_config *b)
{
	int		 i;

	if (a->nlisten != b->nlisten)
		return 0;
	for (i = 0; i < a->nlisten; i++) {
		const struct pgm_listen *x = &a->listen[i], *y = &b->listen[i];

		if (x->port != y->port || (x->host == NULL) != (y->host == NULL)
		    || (x->path == NULL) != (y->path == NULL) ||
		    (x->host && strcmp(x->host, y->host) != 0) ||
		    (x->path && strcmp(x->path, y->path) != 0))
			return 0;
	}
	return 1;
}

/*
 * Load the config file again and check that it can replace the running
 * one without a restart.  Returns it, or NULL with the reason in why
 * (and every error logged).
 */
static struct pgm_config *
sup_load_checked(char *why, size_t len, int *refused)
{
	static struct pgm_config_errors errs;
	struct pgm_config *nc;
	int		 i;

	if ((nc = config_load(pgm_conf->path, &errs)) == NULL) {
		for (i = 0; i < errs.n; i++)
			log_warnx("reload: %s:%d: %s", errs.file,
			    errs.err[i].line, errs.err[i].msg);
		snprintf(why, len, "%s:%d: %s%s", errs.file,
		    errs.n ? errs.err[0].line : 0,
		    errs.n ? errs.err[0].msg : "cannot load",
		    errs.n > 1 ? " (and more errors, see the log)" : "");
		return NULL;
	}
	*refused = 0;
	if (!sup_same_shape(pgm_conf, nc)) {
		*refused = 1;
		snprintf(why, len, "workers.max, the names and order of the "
		    "databases and users entries, the mirrors (their source, "
		    "destination, queue and queue_bytes) or mirror.workers "
		    "changed; they size shared memory: restart pgmirror to "
		    "apply this file");
		config_free(nc);
		return NULL;
	}
	return nc;
}

/* Would a reload take the file on disk?  0, or -1 with the reason. */
int
supervisor_check(char *why, size_t len)
{
	struct pgm_config *nc;
	int		 refused;

	if ((nc = sup_load_checked(why, len, &refused)) == NULL)
		return -1;
	config_free(nc);
	return 0;
}

/*
 * Reload (SIGHUP, pgmirrorctl reload, the admin console's RELOAD, a
 * switchover): read and check the config file again, load its
 * certificates, and if all is well make it the running config: new
 * workers are forked with it, idle workers of the old one leave at once
 * and busy ones when their client does.  Shared memory, and so every
 * counter, stays.  What it sizes cannot change without a restart, nor
 * can the listening addresses.  Returns 0 when the new config runs, -1
 * when the old one stays, with the reason in why (and in the log).
 */
int
supervisor_reload(char *why, size_t len)
{
	struct pgm_config *nc, *old = pgm_conf;
	const struct pgm_setting *s;
	char		 tlserr[512];
	int		 i, retire, refused = 0;

	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)(mqueue_now_ns() / 1000));
	log_info("reloading %s", old->path);
	if ((nc = sup_load_checked(why, len, &refused)) == NULL)
		goto keep;
	if (tls_init(nc, tlserr, sizeof(tlserr)) == -1) {
		snprintf(why, len, "%s", tlserr);
		config_free(nc);
		goto keep;
	}
	/*
	 * What needs a restart keeps its running value, so the running
	 * config always says which addresses are open and where logs go.
	 */
	if (!sup_same_listen(old, nc)) {
		struct pgm_listen *l = nc->listen;
		int		 n = nc->nlisten;

		log_warnx("reload: listen changed, which needs a restart; "
		    "still listening on the old addresses");
		nc->listen = old->listen;
		nc->nlisten = old->nlisten;
		old->listen = l;
		old->nlisten = n;
	}
	for (s = config_settings; s->key != NULL; s++)
		if ((s->flags & SET_RESTART) && !config_setting_same(s, old, nc)) {
			log_warnx("reload: %s needs a restart", s->key);
			config_setting_take(s, nc, old);
		}
	/*
	 * Mirror workers keep their destination sessions unless what they
	 * connect with changed: then each replays what it took and leaves,
	 * and its successor, forked with the new config, takes the ring
	 * over.
	 */
	retire = nc->nmirrors > 0 && !sup_same_mirroring(old, nc);
	pgm_conf = nc;
	config_free(old);
	/* The text first: a worker that sees the generation reads it. */
	shm_config_put(nc, pgm_shm->generation + 1);
	__atomic_add_fetch(&pgm_shm->generation, 1, __ATOMIC_SEQ_CST);
	if (retire) {
		log_info("reload: what mirror workers connect with changed; "
		    "they finish what they hold and restart");
		sup_bump_epochs(-1);
		sup_signal_mirrors(SIGUSR2);
	}
	for (i = 0; i < pgm_shm->nslots; i++) {
		struct pgm_slot *slot = shm_slot(i);

		if (slot->state == SLOT_IDLE && slot->pid > 0)
			kill(slot->pid, SIGTERM);
	}
	log_info("configuration reloaded (generation %d)",
	    pgm_shm->generation);
	sd_notify(0, "READY=1");
	control_status();
	return 0;
keep:
	if (refused)
		log_warnx("reload refused: %s", why);
	else
		log_warnx("reload failed: %s; keeping the running "
		    "configuration", why);
	sd_notify(0, "READY=1");
	return -1;
}

/* Tell systemd a one-line summary (STATUS=). */
void
supervisor_notify_status(const char *fmt, ...)
{
	char		 msg[256];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", msg);
}

/* Number of live refusers (0 or 1). */
static int
sup_refusers(void)
{
	return shm_count_state(SLOT_REFUSING);
}

/* Number of live workers. */
static int
sup_nworkers(void)
{
	return pgm_shm->nslots - shm_count_state(SLOT_FREE);
}

/*
 * Reap exited workers, give back what they held, and note the ones that
 * died before serving a client.  Returns how many of those there were.
 */
static int
sup_reap(void)
{
	pid_t		 pid;
	int		 status, i, early = 0;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct pgm_slot *slot = NULL;

		for (i = 0; i < pgm_shm->nmworkers; i++)
			if (pgm_shm->mworkers[i].pid == pid) {
				if (WIFSIGNALED(status) ||
				    WEXITSTATUS(status) != 0)
					log_warnx("mirror worker %d (pid %ld) "
					    "died; what it held is counted as "
					    "dropped", i, (long)pid);
				sup_bump_epochs(i);
				/* A second's pause: no fork loop. */
				pgm_shm->mworkers[i].respawn_at =
				    net_now_ms() + 1000;
				pgm_shm->mworkers[i].pid = 0;
			}
		for (i = 0; i < pgm_shm->nslots; i++)
			if (shm_slot(i)->pid == pid) {
				slot = shm_slot(i);
				break;
			}
		if (slot == NULL) {
			(void)control_reaped(pid, status);
			continue;
		}
		if (WIFSIGNALED(status))
			log_warnx("worker %d (pid %ld) killed by signal %d",
			    i, (long)pid, WTERMSIG(status));
		else if (WEXITSTATUS(status) != 0)
			log_warnx("worker %d (pid %ld) exited with status %d",
			    i, (long)pid, WEXITSTATUS(status));
		if ((WIFSIGNALED(status) || WEXITSTATUS(status) != 0) &&
		    slot->served == 0)
			early++;
		shm_slot_reclaim(slot);
		slot->pid = 0;
		slot->state = SLOT_FREE;
	}
	return early;
}

/* Log the periodic stats line. */
static void
sup_stats(void)
{
	int		 i, servers = 0, idle = 0;

	for (i = 0; i < pgm_shm->npools; i++) {
		servers += pgm_shm->pools[i].count;
		idle += pgm_shm->pools[i].idle;
	}
	log_info("stats: workers %d (busy %d, idle %d), clients served %llu, "
	    "server connections %d (parked %d)", sup_nworkers(),
	    shm_count_state(SLOT_BUSY), shm_count_state(SLOT_IDLE),
	    (unsigned long long)pgm_shm->clients_total, servers, idle);
	for (i = 0; i < pgm_shm->nmirrors; i++) {
		const struct pgm_mirror *m = &pgm_conf->mirrors[i];
		char		 text[512];

		mirror_stats_text(i, 1, text, sizeof(text));
		log_info("stats: mirror %s -> %s: %s", m->source,
		    m->destination, text);
	}
}

/*
 * Run the supervisor until shutdown.  Returns the exit status.
 */
int
supervisor_main(struct pgm_config *c, int debug)
{
	struct pollfd	 pfd[1 + 17];
	uint64_t	 watchdog_usec = 0;
	int64_t		 last_watchdog = 0;
	char		 why[512];
	int		 npfd;
	int64_t		 now, throttle_until = 0, throttle = 0, spawn_tick = 0;
	int64_t		 stop_deadline = 0, last_stats, full_since = 0;
	int		 spawned_this_tick = 0, rate = 1, early, idle, i;
	int		 stopping = 0;	/* 1 smart, 2 fast */
	int		 mirrors_told = 0;	/* stop sent to mirror workers */
	char		 drain[64];

	(void)debug;
	sup_signals();
	sup_listen(c);
	control_open(c);
	if (shm_create(c) == -1)
		fatal("cannot create shared memory");
	shm_config_put(c, 0);
	sup_drop_privileges(c);
	if (pipe2(sup_death, O_CLOEXEC) == -1)
		fatal("pipe");
	log_info("pgmirror %s started: %d databases, %d users, workers "
	    "%d..%d spare, %d max", PACKAGE_VERSION, c->ndatabases,
	    c->nusers, c->workers_min_spare, c->workers_max_spare,
	    c->workers_max);
	for (i = 0; i < c->workers_min_spare; i++)
		sup_spawn(0);
	for (i = 0; i < pgm_shm->nmworkers; i++)
		sup_spawn_mirror(i);
	sd_notify(0, "READY=1");
	control_status();
	if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
		watchdog_usec = 0;
	last_stats = net_now_ms();

	for (;;) {
		pfd[0].fd = sup_selfpipe[0];
		pfd[0].events = POLLIN;
		npfd = 1 + control_pollfds(pfd + 1);
		if (poll(pfd, npfd, control_busy() ? 20 : 200) > 0 &&
		    pfd[0].revents)
			while (read(sup_selfpipe[0], drain, sizeof(drain)) > 0)
				;
		control_tick(pfd + 1, npfd - 1);
		now = net_now_ms();
		if (watchdog_usec > 0 &&
		    (now - last_watchdog) * 2000 >= (int64_t)watchdog_usec) {
			last_watchdog = now;
			sd_notify(0, "WATCHDOG=1");
		}

		if (sup_sig_chld) {
			sup_sig_chld = 0;
			if ((early = sup_reap()) > 0 && !stopping) {
				throttle = throttle ? throttle * 2 : 200;
				if (throttle > SUP_THROTTLE_MAX)
					throttle = SUP_THROTTLE_MAX;
				throttle_until = now + throttle;
				log_warnx("%d worker(s) died before serving a "
				    "client: pausing re-forks for %lld ms",
				    early, (long long)throttle);
			}
		}

		if (sup_sig_quit) {
			log_info("immediate shutdown");
			sup_signal_workers(SIGQUIT);
			sup_signal_mirrors(SIGQUIT);
			sup_listen_close();
			control_close();
			_exit(1);
		}
		if (sup_sig_int && stopping < 2) {
			sup_sig_int = 0;
			log_info("fast shutdown: ending every session");
			sup_listen_close();
			control_close();
			pgm_shm->shutdown = 1;
			sup_signal_workers(SIGINT);
			sup_signal_mirrors(SIGINT);
			stopping = 2;
			stop_deadline = now + SUP_FAST_GRACE;
			sd_notify(0, "STOPPING=1");
		}
		if (sup_sig_term && !stopping) {
			sup_sig_term = 0;
			log_info("smart shutdown: waiting up to %d s for "
			    "clients to leave", c->shutdown_timeout);
			sup_listen_close();
			control_close();
			pgm_shm->shutdown = 1;
			sup_signal_workers(SIGTERM);
			stopping = 1;
			stop_deadline = now + (int64_t)c->shutdown_timeout *
			    1000;
			sd_notify(0, "STOPPING=1");
		}
		if (sup_sig_hup && !control_switching()) {
			sup_sig_hup = 0;
			if (!stopping && supervisor_reload(why,
			    sizeof(why)) == 0)
				c = pgm_conf;
		}
		if (stopping) {
			/*
			 * Mirror workers stop after the last client: a smart
			 * shutdown lets them replay what is queued first.
			 */
			if (sup_nworkers() == 0 && sup_nmirror() > 0 &&
			    !mirrors_told) {
				if (stopping == 1)
					log_info("clients gone; mirror workers "
					    "replay what is queued");
				sup_signal_mirrors(stopping == 1 ? SIGTERM :
				    SIGINT);
				mirrors_told = 1;
			}
			if (sup_nworkers() == 0 && sup_nmirror() == 0) {
				log_info("all workers gone; exiting");
				return 0;
			}
			if (now >= stop_deadline) {
				if (stopping == 1) {
					log_info("smart shutdown timed out: "
					    "fast shutdown");
					sup_signal_workers(SIGINT);
					sup_signal_mirrors(SIGINT);
					stopping = 2;
					stop_deadline = now + SUP_FAST_GRACE;
				} else {
					log_warnx("workers still alive: "
					    "killing them");
					sup_signal_workers(SIGKILL);
					sup_signal_mirrors(SIGKILL);
					stop_deadline = now + SUP_FAST_GRACE;
				}
			}
			continue;
		}

		/* A mirror worker that left is replaced a second later. */
		for (i = 0; i < pgm_shm->nmworkers; i++)
			if (pgm_shm->mworkers[i].pid == 0 &&
			    now >= pgm_shm->mworkers[i].respawn_at)
				sup_spawn_mirror(i);

		/*
		 * With every worker busy for a second and no more allowed,
		 * fork a refuser: one extra worker, outside workers.max, that
		 * tells new clients "too many clients" the way PostgreSQL
		 * does (after their startup packet) instead of leaving them
		 * in the backlog.  It leaves once a worker is idle again.
		 */
		if (sup_nworkers() - sup_refusers() >= c->workers_max &&
		    shm_count_state(SLOT_IDLE) + shm_count_state(SLOT_STARTING)
		    == 0) {
			if (full_since == 0)
				full_since = now;
			if (now - full_since >= SUP_FULL_GRACE &&
			    sup_refusers() == 0 && now >= throttle_until) {
				log_warnx("all %d workers are busy (workers.max):"
				    " refusing new clients until one is free",
				    c->workers_max);
				sup_spawn(1);
			}
		} else
			full_since = 0;

		/* Worker upkeep, at most `rate` forks per second. */
		if (now - spawn_tick >= 1000) {
			spawn_tick = now;
			spawned_this_tick = 0;
		}
		idle = shm_count_state(SLOT_IDLE) +
		    shm_count_state(SLOT_STARTING);
		if (idle < c->workers_min_spare &&
		    sup_nworkers() - sup_refusers() < c->workers_max &&
		    now >= throttle_until) {
			while (idle < c->workers_min_spare &&
			    sup_nworkers() - sup_refusers() < c->workers_max &&
			    spawned_this_tick < rate) {
				if (sup_spawn(0) == -1)
					break;
				idle++;
				spawned_this_tick++;
			}
			/* Ramp up like Apache when demand persists. */
			if (idle < c->workers_min_spare &&
			    rate < SUP_SPAWN_MAX_RATE)
				rate *= 2;
			if (now - throttle_until > 60000)
				throttle = 0;
		} else if (idle >= c->workers_min_spare)
			rate = c->workers_min_spare > 4 ?
			    c->workers_min_spare : 4;
		if (idle > c->workers_max_spare)
			sup_retire_one();
		if (c->stats_period > 0 &&
		    now - last_stats >= (int64_t)c->stats_period * 1000) {
			last_stats = now;
			sup_stats();
			control_status();
		}
	}
}
