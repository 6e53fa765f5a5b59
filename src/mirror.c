/*
 * mirror.c: mirroring, on both sides of the queues.
 *
 * In a client worker: choose at session start which mirrors copy the
 * session (each by its exposure), follow the session with a capture
 * (capture.c), and put each committed transaction, as one record, into
 * the ring of each chosen mirror that belongs to the session's mirror
 * worker (mqueue.c).  Nothing here waits: a record that does not fit
 * is dropped and counted, and the session then has a gap.
 *
 * In a mirror worker (mirror_main): one process drives many
 * destination sessions with non-blocking sockets and one poll.  Each
 * source session it has records for gets its own destination session,
 * opened with the same user, the mirror's destination database and the
 * source session's startup parameters when its first record is
 * replayed, and closed once the source session is over and everything
 * it queued is replayed.  A session's records are replayed one after the
 * other, each with all its messages written at once; every response is
 * read and compared with what the source answered: an ErrorResponse
 * counts as an error, another command tag, row count or row hash as a
 * divergence.  A slow or locked destination session only delays its
 * own records.  A destination that cannot be reached is retried with a
 * growing pause, and while it is away the records that would need a
 * new connection are dropped and counted.
 */
#include <sys/eventfd.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "pgmirror.h"

#define MIRROR_TICK		1000	/* ms between session checks */
#define MIRROR_LOG_EVERY	1000	/* ms between divergence logs */
#define MIRROR_TEXT_MAX		80	/* statement text in logs */

/* ------------------------------------------------------------------ */
/* The client worker's side.                                          */

static struct {
	int		 active;
	uint64_t	 id;
	int		 part;		/* the mirror worker for the session */
	int		 user, database;
	uint32_t	 txn;		/* committed transactions seen */
	int		 nchosen;
	int		*chosen;	/* mirrors[] indexes */
	uint32_t	*epoch;		/* ring epoch our parameters reached */
	int		*has_params;	/* ... and whether they did */
	int		*gap;
	char		*params;
	size_t		 paramslen;
	int		 cap_ready;
	struct pgm_capture cap;
} ms;

static struct pgm_mqueue *
mirror_ring(int mirror, int part)
{
	return &pgm_shm->mqueues[mirror * pgm_shm->nmworkers + part];
}

static uint64_t
mirror_next_seq(void *arg)
{
	(void)arg;
	return __atomic_add_fetch(&pgm_shm->next_seq, 1, __ATOMIC_RELAXED);
}

/* Note that a chosen mirror lost a transaction of this session. */
static void
mirror_gap(int i)
{
	if (!ms.gap[i]) {
		ms.gap[i] = 1;
		__atomic_add_fetch(&pgm_shm->mirrors[ms.chosen[i]].gaps, 1,
		    __ATOMIC_RELAXED);
	}
}

/* The capture's callback: a transaction of the session is over. */
static void
mirror_txn_done(void *arg, const struct pgm_capture_txn *t)
{
	struct pgm_mrec	 r;
	struct pgm_mqueue *q;
	uint32_t	 epoch;
	int		 i;

	(void)arg;
	if (!t->committed && !t->overflow)
		return;		/* failed or rolled back: nothing to copy */
	ms.txn++;
	for (i = 0; i < ms.nchosen; i++) {
		q = mirror_ring(ms.chosen[i], ms.part);
		if (t->overflow) {
			/* Counted like any record that cannot fit. */
			mqueue_drop(q);
			mirror_gap(i);
			continue;
		}
		memset(&r, 0, sizeof(r));
		r.mirror = (uint16_t)ms.chosen[i];
		r.session = ms.id;
		r.seq = t->seq;
		r.enqueued_ns = mqueue_now_ns();
		r.txn = ms.txn;
		r.nstmts = (uint32_t)t->nstmts;
		r.nready = (uint32_t)t->nready;
		r.byteslen = (uint32_t)t->len;
		r.user = ms.user;
		r.database = ms.database;
		epoch = __atomic_load_n(&q->epoch, __ATOMIC_ACQUIRE);
		if (!ms.has_params[i] || ms.epoch[i] != epoch) {
			r.flags |= MREC_PARAMS;
			r.paramslen = (uint32_t)ms.paramslen;
		}
		if (ms.gap[i])
			r.flags |= MREC_GAP;
		if (t->kept)
			r.flags |= MREC_KEPT;
		if (mqueue_put(q, &r, t->stmts, ms.params, t->bytes) != 0) {
			mirror_gap(i);
			continue;
		}
		if (r.flags & MREC_PARAMS) {
			ms.has_params[i] = 1;
			ms.epoch[i] = epoch;
		}
	}
}

/* A random number in [0, 1), per process. */
static double
mirror_random(void)
{
	static unsigned short xs[3];
	static int	 seeded;
	struct timespec	 ts;

	if (!seeded) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		xs[0] = (unsigned short)getpid();
		xs[1] = (unsigned short)ts.tv_nsec;
		xs[2] = (unsigned short)(ts.tv_nsec >> 16 ^ ts.tv_sec);
		seeded = 1;
	}
	return erand48(xs);
}

/*
 * A session of a client worker begins: decide, once, which mirrors of
 * its database copy it.
 */
void
mirror_session_start(const struct pgm_client *cl)
{
	size_t		 need, maxb = 0, per;
	int		 i, n;
	char		*p;

	ms.active = 0;
	ms.nchosen = 0;
	if (pgm_shm == NULL || pgm_shm->nmirrors == 0 ||
	    pgm_conf->nmirrors != pgm_shm->nmirrors)
		return;
	if (ms.chosen == NULL) {
		n = pgm_shm->nmirrors;
		ms.chosen = calloc(n, sizeof(int));
		ms.epoch = calloc(n, sizeof(uint32_t));
		ms.has_params = calloc(n, sizeof(int));
		ms.gap = calloc(n, sizeof(int));
		if (ms.chosen == NULL || ms.epoch == NULL ||
		    ms.has_params == NULL || ms.gap == NULL)
			return;
	}
	for (i = 0; i < pgm_conf->nmirrors; i++) {
		const struct pgm_mirror *m = &pgm_conf->mirrors[i];

		if (m->src != cl->database || m->exposure <= 0 ||
		    (m->exposure < 1 && mirror_random() >= m->exposure))
			continue;
		ms.has_params[ms.nchosen] = 0;
		ms.gap[ms.nchosen] = 0;
		ms.chosen[ms.nchosen++] = i;
		per = (size_t)m->queue_bytes / pgm_shm->nmworkers;
		if (per > maxb)
			maxb = per;
		__atomic_add_fetch(&pgm_shm->mirrors[i].sessions, 1,
		    __ATOMIC_RELAXED);
	}
	if (ms.nchosen == 0)
		return;
	/* The startup parameters, as name NUL value NUL pairs. */
	for (need = 0, i = 0; i < cl->startup.nparams; i++)
		need += strlen(cl->startup.name[i]) +
		    strlen(cl->startup.value[i]) + 2;
	free(ms.params);
	if ((ms.params = malloc(need ? need : 1)) == NULL)
		return;
	for (p = ms.params, i = 0; i < cl->startup.nparams; i++) {
		p = stpcpy(p, cl->startup.name[i]) + 1;
		p = stpcpy(p, cl->startup.value[i]) + 1;
	}
	ms.paramslen = need;
	if (!ms.cap_ready) {
		capture_init(&ms.cap, maxb, mirror_next_seq, mirror_txn_done,
		    NULL);
		ms.cap_ready = 1;
	} else
		capture_reset(&ms.cap);
	ms.cap.max_bytes = maxb;
	ms.id = __atomic_add_fetch(&pgm_shm->next_session, 1,
	    __ATOMIC_RELAXED);
	ms.part = (int)(ms.id % (uint64_t)pgm_shm->nmworkers);
	ms.user = cl->user;
	ms.database = cl->database;
	ms.txn = 0;
	ms.active = 1;
	__atomic_store_n(&shm_slot(proc_slot)->session, ms.id,
	    __ATOMIC_RELEASE);
}

/* The session is over; its mirror worker may close its side. */
void
mirror_session_end(void)
{
	if (!ms.active)
		return;
	ms.active = 0;
	/* After every record of the session: mqueue_put took a lock. */
	__atomic_store_n(&shm_slot(proc_slot)->session, 0,
	    __ATOMIC_RELEASE);
}

/* The capture of the current session, or NULL if it is not mirrored. */
struct pgm_capture *
mirror_capture(void)
{
	return ms.active ? &ms.cap : NULL;
}

/* The counters' names, in the order mirror_stats_text gives them. */
const char *const mirror_stats_names[] = { "sessions", "enqueued",
    "replayed", "errors", "dropped", "divergent", "gaps", "queue_length",
    "queue_bytes", "lag_ms", NULL };

/*
 * The counters of mirror m as text: "name value" pairs separated by
 * ", " (labelled), or the values alone separated by tabs.
 */
void
mirror_stats_text(int m, int labelled, char *out, size_t len)
{
	struct pgm_mstats st;
	long long	 v[10];
	size_t		 n = 0;
	int		 i;

	mirror_stats(m, &st);
	v[0] = (long long)st.sessions;
	v[1] = (long long)st.enqueued;
	v[2] = (long long)st.replayed;
	v[3] = (long long)st.errors;
	v[4] = (long long)st.dropped;
	v[5] = (long long)st.divergent;
	v[6] = (long long)st.gaps;
	v[7] = (long long)st.queue_length;
	v[8] = (long long)st.queue_bytes;
	v[9] = (long long)st.lag_ms;
	out[0] = '\0';
	/* "%.0s" takes the name and prints nothing of it. */
	for (i = 0; mirror_stats_names[i] != NULL && n < len; i++)
		n += snprintf(out + n, len - n, labelled ? "%s%s %lld" :
		    "%s%.0s%lld", i == 0 ? "" : labelled ? ", " : "\t",
		    mirror_stats_names[i], v[i]);
}

/* Totals of mirror m over its rings. */
void
mirror_stats(int m, struct pgm_mstats *st)
{
	int64_t		 now = mqueue_now_ns();
	int		 w;

	memset(st, 0, sizeof(*st));
	st->sessions = pgm_shm->mirrors[m].sessions;
	st->gaps = pgm_shm->mirrors[m].gaps;
	for (w = 0; w < pgm_shm->nmworkers; w++)
		mqueue_stats(mirror_ring(m, w), st, now);
}

/* ------------------------------------------------------------------ */
/* The mirror worker.                                                 */

struct mitem {
	struct mitem	*next;
	struct pgm_mrec	*rec;
};

struct msess {
	uint64_t	 id;
	int		 mirror;
	int		 user;		/* destination users[] index, -1: none */
	char		*params;
	uint32_t	 paramslen;
	struct pgm_server *conn;
	struct mitem	*head, *tail;
	/* the replay of head, when busy */
	int		 busy;
	int64_t		 started;	/* ms */
	size_t		 sent;
	uint32_t	 ready;		/* ReadyForQuery received */
	uint32_t	 stmt;		/* results compared */
	uint64_t	 rows, hash;
	int		 error, diverged;
	struct pgm_scan	 scan;
	uint32_t	 last_txn;
	int		 gap;
	int		 refused;	/* the destination refused its login */
	int		 live;		/* the source session was live */
	struct msess	*next;
};

static struct msess *mw_sessions;
static int	 mw_index;
static volatile sig_atomic_t mw_sig_retire;	/* SIGUSR2: finish, restart */
static int64_t	*mw_down_until;	/* per mirror: destination away until */
static int64_t	*mw_backoff;
static uint64_t	 mw_unlogged;
static uint8_t	 mw_rbuf[64 * 1024];

static void
mirror_signal(int sig)
{
	if (sig == SIGTERM)
		proc_sig_term = 1;
	else if (sig == SIGINT)
		proc_sig_int = 1;
	else if (sig == SIGUSR2)
		mw_sig_retire = 1;
}

static struct pgm_mqueue *
mw_ring(const struct msess *s)
{
	return mirror_ring(s->mirror, mw_index);
}

/*
 * The mirror worker itself failed (memory, poll): log it with the
 * errno text, count an error for each mirror it replays, and exit, for
 * the supervisor to fork a new one, which counts what this one held as
 * dropped.  Not fatal(): that is for the daemon's startup.
 */
__attribute__((noreturn))
static void
mw_fail(const char *what)
{
	int		 m;

	log_warnx("%s: %s; exiting, for the supervisor to start this mirror "
	    "worker again", what, strerror(errno));
	for (m = 0; m < pgm_conf->nmirrors; m++)
		mirror_ring(m, mw_index)->errors++;
	_exit(1);
}

/*
 * The start of the text of statement k of a record, for logs: the k-th
 * Query or Execute (a Query with several statements counts once), the
 * text of an Execute being that of the last Parse before it.
 */
static void
mw_text(const struct pgm_mrec *r, uint32_t k, char *out, size_t outlen)
{
	const uint8_t	*p = MREC_BYTES(r), *end = p + r->byteslen;
	const uint8_t	*q, *mend, *text = NULL, *tend = NULL;
	uint32_t	 len, n = 0;
	size_t		 tl;

	snprintf(out, outlen, "(statement text not in this transaction)");
	while (end - p >= 5) {
		len = proto_get_u32(p + 1);
		if (len < 4 || (size_t)(end - p - 1) < len)
			return;
		q = p + 5;
		mend = p + 1 + len;
		if (p[0] == 'P') {
			/* statement name, then the query */
			while (q < mend && *q != '\0')
				q++;
			if (++q < mend) {
				text = q;
				tend = mend;
			}
		} else if (p[0] == 'Q') {
			text = q;
			tend = mend;
		}
		if ((p[0] == 'Q' || p[0] == 'E') && n++ >= k) {
			if (p[0] == 'E' && text == NULL)
				return;
			tl = strnlen((const char *)text, tend - text);
			if (tl > MIRROR_TEXT_MAX)
				tl = MIRROR_TEXT_MAX;
			snprintf(out, outlen, "%.*s%s", (int)tl,
			    (const char *)text, tl == MIRROR_TEXT_MAX ? "..." :
			    "");
			return;
		}
		p = mend;
	}
}

/* Log a divergence or an error, at most once a second in all. */
static void __attribute__((format(printf, 2, 3)))
mw_log(const struct msess *s, const char *fmt, ...)
{
	const struct pgm_mirror *m = &pgm_conf->mirrors[s->mirror];
	char		 msg[512], text[MIRROR_TEXT_MAX + 8];
	va_list		 ap;
	int64_t		 now = net_now_ms(), last;

	last = __atomic_load_n(&pgm_shm->mirror_logged, __ATOMIC_RELAXED);
	if (now - last < MIRROR_LOG_EVERY ||
	    !__atomic_compare_exchange_n(&pgm_shm->mirror_logged, &last, now,
	    0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
		mw_unlogged++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mw_text(s->head->rec, s->stmt, text, sizeof(text));
	log_warnx("mirror %s -> %s: session %llu transaction %u: %s, in: %s"
	    "%s", m->source, m->destination, (unsigned long long)s->id,
	    s->head->rec->txn, msg, text, mw_unlogged ?
	    " (and more not logged)" : "");
	mw_unlogged = 0;
}

/* Decrypted bytes waiting in a TLS connection, unseen by poll? */
static int
mw_ssl_pending(const struct pgm_server *c)
{
	return c->ssl != NULL && SSL_pending(c->ssl) > 0;
}

static struct msess *
mw_find(uint64_t id, int mirror)
{
	struct msess	*s;

	for (s = mw_sessions; s != NULL; s = s->next)
		if (s->id == id && s->mirror == mirror)
			return s;
	return NULL;
}

/* Drop the record at the head of a session's queue. */
static void
mw_pop(struct msess *s, int dropped)
{
	struct mitem	*it = s->head;
	struct pgm_mqueue *q = mw_ring(s);

	if (it == NULL)
		return;
	if (dropped) {
		q->dropped++;
		if (!s->gap && !(it->rec->flags & MREC_GAP))
			__atomic_add_fetch(&pgm_shm->mirrors[s->mirror].gaps,
			    1, __ATOMIC_RELAXED);
		s->gap = 1;
	}
	s->head = it->next;
	if (s->head == NULL)
		s->tail = NULL;
	s->last_txn = it->rec->txn;
	mqueue_done(q, it->rec);
	free(it->rec);
	free(it);
	s->busy = 0;
}

/* Close a session's destination connection (lost or done). */
static void
mw_disconnect(struct msess *s)
{
	server_close(s->conn);
	s->conn = NULL;
	s->busy = 0;
}

static void
mw_free(struct msess *s)
{
	struct msess	**pp;

	while (s->head != NULL)
		mw_pop(s, 1);
	mw_disconnect(s);
	for (pp = &mw_sessions; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	free(s->params);
	free(s);
}

/* File a record taken from a ring under its session. */
static void
mw_file(struct pgm_mrec *r)
{
	struct msess	*s;
	struct mitem	*it;
	const struct pgm_mirror *m;
	const char	*uname;

	if (r->mirror >= (uint16_t)pgm_conf->nmirrors) {
		free(r);
		return;
	}
	if ((s = mw_find(r->session, r->mirror)) == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			goto drop;
		s->id = r->session;
		s->mirror = r->mirror;
		s->live = 1;
		m = &pgm_conf->mirrors[r->mirror];
		s->user = -1;
		if (r->user >= 0 && r->user < pgm_conf->nusers) {
			uname = pgm_conf->users[r->user].name;
			s->user = config_find_user(pgm_conf, uname, m->dst);
		}
		s->next = mw_sessions;
		mw_sessions = s;
	}
	if (r->flags & MREC_PARAMS) {
		free(s->params);
		if ((s->params = malloc(r->paramslen + 1)) != NULL) {
			memcpy(s->params, MREC_PARAMSP(r), r->paramslen);
			s->paramslen = r->paramslen;
		}
	}
	if ((it = calloc(1, sizeof(*it))) == NULL)
		goto drop;
	it->rec = r;
	if (s->tail != NULL)
		s->tail->next = it;
	else
		s->head = it;
	s->tail = it;
	return;
drop:
	mirror_ring(r->mirror, mw_index)->dropped++;
	mqueue_done(mirror_ring(r->mirror, mw_index), r);
	free(r);
}

/* Open the destination connection of a session.  0, or -1. */
static int
mw_connect(struct msess *s)
{
	const struct pgm_mirror *m = &pgm_conf->mirrors[s->mirror];
	static struct pgm_startup startup;
	struct pgm_login lg;
	struct pgm_server_error err;
	const char	*p, *end;
	int64_t		 now = net_now_ms();
	int		 fl;

	if (now < mw_down_until[s->mirror] || s->user < 0 ||
	    s->params == NULL || s->refused)
		return -1;
	memset(&startup, 0, sizeof(startup));
	for (p = s->params, end = p + s->paramslen; p < end &&
	    startup.nparams < PGM_MAXPARAMS; ) {
		startup.name[startup.nparams] = p;
		p += strlen(p) + 1;
		if (p >= end)
			break;
		startup.value[startup.nparams++] = p;
		p += strlen(p) + 1;
	}
	lg.user = s->user;
	lg.database = m->dst;
	lg.startup = &startup;
	lg.client_key = NULL;
	server_error_init(&err);
	s->conn = server_open(&lg, "", &err);
	if (s->conn == NULL && (err.stage == SERVER_ERR_LOGIN ||
	    (err.stage == SERVER_ERR_REFUSED &&
	    (strncmp(err.sqlstate, "28", 2) == 0 ||
	    strncmp(err.sqlstate, "3D", 2) == 0)))) {
		/*
		 * The server is up but will not have this session (a
		 * password, a missing role or database, an authentication
		 * we cannot answer): drop the session's transactions, and
		 * leave the destination to the others.
		 */
		log_warnx("mirror %s -> %s: the destination refused session "
		    "%llu: %s (%s); its transactions are dropped", m->source,
		    m->destination, (unsigned long long)s->id, err.message,
		    err.sqlstate);
		s->refused = 1;
		server_error_free(&err);
		return -1;
	}
	server_error_free(&err);
	if (s->conn == NULL) {
		mw_backoff[s->mirror] = mw_backoff[s->mirror] ?
		    mw_backoff[s->mirror] * 2 : 1000;
		if (mw_backoff[s->mirror] >
		    (int64_t)pgm_conf->mirror_retry_max * 1000)
			mw_backoff[s->mirror] =
			    (int64_t)pgm_conf->mirror_retry_max * 1000;
		mw_down_until[s->mirror] = now + mw_backoff[s->mirror];
		log_warnx("mirror %s -> %s: destination unreachable; "
		    "dropping its transactions, next try in %lld ms",
		    m->source, m->destination,
		    (long long)mw_backoff[s->mirror]);
		return -1;
	}
	if (mw_backoff[s->mirror] != 0)
		log_info("mirror %s -> %s: destination reachable again",
		    m->source, m->destination);
	mw_backoff[s->mirror] = 0;
	if ((fl = fcntl(s->conn->fd, F_GETFL)) != -1)
		fcntl(s->conn->fd, F_SETFL, fl | O_NONBLOCK);
	return 0;
}

/* Start replaying the head record of a session, if it can. */
static void
mw_start(struct msess *s)
{
	while (s->head != NULL && !s->busy) {
		if (s->conn == NULL && mw_connect(s) == -1) {
			mw_pop(s, 1);
			continue;
		}
		if (s->head->rec->txn != s->last_txn + 1 && !s->gap &&
		    !(s->head->rec->flags & MREC_GAP) && s->last_txn != 0) {
			s->gap = 1;
			__atomic_add_fetch(&pgm_shm->mirrors[s->mirror].gaps,
			    1, __ATOMIC_RELAXED);
		}
		s->busy = 1;
		s->started = net_now_ms();
		s->sent = 0;
		s->ready = s->stmt = 0;
		s->rows = s->hash = 0;
		s->error = s->diverged = 0;
		scan_init(&s->scan, PGM_MESSAGE_MAX);
		if (s->head->rec->nready == 0) {
			/* Nothing the server answers: nothing to replay. */
			mw_ring(s)->replayed++;
			mw_pop(s, 0);
		}
	}
}

/* The head record's replay is complete. */
static void
mw_finish(struct msess *s)
{
	struct pgm_mqueue *q = mw_ring(s);
	const struct pgm_mrec *r = s->head->rec;

	if (!s->error && s->stmt != r->nstmts && !s->diverged) {
		s->diverged = 1;
		mw_log(s, "the source answered %u statements, the "
		    "destination %u", r->nstmts, s->stmt);
	}
	q->replayed++;
	/* Kept statements may have failed on the source as well. */
	if (s->error && !(r->flags & MREC_KEPT))
		q->errors++;
	else if (s->diverged)
		q->divergent++;
	mw_pop(s, 0);
}

/* Compare one statement's result with the source's. */
static void
mw_result(struct msess *s, const uint8_t *tag, size_t len)
{
	const struct pgm_mrec *r = s->head->rec;
	const struct pgm_mstmt *src;
	char		 t[PGM_TAG_MAX];

	memset(t, 0, sizeof(t));
	if (len > 0 && tag[len - 1] == '\0')
		len--;
	/* An empty CommandComplete has no tag: tag is NULL then. */
	if (len > 0)
		memcpy(t, tag, len < sizeof(t) - 1 ? len : sizeof(t) - 1);
	if (s->stmt < r->nstmts && !s->error && !s->diverged) {
		src = &MREC_STMTS(r)[s->stmt];
		if (strcmp(src->tag, t) != 0) {
			s->diverged = 1;
			mw_log(s, "statement %u: source \"%s\", destination "
			    "\"%s\"", s->stmt + 1, src->tag, t);
		} else if (src->rows != s->rows || src->hash != s->hash) {
			s->diverged = 1;
			mw_log(s, "statement %u (%s): the rows returned "
			    "differ", s->stmt + 1, t);
		}
	}
	s->stmt++;
	s->rows = s->hash = 0;
}

/*
 * Read and check what the destination answered.  -1: connection lost;
 * -2: the answers are out of step with what was sent (the destination
 * answered with more ReadyForQuery than the source did), so nothing
 * more can be matched on this connection.
 */
static int
mw_read(struct msess *s)
{
	struct pgm_scan	*sc = &s->scan;
	const struct pgm_mrec *r;
	const char	*sev, *code, *msg;
	char		 tag[PGM_TAG_MAX];
	enum pgm_scan_event ev;
	size_t		 off, used;
	ssize_t		 n;

	for (;;) {
		n = net_recv(s->conn->fd, s->conn->ssl, mw_rbuf,
		    sizeof(mw_rbuf), MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		for (off = 0; off < (size_t)n; ) {
			ev = scan_feed(sc, mw_rbuf + off, n - off, &used);
			off += used;
			if (ev == SCAN_BAD_LENGTH)
				return -1;
			if (ev == SCAN_HEADER) {
				/* Notices, parameters, notifications: any time. */
				if (sc->type == 'N' || sc->type == 'S' ||
				    sc->type == 'A')
					continue;
				if (!s->busy || s->sent == 0)
					return -2;
				if (sc->type == 'C' || sc->type == 'Z' ||
				    sc->type == 'E')
					sc->capture = 1;
				else if (sc->type == 'D') {
					s->rows++;
					sc->hashing = 1;
				}
				if (sc->remain == 0 && sc->type == 'C')
					mw_result(s, NULL, 0);
				continue;
			}
			if (ev != SCAN_BODY || !s->busy)
				continue;
			r = s->head->rec;
			switch (sc->type) {
			case 'D':
				s->hash += sc->hash;
				break;
			case 'C':
				mw_result(s, sc->cap, sc->caplen);
				break;
			case 'E':
				/* An error the source had too is a result. */
				proto_error_tag(sc->cap, sc->caplen, tag,
				    sizeof(tag));
				if (s->stmt < r->nstmts && !s->error &&
				    !s->diverged &&
				    strcmp(MREC_STMTS(r)[s->stmt].tag, tag) == 0) {
					s->stmt++;
					s->rows = s->hash = 0;
					break;
				}
				if (!s->error && !(r->flags & MREC_KEPT)) {
					proto_error_fields(sc->cap, sc->caplen,
					    &sev, &code, &msg);
					mw_log(s, "destination error: %s (%s)",
					    msg, code);
				}
				s->error = 1;
				s->rows = s->hash = 0;
				break;
			case 'Z':
				s->conn->txstatus = sc->caplen ? sc->cap[0] :
				    'I';
				if (++s->ready < r->nready)
					break;
				if (s->sent < r->byteslen)
					return -2;
				mw_finish(s);
				mw_start(s);
				break;
			}
		}
		if (!s->busy)
			return 0;
	}
}

/* Write what the socket takes of the head record.  -1: lost. */
static int
mw_write(struct msess *s)
{
	const struct pgm_mrec *r = s->head->rec;
	ssize_t		 n;

	while (s->sent < r->byteslen) {
		n = net_send(s->conn->fd, s->conn->ssl, MREC_BYTES(r) + s->sent,
		    r->byteslen - s->sent, MSG_DONTWAIT);
		if (n > 0) {
			s->sent += n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	return 0;
}

/*
 * A session's connection failed, got out of step or took too long:
 * what it was replaying is lost, and the next record opens a new one.
 */
static void
mw_lost(struct msess *s, const char *why)
{
	const struct pgm_mirror *m = &pgm_conf->mirrors[s->mirror];

	log_warnx("mirror %s -> %s: session %llu: %s; closing its "
	    "destination connection", m->source, m->destination,
	    (unsigned long long)s->id, why);
	mw_disconnect(s);
	mw_pop(s, 1);
}

/* Which source sessions are still live?  Marks s->live. */
static void
mw_check_live(void)
{
	struct msess	*s;
	int		 i;

	for (s = mw_sessions; s != NULL; s = s->next)
		s->live = 0;
	for (i = 0; i < pgm_shm->nslots; i++) {
		uint64_t id = __atomic_load_n(&shm_slot(i)->session,
		    __ATOMIC_ACQUIRE);

		if (id == 0 || id % (uint64_t)pgm_shm->nmworkers !=
		    (uint64_t)mw_index)
			continue;
		for (s = mw_sessions; s != NULL; s = s->next)
			if (s->id == id)
				s->live = 1;
	}
}

/* Publish how much we hold and since when. */
static void
mw_publish(void)
{
	struct msess	*s;
	struct mitem	*it;
	int64_t		 oldest;
	int		 m;

	for (m = 0; m < pgm_conf->nmirrors; m++) {
		oldest = 0;
		for (s = mw_sessions; s != NULL; s = s->next) {
			if (s->mirror != m || (it = s->head) == NULL)
				continue;
			if (oldest == 0 || it->rec->enqueued_ns < oldest)
				oldest = it->rec->enqueued_ns;
		}
		mirror_ring(m, mw_index)->held_oldest_ns = oldest;
	}
}

/* Take every record waiting in our rings.  Returns how many. */
static int
mw_drain_rings(void)
{
	struct pgm_mrec	*r;
	int		 m, n = 0;

	for (m = 0; m < pgm_conf->nmirrors; m++)
		while ((r = mqueue_get(mirror_ring(m, mw_index))) != NULL) {
			mw_file(r);
			n++;
		}
	return n;
}

/* Records waiting in any of our rings? */
static int
mw_rings_pending(void)
{
	int		 m;

	for (m = 0; m < pgm_conf->nmirrors; m++)
		if (mqueue_pending(mirror_ring(m, mw_index)))
			return 1;
	return 0;
}

/*
 * The mirror worker's loop.  SIGTERM: replay everything queued, then
 * leave; SIGUSR2: replay what was taken and leave the rest to the next
 * worker; SIGINT or the supervisor's death: leave now.
 */
void
mirror_main(int index, int death_fd)
{
	struct sigaction sa;
	struct pollfd	*pfd = NULL;
	struct msess	*s, *next, **ps = NULL;
	struct pgm_mworker *me = &pgm_shm->mworkers[index];
	int		 cap = 0, n, i, m, timeout, take;
	int64_t		 last_tick = 0, now;
	uint64_t	 drain;

	mw_index = index;
	proc_death_fd = death_fd;
	log_setproc("mirror", index);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mirror_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGQUIT, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	proc_use_waitmask = 0;

	mw_down_until = calloc(pgm_conf->nmirrors, sizeof(int64_t));
	mw_backoff = calloc(pgm_conf->nmirrors, sizeof(int64_t));
	if (mw_down_until == NULL || mw_backoff == NULL)
		mw_fail("calloc");
	for (m = 0; m < pgm_conf->nmirrors; m++)
		mqueue_consumer_start(mirror_ring(m, index));
	log_debug("mirror worker %d started", index);

	for (;;) {
		if (proc_sig_int)
			break;
		take = !mw_sig_retire;
		now = net_now_ms();
		/* Liveness first, then the rings: see mw_check_live's use. */
		if (now - last_tick >= MIRROR_TICK) {
			last_tick = now;
			mw_check_live();
		}
		if (take)
			mw_drain_rings();
		n = 0;
		for (s = mw_sessions; s != NULL; s = next) {
			next = s->next;
			if (!s->busy)
				mw_start(s);
			if (s->head == NULL && !s->live) {
				mw_free(s);
				continue;
			}
			if (s->busy && s->conn != NULL &&
			    s->sent < s->head->rec->byteslen &&
			    mw_write(s) == -1)
				mw_lost(s, "connection lost");
			if (s->busy && s->conn != NULL &&
			    pgm_conf->mirror_replay_timeout > 0 &&
			    now - s->started >
			    (int64_t)pgm_conf->mirror_replay_timeout * 1000) {
				server_cancel(s->conn);
				mw_lost(s, "replay took longer than "
				    "mirror.replay_timeout");
			}
			if (s->busy)
				n++;
		}
		mw_publish();
		if ((proc_sig_term || mw_sig_retire) && n == 0 &&
		    (!take || !mw_rings_pending()))
			break;
		if (n + 2 > cap) {
			cap = (n + 2) * 2;
			pfd = realloc(pfd, cap * sizeof(*pfd));
			ps = realloc(ps, cap * sizeof(*ps));
			if (pfd == NULL || ps == NULL)
				mw_fail("realloc");
		}
		pfd[0].fd = me->efd;
		pfd[0].events = POLLIN;
		pfd[1].fd = death_fd;
		pfd[1].events = POLLIN;
		i = 2;
		for (s = mw_sessions; s != NULL; s = s->next) {
			if (!s->busy || s->conn == NULL)
				continue;
			pfd[i].fd = s->conn->fd;
			pfd[i].events = POLLIN |
			    (s->sent < s->head->rec->byteslen ? POLLOUT : 0);
			ps[i++] = s;
		}
		/* Say we sleep, then look once more: no wake-up is lost. */
		timeout = MIRROR_TICK;
		if (take)
			for (m = 0; m < pgm_conf->nmirrors; m++) {
				struct pgm_mqueue *q = mirror_ring(m, index);

				__atomic_store_n(&q->sleeping, 1,
				    __ATOMIC_SEQ_CST);
				__atomic_thread_fence(__ATOMIC_SEQ_CST);
				if (mqueue_pending(q))
					timeout = 0;
			}
		for (s = mw_sessions; s != NULL; s = s->next)
			if (s->busy && s->conn != NULL &&
			    mw_ssl_pending(s->conn))
				timeout = 0;
		if (poll(pfd, i, timeout) == -1 && errno != EINTR)
			mw_fail("poll");
		for (m = 0; m < pgm_conf->nmirrors; m++)
			__atomic_store_n(&mirror_ring(m, index)->sleeping, 0,
			    __ATOMIC_RELAXED);
		if (pfd[0].revents & POLLIN)
			(void)read(me->efd, &drain, sizeof(drain));
		if (pfd[1].revents)
			break;
		for (n = 2; n < i; n++) {
			s = ps[n];
			if (!pfd[n].revents && !mw_ssl_pending(s->conn))
				continue;
			if (pfd[n].revents & POLLOUT && mw_write(s) == -1) {
				mw_lost(s, "connection lost");
				continue;
			}
			if (!(pfd[n].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    !mw_ssl_pending(s->conn))
				continue;
			switch (mw_read(s)) {
			case -1:
				mw_lost(s, "connection lost");
				break;
			case -2:
				mw_lost(s, "the destination's answers are out "
				    "of step with the source's");
				break;
			}
		}
	}
	for (s = mw_sessions; s != NULL; s = next) {
		next = s->next;
		mw_free(s);
	}
	log_debug("mirror worker %d leaves", index);
	_exit(0);
}
