/*
 * worker.c: a client worker process.
 *
 * Forked by the supervisor, a worker waits in accept on the shared
 * listening sockets, serves one client at a time (startup packet,
 * routing, authentication, a server connection from the pool, then the
 * relay loop) and goes back to accepting.  It owns its scoreboard slot.
 * Signals only set flags (SIGTERM: leave when idle, SIGINT: end the
 * session now, SIGUSR1: a pool has waiters); they are blocked except
 * inside net_poll, so none is lost between a check and a sleep.  The
 * worker exits when the supervisor's death pipe becomes readable, and
 * after a reload once it is idle (its generation is then old).  The
 * refuser is a worker that only answers "too many clients".
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "pgmirror.h"

#define WORKER_REFUSE_TIMEOUT	5000	/* ms to read a refused startup */


static struct pgm_client worker_client;

/* Signal handler: set the flag of the signal. */
static void
worker_signal(int sig)
{
	switch (sig) {
	case SIGTERM:
		proc_sig_term = 1;
		break;
	case SIGINT:
		proc_sig_int = 1;
		break;
	case SIGUSR1:
		proc_sig_usr1 = 1;
		break;
	}
}

/*
 * Read a startup packet whole into the client's buffer.  Returns its
 * length, or -1 (bad length logged, or the client went away).
 */
static int
worker_read_startup(struct pgm_client *cl, int64_t deadline)
{
	uint32_t	 len;

	if (net_read_full(cl->fd, cl->ssl, cl->startup_buf, 4, deadline) == -1) {
		if (errno == ETIMEDOUT)
			log_info("client %s: startup timed out", cl->addr);
		return -1;
	}
	len = proto_get_u32(cl->startup_buf);
	if (len < 8 || len > PGM_STARTUP_MAX) {
		log_info("client %s: invalid length of startup packet (%u)",
		    cl->addr, len);
		return -1;
	}
	if (net_read_full(cl->fd, cl->ssl, cl->startup_buf + 4, len - 4,
	    deadline) == -1)
		return -1;
	return (int)len;
}

/*
 * Read the startup packet: an SSLRequest is answered 'S' and followed by
 * the TLS handshake when TLS is on (else 'N', as is GSSENCRequest), and
 * a CancelRequest is served.  Returns 0 with cl->startup filled
 * for a StartupMessage, -1 when the connection is done.
 */
static int
worker_startup(struct pgm_client *cl, int64_t deadline)
{
	struct pgm_startup *st = &cl->startup;
	struct pgm_buf	 b;
	const char	*err;
	int		 len, tries;

	for (tries = 0; tries < 3; tries++) {
		if ((len = worker_read_startup(cl, deadline)) == -1)
			return -1;
		if (proto_parse_startup(cl->startup_buf, len, st, &err) == -1) {
			if (st->code != 0 && (st->code >> 16) != 3 &&
			    st->code != PGM_CANCEL_CODE &&
			    st->code != PGM_SSL_CODE &&
			    st->code != PGM_GSSENC_CODE) {
				client_fail(cl, "0A000", "unsupported frontend "
				    "protocol %u.%u: server supports 3.0 to "
				    "3.0", st->code >> 16, st->code & 0xffff);
				return -1;
			}
			client_fail(cl, st->nouser ? "28000" : "08P01", "%s",
			    err);
			return -1;
		}
		switch (st->code) {
		case PGM_CANCEL_CODE:
			cancel_request(st);
			return -1;
		case PGM_SSL_CODE:
			if (cl->ssl == NULL && tls_enabled()) {
				const char	*why;

				if (net_write_full(cl->fd, NULL, "S", 1,
				    deadline) == -1)
					return -1;
				if ((cl->ssl = tls_accept(cl->fd, deadline,
				    &why)) == NULL) {
					log_info("TLS handshake failed: %s",
					    why);
					return -1;
				}
				continue;
			}
			/* FALLTHROUGH */
		case PGM_GSSENC_CODE:
			/* Inside TLS, a second request is a protocol error. */
			if (cl->ssl != NULL) {
				client_fail(cl, "08P01", "SSLRequest inside a "
				    "TLS session");
				return -1;
			}
			if (net_write_full(cl->fd, NULL, "N", 1, deadline) ==
			    -1)
				return -1;
			continue;
		}
		/* Like PostgreSQL's hostssl, require is for TCP only. */
		if (cl->ssl == NULL && !cl->local &&
		    pgm_conf->tls_client_mode == TLS_REQUIRE) {
			client_fail(cl, "28000", "pgmirror accepts only SSL "
			    "connections (tls.client_mode is \"require\")");
			return -1;
		}
		if ((st->code & 0xffff) != 0) {
			buf_init(&b);
			proto_negotiate_version(&b, PGM_PROTO_V3, st);
			if (client_send(cl, &b) == -1) {
				buf_free(&b);
				return -1;
			}
			buf_free(&b);
		}
		return 0;
	}
	client_fail(cl, "08P01", "too many encryption requests");
	return -1;
}

/*
 * Route the client to its database and users entry.  Returns 0, or -1
 * after telling the client why not, in PostgreSQL's words.
 */
static int
worker_route(struct pgm_client *cl)
{
	const char	*user, *db;
	char		 label[128];

	user = proto_startup_param(&cl->startup, "user");
	db = proto_startup_param(&cl->startup, "database");
	if (db == NULL || *db == '\0')
		db = user;
	snprintf(label, sizeof(label), "%s@%s %s", user, db, cl->addr);
	log_setsession(label);
	if (proto_startup_param(&cl->startup, "replication") != NULL &&
	    strcmp(proto_startup_param(&cl->startup, "replication"),
	    "false") != 0 &&
	    strcmp(proto_startup_param(&cl->startup, "replication"), "0")) {
		client_fail(cl, "0A000", "pgmirror does not support "
		    "replication connections");
		return -1;
	}
	if ((cl->database = config_find_database(pgm_conf, db)) == -1) {
		client_fail(cl, "3D000", "database \"%s\" does not exist", db);
		return -1;
	}
	if ((cl->user = config_find_user(pgm_conf, user, cl->database)) ==
	    -1) {
		client_fail(cl, "28000", "role \"%s\" does not exist", user);
		return -1;
	}
	return 0;
}

/*
 * Send the client what completes its login, as if from PostgreSQL.  Its
 * BackendKeyData names the server backend it runs on, so that the pid
 * it sees is the one in pg_stat_activity and pg_locks, with a secret
 * key of pgmirror's own: a CancelRequest comes to pgmirror, which finds
 * the session by both and forwards it with the server's key.
 */
static int
worker_welcome(struct pgm_client *cl, const struct pgm_server *s)
{
	struct pgm_buf	 b;
	uint8_t		 key[8];
	int		 i, rc;

	if (RAND_bytes(key, sizeof(key)) != 1)
		return -1;
	cl->cancel_pid = s->be_pid;
	if (cl->cancel_pid == 0) {
		/* A server that sent no BackendKeyData: a pid of our own. */
		cl->cancel_pid = proto_get_u32(key) & 0x7fffffff;
		if (cl->cancel_pid == 0)
			cl->cancel_pid = 1;
	}
	cl->cancel_key = proto_get_u32(key + 4);
	buf_init(&b);
	proto_auth_request(&b, 0, NULL, 0);
	for (i = 0; i < s->nstatus; i++)
		proto_parameter_status(&b, s->status_name[i],
		    s->status_value[i]);
	proto_backend_key(&b, cl->cancel_pid, cl->cancel_key);
	proto_ready(&b, s->txstatus);
	rc = client_send(cl, &b);
	buf_free(&b);
	return rc;
}

/* Show the session in our scoreboard slot (SHOW CLIENTS). */
static void
worker_publish(const struct pgm_client *cl)
{
	struct pgm_slot	*slot = shm_slot(proc_slot);

	slot->queries = slot->bytes_in = slot->bytes_out = 0;
	snprintf(slot->addr, sizeof(slot->addr), "%s", cl->addr);
	slot->user = cl->user;
	slot->database = cl->database;
	slot->state_since = net_now_ms();
	slot->txstate = SLOT_TX_NONE;
}

/* The session is over: add it to its database's counters. */
static void
worker_unpublish(const struct pgm_client *cl)
{
	struct pgm_slot	*slot = shm_slot(proc_slot);
	struct pgm_db_stats *ds;

	if (slot->database >= 0 && cl->database >= 0 &&
	    cl->database < pgm_conf->ndatabases) {
		ds = &pgm_shm->dbstats[cl->database];
		__atomic_add_fetch(&ds->clients, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&ds->queries, slot->queries,
		    __ATOMIC_RELAXED);
		__atomic_add_fetch(&ds->bytes_in, slot->bytes_in,
		    __ATOMIC_RELAXED);
		__atomic_add_fetch(&ds->bytes_out, slot->bytes_out,
		    __ATOMIC_RELAXED);
	}
	slot->txstate = SLOT_TX_NONE;
	slot->user = slot->database = -1;
	slot->queries = slot->bytes_in = slot->bytes_out = 0;
	slot->addr[0] = '\0';
}

/*
 * Serve one accepted client from startup to goodbye.  The refuser, and
 * a worker over client.max_connections, only read the startup packet
 * and say "too many clients", as PostgreSQL does.
 */
static void
worker_serve(int fd, const struct sockaddr_storage *peer, int refuse)
{
	struct pgm_client *cl = &worker_client;
	struct pgm_server *srv = NULL;
	struct pgm_buf	 b;
	enum pgm_relay_end end;
	int64_t		 deadline = net_now_ms() +
	    (int64_t)pgm_conf->client_login_timeout * 1000;
	int		 reusable = 0, boundary = 0;

	memset(cl, 0, offsetof(struct pgm_client, startup_buf));
	shm_slot(proc_slot)->user = shm_slot(proc_slot)->database = -1;
	explicit_bzero(&cl->scram, sizeof(cl->scram));
	cl->have_client_key = 0;
	cl->fd = fd;
	net_addr_str(peer, cl->addr, sizeof(cl->addr));
	cl->local = peer->ss_family == AF_UNIX;
	buf_init(&b);

	log_setsession(cl->addr);
	if (refuse && deadline > net_now_ms() + WORKER_REFUSE_TIMEOUT)
		deadline = net_now_ms() + WORKER_REFUSE_TIMEOUT;
	if (worker_startup(cl, deadline) == -1)
		goto done;
	if (refuse || (pgm_conf->client_max_connections > 0 &&
	    shm_count_state(SLOT_BUSY) > pgm_conf->client_max_connections)) {
		client_fail(cl, "53300", "sorry, too many clients already");
		goto done;
	}
	if (admin_wanted(cl)) {
		admin_serve(cl, deadline);
		goto done;
	}
	if (worker_route(cl) == -1)
		goto done;
	worker_publish(cl);
	if (auth_client(cl, deadline) == -1)
		goto done;
	if ((srv = pool_get(cl, &b)) == NULL) {
		if (b.len > 0)
			(void)client_send(cl, &b);
		goto done;
	}
	if (worker_welcome(cl, srv) == -1) {
		pool_put(srv, 1);
		srv = NULL;
		goto done;
	}
	log_debug("session started");
	shm_slot(proc_slot)->state_since = net_now_ms();
	__atomic_store_n(&shm_slot(proc_slot)->txstate, SLOT_TX_IDLE,
	    __ATOMIC_SEQ_CST);
	cancel_publish(cl, srv);
	mirror_session_start(cl);
	end = relay_session(cl, &srv, &reusable, &boundary);
	mirror_session_end();
	cancel_withdraw();
	client_end(cl, end, boundary);
	switch (end) {
	case RELAY_CLIENT_TERMINATE:
	case RELAY_CLIENT_GONE:
		log_debug("session ended by the client");
		break;
	case RELAY_SERVER_GONE:
		log_info("server connection lost; session ended");
		reusable = 0;
		break;
	case RELAY_PROTOCOL:
	case RELAY_TOO_LARGE:
	case RELAY_MOVE_FAILED:
		/* A move failed: the old server saw nothing pending. */
		reusable = 0;
		break;
	case RELAY_IDLE_TIMEOUT:
	case RELAY_IDLE_IN_TRANSACTION:
		break;
	case RELAY_SHUTDOWN:
		/* Fast shutdown stops what the server is still running. */
		if (!reusable)
			server_cancel(srv);
		reusable = 0;
		break;
	}
	pool_put(srv, reusable);
	srv = NULL;
done:
	worker_unpublish(cl);
	explicit_bzero(&cl->scram, sizeof(cl->scram));
	buf_free(&b);
	tls_close(cl->ssl);
	cl->ssl = NULL;
	close(fd);
	log_setsession(NULL);
}

/*
 * Should this worker leave the accept to another one?  A worker with
 * no parked server connection yields briefly when an idle worker that
 * has some is also waiting, so reuse wins over opening new ones.
 */
static void
worker_defer_accept(void)
{
	int		 i;

	if (shm_slot(proc_slot)->idle_servers > 0)
		return;
	for (i = 0; i < pgm_shm->nslots; i++) {
		struct pgm_slot *slot = shm_slot(i);

		if (i != proc_slot && slot->state == SLOT_IDLE &&
		    slot->idle_servers > 0) {
			sched_yield();
			return;
		}
	}
}

/*
 * The worker's life: accept and serve clients until told to stop or
 * orphaned.  Never returns.
 */
void
worker_main(int slotno, int *lfds, int nlfd, int death_fd, int refuser)
{
	struct pgm_slot	*slot;
	struct sigaction sa;
	struct sockaddr_storage peer;
	struct pollfd	 pfd[64];
	sigset_t	 block;
	socklen_t	 plen;
	int64_t		 last_tick = net_now_ms();
	int		 i, fd, n;

	proc_slot = slotno;
	proc_death_fd = death_fd;
	move_init(shm_slot(slotno)->generation);
	{
		struct sched_param sp = { 0 };

		(void)sched_setscheduler(0, SCHED_BATCH, &sp);
	}
	slot = shm_slot(slotno);
	log_setproc("worker", slotno);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = worker_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGQUIT, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &proc_waitmask);
	sigdelset(&proc_waitmask, SIGTERM);
	sigdelset(&proc_waitmask, SIGINT);
	sigdelset(&proc_waitmask, SIGUSR1);
	proc_use_waitmask = 1;

	if (nlfd > 63)
		nlfd = 63;
	slot->state = refuser ? SLOT_REFUSING : SLOT_IDLE;
	if (refuser)
		log_setproc("refuser", slotno);
	while (!proc_sig_term && !proc_sig_int && !pgm_shm->shutdown &&
	    slot->generation == pgm_shm->generation &&
	    (!refuser || shm_count_state(SLOT_IDLE) == 0) &&
	    (pgm_conf->workers_max_clients == 0 ||
	    slot->served < (uint64_t)pgm_conf->workers_max_clients)) {
		for (i = 0; i < nlfd; i++) {
			pfd[i].fd = lfds[i];
			pfd[i].events = POLLIN;
		}
		pfd[nlfd].fd = death_fd;
		pfd[nlfd].events = POLLIN;
		n = proc_poll(pfd, nlfd + 1, 1000);
		if (proc_sig_usr1) {
			proc_sig_usr1 = 0;
			pool_release_for_waiters();
		}
		if (!refuser && net_now_ms() - last_tick >= 1000) {
			last_tick = net_now_ms();
			pool_maintain();
		}
		if (n <= 0)
			continue;
		if (pfd[nlfd].revents)
			break;
		/* A signal or a reload may have come with the client. */
		if (proc_sig_term || proc_sig_int ||
		    slot->generation != __atomic_load_n(&pgm_shm->generation,
		    __ATOMIC_ACQUIRE))
			continue;
		for (i = 0; i < nlfd; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			/* The refuser leaves new clients to a free worker. */
			if (refuser && shm_count_state(SLOT_IDLE) > 0)
				break;
			worker_defer_accept();
			plen = sizeof(peer);
			fd = accept4(lfds[i], (struct sockaddr *)&peer, &plen,
			    SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd == -1) {
				if (errno != EAGAIN && errno != EWOULDBLOCK &&
				    errno != EINTR && errno != ECONNABORTED)
					log_warn("accept");
				continue;
			}
			if (peer.ss_family != AF_UNIX) {
				int	 one = 1;

				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				    sizeof(one));
			}
			if (refuser) {
				worker_serve(fd, &peer, 1);
				break;
			}
			slot->state = SLOT_BUSY;
			__atomic_add_fetch(&slot->served, 1, __ATOMIC_RELAXED);
			__atomic_add_fetch(&pgm_shm->clients_total, 1,
			    __ATOMIC_RELAXED);
			worker_serve(fd, &peer, 0);
			if (proc_sig_usr1) {
				proc_sig_usr1 = 0;
				pool_release_for_waiters();
			}
			slot->state = SLOT_IDLE;
			/* Be seen idle before reading the generation. */
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			break;
		}
	}
	slot->state = SLOT_EXITING;
	pool_close_all();
	_exit(0);
}
