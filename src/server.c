/*
 * server.c: connections from a worker to a PostgreSQL server.
 *
 * server_open connects to the host of a databases entry for a users
 * entry (struct pgm_login: no client is needed, so mirror workers use
 * it as client workers do), sends a StartupMessage carrying the
 * startup parameters given,
 * answers the server's authentication requests (auth.c) and collects
 * ParameterStatus and BackendKeyData until the first ReadyForQuery.
 * server_reset brings a connection back to a clean session before it
 * is parked for the next client.  A connection belongs to one worker
 * for its whole life.  A failure comes back as a struct
 * pgm_server_error, which each caller turns into what its peer needs
 * (server_error_response: an ErrorResponse for a client).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "pgmirror.h"

#define SERVER_RESET_TIMEOUT	10000	/* ms */
#define SERVER_CANCEL_TIMEOUT	5000	/* ms to deliver a CancelRequest */

/* Remember a ParameterStatus the server reported. */
void
server_set_status(struct pgm_server *s, const char *name, const char *value)
{
	int		 i;
	char		*v;

	for (i = 0; i < s->nstatus; i++)
		if (strcmp(s->status_name[i], name) == 0) {
			if ((v = strdup(value)) == NULL)
				return;
			free(s->status_value[i]);
			s->status_value[i] = v;
			return;
		}
	if (s->nstatus == PGM_MAXSTATUS)
		return;
	if ((s->status_name[i] = strdup(name)) == NULL)
		return;
	if ((s->status_value[i] = strdup(value)) == NULL) {
		free(s->status_name[i]);
		return;
	}
	s->nstatus++;
}

/* Close a server connection and free it. */
void
server_close(struct pgm_server *s)
{
	static const uint8_t terminate[5] = { 'X', 0, 0, 0, 4 };
	int		 i;

	if (s == NULL)
		return;
	if (s->fd != -1) {
		/* Terminate means nothing to a server still in startup. */
		if (s->ready)
			(void)net_send(s->fd, s->ssl, terminate,
			    sizeof(terminate), MSG_DONTWAIT);
		tls_close(s->ssl);
		close(s->fd);
	}
	for (i = 0; i < s->nstatus; i++) {
		free(s->status_name[i]);
		free(s->status_value[i]);
	}
	free(s->params);
	free(s);
}

/* Note why a connection failed, at which stage. */
static void __attribute__((format(printf, 4, 5)))
server_error(struct pgm_server_error *e, int stage, const char *sqlstate,
    const char *fmt, ...)
{
	va_list		 ap;

	e->stage = stage;
	snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", sqlstate);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

/* Start an error value: nothing failed yet. */
void
server_error_init(struct pgm_server_error *e)
{
	memset(e, 0, sizeof(*e));
	buf_init(&e->response);
}

void
server_error_free(struct pgm_server_error *e)
{
	buf_free(&e->response);
}

/*
 * Append to out what a client is told of the failure: the server's own
 * ErrorResponse as it is, or a FATAL of ours.
 */
void
server_error_response(const struct pgm_server_error *e, struct pgm_buf *out)
{
	if (e->response.len > 0)
		buf_put(out, e->response.data, e->response.len);
	else
		proto_error(out, "FATAL", e->sqlstate[0] ? e->sqlstate :
		    "08006", "%s", e->message);
}

/* Build the StartupMessage for the server. */
static void
server_startup_packet(const struct pgm_login *lg, struct pgm_buf *b)
{
	const struct pgm_user *u = &pgm_conf->users[lg->user];
	const struct pgm_database *d = &pgm_conf->databases[lg->database];
	const struct pgm_startup *st = lg->startup;
	int		 i;

	buf_msg_begin(b, 0);
	buf_put_u32(b, PGM_PROTO_V3);
	buf_put_str(b, "user");
	buf_put_str(b, u->name);
	buf_put_str(b, "database");
	buf_put_str(b, d->dbname);
	for (i = 0; st != NULL && i < st->nparams; i++) {
		if (strcmp(st->name[i], "user") == 0 ||
		    strcmp(st->name[i], "database") == 0 ||
		    strcmp(st->name[i], "replication") == 0 ||
		    strncmp(st->name[i], "_pq_.", 5) == 0)
			continue;
		buf_put_str(b, st->name[i]);
		buf_put_str(b, st->value[i]);
	}
	buf_put_u8(b, 0);
	buf_msg_end(b);
}

/*
 * Log in on a freshly connected server socket.  Returns 0 at the first
 * ReadyForQuery after AuthenticationOk; -1 with why in e.
 */
static int
server_login(struct pgm_server *s, const struct pgm_login *lg,
    struct pgm_server_error *e, int64_t deadline)
{
	const struct pgm_database *d = &pgm_conf->databases[lg->database];
	struct scram_client sc;
	struct pgm_buf	 b;
	struct pgm_reader r;
	const char	*err = NULL, *name, *value, *sev, *code, *msg;
	const char	*sqlstate = "08006";
	uint32_t	 acode;
	uint8_t		 type;
	int		 rc = -1, authok = 0;

	memset(&sc, 0, sizeof(sc));
	buf_init(&b);
	server_startup_packet(lg, &b);
	if (b.failed || net_write_full(s->fd, s->ssl, b.data, b.len, deadline) == -1) {
		err = strerror(errno);
		goto fail;
	}
	for (;;) {
		if (net_read_message(s->fd, s->ssl, &b, &type, PGM_AUTH_MESSAGE_MAX * 8,
		    deadline) == -1) {
			err = errno == EMSGSIZE ? "invalid message length" :
			    errno == ECONNRESET ? "server closed the connection"
			    : strerror(errno);
			goto fail;
		}
		reader_init(&r, b.data + 5, b.len - 5);
		/*
		 * Until AuthenticationOk only authentication requests, as
		 * libpq: a server that skips it has not authenticated.
		 */
		if (!authok && (type == 'S' || type == 'K' || type == 'Z')) {
			err = "server sent session messages before "
			    "AuthenticationOk";
			sqlstate = "28000";
			goto fail;
		}
		switch (type) {
		case 'R':
			if (reader_u32(&r, &acode) == -1) {
				err = "malformed authentication request";
				goto fail;
			}
			if (authok) {
				err = "authentication request after "
				    "AuthenticationOk";
				goto fail;
			}
			/* AuthenticationOk too: it may come too early. */
			if (auth_server_step(s->fd, s->ssl, lg, acode, b.data + 9,
			    b.len - 9, &sc, deadline, &err, &sqlstate) == -1)
				goto fail;
			authok = acode == 0;
			break;
		case 'E':
			/* The server's own refusal goes to the client as is. */
			proto_error_fields(b.data + 5, b.len - 5, &sev, &code,
			    &msg);
			log_warnx("server %s:%d refused login: %s (%s)",
			    d->host, d->port, msg, code);
			server_error(e, SERVER_ERR_REFUSED, code, "%s", msg);
			buf_put(&e->response, b.data, b.len);
			goto done;
		case 'S':
			if (reader_str(&r, &name) == 0 &&
			    reader_str(&r, &value) == 0)
				server_set_status(s, name, value);
			break;
		case 'K':
			if (reader_u32(&r, &s->be_pid) == -1 ||
			    reader_u32(&r, &s->be_key) == -1) {
				err = "malformed BackendKeyData";
				goto fail;
			}
			break;
		case 'Z':
			s->txstatus = b.len > 5 ? b.data[5] : 'I';
			s->ready = 1;
			rc = 0;
			goto done;
		case 'N':
		case 'v':
			break;
		default:
			err = "unexpected message during login";
			goto fail;
		}
	}
fail:
	log_warnx("login to server %s:%d failed: %s", d->host, d->port, err);
	server_error(e, SERVER_ERR_LOGIN, sqlstate, "pgmirror: login to server "
	    "failed: %s", err);
done:
	explicit_bzero(&sc, sizeof(sc));
	buf_free(&b);
	return rc;
}

/*
 * Ask the server for TLS as tls.server_mode (or the database's
 * tls_mode) says, and run the handshake when it agrees.  Returns 0, or
 * -1 with why in e.
 */
static int
server_tls(struct pgm_server *s, const struct pgm_database *d,
    struct pgm_server_error *e, int64_t deadline)
{
	static const char *const names[] = { "disable", "allow", "prefer",
	    "require", "verify-ca", "verify-full" };
	uint8_t		 req[8], answer;
	const char	*why;
	int		 mode = tls_server_mode(pgm_conf, d);

	if (mode < TLS_PREFER)
		return 0;
	proto_put_u32(req, 8);
	proto_put_u32(req + 4, PGM_SSL_CODE);
	if (net_write_full(s->fd, NULL, req, sizeof(req), deadline) == -1 ||
	    net_read_full(s->fd, NULL, &answer, 1, deadline) == -1) {
		why = strerror(errno);
		goto fail;
	}
	if (answer == 'N') {
		if (mode == TLS_PREFER)
			return 0;
		why = "the server does not support SSL";
		goto fail;
	}
	if (answer != 'S') {
		why = "unexpected answer to SSLRequest";
		goto fail;
	}
	if ((s->ssl = tls_connect(s->fd, d->host, mode, deadline,
	    &why)) == NULL)
		goto fail;
	return 0;
fail:
	log_warnx("TLS to server %s:%d failed (tls mode %s): %s", d->host,
	    d->port, names[mode], why);
	server_error(e, SERVER_ERR_TLS, "08006", "pgmirror: TLS to the server "
	    "of database \"%s\" failed: %s", d->name, why);
	return -1;
}

/*
 * Open and log in a new server connection for lg.  params is the
 * canonical key of its startup parameters (kept).  Returns NULL with
 * why in e (server_error_init'ed by the caller).
 */
struct pgm_server *
server_open(const struct pgm_login *lg, const char *params,
    struct pgm_server_error *e)
{
	const struct pgm_database *d = &pgm_conf->databases[lg->database];
	struct pgm_server *s;
	int64_t		 deadline = net_now_ms() +
	    (int64_t)pgm_conf->server_connect_timeout * 1000;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->params = strdup(params)) == NULL) {
		free(s);
		server_error(e, SERVER_ERR_CONNECT, "53200", "out of memory");
		return NULL;
	}
	s->pool = config_pool_index(pgm_conf, lg->user, lg->database);
	s->fd = net_connect(d->host, d->port, deadline, &s->addr,
	    &s->addrlen);
	if (s->fd == -1) {
		log_warn("cannot connect to server %s:%d", d->host, d->port);
		server_error(e, SERVER_ERR_CONNECT, "08006", "pgmirror: cannot "
		    "connect to server of database \"%s\": %s", d->name,
		    strerror(errno));
		server_close(s);
		return NULL;
	}
	if (server_tls(s, d, e, deadline) == -1 ||
	    server_login(s, lg, e, deadline) == -1) {
		server_close(s);
		return NULL;
	}
	s->created = s->used = net_now_ms();
	log_debug("server connection to %s:%d opened (backend pid %u)",
	    d->host, d->port, s->be_pid);
	return s;
}

/*
 * Send a CancelRequest for backend pid/key to the server at addr.
 * Returns 0 when it was sent.
 */
int
server_cancel_addr(const struct sockaddr_storage *addr, socklen_t len,
    uint32_t pid, uint32_t key)
{
	uint8_t		 pkt[16];
	int64_t		 deadline = net_now_ms() + SERVER_CANCEL_TIMEOUT;
	int		 fd, rc;

	if ((fd = net_connect_addr(addr, len, deadline, 0)) == -1)
		return -1;
	proto_put_u32(pkt, 16);
	proto_put_u32(pkt + 4, PGM_CANCEL_CODE);
	proto_put_u32(pkt + 8, pid);
	proto_put_u32(pkt + 12, key);
	rc = net_write_full(fd, NULL, pkt, sizeof(pkt), deadline);
	close(fd);
	return rc;
}

/* Cancel whatever a server connection is running (before closing it). */
void
server_cancel(struct pgm_server *s)
{
	if (server_cancel_addr(&s->addr, s->addrlen, s->be_pid,
	    s->be_key) == -1)
		log_warn("cannot cancel the query of backend %u", s->be_pid);
}

/* Is an idle connection still usable (nothing arrived, not closed)? */
int
server_alive(struct pgm_server *s)
{
	struct pollfd	 pfd;

	if (s->ssl != NULL && SSL_pending(s->ssl) > 0)
		return 0;
	pfd.fd = s->fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 0) != 0)
		return 0;
	return 1;
}

/*
 * Bring a connection back to a clean session: ROLLBACK if a transaction
 * is open, then the reset query.  Returns 0 if it is fit for reuse.
 */
int
server_reset(struct pgm_server *s)
{
	struct pgm_buf	 b;
	struct pgm_reader r;
	const char	*name, *value;
	int64_t		 deadline = net_now_ms() + SERVER_RESET_TIMEOUT;
	int		 want = 0, failed = 0;
	uint8_t		 type;

	buf_init(&b);
	if (s->txstatus != 'I') {
		proto_query(&b, "ROLLBACK");
		want++;
	}
	if (pgm_conf->pool_reset_query[0] != '\0') {
		proto_query(&b, pgm_conf->pool_reset_query);
		want++;
	}
	if (want == 0)
		goto out;
	if (b.failed || net_write_full(s->fd, s->ssl, b.data, b.len, deadline) == -1) {
		failed = 1;
		goto out;
	}
	while (want > 0) {
		if (net_read_message(s->fd, s->ssl, &b, &type, 1024 * 1024,
		    deadline) == -1) {
			failed = 1;
			break;
		}
		reader_init(&r, b.data + 5, b.len - 5);
		switch (type) {
		case 'Z':
			s->txstatus = b.len > 5 ? b.data[5] : 'I';
			want--;
			break;
		case 'E':
			failed = 1;
			break;
		case 'S':
			if (reader_str(&r, &name) == 0 &&
			    reader_str(&r, &value) == 0)
				server_set_status(s, name, value);
			break;
		}
	}
out:
	buf_free(&b);
	if (!failed && s->txstatus != 'I')
		failed = 1;
	return failed ? -1 : 0;
}
