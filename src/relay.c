/*
 * relay.c: the forwarding loop of a session, pgmirror's hot path.
 *
 * After login the client's bytes go to the server and the server's to
 * the client unchanged.  Each direction has one fixed buffer: bytes are
 * read into it and written out of it, never copied in between, and a
 * message larger than the buffer simply streams through.  A scanner per
 * direction (proto.c) follows message boundaries as the bytes pass, to
 * know what the session is doing: how many answers the server still
 * owes (Query, Sync and FunctionCall each end with a ReadyForQuery),
 * the transaction status, the ParameterStatus values, and the client's
 * Terminate, which is not forwarded so the server connection can be
 * reused.  Sockets are non-blocking and one poll covers both, so a
 * client that pipelines while the server answers never deadlocks.  In
 * a mirrored session the same bytes are also shown to the capture
 * (capture.c): the client's as they are sent to the server, so bytes
 * pgmirror holds and then drops never reach it, and the server's as
 * they are read.
 *
 * Maintenance holds a new request of an idle session in the client's
 * buffer, unsent, while the loop goes on relaying what the server
 * still has for the client.  A cancel drops the held requests that are
 * complete (proto_cancel_requests) and answers each as PostgreSQL
 * would; a message is never split.  What pgmirror itself says to the
 * client (those answers, the ParameterStatus of a moved session) goes
 * out between the server's messages, only once everything read from
 * the server before it has been sent (relay_out).
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "pgmirror.h"

#define RELAY_BUFSZ	(128 * 1024)

struct relay_dir {
	int		 from, to;
	struct ssl_st	*from_ssl, *to_ssl;	/* TLS sessions, or NULL */
	size_t		 start, end;	/* bytes [start, end) to write */
	size_t		 hold;		/* trailing bytes of a partial header */
	int		 eof;		/* source closed or failed */
	struct pgm_scan	 scan;
	uint8_t		 buf[RELAY_BUFSZ];
};

/* The session state the scanners keep. */
struct relay_state {
	struct pgm_server *server;
	struct pgm_slot	*slot;		/* ours, in shared memory */
	int		 pending;	/* ReadyForQuery the server owes */
	int		 unsynced;	/* extended messages since last Sync */
	int		 terminated;	/* client sent Terminate */
	int		 copy;		/* server started a COPY IN or BOTH */
	int		 copy_in_ext;	/* ... from an Execute, not yet done */
	uint8_t		 last_request;	/* 'Q', 'F' or 'E', the latest sent */
	int		 syncs_after_execute;	/* Syncs since that Execute */
	int		 listening;	/* LISTEN ran: notifications may come */
	int		 protocol_error;
	int		 too_large;	/* ... a message over the limit */
	int		 held;		/* maintenance holds the client's bytes */
	size_t		 held_skip;	/* held bytes ending a message begun
					   before: they go to the server */
};

static struct relay_dir relay_c2s, relay_s2c;

/*
 * What pgmirror composes for the client during a session, and how much
 * of it has been put into the server-to-client buffer.
 */
static struct pgm_buf relay_out;
static size_t	 relay_out_off;

/* Does relay_out hold bytes the client has not been given? */
static int
relay_out_pending(void)
{
	return relay_out.len > relay_out_off;
}

/*
 * Put what waits in relay_out into the server-to-client buffer, which
 * must be empty and between two messages.  Returns 1 if it did.
 */
static int
relay_out_fill(struct relay_dir *d)
{
	size_t		 n;

	if (!relay_out_pending() || d->start != d->end || d->scan.hdrlen != 0)
		return 0;
	n = relay_out.len - relay_out_off;
	if (n > RELAY_BUFSZ)
		n = RELAY_BUFSZ;
	memcpy(d->buf, relay_out.data + relay_out_off, n);
	d->start = 0;
	d->end = n;
	relay_out_off += n;
	if (relay_out_off == relay_out.len) {
		buf_reset(&relay_out);
		relay_out_off = 0;
	}
	return 1;
}

/*
 * How many bytes the server may be read now: all there is room for,
 * unless relay_out waits, which goes out at the end of the server's
 * current message; then only the rest of that message.
 */
static size_t
relay_server_budget(const struct relay_dir *d)
{
	if (d->eof || (d->end == RELAY_BUFSZ && d->start == 0))
		return 0;
	if (!relay_out_pending())
		return RELAY_BUFSZ;
	if (d->scan.hdrlen == 0)
		return 0;
	if (d->scan.hdrlen < 5)
		return 5 - (size_t)d->scan.hdrlen;
	return d->scan.remain;
}

/* Publish what the session is doing, for SHOW CLIENTS and maintenance. */
static void
relay_set_state(struct pgm_slot *slot, int state)
{
	if (slot->txstate == state)
		return;
	slot->state_since = net_now_ms();
	__atomic_store_n(&slot->txstate, state, __ATOMIC_SEQ_CST);
}

/* Does maintenance hold new requests of this database? */
static int
relay_maintenance(int db)
{
	return __atomic_load_n(&pgm_shm->maintenance, __ATOMIC_SEQ_CST) ||
	    __atomic_load_n(&pgm_shm->maint_db[db], __ATOMIC_SEQ_CST);
}

/*
 * Forget the held request: the server never saw it.  Bytes that end a
 * message the server has the start of are not ours to drop.
 */
static void
relay_drop_request(struct relay_state *st)
{
	struct relay_dir *d = &relay_c2s;

	if (st->held_skip > d->end - d->start)
		st->held_skip = d->end - d->start;
	d->end = d->start + st->held_skip;
	d->hold = 0;
	if (st->held_skip == 0)
		scan_init(&d->scan, d->scan.maxlen);
	st->pending = st->unsynced = 0;
	st->held = 0;
}

/* Maintenance holds the request the client just sent. */
static void
relay_hold(struct relay_state *st, size_t skip)
{
	st->held = 1;
	st->held_skip = skip;
	__atomic_store_n(&st->slot->cancel_held, 0, __ATOMIC_SEQ_CST);
	relay_set_state(st->slot, SLOT_TX_WAITING);
}

/*
 * The client cancelled what maintenance holds: the complete requests
 * are dropped and each is answered as PostgreSQL answers a cancelled
 * one.  What follows them (a request not yet complete) stays held.
 * The capture never saw the dropped bytes, nor sees the answers.
 */
static void
relay_cancel_held(struct relay_state *st)
{
	struct relay_dir *d = &relay_c2s;
	size_t		 from, n;
	int		 nreq;

	from = d->start + st->held_skip;
	if (from > d->end)
		from = d->end;
	n = proto_cancel_requests(d->buf + from, d->end - from, &relay_out,
	    &nreq);
	if (nreq == 0) {
		log_info("cancel request for a held request that is not "
		    "complete yet: ignored");
		return;
	}
	memmove(d->buf + from, d->buf + from + n, d->end - from - n);
	d->end -= n;
	st->pending -= nreq;
	if (st->pending < 0)
		st->pending = 0;
	log_info("request held by maintenance cancelled by the client "
	    "(%d request%s)", nreq, nreq == 1 ? "" : "s");
	if (st->pending == 0 && !st->unsynced) {
		st->held = 0;
		relay_set_state(st->slot, SLOT_TX_IDLE);
	}
}

/*
 * A held request: cancel it if the client asked, release it when
 * maintenance is off.  Returns 1 when it may go to the server now.
 */
static int
relay_hold_check(struct pgm_client *cl, struct relay_state *st)
{
	if (__atomic_exchange_n(&st->slot->cancel_held, 0, __ATOMIC_SEQ_CST))
		relay_cancel_held(st);
	if (!st->held || relay_maintenance(cl->database))
		return 0;
	/*
	 * Seen active first, then the cancel flag looked at once more (a
	 * canceller does the opposite): a cancel that saw us waiting is
	 * never lost between the two.
	 */
	relay_set_state(st->slot, SLOT_TX_ACTIVE);
	if (__atomic_exchange_n(&st->slot->cancel_held, 0, __ATOMIC_SEQ_CST)) {
		relay_cancel_held(st);
		if (!st->held)
			return 0;
	}
	st->held = 0;
	return 1;
}

/* Follow the client's messages in newly read bytes [from, end). */
static int
relay_scan_client(struct relay_dir *d, struct relay_state *st, size_t from)
{
	size_t		 off = from, used;
	enum pgm_scan_event ev;

	while (off < d->end) {
		ev = scan_feed(&d->scan, d->buf + off, d->end - off, &used);
		off += used;
		if (ev == SCAN_BAD_LENGTH) {
			if (d->scan.len >= 4) {
				log_warnx("client sent a message of type %d of "
				    "%u bytes, more than client.max_message_"
				    "size", d->scan.type, d->scan.len);
				st->too_large = 1;
			} else
				log_warnx("client sent a message of type %d "
				    "with invalid length %u", d->scan.type,
				    d->scan.len);
			st->protocol_error = 1;
			return -1;
		}
		if (ev != SCAN_HEADER)
			continue;
		switch (d->scan.type) {
		case 'Q':
		case 'F':
			st->pending++;
			st->last_request = d->scan.type;
			break;
		case 'S':
			/* The server ignores a Sync in extended COPY IN. */
			if (!st->copy_in_ext) {
				st->pending++;
				st->syncs_after_execute++;
			}
			st->unsynced = 0;
			break;
		case 'E':
			st->unsynced = 1;
			st->last_request = 'E';
			st->syncs_after_execute = 0;
			break;
		case 'P': case 'B': case 'D': case 'C': case 'H':
			st->unsynced = 1;
			break;
		case 'c': case 'f':
			st->copy_in_ext = 0;
			break;
		case 'X':
			/* Keep Terminate from the server; nothing follows. */
			st->terminated = 1;
			d->end = off - 5;
			d->hold = 0;
			d->eof = 1;
			return 0;
		case 'd': case 'p':
			break;
		default:
			log_warnx("client sent invalid message type %d",
			    d->scan.type);
			st->protocol_error = 1;
			return -1;
		}
	}
	d->hold = (size_t)d->scan.hdrlen % 5;
	return 0;
}

/* Follow the server's messages in newly read bytes [from, end). */
static int
relay_scan_server(struct relay_dir *d, struct relay_state *st, size_t from)
{
	struct pgm_scan	*sc = &d->scan;
	size_t		 off = from, used;
	enum pgm_scan_event ev;
	struct pgm_reader r;
	const char	*name, *value;

	while (off < d->end) {
		ev = scan_feed(sc, d->buf + off, d->end - off, &used);
		off += used;
		if (ev == SCAN_BAD_LENGTH) {
			log_warnx("server sent a message with invalid length");
			return -1;
		}
		if (ev == SCAN_HEADER) {
			if ((sc->type == 'Z' || sc->type == 'S' ||
			    (sc->type == 'C' && !st->listening)) &&
			    sc->remain > 0)
				sc->capture = 1;
			else if (sc->type == 'G' || sc->type == 'W') {
				st->copy = 1;
				/*
				 * COPY FROM STDIN started by an Execute: the
				 * server ignores the Syncs sent after that
				 * Execute until CopyDone or CopyFail, so they
				 * are owed no ReadyForQuery.
				 */
				if (st->last_request == 'E') {
					st->pending -= st->syncs_after_execute;
					if (st->pending < 0)
						st->pending = 0;
					st->syncs_after_execute = 0;
					st->copy_in_ext = 1;
				}
			}
			continue;
		}
		if (ev != SCAN_BODY)
			continue;
		if (sc->type == 'Z') {
			st->copy = 0;
			st->server->txstatus = sc->cap[0];
			if (st->pending > 0)
				st->pending--;
			st->slot->queries++;
			if (st->pending == 0 && !st->unsynced)
				relay_set_state(st->slot, sc->cap[0]);
		} else if (sc->type == 'C') {
			if (sc->caplen == 7 && memcmp(sc->cap, "LISTEN", 7) == 0)
				st->listening = 1;
		} else if (sc->type == 'S' && sc->caplen == sc->len - 4) {
			reader_init(&r, sc->cap, sc->caplen);
			if (reader_str(&r, &name) == 0 &&
			    reader_str(&r, &value) == 0)
				server_set_status(st->server, name, value);
		}
	}
	d->hold = 0;
	return 0;
}

/*
 * Write what we can of a direction's buffer, showing what was sent to
 * the capture, if any.  -1 if the peer failed.
 */
static int
relay_flush(struct relay_dir *d, struct pgm_capture *cap)
{
	ssize_t		 n;
	size_t		 avail;

	if (d->end < d->hold + d->start)
		return -1;	/* cannot happen; never send what is not ours */
	avail = d->end - d->hold - d->start;
	while (avail > 0) {
		n = net_send(d->to, d->to_ssl, d->buf + d->start, avail,
		    MSG_DONTWAIT);
		if (n > 0) {
			if (cap != NULL)
				capture_client(cap, d->buf + d->start, n,
				    mqueue_now_ns());
			d->start += n;
			avail -= n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return -1;
	}
	if (d->start == d->end - d->hold && d->start > 0) {
		/* Move a held partial header (at most 4 bytes) to the front. */
		memmove(d->buf, d->buf + d->start, d->hold);
		d->end = d->hold;
		d->start = 0;
	}
	return 0;
}

/*
 * Read what the source has into the buffer, at most max bytes, after
 * compacting it if it is full to the end: without waiting
 * (MSG_DONTWAIT), or waiting up to the socket's receive timeout (flags
 * 0).  *from is set to where the new bytes start.  Returns their count,
 * 0 on EOF.
 */
static ssize_t
relay_fill(struct relay_dir *d, size_t *from, int flags, size_t max)
{
	ssize_t		 n;
	size_t		 room;

	if (d->end == RELAY_BUFSZ && d->start > 0) {
		memmove(d->buf, d->buf + d->start, d->end - d->start);
		d->end -= d->start;
		d->start = 0;
	}
	*from = d->end;
	room = RELAY_BUFSZ - d->end;
	if (room > max)
		room = max;
	for (;;) {
		n = net_recv(d->from, d->from_ssl, d->buf + d->end, room,
		    flags);
		if (n >= 0 || errno != EINTR)
			return n;
	}
}

/* Room to read more into a direction? */
static int
relay_room(const struct relay_dir *d)
{
	return !d->eof && (d->end < RELAY_BUFSZ || d->start > 0);
}

/*
 * Switch a socket between blocking reads with a one-second timeout
 * (the relay's fast paths) and non-blocking (everything else).
 */
static void
relay_blocking(int fd, int on)
{
	struct timeval	 tv = { on ? 1 : 0, 0 };
	int		 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return;
	fcntl(fd, F_SETFL, on ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* The session moved to another server connection (move.c). */
static void
relay_switch_server(struct relay_state *st, struct pgm_server *srv)
{
	st->server = srv;
	relay_c2s.to = srv->fd;
	relay_c2s.to_ssl = srv->ssl;
	relay_s2c.from = srv->fd;
	relay_s2c.from_ssl = srv->ssl;
	scan_init(&relay_s2c.scan, PGM_MESSAGE_MAX);
	if (srv->ssl == NULL)
		relay_blocking(srv->fd, 1);
}

/* Reset a direction for a new session. */
static void
relay_dir_init(struct relay_dir *d, int from, struct ssl_st *from_ssl,
    int to, struct ssl_st *to_ssl, uint32_t maxlen)
{
	d->from = from;
	d->from_ssl = from_ssl;
	d->to = to;
	d->to_ssl = to_ssl;
	d->start = d->end = d->hold = 0;
	d->eof = 0;
	scan_init(&d->scan, maxlen);
}

/*
 * How long the client may stay silent from now, in ms, when nothing is
 * owed to it: client.idle_timeout outside a transaction,
 * client.idle_transaction_timeout inside one; -1 for no limit.  *end is
 * set to what ends the session when it runs out.
 */
static int64_t
relay_idle_left(const struct relay_state *st, int64_t last,
    enum pgm_relay_end *end)
{
	int		 limit;

	if (st->pending > 0 || st->copy || st->held)
		return -1;
	if (st->server->txstatus == 'I') {
		limit = pgm_conf->client_idle_timeout;
		*end = RELAY_IDLE_TIMEOUT;
	} else {
		limit = pgm_conf->client_idle_transaction_timeout;
		*end = RELAY_IDLE_IN_TRANSACTION;
	}
	if (limit == 0)
		return -1;
	last += (int64_t)limit * 1000 - net_now_ms();
	return last > 0 ? last : 0;
}

/*
 * A new request of an idle session goes to the server: first, if a
 * reload moved its database, the session follows it (move.c).  A move
 * needs the server between messages: while one it sent (a notice, a
 * notification) is half relayed, the request waits, held (returns 1),
 * rather than go to a server the config has left.  Returns 0, or -1
 * when the session must end (*srvp may then be NULL).
 */
static int
relay_request_out(struct pgm_client *cl, struct relay_state *st,
    struct pgm_server **srvp)
{
	struct pgm_server *srv = *srvp;

	if (relay_s2c.scan.hdrlen != 0 && __atomic_load_n(
	    &pgm_shm->generation, __ATOMIC_ACQUIRE) != move_generation())
		return 1;
	if (move_check(cl, srvp, &relay_out) == -1)
		return -1;
	if (*srvp != srv)
		relay_switch_server(st, *srvp);
	return 0;
}

/*
 * The session ends with what pgmirror has to tell the client (a move
 * failed): send what the server had for it, then that.
 */
static void
relay_out_drain(struct pgm_client *cl)
{
	struct relay_dir *d = &relay_s2c;
	int64_t		 deadline = net_now_ms() + 30000;

	if (d->scan.hdrlen == 0 && (d->start == d->end ||
	    net_write_full(cl->fd, cl->ssl, d->buf + d->start,
	    d->end - d->start, deadline) == 0)) {
		d->start = d->end = 0;
		if (relay_out_pending() && !relay_out.failed)
			(void)net_write_full(cl->fd, cl->ssl,
			    relay_out.data + relay_out_off,
			    relay_out.len - relay_out_off, deadline);
	}
}

/*
 * Forward a session until one side ends it.  *reusable says whether the
 * server connection is left at a clean message boundary with nothing
 * owed, so it can be reset and pooled.  *boundary says whether the
 * stream to the client is between messages, so pgmirror may still send
 * it an ErrorResponse.
 */
enum pgm_relay_end
relay_session(struct pgm_client *cl, struct pgm_server **srvp, int *reusable,
    int *boundary)
{
	struct pgm_server *srv = *srvp;
	struct relay_dir *c2s = &relay_c2s, *s2c = &relay_s2c;
	struct relay_state st;
	struct pollfd	 pfd[3];
	enum pgm_relay_end end;
	ssize_t		 n;
	size_t		 old, budget, skip;
	int		 fillflags, clientflags, slow = 0, timeout, timed, idle;
	int		 held;
	int64_t		 last, left;
	enum pgm_relay_end idle_end = RELAY_IDLE_TIMEOUT;
	unsigned int	 turns = 0;
	struct pgm_capture *cap = mirror_capture();

	memset(&st, 0, sizeof(st));
	st.server = srv;
	st.slot = shm_slot(proc_slot);
	buf_reset(&relay_out);
	relay_out_off = 0;
	if (srv->ssl == NULL)
		relay_blocking(srv->fd, 1);
	if (cl->ssl == NULL)
		relay_blocking(cl->fd, 1);
	relay_dir_init(c2s, cl->fd, cl->ssl, srv->fd, srv->ssl,
	    pgm_conf->client_max_message_size);
	relay_dir_init(s2c, srv->fd, srv->ssl, cl->fd, cl->ssl,
	    PGM_MESSAGE_MAX);
	/* Read the clock per message only when an idle limit is set. */
	timed = pgm_conf->client_idle_timeout > 0 ||
	    pgm_conf->client_idle_transaction_timeout > 0;
	last = net_now_ms();
	*reusable = 0;

	for (;;) {
		if (proc_sig_int) {
			end = RELAY_SHUTDOWN;
			break;
		}
		if (proc_sig_usr1) {
			proc_sig_usr1 = 0;
			pool_release_for_waiters();
		}
		if (c2s->eof && c2s->start == c2s->end) {
			end = st.terminated ? RELAY_CLIENT_TERMINATE :
			    RELAY_CLIENT_GONE;
			break;
		}
		if (relay_out.failed) {
			log_warnx("out of memory composing a message");
			end = RELAY_CLIENT_GONE;
			break;
		}
		if (st.held && relay_hold_check(cl, &st)) {
			if ((held = relay_request_out(cl, &st, srvp)) == -1) {
				end = RELAY_MOVE_FAILED;
				srv = *srvp;
				break;
			}
			srv = *srvp;
			if (held == 1) {
				/* Held again until the server's message is whole. */
				st.held = 1;
				relay_set_state(st.slot, SLOT_TX_WAITING);
			} else if (relay_flush(c2s, cap) == -1) {
				end = RELAY_SERVER_GONE;
				break;
			}
		}
		/* What pgmirror says goes out between the server's messages. */
		if (relay_out_fill(s2c) && relay_flush(s2c, NULL) == -1) {
			end = RELAY_CLIENT_GONE;
			break;
		}
		budget = relay_server_budget(s2c);
		/*
		 * Fast paths.  When only one side can speak next, wait in recv
		 * on that side alone: one syscall instead of a poll and a recv.
		 * The server speaks next when it owes an answer and the client
		 * is between messages with nothing unsynced or COPY to send (a
		 * half-sent query is not yet owed an answer).  The client
		 * speaks next when nothing is owed and the session never ran
		 * LISTEN, so no notification can arrive while it is idle.  The
		 * sockets' receive timeout ends such a wait after a second of
		 * silence; the loop then sleeps in poll, where signals and the
		 * supervisor's death are seen, until the session moves again.
		 * A busy session may never fall silent, so every 64th turn
		 * goes through poll anyway.
		 */
		fillflags = clientflags = MSG_DONTWAIT;
		if ((++turns & 63) != 0 && !slow && c2s->start == c2s->end &&
		    s2c->start == s2c->end && c2s->scan.hdrlen == 0 &&
		    s2c->scan.hdrlen == 0 && !st.copy && !st.unsynced &&
		    !st.held && !relay_out_pending()) {
			if (st.pending > 0 && srv->ssl == NULL && budget > 0) {
				pfd[0].revents = 0;
				pfd[1].revents = POLLIN;
				fillflags = 0;
				goto s;
			}
			if (st.pending == 0 && !st.listening &&
			    cl->ssl == NULL && relay_room(c2s)) {
				pfd[0].revents = POLLIN;
				pfd[1].revents = 0;
				clientflags = 0;
				goto c;
			}
		}
		/* TLS may hold decrypted bytes that poll cannot see. */
		if (srv->ssl != NULL && budget > 0 && SSL_pending(srv->ssl) > 0) {
			pfd[0].revents = 0;
			pfd[1].revents = POLLIN;
			goto s;
		}
		if (cl->ssl != NULL && !st.held && relay_room(c2s) &&
		    SSL_pending(cl->ssl) > 0) {
			pfd[0].revents = POLLIN;
			pfd[1].revents = 0;
			goto c;
		}
		/* A held request waits unsent; only the client's leaving counts. */
		pfd[0].fd = cl->fd;
		pfd[0].events = (st.held ? POLLRDHUP : relay_room(c2s) ?
		    POLLIN : 0) |
		    (s2c->end - s2c->hold > s2c->start ? POLLOUT : 0);
		pfd[1].fd = srv->fd;
		pfd[1].events = (budget > 0 ? POLLIN : 0) | (!st.held &&
		    c2s->end - c2s->hold > c2s->start ? POLLOUT : 0);
		pfd[2].fd = proc_death_fd;
		pfd[2].events = POLLIN;
		/* A side with nothing to wait for is left out of the poll. */
		if (pfd[0].events == 0)
			pfd[0].fd = -1;
		if (pfd[1].events == 0)
			pfd[1].fd = -1;
		timeout = -1;
		if (timed &&
		    (left = relay_idle_left(&st, last, &idle_end)) >= 0) {
			if (left == 0) {
				end = idle_end;
				break;
			}
			timeout = left > INT_MAX ? INT_MAX : (int)left;
		}
		/* A held request looks at maintenance and cancels often. */
		if (st.held && (timeout == -1 || timeout > 100))
			timeout = 100;
		if ((n = proc_poll(pfd, 3, timeout)) == 0)
			continue;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			end = RELAY_CLIENT_GONE;
			break;
		}
		if (pfd[2].revents) {
			proc_orphaned();
			continue;
		}
		if (st.held &&
		    pfd[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			log_info("client left while held by maintenance; its "
			    "request was not run");
			/* The server saw nothing: it stays reusable. */
			relay_drop_request(&st);
			end = RELAY_CLIENT_GONE;
			break;
		}
s:
		/* Server to client first: answers free the client. */
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR) &&
		    budget > 0) {
			if ((n = relay_fill(s2c, &old, fillflags,
			    budget)) <= 0) {
				if (n == -1 && (errno == EAGAIN ||
				    errno == EWOULDBLOCK)) {
					slow = fillflags == 0;
					goto c;
				}
				s2c->eof = 1;
				(void)relay_flush(s2c, NULL);
				end = RELAY_SERVER_GONE;
				break;
			}
			s2c->end += n;
			st.slot->bytes_out += n;
			slow = 0;
			if (cap != NULL)
				capture_server(cap, s2c->buf + old, n,
				    mqueue_now_ns());
			if (timed)
				last = net_now_ms();
			if (relay_scan_server(s2c, &st, old) == -1) {
				end = RELAY_SERVER_GONE;
				break;
			}
			if (relay_flush(s2c, NULL) == -1) {
				end = RELAY_CLIENT_GONE;
				break;
			}
		} else if (pfd[0].revents & POLLOUT &&
		    relay_flush(s2c, NULL) == -1) {
			end = RELAY_CLIENT_GONE;
			break;
		}
c:
		if (st.held)
			continue;
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR) &&
		    relay_room(c2s)) {
			n = relay_fill(c2s, &old, clientflags, RELAY_BUFSZ);
			if (n == -1 && (errno == EAGAIN ||
			    errno == EWOULDBLOCK)) {
				slow = clientflags == 0;
				continue;
			}
			slow = 0;
			if (n <= 0) {
				/* A partial header will never complete. */
				c2s->end -= c2s->hold;
				c2s->hold = 0;
				c2s->eof = 1;
				continue;
			}
			idle = st.pending == 0 && !st.unsynced && !st.copy &&
			    c2s->start == c2s->end - c2s->hold &&
			    srv->txstatus == 'I';
			/* Bytes that end a message begun before these. */
			skip = c2s->scan.hdrlen == 5 ? c2s->scan.remain : 0;
			c2s->end += n;
			st.slot->bytes_in += n;
			if (timed)
				last = net_now_ms();
			if (relay_scan_client(c2s, &st, old) == -1) {
				end = st.too_large ? RELAY_TOO_LARGE :
				    RELAY_PROTOCOL;
				break;
			}
			/*
			 * A new request of an idle session: say so first, then
			 * look at maintenance (the supervisor does the
			 * opposite), so that one of us sees the other.
			 */
			if (idle && (st.pending > 0 || st.unsynced)) {
				relay_set_state(st.slot, SLOT_TX_ACTIVE);
				if (relay_maintenance(cl->database)) {
					/* Sent with its Terminate: it leaves. */
					if (st.terminated) {
						st.held_skip = skip;
						relay_drop_request(&st);
						end = RELAY_CLIENT_TERMINATE;
						break;
					}
					relay_hold(&st, skip);
					continue;
				}
				if ((held = relay_request_out(cl, &st,
				    srvp)) == -1) {
					end = RELAY_MOVE_FAILED;
					srv = *srvp;	/* maybe none left */
					break;
				}
				srv = *srvp;
				if (held == 1) {
					relay_hold(&st, skip);
					continue;
				}
			}
			if (relay_flush(c2s, cap) == -1) {
				end = RELAY_SERVER_GONE;
				break;
			}
		} else if (pfd[1].revents & POLLOUT &&
		    relay_flush(c2s, cap) == -1) {
			end = RELAY_SERVER_GONE;
			break;
		}
	}
	if (end == RELAY_MOVE_FAILED)
		relay_out_drain(cl);
	/* A burst of answers is not kept for the life of the worker. */
	if (relay_out.cap > 64 * 1024) {
		buf_free(&relay_out);
		buf_init(&relay_out);
	}
	buf_reset(&relay_out);
	relay_out_off = 0;
	if (srv != NULL && srv->ssl == NULL)
		relay_blocking(srv->fd, 0);
	if (cl->ssl == NULL)
		relay_blocking(cl->fd, 0);
	if (srv != NULL && end != RELAY_SERVER_GONE && end != RELAY_PROTOCOL &&
	    end != RELAY_TOO_LARGE && st.pending == 0 && !st.unsynced &&
	    c2s->start == c2s->end && c2s->scan.hdrlen == 0 &&
	    s2c->scan.hdrlen == 0 && s2c->start == s2c->end)
		*reusable = 1;
	*boundary = s2c->scan.hdrlen == 0 && s2c->start == s2c->end;
	return end;
}
