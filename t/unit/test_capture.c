/*
 * test_capture.c: TAP unit tests for src/capture.c (cutting a mirrored
 * session into transactions).
 *
 * Owns: what the done callback gets for each kind of transaction:
 * autocommit and explicit ones, ROLLBACK, errors, failed transactions
 * and savepoint recovery; pipelined simple and extended queries; COPY
 * FROM STDIN over the simple and the extended protocol; the DataRow
 * count and order-free hash of each statement; the commit order (seq);
 * the same results whatever way both streams are split into reads;
 * overflow past max_bytes; capture_reset between sessions; a
 * CommandComplete with an empty body.
 *
 * A test is a script of steps, each the bytes one side sends, built by
 * hand with the helpers below and fed to capture_client/capture_server
 * in chunks copied to exact-size heap buffers, so AddressSanitizer
 * catches any read past what was given.  The done callback copies every
 * transaction it is given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgmirror.h"
#include "tap.h"

#define BIG		(1024 * 1024)	/* max_bytes no test reaches */
#define MAXSTEPS	64
#define MAXTXN		32

/* --- byte strings and protocol messages ---------------------------------- */

struct bytes {
	uint8_t		*p;
	size_t		 len;
	size_t		 cap;
};

static void
b_put(struct bytes *b, const void *p, size_t n)
{
	uint8_t		*np;
	size_t		 ncap;

	if (b->len + n > b->cap) {
		ncap = b->cap ? b->cap : 64;
		while (ncap < b->len + n)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL)
			abort();
		b->p = np;
		b->cap = ncap;
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
b_u8(struct bytes *b, uint8_t v)
{
	b_put(b, &v, 1);
}

static void
b_u16(struct bytes *b, uint16_t v)
{
	uint8_t		 w[2];

	w[0] = (uint8_t)(v >> 8);
	w[1] = (uint8_t)v;
	b_put(b, w, 2);
}

static void
b_u32(struct bytes *b, uint32_t v)
{
	uint8_t		 w[4];

	w[0] = (uint8_t)(v >> 24);
	w[1] = (uint8_t)(v >> 16);
	w[2] = (uint8_t)(v >> 8);
	w[3] = (uint8_t)v;
	b_put(b, w, 4);
}

/* A string with its NUL. */
static void
b_str(struct bytes *b, const char *s)
{
	b_put(b, s, strlen(s) + 1);
}

static void
b_cat(struct bytes *b, const struct bytes *o)
{
	b_put(b, o->p, o->len);
}

static void
b_free(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Start a typed message; m_end writes its length word. */
static size_t
m_begin(struct bytes *b, uint8_t type)
{
	size_t		 start = b->len;

	b_u8(b, type);
	b_u32(b, 0);
	return start;
}

static void
m_end(struct bytes *b, size_t start)
{
	uint32_t	 n = (uint32_t)(b->len - start - 1);

	b->p[start + 1] = (uint8_t)(n >> 24);
	b->p[start + 2] = (uint8_t)(n >> 16);
	b->p[start + 3] = (uint8_t)(n >> 8);
	b->p[start + 4] = (uint8_t)n;
}

/* A message whose body is one string. */
static void
m_str(struct bytes *b, uint8_t type, const char *s)
{
	size_t		 m = m_begin(b, type);

	b_str(b, s);
	m_end(b, m);
}

/* A message with an empty body. */
static void
m_empty(struct bytes *b, uint8_t type)
{
	m_end(b, m_begin(b, type));
}

/* Client: Query. */
static void
c_query(struct bytes *b, const char *sql)
{
	m_str(b, 'Q', sql);
}

/* Client: Parse of the unnamed statement, no parameter types. */
static void
c_parse(struct bytes *b, const char *sql)
{
	size_t		 m = m_begin(b, 'P');

	b_str(b, "");
	b_str(b, sql);
	b_u16(b, 0);
	m_end(b, m);
}

/* Client: Parse of a named statement, no parameter types. */
static void
c_parse_named(struct bytes *b, const char *name, const char *sql)
{
	size_t		 m = m_begin(b, 'P');

	b_str(b, name);
	b_str(b, sql);
	b_u16(b, 0);
	m_end(b, m);
}

/* Client: Bind of the unnamed portal to a named statement. */
static void
c_bind_named(struct bytes *b, const char *name)
{
	size_t		 m = m_begin(b, 'B');

	b_str(b, "");
	b_str(b, name);
	b_u16(b, 0);
	b_u16(b, 0);
	b_u16(b, 0);
	m_end(b, m);
}

/* Client: Bind of the unnamed portal, no parameters. */
static void
c_bind(struct bytes *b)
{
	size_t		 m = m_begin(b, 'B');

	b_str(b, "");
	b_str(b, "");
	b_u16(b, 0);
	b_u16(b, 0);
	b_u16(b, 0);
	m_end(b, m);
}

/* Client: Execute of the unnamed portal, all rows. */
static void
c_execute(struct bytes *b)
{
	size_t		 m = m_begin(b, 'E');

	b_str(b, "");
	b_u32(b, 0);
	m_end(b, m);
}

static void
c_sync(struct bytes *b)
{
	m_empty(b, 'S');
}

/* Client: Parse, Bind, Execute, Sync: one extended-protocol statement. */
static void
c_ext(struct bytes *b, const char *sql)
{
	c_parse(b, sql);
	c_bind(b);
	c_execute(b);
	c_sync(b);
}

static void
c_copydata(struct bytes *b, const char *row)
{
	size_t		 m = m_begin(b, 'd');

	b_put(b, row, strlen(row));
	m_end(b, m);
}

static void
c_copydone(struct bytes *b)
{
	m_empty(b, 'c');
}

/* Server: CommandComplete. */
static void
s_complete(struct bytes *b, const char *tag)
{
	m_str(b, 'C', tag);
}

/* Server: ReadyForQuery. */
static void
s_ready(struct bytes *b, uint8_t status)
{
	size_t		 m = m_begin(b, 'Z');

	b_u8(b, status);
	m_end(b, m);
}

/* Server: a CommandComplete and a ReadyForQuery, the usual ending. */
static void
s_done(struct bytes *b, const char *tag, uint8_t status)
{
	s_complete(b, tag);
	s_ready(b, status);
}

/* Server: ErrorResponse. */
static void
s_error(struct bytes *b, const char *msg)
{
	size_t		 m = m_begin(b, 'E');

	b_u8(b, 'S');
	b_str(b, "ERROR");
	b_u8(b, 'C');
	b_str(b, "22012");
	b_u8(b, 'M');
	b_str(b, msg);
	b_u8(b, 0);
	m_end(b, m);
}

/* Server: RowDescription of one text column. */
static void
s_rowdesc(struct bytes *b, const char *col)
{
	size_t		 m = m_begin(b, 'T');

	b_u16(b, 1);
	b_str(b, col);
	b_u32(b, 0);
	b_u16(b, 0);
	b_u32(b, 25);
	b_u16(b, 0xffff);
	b_u32(b, 0xffffffff);
	b_u16(b, 0);
	m_end(b, m);
}

/*
 * Server: DataRow of one or two text columns (NULL v2: one column).
 * Returns proto_hash of its body, what the capture should add up.
 */
static uint64_t
s_datarow(struct bytes *b, const char *v1, const char *v2)
{
	size_t		 m = m_begin(b, 'D');

	b_u16(b, v2 ? 2 : 1);
	b_u32(b, (uint32_t)strlen(v1));
	b_put(b, v1, strlen(v1));
	if (v2 != NULL) {
		b_u32(b, (uint32_t)strlen(v2));
		b_put(b, v2, strlen(v2));
	}
	m_end(b, m);
	return proto_hash(PROTO_HASH_INIT, b->p + m + 5, b->len - m - 5);
}

/* Server: CopyInResponse, text format. */
static void
s_copyin(struct bytes *b, int ncols)
{
	size_t		 m = m_begin(b, 'G');
	int		 i;

	b_u8(b, 0);
	b_u16(b, (uint16_t)ncols);
	for (i = 0; i < ncols; i++)
		b_u16(b, 0);
	m_end(b, m);
}

/* Server: ParseComplete and BindComplete. */
static void
s_parsebind(struct bytes *b)
{
	m_empty(b, '1');
	m_empty(b, '2');
}

/* --- scripts ------------------------------------------------------------- */

/* What one side sends at one point of a session, or a capture_reset. */
struct step {
	int		 server;
	int		 reset;
	int64_t		 now;
	struct bytes	 b;
};

struct script {
	struct step	 s[MAXSTEPS];
	int		 n;
};

static struct step *
add_step(struct script *sc, int server)
{
	struct step	*st;

	if (sc->n >= MAXSTEPS)
		abort();
	st = &sc->s[sc->n];
	memset(st, 0, sizeof(*st));
	st->server = server;
	st->now = (int64_t)(sc->n + 1) * 1000;
	sc->n++;
	return st;
}

/* A new step of the client's, or of the server's. */
static struct bytes *
cli(struct script *sc)
{
	return &add_step(sc, 0)->b;
}

static struct bytes *
srv(struct script *sc)
{
	return &add_step(sc, 1)->b;
}

static void
reset_step(struct script *sc)
{
	add_step(sc, 0)->reset = 1;
}

/* The bytes of step i. */
static const struct bytes *
step_bytes(const struct script *sc, int i)
{
	return &sc->s[i].b;
}

static void
script_free(struct script *sc)
{
	int		 i;

	for (i = 0; i < sc->n; i++)
		b_free(&sc->s[i].b);
	sc->n = 0;
}

/* --- recording what the capture reports ---------------------------------- */

struct rtxn {
	uint8_t		*bytes;		/* copy; NULL when given none */
	size_t		 len;
	struct pgm_mstmt *stmts;
	int		 nstmts;
	uint64_t	 seq;
	int		 nready;
	int		 committed;
	int		 overflow;
	int		 kept;
	int		 step;		/* the step that had it reported */
};

struct recorder {
	struct rtxn	 t[MAXTXN];
	int		 n;		/* reported; may pass MAXTXN */
	uint64_t	 seq;		/* last value next_seq gave */
	uint64_t	 seq_after[MAXSTEPS];	/* seq after step i */
	int		 step;
	int		 failed;	/* capture's failed flag, at the end */
};

static uint64_t
rec_next_seq(void *arg)
{
	struct recorder	*r = arg;

	return ++r->seq;
}

static void
rec_done(void *arg, const struct pgm_capture_txn *t)
{
	struct recorder	*r = arg;
	struct rtxn	*x;

	if (r->n >= MAXTXN) {
		r->n++;
		return;
	}
	x = &r->t[r->n++];
	memset(x, 0, sizeof(*x));
	x->len = t->len;
	if (t->bytes != NULL) {
		if ((x->bytes = malloc(t->len ? t->len : 1)) == NULL)
			abort();
		if (t->len > 0)
			memcpy(x->bytes, t->bytes, t->len);
	}
	if (t->nstmts > 0) {
		x->stmts = calloc((size_t)t->nstmts, sizeof(*x->stmts));
		if (x->stmts == NULL)
			abort();
		memcpy(x->stmts, t->stmts, (size_t)t->nstmts *
		    sizeof(*x->stmts));
	}
	x->nstmts = t->nstmts;
	x->seq = t->seq;
	x->nready = t->nready;
	x->committed = t->committed;
	x->overflow = t->overflow;
	x->kept = t->kept;
	x->step = r->step;
}

static void
rec_free(struct recorder *r)
{
	int		 i;

	for (i = 0; i < r->n && i < MAXTXN; i++) {
		free(r->t[i].bytes);
		free(r->t[i].stmts);
	}
	memset(r, 0, sizeof(*r));
}

/* Transaction i, or an empty one (so checks fail rather than crash). */
static const struct rtxn *
txn(const struct recorder *r, int i)
{
	static const struct rtxn none = { .step = -1 };

	return i < r->n && i < MAXTXN ? &r->t[i] : &none;
}

/* Statement j of a transaction, or an empty one. */
static const struct pgm_mstmt *
stmt(const struct rtxn *t, int j)
{
	static const struct pgm_mstmt none;

	return j < t->nstmts ? &t->stmts[j] : &none;
}

/* Are the transaction's bytes exactly want? */
static int
bytes_are(const struct rtxn *t, const struct bytes *want)
{
	if (t->bytes == NULL || t->len != want->len ||
	    memcmp(t->bytes, want->p, want->len) != 0) {
		tap_diag("bytes: got %zu%s, want %zu", t->len,
		    t->bytes == NULL ? " (none)" : "", want->len);
		return 0;
	}
	return 1;
}

/* Are the transaction's bytes whole messages, the last of them want? */
static int
whole_ending(const struct rtxn *t, const struct bytes *want)
{
	size_t		 off = 0, n;

	if (t->bytes == NULL || t->len < want->len ||
	    memcmp(t->bytes + t->len - want->len, want->p, want->len) != 0) {
		tap_diag("bytes (%zu) do not end with the %zu wanted", t->len,
		    want->len);
		return 0;
	}
	while (off < t->len) {
		if (t->len - off < 5 || (n = 1 + ((size_t)t->bytes[off + 1] <<
		    24 | (size_t)t->bytes[off + 2] << 16 |
		    (size_t)t->bytes[off + 3] << 8 | t->bytes[off + 4])) < 5 ||
		    n > t->len - off) {
			tap_diag("bytes at %zu (type 0x%02x) are not a whole "
			    "message", off, t->bytes[off]);
			return 0;
		}
		off += n;
	}
	return 1;
}

/* The statement tags of a transaction, joined with '|'. */
static const char *
tags(const struct rtxn *t)
{
	static char	 s[512];
	int		 j;

	s[0] = '\0';
	for (j = 0; j < t->nstmts; j++) {
		if (j > 0)
			strncat(s, "|", sizeof(s) - strlen(s) - 1);
		strncat(s, t->stmts[j].tag, sizeof(s) - strlen(s) - 1);
	}
	return s;
}

/* Are two recordings the same in everything the callback was given? */
static int
rec_same(const struct recorder *a, const struct recorder *b, char *why,
    size_t whylen)
{
	const struct rtxn *x, *y;
	int		 i;

	if (a->n != b->n || a->failed != b->failed) {
		snprintf(why, whylen, "%d transactions (failed %d), not %d "
		    "(failed %d)", b->n, b->failed, a->n, a->failed);
		return 0;
	}
	for (i = 0; i < a->n && i < MAXTXN; i++) {
		x = &a->t[i];
		y = &b->t[i];
		if (x->len != y->len || (x->bytes == NULL) !=
		    (y->bytes == NULL) || (x->bytes != NULL &&
		    memcmp(x->bytes, y->bytes, x->len) != 0)) {
			snprintf(why, whylen, "txn %d: bytes differ", i);
			return 0;
		}
		if (x->nstmts != y->nstmts || (x->nstmts > 0 &&
		    memcmp(x->stmts, y->stmts, (size_t)x->nstmts *
		    sizeof(*x->stmts)) != 0)) {
			snprintf(why, whylen, "txn %d: statements differ", i);
			return 0;
		}
		if (x->seq != y->seq || x->nready != y->nready ||
		    x->committed != y->committed ||
		    x->overflow != y->overflow || x->step != y->step) {
			snprintf(why, whylen, "txn %d: seq/nready/committed/"
			    "overflow/step differ", i);
			return 0;
		}
	}
	return 1;
}

/* How a step is cut into capture_client/capture_server calls. */
enum feed_mode {
	FEED_WHOLE,		/* one call */
	FEED_ONE,		/* one byte a call */
	FEED_SPLIT,		/* two calls, cut at k (when inside) */
	FEED_RANDOM		/* random sizes from 1 to 23 */
};

struct feed {
	enum feed_mode	 client;
	enum feed_mode	 server;
	size_t		 k;
	uint32_t	 seed;
};

/* Feed one chunk from an exact-size copy. */
static void
feed_chunk(struct pgm_capture *c, int server, const uint8_t *p, size_t n,
    int64_t now)
{
	uint8_t		*q = tap_dup_exact(p, n);

	if (server)
		capture_server(c, q, n, now);
	else
		capture_client(c, q, n, now);
	free(q);
}

static void
feed_step(struct pgm_capture *c, const struct step *st, enum feed_mode mode,
    size_t k, uint32_t *rng)
{
	size_t		 off = 0, n;

	while (off < st->b.len) {
		switch (mode) {
		case FEED_ONE:
			n = 1;
			break;
		case FEED_SPLIT:
			n = off == 0 && k > 0 && k < st->b.len ? k :
			    st->b.len - off;
			break;
		case FEED_RANDOM:
			n = 1 + tap_rng(rng) % 23;
			break;
		default:
			n = st->b.len - off;
			break;
		}
		if (n > st->b.len - off)
			n = st->b.len - off;
		feed_chunk(c, st->server, st->b.p + off, n, st->now);
		off += n;
	}
}

/* Run a script through a fresh capture, recording what it reports. */
static void
run(const struct script *sc, size_t max_bytes, const struct feed *f,
    struct recorder *r)
{
	static const struct feed whole;
	struct pgm_capture c;
	uint32_t	 rng;
	int		 i;

	if (f == NULL)
		f = &whole;
	rng = f->seed ? f->seed : 1;
	memset(r, 0, sizeof(*r));
	capture_init(&c, max_bytes, rec_next_seq, rec_done, r);
	for (i = 0; i < sc->n; i++) {
		r->step = i;
		if (sc->s[i].reset)
			capture_reset(&c);
		else
			feed_step(&c, &sc->s[i], sc->s[i].server ? f->server :
			    f->client, f->k, &rng);
		r->seq_after[i] = r->seq;
	}
	r->failed = c.failed;
	capture_free(&c);
}

/* --- the tests ----------------------------------------------------------- */

/* One autocommit statement: one transaction, exactly its Query. */
static void
test_autocommit(void)
{
	struct script	 sc = { .n = 0 };
	struct recorder	 r;
	const struct rtxn *t;

	c_query(cli(&sc), "INSERT INTO t VALUES (1)");
	s_done(srv(&sc), "INSERT 0 1", 'I');
	run(&sc, BIG, NULL, &r);
	t = txn(&r, 0);

	tap_is_int(r.n, 1, "autocommit: one transaction");
	tap_ok(t->committed && !t->overflow, "autocommit: committed, no "
	    "overflow");
	tap_ok(bytes_are(t, step_bytes(&sc, 0)),
	    "autocommit: bytes are exactly the Query message");
	tap_ok(t->nstmts == 1 && strcmp(stmt(t, 0)->tag, "INSERT 0 1") == 0 &&
	    stmt(t, 0)->rows == 0, "autocommit: one statement, tag "
	    "\"INSERT 0 1\", no rows");
	tap_is_int(t->nready, 1, "autocommit: nready 1");
	tap_ok(stmt(t, 0)->sent_ns == 1000 && stmt(t, 0)->answered_ns == 2000,
	    "autocommit: sent_ns is when the Query went, answered_ns when "
	    "its CommandComplete came");
	tap_ok(t->seq == 1 && r.seq_after[0] == 0 && r.seq == 1,
	    "autocommit: seq taken once, at the answer");
	tap_is_int(t->step, 1, "autocommit: reported at the ReadyForQuery");
	rec_free(&r);
	script_free(&sc);
}

/* BEGIN; INSERT; COMMIT as three round trips. */
static void
test_explicit(void)
{
	struct script	 sc = { .n = 0 };
	struct recorder	 r;
	struct bytes	 want = { NULL, 0, 0 };
	const struct rtxn *t;

	c_query(cli(&sc), "BEGIN");				/* 0 */
	s_done(srv(&sc), "BEGIN", 'T');				/* 1 */
	c_query(cli(&sc), "INSERT INTO t VALUES (2)");		/* 2 */
	s_done(srv(&sc), "INSERT 0 1", 'T');			/* 3 */
	c_query(cli(&sc), "COMMIT");				/* 4 */
	s_done(srv(&sc), "COMMIT", 'I');			/* 5 */
	b_cat(&want, step_bytes(&sc, 0));
	b_cat(&want, step_bytes(&sc, 2));
	b_cat(&want, step_bytes(&sc, 4));
	run(&sc, BIG, NULL, &r);
	t = txn(&r, 0);

	tap_ok(r.n == 1 && t->step == 5, "BEGIN/INSERT/COMMIT: one "
	    "transaction, reported at the last ReadyForQuery");
	tap_ok(bytes_are(t, &want), "BEGIN/INSERT/COMMIT: bytes are the "
	    "three Query messages");
	tap_is_str(tags(t), "BEGIN|INSERT 0 1|COMMIT",
	    "BEGIN/INSERT/COMMIT: three statements");
	tap_ok(t->committed && !t->overflow && t->nready == 3,
	    "BEGIN/INSERT/COMMIT: committed, nready 3");
	tap_ok(t->seq != 0 && t->seq == r.seq_after[4] &&
	    r.seq_after[5] == r.seq_after[4], "BEGIN/INSERT/COMMIT: seq "
	    "taken as the COMMIT went out (%llu), none at its answer",
	    (unsigned long long)t->seq);
	tap_ok(stmt(t, 2)->sent_ns == 5000 && stmt(t, 2)->answered_ns ==
	    6000 && stmt(t, 0)->sent_ns == 1000, "BEGIN/INSERT/COMMIT: "
	    "each statement's own times");
	rec_free(&r);
	script_free(&sc);
	b_free(&want);
}

/* ROLLBACK, errors and failed transactions are not committed. */
static void
test_failures(void)
{
	struct script	 sc = { .n = 0 };
	struct recorder	 r;
	struct bytes	 want = { NULL, 0, 0 }, *b;
	const struct rtxn *t;

	/* 0-5: BEGIN; INSERT; ROLLBACK */
	c_query(cli(&sc), "BEGIN");
	s_done(srv(&sc), "BEGIN", 'T');
	c_query(cli(&sc), "INSERT INTO t VALUES (3)");
	s_done(srv(&sc), "INSERT 0 1", 'T');
	c_query(cli(&sc), "ROLLBACK");
	s_done(srv(&sc), "ROLLBACK", 'I');
	/* 6-7: an autocommit statement that fails */
	c_query(cli(&sc), "INSERT INTO t VALUES (1/0)");
	b = srv(&sc);
	s_error(b, "division by zero");
	s_ready(b, 'I');
	/* 8-13: a failed transaction: COMMIT answers ROLLBACK */
	c_query(cli(&sc), "BEGIN");
	s_done(srv(&sc), "BEGIN", 'T');
	c_query(cli(&sc), "INSERT INTO t VALUES (1/0)");
	b = srv(&sc);
	s_error(b, "division by zero");
	s_ready(b, 'E');
	c_query(cli(&sc), "COMMIT");
	s_done(srv(&sc), "ROLLBACK", 'I');
	/* 14-15: then an autocommit statement that works */
	c_query(cli(&sc), "INSERT INTO t VALUES (4)");
	s_done(srv(&sc), "INSERT 0 1", 'I');
	run(&sc, BIG, NULL, &r);

	tap_is_int(r.n, 4, "failures: four transactions reported");
	t = txn(&r, 0);
	b_cat(&want, step_bytes(&sc, 0));
	b_cat(&want, step_bytes(&sc, 2));
	b_cat(&want, step_bytes(&sc, 4));
	tap_ok(!t->committed && !t->overflow && t->nready == 3 &&
	    strcmp(tags(t), "BEGIN|INSERT 0 1|ROLLBACK") == 0 &&
	    bytes_are(t, &want), "explicit ROLLBACK: not committed, its "
	    "three statements and bytes");
	t = txn(&r, 1);
	tap_ok(!t->committed && !t->overflow &&
	    strcmp(tags(t), "ERROR 22012") == 0 &&
	    t->nready == 1 && bytes_are(t, step_bytes(&sc, 6)),
	    "autocommit statement with an error: not committed, the error "
	    "its one result");
	t = txn(&r, 2);
	tap_ok(!t->committed && t->nready == 3 &&
	    strcmp(tags(t), "BEGIN|ERROR 22012|ROLLBACK") == 0,
	    "failed transaction whose COMMIT answers ROLLBACK: not "
	    "committed");
	t = txn(&r, 3);
	tap_ok(t->committed && t->nready == 1 && t->nstmts == 1 &&
	    bytes_are(t, step_bytes(&sc, 14)), "after the failures, an "
	    "autocommit statement is committed with only its bytes");
	rec_free(&r);
	script_free(&sc);
	b_free(&want);
}

/* An error rolled back to a savepoint: the transaction commits. */
static void
test_savepoint(void)
{
	struct script	 sc = { .n = 0 };
	struct recorder	 r;
	struct bytes	 want = { NULL, 0, 0 }, *b;
	const struct rtxn *t;
	int		 i;

	c_query(cli(&sc), "BEGIN");				/* 0 */
	s_done(srv(&sc), "BEGIN", 'T');
	c_query(cli(&sc), "SAVEPOINT s");			/* 2 */
	s_done(srv(&sc), "SAVEPOINT", 'T');
	c_query(cli(&sc), "SELECT 1/(a-2) FROM t");		/* 4 */
	b = srv(&sc);
	s_datarow(b, "1", NULL);
	s_error(b, "division by zero");
	s_ready(b, 'E');
	c_query(cli(&sc), "ROLLBACK TO SAVEPOINT s");		/* 6 */
	s_done(srv(&sc), "ROLLBACK", 'T');
	c_query(cli(&sc), "INSERT INTO t VALUES (5)");		/* 8 */
	s_done(srv(&sc), "INSERT 0 1", 'T');
	c_query(cli(&sc), "COMMIT");				/* 10 */
	s_done(srv(&sc), "COMMIT", 'I');
	for (i = 0; i <= 10; i += 2)
		b_cat(&want, step_bytes(&sc, i));
	run(&sc, BIG, NULL, &r);
	t = txn(&r, 0);

	tap_is_int(r.n, 1, "savepoint: one transaction");
	tap_ok(t->committed && !t->overflow, "savepoint: recovered "
	    "transaction is committed");
	tap_is_str(tags(t),
	    "BEGIN|SAVEPOINT|ERROR 22012|ROLLBACK|INSERT 0 1|COMMIT",
	    "savepoint: the five statements that completed and the error, "
	    "whose tag is its SQLSTATE");
	tap_ok(t->nready == 6 && bytes_are(t, &want),
	    "savepoint: nready 6, all six Query messages");
	tap_ok(stmt(t, 2)->rows == 0 && stmt(t, 2)->hash == 0 &&
	    stmt(t, 3)->rows == 0 && stmt(t, 3)->hash == 0,
	    "savepoint: the DataRow before the error is counted neither for "
	    "the error nor for the ROLLBACK TO SAVEPOINT");
	rec_free(&r);
	script_free(&sc);
	b_free(&want);
}

/*
 * Named statements prepared in transactions that fail are reported on
 * their own, each set ended by a Sync, so a later Bind finds them.
 */
static void
test_kept_statements(void)
{
	struct script	 sc = { .n = 0 };
	struct recorder	 r;
	struct bytes	 want = { NULL, 0, 0 }, *b;
	const struct rtxn *t;

	/* 0-1: Parse s1 works, its Execute fails */
	b = cli(&sc);
	c_parse_named(b, "s1", "INSERT INTO t VALUES (1/0)");
	c_bind_named(b, "s1");
	c_execute(b);
	c_sync(b);
	b = srv(&sc);
	s_parsebind(b);
	s_error(b, "division by zero");
	s_ready(b, 'I');
	/* 2-3: a simple query fails */
	c_query(cli(&sc), "INSERT INTO t VALUES (1/0)");
	b = srv(&sc);
	s_error(b, "division by zero");
	s_ready(b, 'I');
	/* 4-5: Parse s2 works, then an unnamed Parse fails */
	b = cli(&sc);
	c_parse_named(b, "s2", "SELECT 2");
	c_parse(b, "SELEC 3");
	c_sync(b);
	b = srv(&sc);
	m_empty(b, '1');
	s_error(b, "syntax error");
	s_ready(b, 'I');
	/* 6-7: s1 is used */
	b = cli(&sc);
	c_bind_named(b, "s1");
	c_execute(b);
	c_sync(b);
	b = srv(&sc);
	m_empty(b, '2');
	s_done(b, "INSERT 0 1", 'I');
	run(&sc, BIG, NULL, &r);

	tap_is_int(r.n, 6, "kept statements: six transactions reported");
	b_free(&want);
	c_parse_named(&want, "s1", "INSERT INTO t VALUES (1/0)");
	c_sync(&want);
	t = txn(&r, 1);
	tap_ok(!txn(&r, 0)->committed && t->committed && t->nready == 1 &&
	    t->nstmts == 0 && bytes_are(t, &want), "kept statements: the "
	    "Parse of s1 follows its failed transaction, with a Sync");
	t = txn(&r, 4);
	want.len = 0;
	c_parse_named(&want, "s2", "SELECT 2");
	c_sync(&want);
	tap_ok(!txn(&r, 2)->committed && !txn(&r, 3)->committed &&
	    t->committed && t->nready == 1 && bytes_are(t, &want),
	    "kept statements: a failed simple query keeps nothing; the next "
	    "failure keeps only its completed named Parse");
	t = txn(&r, 5);
	tap_ok(t->committed && t->nready == 1 &&
	    bytes_are(t, step_bytes(&sc, 6)), "kept statements: the "
	    "transaction using s1 has only its own bytes");
	rec_free(&r);
	script_free(&sc);
	b_free(&want);
}

/* PREPARE and DEALLOCATE outlive a rollback too. */
static void
test_kept_prepare(void)
{
	struct script	 sc = { .n = 0 };
	struct recorder	 r;
	struct bytes	 want = { NULL, 0, 0 };
	const struct rtxn *t;

	c_query(cli(&sc), "BEGIN");				/* 0 */
	s_done(srv(&sc), "BEGIN", 'T');
	c_query(cli(&sc), "  PREPARE p (int) AS SELECT $1;");	/* 2 */
	s_done(srv(&sc), "PREPARE", 'T');
	c_query(cli(&sc), "SELECT 1; PREPARE q AS SELECT 2");	/* 4 */
	s_done(srv(&sc), "PREPARE", 'T');
	c_query(cli(&sc), "ROLLBACK");				/* 6 */
	s_done(srv(&sc), "ROLLBACK", 'I');
	run(&sc, BIG, NULL, &r);

	tap_is_int(r.n, 2, "kept PREPARE: the rollback, then what it kept");
	c_query(&want, "  PREPARE p (int) AS SELECT $1;");
	c_sync(&want);
	t = txn(&r, 1);
	tap_ok(!txn(&r, 0)->committed && t->committed && t->kept &&
	    t->nready == 2 && bytes_are(t, &want), "kept PREPARE: the lone "
	    "PREPARE and a Sync, two answers; not the one after a SELECT");
	rec_free(&r);
	script_free(&sc);
	b_free(&want);
}

/* Extended protocol and simple queries, pipelined before any answer. */
static void
test_pipelined(void)
{
	struct script	 sc = { .n = 0 };
	struct recorder	 r;
	struct bytes	 w1 = { NULL, 0, 0 }, w2 = { NULL, 0, 0 }, *b;
	const struct rtxn *t0, *t1;
	size_t		 k;
	int		 bad;

	/* Two Parse/Bind/Execute/Sync in one read, then the answers. */
	b = cli(&sc);
	c_ext(b, "INSERT INTO t VALUES (10)");
	c_ext(b, "INSERT INTO t VALUES (11)");
	c_ext(&w1, "INSERT INTO t VALUES (10)");
	c_ext(&w2, "INSERT INTO t VALUES (11)");
	b = srv(&sc);
	s_parsebind(b);
	s_done(b, "INSERT 0 1", 'I');
	b = srv(&sc);
	s_parsebind(b);
	s_done(b, "INSERT 0 1", 'I');
	run(&sc, BIG, NULL, &r);
	t0 = txn(&r, 0);
	t1 = txn(&r, 1);
	tap_ok(r.n == 2 && t0->step == 1 && t1->step == 2,
	    "pipelined extended: two transactions, one per ReadyForQuery");
	tap_ok(bytes_are(t0, &w1) && bytes_are(t1, &w2),
	    "pipelined extended: each has exactly its own P/B/E/S");
	tap_ok(t0->committed && t1->committed && t0->nready == 1 &&
	    t1->nready == 1 && t0->nstmts == 1 && t1->nstmts == 1 &&
	    strcmp(stmt(t1, 0)->tag, "INSERT 0 1") == 0,
	    "pipelined extended: both committed, one statement each");
	tap_ok(t0->seq != 0 && t1->seq > t0->seq,
	    "pipelined extended: seq in commit order");
	rec_free(&r);
	script_free(&sc);

	/* The same with the first failing, and both answers in one read. */
	b = cli(&sc);
	c_ext(b, "INSERT INTO t VALUES (1/0)");
	c_ext(b, "INSERT INTO t VALUES (11)");
	b_free(&w1);
	c_ext(&w1, "INSERT INTO t VALUES (1/0)");
	b = srv(&sc);
	s_parsebind(b);
	s_error(b, "division by zero");
	s_ready(b, 'I');
	s_parsebind(b);
	s_done(b, "INSERT 0 1", 'I');
	run(&sc, BIG, NULL, &r);
	t0 = txn(&r, 0);
	t1 = txn(&r, 1);
	tap_ok(r.n == 2 && !t0->committed && t1->committed &&
	    bytes_are(t0, &w1) && bytes_are(t1, &w2),
	    "pipelined extended, first fails: it alone is not committed, "
	    "bytes still split right");
	rec_free(&r);
	script_free(&sc);

	/* Two simple Queries in one read. */
	b_free(&w1);
	b_free(&w2);
	c_query(&w1, "INSERT INTO t VALUES (12)");
	c_query(&w2, "UPDATE t SET a = a + 1");
	b = cli(&sc);
	b_cat(b, &w1);
	b_cat(b, &w2);
	b = srv(&sc);
	s_done(b, "INSERT 0 1", 'I');
	s_done(b, "UPDATE 13", 'I');
	run(&sc, BIG, NULL, &r);
	tap_ok(r.n == 2 && bytes_are(txn(&r, 0), &w1) &&
	    bytes_are(txn(&r, 1), &w2) && txn(&r, 0)->committed &&
	    txn(&r, 1)->committed &&
	    strcmp(stmt(txn(&r, 1), 0)->tag, "UPDATE 13") == 0,
	    "pipelined simple queries: one transaction each, own bytes");
	rec_free(&r);
	script_free(&sc);

	/*
	 * The answer to a Query arrives while the next Query is only partly
	 * read (cut at every position): the first transaction still ends
	 * where the second message starts.
	 */
	bad = 0;
	for (k = 1; k < w2.len; k++) {
		b = cli(&sc);
		b_cat(b, &w1);
		b_put(b, w2.p, k);
		s_done(srv(&sc), "INSERT 0 1", 'I');
		b_put(cli(&sc), w2.p + k, w2.len - k);
		s_done(srv(&sc), "UPDATE 13", 'I');
		run(&sc, BIG, NULL, &r);
		if (!(r.n == 2 && bytes_are(txn(&r, 0), &w1) &&
		    bytes_are(txn(&r, 1), &w2))) {
			tap_diag("next Query cut at %zu", k);
			bad++;
		}
		rec_free(&r);
		script_free(&sc);
	}
	tap_is_int(bad, 0, "answer while the next Query is partly read, at "
	    "each of %zu cuts: bytes split right", w2.len - 1);
	b_free(&w1);
	b_free(&w2);
}

/* COPY FROM STDIN, simple and extended. */
static void
test_copy(void)
{
	struct script	 sc = { .n = 0 };
	struct recorder	 r;
	struct bytes	 want = { NULL, 0, 0 }, row = { NULL, 0, 0 }, *b;
	const struct rtxn *t;

	c_query(cli(&sc), "COPY t FROM STDIN");			/* 0 */
	s_copyin(srv(&sc), 1);
	b = cli(&sc);						/* 2 */
	c_copydata(b, "1\n");
	c_copydata(b, "2\n");
	c_copydata(b, "3\n");
	c_copydone(b);
	s_done(srv(&sc), "COPY 3", 'I');
	c_query(cli(&sc), "SELECT 1");				/* 4 */
	b = srv(&sc);
	s_rowdesc(b, "?column?");
	s_datarow(b, "1", NULL);
	s_done(b, "SELECT 1", 'I');
	b_cat(&want, step_bytes(&sc, 0));
	b_cat(&want, step_bytes(&sc, 2));
	run(&sc, BIG, NULL, &r);
	t = txn(&r, 0);
	tap_is_int(r.n, 2, "simple COPY then a query: two transactions");
	tap_ok(bytes_are(t, &want), "simple COPY: bytes are the Query, the "
	    "three CopyData and the CopyDone");
	tap_ok(t->committed && t->nready == 1 && t->nstmts == 1 &&
	    strcmp(stmt(t, 0)->tag, "COPY 3") == 0,
	    "simple COPY: committed, one statement \"COPY 3\"");
	tap_ok(bytes_are(txn(&r, 1), step_bytes(&sc, 4)) &&
	    txn(&r, 1)->committed, "the query after COPY has only its own "
	    "bytes");
	rec_free(&r);
	script_free(&sc);
	b_free(&want);

	/*
	 * The server fails the COPY while a CopyData is half read: the
	 * rest of it and the CopyDone, which the server ignores, must not
	 * start the next transaction in the middle of a message.
	 */
	c_query(cli(&sc), "COPY t FROM STDIN");			/* 0 */
	s_copyin(srv(&sc), 1);
	c_copydata(&row, "a row the server will never see\n");
	b = cli(&sc);						/* 2 */
	c_copydata(b, "x\n");
	b_put(b, row.p, row.len - 10);
	b = srv(&sc);						/* 3 */
	s_error(b, "invalid input syntax for type integer: \"x\"");
	s_ready(b, 'I');
	b = cli(&sc);						/* 4 */
	b_put(b, row.p + row.len - 10, 10);
	c_copydone(b);
	c_query(&want, "INSERT INTO t VALUES (9)");
	b_cat(b, &want);
	s_done(srv(&sc), "INSERT 0 1", 'I');
	run(&sc, BIG, NULL, &r);
	tap_ok(r.n == 2 && !txn(&r, 0)->committed && txn(&r, 1)->committed &&
	    whole_ending(txn(&r, 1), &want), "COPY failed while a CopyData "
	    "was half read: the next transaction is whole messages ending "
	    "with its Query");
	rec_free(&r);
	script_free(&sc);
	b_free(&want);
	b_free(&row);

	/* Extended: the Sync sent with the Execute gets no answer. */
	c_ext(cli(&sc), "COPY t FROM STDIN");			/* 0 */
	b = srv(&sc);
	s_parsebind(b);
	s_copyin(b, 1);
	b = cli(&sc);						/* 2 */
	c_copydata(b, "7\n");
	c_copydata(b, "8\n");
	c_copydone(b);
	c_sync(b);
	s_done(srv(&sc), "COPY 2", 'I');
	c_query(cli(&sc), "INSERT INTO t VALUES (9)");		/* 4 */
	s_done(srv(&sc), "INSERT 0 1", 'I');
	b_cat(&want, step_bytes(&sc, 0));
	b_cat(&want, step_bytes(&sc, 2));
	run(&sc, BIG, NULL, &r);
	t = txn(&r, 0);
	tap_is_int(r.n, 2, "extended COPY then a query: two transactions");
	tap_ok(bytes_are(t, &want) && t->committed && t->nready == 1 &&
	    strcmp(tags(t), "COPY 2") == 0, "extended COPY: committed, "
	    "nready 1, its P/B/E/S, CopyData, CopyDone and Sync");
	tap_ok(bytes_are(txn(&r, 1), step_bytes(&sc, 4)) &&
	    txn(&r, 1)->committed && txn(&r, 1)->nready == 1,
	    "the query after extended COPY: its own bytes, nready 1");
	rec_free(&r);
	script_free(&sc);
	b_free(&want);
}

/* DataRows: counted and hashed per statement, order-free. */
static void
test_datarows(void)
{
	struct script	 sc = { .n = 0 };
	struct recorder	 r;
	struct bytes	*b;
	uint64_t	 h1, h2, h3, fwd, rev, other;
	const struct pgm_mstmt *s;

	tap_ok(proto_hash(PROTO_HASH_INIT, (const uint8_t *)"a", 1) ==
	    0xaf63dc4c8601ec8cULL && proto_hash(PROTO_HASH_INIT,
	    (const uint8_t *)"foobar", 6) == 0x85944171f73967e8ULL &&
	    proto_hash(PROTO_HASH_INIT, NULL, 0) == PROTO_HASH_INIT,
	    "proto_hash is 64-bit FNV-1a (known vectors)");

	c_query(cli(&sc), "SELECT a, b FROM t");
	b = srv(&sc);
	s_rowdesc(b, "a");
	h1 = s_datarow(b, "1", "one");
	h2 = s_datarow(b, "2", "two");
	s_done(b, "SELECT 2", 'I');
	run(&sc, BIG, NULL, &r);
	s = stmt(txn(&r, 0), 0);
	tap_ok(r.n == 1 && txn(&r, 0)->nstmts == 1 && s->rows == 2,
	    "two DataRows: rows 2");
	tap_ok(s->hash == h1 + h2, "hash is the sum of each row body's "
	    "proto_hash");
	fwd = s->hash;
	rec_free(&r);
	script_free(&sc);

	c_query(cli(&sc), "SELECT a, b FROM t");
	b = srv(&sc);
	s_rowdesc(b, "a");
	s_datarow(b, "2", "two");
	s_datarow(b, "1", "one");
	s_done(b, "SELECT 2", 'I');
	run(&sc, BIG, NULL, &r);
	rev = stmt(txn(&r, 0), 0)->hash;
	tap_ok(rev == fwd && stmt(txn(&r, 0), 0)->rows == 2,
	    "same rows in the other order: same hash");
	rec_free(&r);
	script_free(&sc);

	c_query(cli(&sc), "SELECT a, b FROM t");
	b = srv(&sc);
	s_datarow(b, "1", "one");
	s_datarow(b, "2", "twO");
	s_done(b, "SELECT 2", 'I');
	run(&sc, BIG, NULL, &r);
	other = stmt(txn(&r, 0), 0)->hash;
	tap_ok(other != fwd, "one byte changed in a row: another hash");
	rec_free(&r);
	script_free(&sc);

	/* Two statements in one Query: each its own rows and hash. */
	c_query(cli(&sc), "SELECT 1; SELECT 2");
	b = srv(&sc);
	h1 = s_datarow(b, "a", NULL);
	h2 = s_datarow(b, "b", NULL);
	s_complete(b, "SELECT 2");
	h3 = s_datarow(b, "c", NULL);
	s_done(b, "SELECT 1", 'I');
	run(&sc, BIG, NULL, &r);
	tap_ok(txn(&r, 0)->nstmts == 2 &&
	    stmt(txn(&r, 0), 0)->rows == 2 &&
	    stmt(txn(&r, 0), 0)->hash == h1 + h2 &&
	    stmt(txn(&r, 0), 1)->rows == 1 &&
	    stmt(txn(&r, 0), 1)->hash == h3,
	    "two statements: rows and hash per statement");
	rec_free(&r);
	script_free(&sc);

	/* Rows before an error do not count for the next statement. */
	c_ext(cli(&sc), "SELECT 1/(a-2) FROM t");
	b = srv(&sc);
	s_parsebind(b);
	s_datarow(b, "1", NULL);
	s_error(b, "division by zero");
	s_ready(b, 'I');
	c_query(cli(&sc), "SELECT 3");
	b = srv(&sc);
	h3 = s_datarow(b, "3", NULL);
	s_done(b, "SELECT 1", 'I');
	run(&sc, BIG, NULL, &r);
	tap_ok(r.n == 2 && !txn(&r, 0)->committed &&
	    stmt(txn(&r, 1), 0)->rows == 1 &&
	    stmt(txn(&r, 1), 0)->hash == h3,
	    "DataRows before an error are not added to the next statement");
	rec_free(&r);
	script_free(&sc);
}

/* A session with a bit of everything; 10 transactions. */
static void
mixed_script(struct script *sc)
{
	struct bytes	*b;

	c_query(cli(sc), "INSERT INTO t VALUES (1)");
	s_done(srv(sc), "INSERT 0 1", 'I');
	c_query(cli(sc), "BEGIN");
	s_done(srv(sc), "BEGIN", 'T');
	c_query(cli(sc), "INSERT INTO t VALUES (2)");
	s_done(srv(sc), "INSERT 0 1", 'T');
	c_query(cli(sc), "COMMIT");
	s_done(srv(sc), "COMMIT", 'I');
	c_query(cli(sc), "SELECT a, b FROM t");
	b = srv(sc);
	s_rowdesc(b, "a");
	s_datarow(b, "1", "a much longer value, to be cut in many places");
	s_datarow(b, "2", "two");
	s_done(b, "SELECT 2", 'I');
	b = cli(sc);
	c_ext(b, "INSERT INTO t VALUES (3)");
	c_ext(b, "UPDATE t SET b = 'x' WHERE a = 3");
	b = srv(sc);
	s_parsebind(b);
	s_done(b, "INSERT 0 1", 'I');
	s_parsebind(b);
	s_done(b, "UPDATE 1", 'I');
	c_query(cli(sc), "COPY t FROM STDIN");
	s_copyin(srv(sc), 2);
	b = cli(sc);
	c_copydata(b, "4\tfour\n");
	c_copydata(b, "5\tfive\n");
	c_copydone(b);
	s_done(srv(sc), "COPY 2", 'I');
	c_query(cli(sc), "BEGIN");
	s_done(srv(sc), "BEGIN", 'T');
	c_query(cli(sc), "INSERT INTO t VALUES (1/0)");
	b = srv(sc);
	s_error(b, "division by zero");
	s_ready(b, 'E');
	c_query(cli(sc), "COMMIT");
	s_done(srv(sc), "ROLLBACK", 'I');
	c_ext(cli(sc), "COPY t FROM STDIN");
	b = srv(sc);
	s_parsebind(b);
	s_copyin(b, 2);
	b = cli(sc);
	c_copydata(b, "6\tsix\n");
	c_copydone(b);
	c_sync(b);
	s_done(srv(sc), "COPY 1", 'I');
	b = cli(sc);
	c_query(b, "DELETE FROM t WHERE a = 1");
	c_query(b, "SELECT count(*) FROM t");
	b = srv(sc);
	s_done(b, "DELETE 1", 'I');
	s_datarow(b, "5", NULL);
	s_done(b, "SELECT 1", 'I');
}

/* Any split of either stream gives what feeding whole steps gives. */
static void
test_splits(void)
{
	static const int committed[10] = { 1, 1, 1, 1, 1, 1, 0, 1, 1, 1 };
	struct script	 sc = { .n = 0 };
	struct recorder	 ref, r;
	struct feed	 f;
	char		 why[128];
	size_t		 maxlen, k;
	int		 i, ok, bad;

	mixed_script(&sc);
	run(&sc, BIG, NULL, &ref);
	ok = ref.n == 10 && !ref.failed;
	for (i = 0; ok && i < 10; i++)
		ok = txn(&ref, i)->committed == committed[i] &&
		    txn(&ref, i)->bytes != NULL;
	tap_ok(ok, "mixed session fed whole: 10 transactions, the 7th "
	    "not committed");

	memset(&f, 0, sizeof(f));
	f.client = FEED_ONE;
	f.server = FEED_WHOLE;
	run(&sc, BIG, &f, &r);
	if (!tap_ok(rec_same(&ref, &r, why, sizeof(why)),
	    "client stream one byte at a time: same result"))
		tap_diag("%s", why);
	rec_free(&r);

	f.client = FEED_WHOLE;
	f.server = FEED_ONE;
	run(&sc, BIG, &f, &r);
	if (!tap_ok(rec_same(&ref, &r, why, sizeof(why)),
	    "server stream one byte at a time: same result"))
		tap_diag("%s", why);
	rec_free(&r);

	f.client = FEED_ONE;
	f.server = FEED_ONE;
	run(&sc, BIG, &f, &r);
	if (!tap_ok(rec_same(&ref, &r, why, sizeof(why)),
	    "both streams one byte at a time: same result"))
		tap_diag("%s", why);
	rec_free(&r);

	/* Every step cut in two at every position. */
	maxlen = 0;
	for (i = 0; i < sc.n; i++)
		if (sc.s[i].b.len > maxlen)
			maxlen = sc.s[i].b.len;
	bad = 0;
	f.client = FEED_SPLIT;
	f.server = FEED_SPLIT;
	for (k = 1; k < maxlen; k++) {
		f.k = k;
		run(&sc, BIG, &f, &r);
		if (!rec_same(&ref, &r, why, sizeof(why))) {
			if (bad++ == 0)
				tap_diag("cut at %zu: %s", k, why);
		}
		rec_free(&r);
	}
	tap_is_int(bad, 0, "every step cut at each of %zu positions: same "
	    "result", maxlen - 1);

	bad = 0;
	f.client = FEED_RANDOM;
	f.server = FEED_RANDOM;
	for (i = 1; i <= 200; i++) {
		f.seed = 0x9e3779b9u * (uint32_t)i;
		run(&sc, BIG, &f, &r);
		if (!rec_same(&ref, &r, why, sizeof(why))) {
			if (bad++ == 0)
				tap_diag("seed %u: %s", f.seed, why);
		}
		rec_free(&r);
	}
	tap_is_int(bad, 0, "200 random chunkings: same result");
	rec_free(&ref);
	script_free(&sc);
}

/* Transactions over max_bytes are reported as overflowed. */
static void
test_overflow(void)
{
	struct script	 sc = { .n = 0 };
	struct recorder	 r;
	struct bytes	 big = { NULL, 0, 0 }, small = { NULL, 0, 0 };
	struct bytes	 row = { NULL, 0, 0 }, *b;
	char		 sql[200];
	const struct rtxn *t;
	int		 ok;

	memset(sql, 'x', sizeof(sql));
	memcpy(sql, "INSERT INTO t VALUES ('", 23);
	memcpy(sql + sizeof(sql) - 4, "')", 3);
	c_query(&big, sql);
	c_query(&small, "SELECT 1");

	/* An explicit transaction with one statement too big. */
	c_query(cli(&sc), "BEGIN");				/* 0 */
	s_done(srv(&sc), "BEGIN", 'T');
	b_cat(cli(&sc), &big);					/* 2 */
	s_done(srv(&sc), "INSERT 0 1", 'T');
	c_query(cli(&sc), "COMMIT");				/* 4 */
	s_done(srv(&sc), "COMMIT", 'I');
	b_cat(cli(&sc), &small);				/* 6 */
	s_done(srv(&sc), "SELECT 1", 'I');
	run(&sc, 64, NULL, &r);
	t = txn(&r, 0);
	tap_is_int(r.n, 2, "overflow: two transactions reported");
	tap_ok(t->overflow && !t->committed && t->bytes == NULL &&
	    t->len == 0 && t->step == 5, "overflow: reported at its "
	    "ReadyForQuery with overflow 1, committed 0, no bytes");
	t = txn(&r, 1);
	tap_ok(!t->overflow && t->committed && bytes_are(t, &small),
	    "overflow: the next small transaction is captured normally");
	rec_free(&r);
	script_free(&sc);

	/* One autocommit statement too big, then a small one. */
	b_cat(cli(&sc), &big);
	s_done(srv(&sc), "INSERT 0 1", 'I');
	b_cat(cli(&sc), &small);
	s_done(srv(&sc), "SELECT 1", 'I');
	run(&sc, 64, NULL, &r);
	tap_ok(r.n == 2 && txn(&r, 0)->overflow && !txn(&r, 0)->committed &&
	    !txn(&r, 1)->overflow && bytes_are(txn(&r, 1), &small),
	    "overflowing autocommit statement, then a small one captured");
	rec_free(&r);
	script_free(&sc);

	/*
	 * A small transaction pipelined in the same read after a big one:
	 * whatever it is reported as, it is never committed with wrong
	 * bytes; a later one is captured again.
	 */
	b = cli(&sc);
	b_cat(b, &big);
	b_cat(b, &small);
	b = srv(&sc);
	s_done(b, "INSERT 0 1", 'I');
	s_done(b, "SELECT 1", 'I');
	b_cat(cli(&sc), &small);
	s_done(srv(&sc), "SELECT 1", 'I');
	run(&sc, 64, NULL, &r);
	t = txn(&r, 1);
	ok = r.n == 3 && txn(&r, 0)->overflow && !txn(&r, 0)->committed &&
	    (t->overflow ? !t->committed : t->committed &&
	    bytes_are(t, &small));
	tap_ok(ok, "big then small in one read: the big one overflows, the "
	    "small one is not committed with wrong bytes");
	tap_ok(!txn(&r, 2)->overflow && txn(&r, 2)->committed &&
	    bytes_are(txn(&r, 2), &small), "and the transaction after them "
	    "is captured normally");
	rec_free(&r);
	script_free(&sc);

	/*
	 * The big one's answer comes while the next Query's header is half
	 * read: that Query is not committed with bytes missing.
	 */
	b_cat(cli(&sc), &big);
	b_put(cli(&sc), small.p, 3);
	s_done(srv(&sc), "INSERT 0 1", 'I');
	b_put(cli(&sc), small.p + 3, small.len - 3);
	s_done(srv(&sc), "SELECT 1", 'I');
	b_cat(cli(&sc), &small);
	s_done(srv(&sc), "SELECT 1", 'I');
	run(&sc, 64, NULL, &r);
	t = txn(&r, 1);
	tap_ok(r.n == 3 && txn(&r, 0)->overflow && (t->overflow ?
	    !t->committed : t->committed && bytes_are(t, &small)) &&
	    txn(&r, 2)->committed && bytes_are(txn(&r, 2), &small),
	    "overflow answered while the next header is half read: the next "
	    "Query is not committed with bytes missing");
	rec_free(&r);
	script_free(&sc);

	/*
	 * An overflowing COPY fails while a CopyData is half read: the
	 * next transaction is not committed starting inside that message.
	 */
	c_query(cli(&sc), "COPY t FROM STDIN");
	s_copyin(srv(&sc), 1);
	b = cli(&sc);
	c_copydata(&row, sql);
	b_put(b, row.p, row.len - 10);
	b = srv(&sc);
	s_error(b, "invalid input syntax for type integer");
	s_ready(b, 'I');
	b = cli(&sc);
	b_put(b, row.p + row.len - 10, 10);
	c_copydone(b);
	b_cat(b, &small);
	s_done(srv(&sc), "SELECT 1", 'I');
	run(&sc, 64, NULL, &r);
	t = txn(&r, 1);
	tap_ok(r.n == 2 && txn(&r, 0)->overflow && (t->overflow ?
	    !t->committed : t->committed && whole_ending(t, &small)),
	    "overflowing COPY failed mid-CopyData: the next transaction is "
	    "not committed with part of that message");
	rec_free(&r);
	script_free(&sc);

	/*
	 * Transactions each under max_bytes are not over it, even when
	 * more of them than max_bytes holds are pipelined.
	 */
	b = cli(&sc);
	c_query(b, "INSERT INTO t VALUES (1)");
	c_query(b, "INSERT INTO t VALUES (2)");
	c_query(b, "INSERT INTO t VALUES (3)");
	b = srv(&sc);
	s_done(b, "INSERT 0 1", 'I');
	s_done(b, "INSERT 0 1", 'I');
	s_done(b, "INSERT 0 1", 'I');
	run(&sc, 64, NULL, &r);
	b_free(&small);
	c_query(&small, "INSERT INTO t VALUES (2)");
	tap_ok(r.n == 3 && !txn(&r, 0)->overflow && !txn(&r, 1)->overflow &&
	    !txn(&r, 2)->overflow && txn(&r, 1)->committed &&
	    bytes_are(txn(&r, 1), &small), "three pipelined statements of "
	    "%zu bytes each, max_bytes 64: none overflows", small.len);
	rec_free(&r);
	script_free(&sc);

	/*
	 * A small transaction already read whole is not lost to a big one
	 * pipelined after it.
	 */
	c_query(cli(&sc), "INSERT INTO t VALUES (2)");
	b_cat(cli(&sc), &big);
	b = srv(&sc);
	s_done(b, "INSERT 0 1", 'I');
	s_done(b, "INSERT 0 1", 'I');
	run(&sc, 64, NULL, &r);
	tap_ok(r.n == 2 && !txn(&r, 0)->overflow && txn(&r, 0)->committed &&
	    bytes_are(txn(&r, 0), &small) && txn(&r, 1)->overflow,
	    "small statement read whole, then a big one before its answer: "
	    "the small one is committed, the big one overflows");
	rec_free(&r);
	script_free(&sc);
	b_free(&big);
	b_free(&small);
	b_free(&row);
}

/* capture_reset starts a new session on the same capture. */
static void
test_reset(void)
{
	struct script	 sc = { .n = 0 };
	struct recorder	 r;
	struct bytes	 q = { NULL, 0, 0 }, *b;
	const struct rtxn *t;

	c_query(&q, "SELECT 1");
	/* Session 1: open transaction, half messages both ways. */
	c_query(cli(&sc), "BEGIN");				/* 0 */
	s_done(srv(&sc), "BEGIN", 'T');				/* 1 */
	b = cli(&sc);						/* 2 */
	c_query(b, "INSERT INTO t VALUES (1)");
	b_put(b, q.p, 3);
	b = srv(&sc);						/* 3 */
	s_datarow(b, "x", NULL);
	b_put(b, "C\0\0\0\x0dINS", 8);
	reset_step(&sc);					/* 4 */
	/* Session 2. */
	b_cat(cli(&sc), &q);					/* 5 */
	b = srv(&sc);						/* 6 */
	s_datarow(b, "1", NULL);
	s_done(b, "SELECT 1", 'I');
	run(&sc, BIG, NULL, &r);
	t = txn(&r, 0);
	tap_ok(r.n == 1 && t->step == 6, "reset: only the second session's "
	    "transaction is reported");
	tap_ok(bytes_are(t, &q) && t->committed && t->nready == 1,
	    "reset: its bytes are its Query only, nready 1");
	tap_ok(t->nstmts == 1 && strcmp(stmt(t, 0)->tag, "SELECT 1") == 0 &&
	    stmt(t, 0)->rows == 1, "reset: its one statement, one row");
	tap_ok(r.seq_after[5] == r.seq_after[4] && t->seq == r.seq,
	    "reset: the new session starts idle (no seq taken at send)");
	rec_free(&r);
	script_free(&sc);

	/* A session the capture gave up on (bad length), then a good one. */
	b_put(cli(&sc), "Q\0\0\0\x02", 5);
	reset_step(&sc);
	b_cat(cli(&sc), &q);
	s_done(srv(&sc), "SELECT 1", 'I');
	run(&sc, BIG, NULL, &r);
	tap_ok(r.n == 1 && !r.failed && bytes_are(txn(&r, 0), &q) &&
	    txn(&r, 0)->committed, "reset after a bad length word: the next "
	    "session is captured");
	rec_free(&r);
	script_free(&sc);

	/* Without the reset, a bad length word stops the capture. */
	b_put(cli(&sc), "Q\0\0\0\x02", 5);
	b_cat(cli(&sc), &q);
	s_done(srv(&sc), "SELECT 1", 'I');
	run(&sc, BIG, NULL, &r);
	tap_ok(r.n == 0 && r.failed, "a bad length word: nothing reported, "
	    "capture failed");
	rec_free(&r);
	script_free(&sc);
	b_free(&q);
}

/*
 * A CommandComplete with an empty body (length 4, no tag): a statement
 * with an empty tag, and no copy from the NULL tag the scanner gives
 * (UBSan reports memcpy from NULL, even of 0 bytes).
 */
static void
test_empty_tag(void)
{
	struct script	 sc = { .n = 0 };
	struct recorder	 r;
	struct bytes	*b;
	const struct rtxn *t;

	c_query(cli(&sc), "SELECT 1");
	b = srv(&sc);
	m_empty(b, 'C');
	s_ready(b, 'I');
	run(&sc, BIG, NULL, &r);
	t = txn(&r, 0);
	tap_ok(r.n == 1 && t->committed && bytes_are(t, step_bytes(&sc, 0)),
	    "empty CommandComplete: one committed transaction, its Query");
	tap_ok(t->nstmts == 1 && stmt(t, 0)->tag[0] == '\0' &&
	    stmt(t, 0)->rows == 0, "empty CommandComplete: one statement, "
	    "empty tag");
	rec_free(&r);
	script_free(&sc);
}

int
main(void)
{
	tap_plan(76);
	test_autocommit();
	test_explicit();
	test_failures();
	test_savepoint();
	test_kept_statements();
	test_kept_prepare();
	test_pipelined();
	test_copy();
	test_datarows();
	test_splits();
	test_overflow();
	test_reset();
	test_empty_tag();
	return tap_done();
}
