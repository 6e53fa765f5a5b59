/*
 * test_mqueue.c: TAP unit tests for src/mqueue.c (the mirror queues).
 *
 * Owns: a record put and taken back whole (header, statements,
 * parameters, client bytes); FIFO order; wrap-around over thousands of
 * records of random sizes; the budget by count and by bytes, with held
 * records counted; records that can never fit; an empty ring taking any
 * record that fits it; mqueue_stats totals and lag; a new consumer
 * taking over (mqueue_consumer_start); the eventfd wake-up; recovery
 * of the robust mutex from a process killed holding it; a producer or
 * consumer killed at each point between two stores to a ring (the test
 * hook), no record then taken twice or lost; four producer processes
 * and one consumer at once, nothing lost, corrupted or out of order.
 *
 * Every ring lives in its own mmap(MAP_SHARED | MAP_ANONYMOUS) region,
 * so forked children share it as the daemon's processes do, and its
 * data ends at an inaccessible page, so a write past the ring faults.  Record
 * contents are derived from (session, txn), so any copy can be checked.
 */
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgmirror.h"
#include "tap.h"

/* Bytes of the mapping before the guard page. */
static size_t
ring_body(uint64_t size)
{
	size_t		 pg = (size_t)sysconf(_SC_PAGESIZE);

	return (sizeof(struct pgm_mqueue) + size + pg - 1) / pg * pg;
}

/*
 * A ring and its data in one shared anonymous mapping; the data ends
 * where an inaccessible page starts, so writing past the ring faults.
 * size must be a multiple of 8.
 */
static struct pgm_mqueue *
ring_new(uint64_t size, uint32_t max_txns, uint64_t max_bytes, int efd)
{
	struct pgm_mqueue *q;
	size_t		 body = ring_body(size);
	uint8_t		*p;

	p = mmap(NULL, body + (size_t)sysconf(_SC_PAGESIZE),
	    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mprotect(p + body,
	    (size_t)sysconf(_SC_PAGESIZE), PROT_NONE) == -1) {
		perror("mmap");
		abort();
	}
	q = (struct pgm_mqueue *)(void *)p;
	if (mqueue_init(q, p + body - size, size, max_txns, max_bytes,
	    efd) != 0) {
		fprintf(stderr, "mqueue_init failed\n");
		abort();
	}
	return q;
}

static void
ring_free(struct pgm_mqueue *q)
{
	munmap(q, ring_body(q->size) + (size_t)sysconf(_SC_PAGESIZE));
}

/* splitmix64: sizes and contents derived from (session, txn). */
static uint64_t
mix(uint64_t a, uint64_t b)
{
	uint64_t	 z;

	z = a * 0x9e3779b97f4a7c15ULL + b + 0x632be59bd9b4e019ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The shape of a record. */
struct shape {
	uint32_t	 nstmts;
	uint32_t	 paramslen;
	uint32_t	 byteslen;
};

/* A shape chosen from (session, txn): up to 3 stmts, bytes < bmax. */
static struct shape
shape_of(uint64_t session, uint32_t txn, uint32_t bmax)
{
	struct shape	 s;
	uint64_t	 h = mix(session, txn);

	s.nstmts = (uint32_t)(h % 4);
	s.paramslen = (uint32_t)((h >> 8) % 41);
	s.byteslen = bmax ? (uint32_t)((h >> 20) % bmax) : 0;
	return s;
}

/* The ring bytes a record of that shape takes. */
static uint32_t
shape_len(struct shape s)
{
	uint64_t	 n = sizeof(struct pgm_mrec) +
	    (uint64_t)s.nstmts * sizeof(struct pgm_mstmt) + s.paramslen +
	    s.byteslen;

	return (uint32_t)((n + 7) & ~(uint64_t)7);
}

static uint8_t
pattern(uint64_t session, uint32_t txn, uint32_t i)
{
	return (uint8_t)(session * 131 + txn * 7 + i * 13 + (i >> 8));
}

/* A record of (session, txn) in its own memory, ready to put. */
struct trec {
	struct pgm_mrec	 h;
	struct pgm_mstmt stmts[4];
	char		 params[64];
	uint8_t		*bytes;
};

static void
trec_make(struct trec *t, uint64_t session, uint32_t txn, struct shape s)
{
	uint32_t	 i;

	memset(t, 0, sizeof(*t));
	t->h.mirror = (uint16_t)(session % 7);
	t->h.flags = s.paramslen ? MREC_PARAMS : 0;
	t->h.session = session;
	t->h.seq = session << 32 | txn;
	t->h.enqueued_ns = (int64_t)txn * 1000;
	t->h.txn = txn;
	t->h.nstmts = s.nstmts;
	t->h.paramslen = s.paramslen;
	t->h.byteslen = s.byteslen;
	t->h.user = (int32_t)session;
	t->h.database = (int32_t)session + 100;
	t->h.nready = txn % 5 + 1;
	for (i = 0; i < s.nstmts; i++) {
		t->stmts[i].sent_ns = (int64_t)txn * 10 + i;
		t->stmts[i].answered_ns = (int64_t)txn * 10 + i + 1;
		t->stmts[i].rows = i;
		t->stmts[i].hash = mix(session, txn + i);
		snprintf(t->stmts[i].tag, sizeof(t->stmts[i].tag),
		    "S%llu.%u.%u", (unsigned long long)session, txn, i);
	}
	for (i = 0; i < s.paramslen; i++)
		t->params[i] = (char)pattern(session, txn, i + 7777);
	if ((t->bytes = malloc(s.byteslen ? s.byteslen : 1)) == NULL)
		abort();
	for (i = 0; i < s.byteslen; i++)
		t->bytes[i] = pattern(session, txn, i);
}

static void
trec_free(struct trec *t)
{
	free(t->bytes);
	t->bytes = NULL;
}

/* Put the record of (session, txn) with shape s. */
static int
put_rec(struct pgm_mqueue *q, uint64_t session, uint32_t txn, struct shape s)
{
	struct trec	 t;
	int		 rc;

	trec_make(&t, session, txn, s);
	rc = mqueue_put(q, &t.h, t.stmts, t.params, t.bytes);
	trec_free(&t);
	return rc;
}

/*
 * Is r the record of its (session, txn) in every field and byte?  Its
 * shape is shape_of(bmax), or with bmax 0 the counts it carries.  Says
 * the first difference in a diagnostic.
 */
static int
rec_ok(const struct pgm_mrec *r, uint32_t bmax)
{
	struct trec	 t;
	struct shape	 s;
	const char	*bad = NULL;

	if (r == NULL) {
		tap_diag("no record");
		return 0;
	}
	if (bmax != 0)
		s = shape_of(r->session, r->txn, bmax);
	else if (r->nstmts <= 4 && r->paramslen <= 64) {
		s.nstmts = r->nstmts;
		s.paramslen = r->paramslen;
		s.byteslen = r->byteslen;
	} else {
		tap_diag("record session %llu txn %u: bad counts",
		    (unsigned long long)r->session, r->txn);
		return 0;
	}
	trec_make(&t, r->session, r->txn, s);
	if (r->len != shape_len(s))
		bad = "len";
	else if (r->mirror != t.h.mirror || r->flags != t.h.flags ||
	    r->seq != t.h.seq || r->enqueued_ns != t.h.enqueued_ns ||
	    r->user != t.h.user || r->database != t.h.database ||
	    r->nready != t.h.nready)
		bad = "header";
	else if (r->nstmts != s.nstmts || r->paramslen != s.paramslen ||
	    r->byteslen != s.byteslen)
		bad = "counts";
	else if (s.nstmts > 0 && memcmp(MREC_STMTS(r), t.stmts,
	    s.nstmts * sizeof(t.stmts[0])) != 0)
		bad = "stmts";
	else if (s.paramslen > 0 && memcmp(MREC_PARAMSP(r), t.params,
	    s.paramslen) != 0)
		bad = "params";
	else if (s.byteslen > 0 && memcmp(MREC_BYTES(r), t.bytes,
	    s.byteslen) != 0)
		bad = "bytes";
	trec_free(&t);
	if (bad != NULL)
		tap_diag("record session %llu txn %u: %s differ",
		    (unsigned long long)r->session, r->txn, bad);
	return bad == NULL;
}

/* Take, check and release one record; returns its txn or 0. */
static uint32_t
take(struct pgm_mqueue *q, uint32_t bmax, int *ok)
{
	struct pgm_mrec	*r;
	uint32_t	 txn;

	if ((r = mqueue_get(q)) == NULL)
		return 0;
	if (!rec_ok(r, bmax))
		*ok = 0;
	txn = r->txn;
	mqueue_done(q, r);
	free(r);
	return txn;
}

/* One record put and taken back: every part of it. */
static void
test_roundtrip(void)
{
	struct pgm_mqueue *q = ring_new(65536, 100, 65536, -1);
	struct pgm_mstmt stmts[2];
	struct pgm_mrec	 h, *r;
	const char	 params[] = "user\0alice\0database\0db\0";
	const uint8_t	 bytes[] = "Q\0\0\0\x0dSELECT 1";
	int		 rc;

	memset(&h, 0, sizeof(h));
	memset(stmts, 0, sizeof(stmts));
	h.mirror = 3;
	h.flags = MREC_PARAMS | MREC_GAP;
	h.session = 77;
	h.seq = 42;
	h.enqueued_ns = 123456789;
	h.txn = 5;
	h.nstmts = 2;
	h.paramslen = sizeof(params);
	h.byteslen = 14;
	h.user = 4;
	h.database = 1;
	h.nready = 2;
	stmts[0].sent_ns = 10;
	stmts[0].answered_ns = 20;
	stmts[0].rows = 0;
	strcpy(stmts[0].tag, "BEGIN");
	stmts[1].sent_ns = 30;
	stmts[1].answered_ns = 40;
	stmts[1].rows = 7;
	stmts[1].hash = 0x0123456789abcdefULL;
	strcpy(stmts[1].tag, "SELECT 7");

	tap_ok(!mqueue_pending(q) && mqueue_get(q) == NULL,
	    "new ring: nothing pending, get gives NULL");
	rc = mqueue_put(q, &h, stmts, params, bytes);
	tap_ok(rc == 0 && h.len == ((sizeof(h) + 2 * sizeof(stmts[0]) +
	    sizeof(params) + 14 + 7) & ~(size_t)7),
	    "put: 0, and sets the header's len to the padded size (%u)",
	    h.len);
	tap_ok(mqueue_pending(q) && q->count == 1 && q->enqueued == 1,
	    "put: pending, count 1, enqueued 1");
	r = mqueue_get(q);
	tap_ok(r != NULL && r->len == h.len && r->mirror == 3 &&
	    r->flags == (MREC_PARAMS | MREC_GAP) && r->session == 77 &&
	    r->seq == 42 && r->enqueued_ns == 123456789 && r->txn == 5 &&
	    r->nstmts == 2 && r->paramslen == sizeof(params) &&
	    r->byteslen == 14 && r->user == 4 && r->database == 1 &&
	    r->nready == 2, "get: every header field");
	tap_ok(r != NULL && memcmp(MREC_STMTS(r), stmts, sizeof(stmts)) == 0 &&
	    strcmp(MREC_STMTS(r)[1].tag, "SELECT 7") == 0 &&
	    MREC_STMTS(r)[1].hash == 0x0123456789abcdefULL,
	    "get: the statements (MREC_STMTS)");
	tap_ok(r != NULL && memcmp(MREC_PARAMSP(r), params, sizeof(params)) ==
	    0 && strcmp(MREC_PARAMSP(r) + 5, "alice") == 0,
	    "get: the parameters (MREC_PARAMSP)");
	tap_ok(r != NULL && memcmp(MREC_BYTES(r), bytes, 14) == 0,
	    "get: the client bytes (MREC_BYTES)");
	tap_ok(r != NULL && !mqueue_pending(q) && q->count == 0 &&
	    q->held_txns == 1 && q->held_bytes == r->len &&
	    mqueue_get(q) == NULL, "after get: ring empty, the record held");
	if (r != NULL) {
		mqueue_done(q, r);
		free(r);
	}
	tap_ok(q->held_txns == 0 && q->held_bytes == 0,
	    "mqueue_done: nothing held");

	/* A record with no statements, parameters or bytes. */
	memset(&h, 0, sizeof(h));
	h.session = 9;
	h.txn = 1;
	rc = mqueue_put(q, &h, NULL, NULL, NULL);
	r = mqueue_get(q);
	tap_ok(rc == 0 && r != NULL && r->len == sizeof(h) &&
	    r->session == 9 && r->nstmts == 0 && r->byteslen == 0,
	    "empty record: header only");
	if (r != NULL) {
		mqueue_done(q, r);
		free(r);
	}
	ring_free(q);
}

/* Records come out in the order they went in. */
static void
test_fifo(void)
{
	struct pgm_mqueue *q = ring_new(65536, 100, 65536, -1);
	uint32_t	 t, got[20];
	int		 ok = 1, rcs = 0, n;

	for (t = 1; t <= 20; t++)
		rcs |= put_rec(q, 1, t, shape_of(1, t, 700));
	for (n = 0; n < 20; n++)
		got[n] = take(q, 700, &ok);
	tap_ok(rcs == 0 && q->enqueued == 20, "fifo: 20 records put");
	for (n = 0; n < 20; n++)
		if (got[n] != (uint32_t)n + 1)
			ok = 0;
	tap_ok(ok, "fifo: taken in order 1..20, each intact");
	tap_ok(take(q, 700, &ok) == 0 && q->held_txns == 0,
	    "fifo: then empty");
	ring_free(q);
}

/*
 * Thousands of records of random sizes through a small ring, puts and
 * gets interleaved at random, against a FIFO model.
 */
static void
test_wrap(void)
{
	enum { SIZE = 4096, OPS = 30000, BMAX = 600, MODEL = 4096 };
	struct pgm_mqueue *q = ring_new(SIZE, 100000, SIZE, -1);
	uint32_t	 model[MODEL], head = 0, tail = 0;
	uint32_t	 next = 1, got, rng = 12345;
	uint64_t	 used, nput = 0, ndrop = 0, ntake = 0;
	struct shape	 s;
	int		 i, ok = 1, order = 1, spurious = 0, rc;

	for (i = 0; i < OPS; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 17;
		rng ^= rng << 5;
		if (rng % 5 < 3) {
			s = shape_of(3, next, BMAX);
			used = q->head - q->tail;
			rc = put_rec(q, 3, next, s);
			if (rc == 0) {
				model[head++ % MODEL] = next;
				nput++;
			} else {
				ndrop++;
				/* Less than half full, a quarter ring fits. */
				if (used < SIZE / 2 &&
				    shape_len(s) <= SIZE / 4) {
					if (spurious++ == 0)
						tap_diag("drop at used %llu, "
						    "len %u",
						    (unsigned long long)used,
						    shape_len(s));
				}
			}
			next++;
		} else {
			got = take(q, BMAX, &ok);
			if (head == tail) {
				if (got != 0)
					order = 0;
			} else if (got != model[tail++ % MODEL])
				order = 0;
			else
				ntake++;
		}
	}
	while (head != tail) {
		if (take(q, BMAX, &ok) != model[tail++ % MODEL])
			order = 0;
		else
			ntake++;
	}
	tap_ok(nput > 5000 && q->head > 100 * (uint64_t)SIZE,
	    "wrap: %llu records put, positions went round the ring %llu times",
	    (unsigned long long)nput,
	    (unsigned long long)(q->head / SIZE));
	tap_ok(ok, "wrap: every record taken intact");
	tap_ok(order && ntake == nput && take(q, BMAX, &ok) == 0,
	    "wrap: in FIFO order, all %llu taken, then empty",
	    (unsigned long long)ntake);
	tap_ok(q->enqueued == nput && q->dropped_full == ndrop,
	    "wrap: enqueued and dropped_full count the puts (%llu dropped)",
	    (unsigned long long)ndrop);
	tap_is_int(spurious, 0, "wrap: no drop of a record of at most a "
	    "quarter ring while the ring is less than half full");
	ring_free(q);
}

/* The budget by count and by bytes, counting held records. */
static void
test_budget(void)
{
	struct pgm_mqueue *q;
	struct pgm_mrec	*r;
	struct shape	 s = { 0, 0, 56 };
	uint32_t	 len = shape_len(s);
	int		 rc[4], ok = 1;

	/* At most 3 records. */
	q = ring_new(65536, 3, 65536, -1);
	rc[0] = put_rec(q, 1, 1, s);
	rc[1] = put_rec(q, 1, 2, s);
	rc[2] = put_rec(q, 1, 3, s);
	rc[3] = put_rec(q, 1, 4, s);
	tap_ok(rc[0] == 0 && rc[1] == 0 && rc[2] == 0 && rc[3] == -1 &&
	    q->dropped_full == 1 && q->enqueued == 3,
	    "max_txns 3: three put, the fourth dropped (-1, dropped_full 1)");
	r = mqueue_get(q);
	tap_ok(r != NULL && put_rec(q, 1, 5, s) == -1 &&
	    q->dropped_full == 2, "max_txns: a taken record not done still "
	    "counts");
	if (r != NULL) {
		mqueue_done(q, r);
		free(r);
	}
	tap_ok(put_rec(q, 1, 6, s) == 0, "max_txns: once done, room again");
	ring_free(q);

	/* At most 3 records' bytes, in a larger ring. */
	q = ring_new(8192, 1000, 3 * len, -1);
	rc[0] = put_rec(q, 2, 1, s);
	rc[1] = put_rec(q, 2, 2, s);
	rc[2] = put_rec(q, 2, 3, s);
	rc[3] = put_rec(q, 2, 4, s);
	tap_ok(rc[0] == 0 && rc[1] == 0 && rc[2] == 0 && rc[3] == -1 &&
	    q->dropped_full == 1, "max_bytes of 3 records (%u bytes each): "
	    "the fourth dropped", len);
	r = mqueue_get(q);
	tap_ok(r != NULL && r->len == len && put_rec(q, 2, 5, s) == -1,
	    "max_bytes: a taken record not done still counts");
	if (r != NULL) {
		mqueue_done(q, r);
		free(r);
	}
	tap_ok(put_rec(q, 2, 6, s) == 0 && take(q, 0, &ok) == 2 &&
	    take(q, 0, &ok) == 3 && take(q, 0, &ok) == 6 && ok,
	    "max_bytes: once done, room again; order kept");
	s.byteslen = 3 * len;
	tap_ok(put_rec(q, 2, 7, s) == -2 && q->dropped_full == 3 &&
	    q->enqueued == 4, "a record over max_bytes but not over the ring: "
	    "-2, counted in dropped_full");
	ring_free(q);

	/* A record larger than the ring. */
	q = ring_new(1024, 1000, 1 << 20, -1);
	s.byteslen = 2000;
	rc[0] = put_rec(q, 3, 1, s);
	tap_ok(rc[0] == -2 && q->dropped_full == 1 && q->enqueued == 0 &&
	    q->count == 0, "a record larger than the ring: -2, dropped_full 1");
	s.byteslen = 1024 - sizeof(struct pgm_mrec);
	rc[0] = put_rec(q, 3, 2, s);
	rc[1] = take(q, 0, &ok) == 2 && ok ? 0 : -1;
	s.byteslen++;
	rc[2] = put_rec(q, 3, 3, s);
	tap_ok(rc[0] == 0 && rc[1] == 0 && rc[2] == -2,
	    "exactly the ring size fits; 1 byte more gives -2");
	mqueue_drop(q);
	tap_is_int(q->dropped_full, 3, "mqueue_drop counts in dropped_full");
	ring_free(q);
}

/*
 * An empty ring takes any record that fits in the ring, wherever the
 * records before left the positions.
 */
static void
test_empty_fits(void)
{
	struct pgm_mqueue *q = ring_new(1024, 1000, 1024, -1);
	struct shape	 s = { 0, 0, 0 };
	uint32_t	 first, txn = 0;
	int		 tries = 0, refused = 0, ok = 1, rc, i;

	/*
	 * Records of 64 to 1024 bytes, each followed by one of the whole
	 * ring (1024 bytes), each put into the empty ring and taken out.
	 */
	for (first = 0; first <= 960; first += 8) {
		for (i = 0; i < 2; i++) {
			s.byteslen = i == 0 ? first :
			    1024 - sizeof(struct pgm_mrec);
			if (mqueue_pending(q) || q->held_txns != 0)
				ok = 0;
			tries++;
			if ((rc = put_rec(q, 4, ++txn, s)) != 0) {
				if (refused++ == 0)
					tap_diag("empty ring at head = tail = "
					    "%llu refuses a %u-byte record: %d",
					    (unsigned long long)q->tail,
					    shape_len(s), rc);
			} else if (take(q, 0, &ok) != txn)
				ok = 0;
		}
	}
	tap_ok(ok, "records put in turn into an empty ring come out intact");
	tap_ok(refused == 0, "an empty ring of 1024 bytes takes any record of "
	    "up to 1024 bytes, wherever the positions were left (%d of %d "
	    "refused)", refused, tries);
	ring_free(q);
}

/* mqueue_stats: totals over rings, the largest lag. */
static void
test_stats(void)
{
	struct pgm_mqueue *q1, *q2;
	struct pgm_mstats st;
	struct pgm_mrec	 h, *ra;
	struct shape	 s = { 1, 0, 100 };
	int64_t		 now = 1000LL * 1000000000;	/* 1000 s */
	uint32_t	 len = shape_len(s), lenb;
	struct trec	 t;

	q1 = ring_new(65536, 100, 65536, -1);
	q2 = ring_new(65536, 100, 65536, -1);

	/* q1: A (3 s old) taken and held, B (1 s old) in the ring. */
	trec_make(&t, 5, 1, s);
	t.h.enqueued_ns = now - 3000000000LL;
	mqueue_put(q1, &t.h, t.stmts, t.params, t.bytes);
	trec_free(&t);
	trec_make(&t, 5, 2, s);
	t.h.enqueued_ns = now - 1000000000LL;
	t.h.byteslen = 40;
	mqueue_put(q1, &t.h, t.stmts, t.params, t.bytes);
	lenb = t.h.len;
	trec_free(&t);
	ra = mqueue_get(q1);
	memset(&st, 0, sizeof(st));
	mqueue_stats(q1, &st, now);
	tap_ok(st.enqueued == 2 && st.queue_length == 2 &&
	    st.queue_bytes == (uint64_t)len + lenb && st.lag_ms == 1000,
	    "stats of a ring: enqueued 2, length and bytes count the held "
	    "record, lag of the oldest in the ring (%lld ms)",
	    (long long)st.lag_ms);
	q1->held_oldest_ns = now - 3000000000LL;	/* the consumer says */
	memset(&st, 0, sizeof(st));
	mqueue_stats(q1, &st, now);
	tap_is_int(st.lag_ms, 3000, "stats: an older held record sets the "
	    "lag");

	/*
	 * q2: C (0.5 s old) taken and lost with its consumer, one record
	 * too big, D (7.5 s old, an older clock) left in the ring.
	 */
	trec_make(&t, 6, 1, s);
	t.h.enqueued_ns = now - 500000000LL;
	mqueue_put(q2, &t.h, t.stmts, t.params, t.bytes);
	trec_free(&t);
	memset(&h, 0, sizeof(h));
	h.byteslen = 70000;
	mqueue_put(q2, &h, NULL, NULL, NULL);	/* -2: too big */
	trec_make(&t, 6, 2, s);
	t.h.enqueued_ns = now - 7500000000LL;
	mqueue_put(q2, &t.h, t.stmts, t.params, t.bytes);
	trec_free(&t);
	free(mqueue_get(q2));			/* C: held, then lost */
	mqueue_consumer_start(q2);
	q2->replayed = 10;
	q2->errors = 2;
	q2->divergent = 1;
	q1->replayed = 5;

	memset(&st, 0, sizeof(st));
	mqueue_stats(q1, &st, now);
	mqueue_stats(q2, &st, now);
	tap_ok(st.enqueued == 4 && st.replayed == 15 && st.errors == 2 &&
	    st.divergent == 1, "stats of two rings: enqueued, replayed, "
	    "errors, divergent summed");
	tap_is_int(st.dropped, 2, "stats: dropped is dropped_full plus what "
	    "a dead consumer held");
	tap_ok(st.queue_length == 3 && st.queue_bytes == 2ULL * len + lenb,
	    "stats: queue_length 3 and queue_bytes summed");
	tap_is_int(st.lag_ms, 7500, "stats: lag is the largest of the rings, "
	    "not the first");
	memset(&st, 0, sizeof(st));
	mqueue_stats(q2, &st, now);
	mqueue_stats(q1, &st, now);
	tap_ok(st.lag_ms == 7500 && st.enqueued == 4, "stats: nor the last");
	if (ra != NULL) {
		mqueue_done(q1, ra);
		free(ra);
	}
	ring_free(q1);
	ring_free(q2);
}

/* A new consumer: held records are dropped, the epoch moves. */
static void
test_consumer_start(void)
{
	struct pgm_mqueue *q = ring_new(65536, 3, 65536, -1);
	struct pgm_mrec	*a, *b;
	struct shape	 s = { 1, 5, 30 };
	int		 ok = 1;

	put_rec(q, 8, 1, s);
	put_rec(q, 8, 2, s);
	put_rec(q, 8, 3, s);
	a = mqueue_get(q);
	b = mqueue_get(q);
	q->held_oldest_ns = 99;
	tap_ok(a != NULL && b != NULL && q->held_txns == 2 &&
	    put_rec(q, 8, 4, s) == -1, "two held and one queued fill a "
	    "budget of 3");
	free(a);	/* the consumer dies: never done */
	free(b);
	mqueue_consumer_start(q);
	tap_ok(q->dropped == 2 && q->held_txns == 0 && q->held_bytes == 0 &&
	    q->held_oldest_ns == 0, "consumer_start: the 2 held go to "
	    "dropped, nothing held");
	tap_is_int(q->epoch, 1, "consumer_start: epoch bumped");
	tap_ok(take(q, 0, &ok) == 3 && ok && put_rec(q, 8, 5, s) == 0,
	    "consumer_start: the queued record is still there; room again");
	mqueue_consumer_start(q);
	tap_ok(q->epoch == 2 && q->dropped == 2, "a second consumer_start: "
	    "epoch 2, nothing more dropped");
	take(q, 0, &ok);
	ring_free(q);
}

/* The eventfd: written when the consumer sleeps, not otherwise. */
static void
test_wake(void)
{
	struct pgm_mqueue *q;
	struct shape	 s = { 0, 0, 8 };
	uint64_t	 v = 0;
	ssize_t		 n;
	int		 efd, ok = 1;

	if ((efd = eventfd(0, EFD_NONBLOCK)) == -1) {
		perror("eventfd");
		abort();
	}
	q = ring_new(4096, 2, 4096, efd);
	q->sleeping = 1;
	put_rec(q, 1, 1, s);
	n = read(efd, &v, sizeof(v));
	tap_ok(n == 8 && v == 1 && q->sleeping == 0,
	    "sleeping consumer: a put writes 1 to the eventfd and clears "
	    "sleeping");
	put_rec(q, 1, 2, s);
	errno = 0;
	n = read(efd, &v, sizeof(v));
	tap_ok(n == -1 && errno == EAGAIN, "consumer awake: a put writes "
	    "nothing");
	q->sleeping = 1;
	tap_ok(put_rec(q, 1, 3, s) == -1 && read(efd, &v, sizeof(v)) == -1 &&
	    q->sleeping == 1, "a dropped record wakes nobody");
	mqueue_wake(q);
	tap_ok(read(efd, &v, sizeof(v)) == 8 && v == 1 && q->sleeping == 0,
	    "mqueue_wake wakes a sleeping consumer");
	take(q, 0, &ok);
	take(q, 0, &ok);
	ring_free(q);
	close(efd);
}

/* A process killed holding the ring's mutex does not block the ring. */
static void
test_robust(void)
{
	struct pgm_mqueue *q = ring_new(8192, 100, 8192, -1);
	struct shape	 s = { 2, 10, 300 };
	pthread_mutex_t	*m = (pthread_mutex_t *)(void *)q->lock;
	pid_t		 pid;
	FILE		*log;
	char		 text[512], c;
	size_t		 n;
	int		 p[2], status = 0, ok = 1, rc, saved;

	put_rec(q, 9, 1, s);
	if (pipe(p) == -1 || (pid = fork()) == -1) {
		perror("pipe/fork");
		abort();
	}
	if (pid == 0) {
		close(p[0]);
		pthread_mutex_lock(m);
		(void)write(p[1], "x", 1);
		for (;;)
			pause();
	}
	close(p[1]);
	tap_ok(read(p[0], &c, 1) == 1, "child holds the ring's mutex");
	close(p[0]);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	tap_ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	    "child killed with SIGKILL while holding it");
	/* Catch what mqueue logs on stderr while recovering. */
	fflush(stderr);
	if ((log = tmpfile()) == NULL || (saved = dup(2)) == -1 ||
	    dup2(fileno(log), 2) == -1) {
		perror("tmpfile/dup");
		abort();
	}
	rc = put_rec(q, 9, 2, s);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(log);
	n = fread(text, 1, sizeof(text) - 1, log);
	text[n] = '\0';
	fclose(log);
	tap_ok(rc == 0 && q->enqueued == 2, "put after the owner died: "
	    "queued");
	tap_ok(strstr(text, "a process died holding a mirror queue: "
	    "recovered") != NULL, "the recovery is logged");
	tap_ok(take(q, 0, &ok) == 1 && take(q, 0, &ok) == 2 && ok &&
	    take(q, 0, &ok) == 0, "get after it: both records, intact, in "
	    "order");
	rc = pthread_mutex_lock(m);
	tap_is_int(rc, 0, "the mutex was made consistent: a plain lock "
	    "succeeds");
	if (rc == 0 || rc == EOWNERDEAD)
		pthread_mutex_unlock(m);
	ring_free(q);
}

/*
 * A process killed at any point between two stores to a ring.  The
 * build of this test has mqueue's test hook (PGM_TEST_HOOKS): a child
 * process, producer or consumer, sets it to kill itself with SIGKILL
 * at one point; then this process goes on as the next producer and
 * consumer and takes everything.  No record may come out twice and
 * none may be lost but the one the producer was putting, or the ones
 * the dead consumer held (those counted in dropped: at most one more,
 * never fewer).  Records are of exact sizes in a ring of 4096 bytes.
 */
static int	 kill_point;

/* A child's test hook: die at kill_point. */
static void
die_at(int point)
{
	if (point == kill_point)
		kill(getpid(), SIGKILL);
}

/* A record of exactly len bytes. */
static struct shape
sized(uint32_t len)
{
	struct shape	 s = { 0, 0, len - (uint32_t)sizeof(struct pgm_mrec) };

	return s;
}

/* Where a ring is left before the child runs. */
enum kill_setup {
	KS_EMPTY,	/* empty at offset 512, old records 2..7 after it */
	KS_PAD,		/* 7 queued, at 3072; the next 1024 needs a filler */
	KS_FILLER,	/* a filler at the tail, then 8 (1024 bytes) */
	KS_THREE,	/* 1, 2 and 3 queued */
	KS_HELD		/* 1 taken and never done, 2 and 3 queued */
};

/* What the child does. */
enum kill_child {
	KC_PUT,		/* puts 9, of 1024 bytes */
	KC_TAKE,	/* takes and is done with records until the ring is empty */
	KC_START	/* starts as the new consumer */
};

struct kill_case {
	int		 point;
	const char	*where;
	enum kill_setup	 setup;
	enum kill_child	 child;
	uint32_t	 want[6];	/* what comes out after, 0 ends */
	uint64_t	 lost;		/* held by a dead consumer */
};

static const struct kill_case kill_cases[] = {
	{ MQTP_PUT_FILLER, "put into an empty ring, its filler written",
	    KS_EMPTY, KC_PUT, { 10 }, 0 },
	{ MQTP_PUT_EMPTY_HEAD, "put into an empty ring, between moving head "
	    "and tail", KS_EMPTY, KC_PUT, { 10 }, 0 },
	{ MQTP_PUT_EMPTY_TAIL, "put into an empty ring, both moved",
	    KS_EMPTY, KC_PUT, { 10 }, 0 },
	{ MQTP_PUT_COPIED, "put into an empty ring, record copied",
	    KS_EMPTY, KC_PUT, { 10 }, 0 },
	{ MQTP_PUT_HEAD, "put into an empty ring, head moved",
	    KS_EMPTY, KC_PUT, { 9, 10 }, 0 },
	{ MQTP_PUT_COUNT, "put into an empty ring, count moved",
	    KS_EMPTY, KC_PUT, { 9, 10 }, 0 },
	{ MQTP_PUT_COPIED, "put with a filler, record copied",
	    KS_PAD, KC_PUT, { 7, 10 }, 0 },
	{ MQTP_PUT_HEAD, "put with a filler, head moved",
	    KS_PAD, KC_PUT, { 7, 9, 10 }, 0 },
	{ MQTP_PUT_COUNT, "put with a filler, count moved",
	    KS_PAD, KC_PUT, { 7, 9, 10 }, 0 },
	{ MQTP_GET_TXNS, "get, held_txns counted",
	    KS_THREE, KC_TAKE, { 1, 2, 3, 10 }, 0 },
	{ MQTP_GET_BYTES, "get, held_bytes counted",
	    KS_THREE, KC_TAKE, { 1, 2, 3, 10 }, 0 },
	{ MQTP_GET_TAIL, "get, tail moved",
	    KS_THREE, KC_TAKE, { 2, 3, 10 }, 1 },
	{ MQTP_GET_WRAP, "get, past a filler",
	    KS_FILLER, KC_TAKE, { 8, 10 }, 0 },
	{ MQTP_DONE_TXNS, "done, held_txns down",
	    KS_THREE, KC_TAKE, { 2, 3, 10 }, 0 },
	{ MQTP_START_DROPPED, "consumer_start, held counted as dropped",
	    KS_HELD, KC_START, { 2, 3, 10 }, 1 },
};

/* Leave the ring as setup says.  Returns 0, or -1 if it went wrong. */
static int
kill_setup(struct pgm_mqueue *q, enum kill_setup setup)
{
	struct pgm_mrec	*r;
	uint32_t	 t;
	int		 ok = 1;

	if (setup == KS_THREE || setup == KS_HELD) {
		for (t = 1; t <= 3; t++)
			if (put_rec(q, 20, t, sized(512)) != 0)
				return -1;
		if (setup == KS_HELD) {
			/* Taken by a consumer that then died. */
			if ((r = mqueue_get(q)) == NULL || r->txn != 1)
				return -1;
			free(r);
		}
		return 0;
	}
	for (t = 1; t <= 7; t++)
		if (put_rec(q, 20, t, sized(512)) != 0)
			return -1;
	for (t = 1; t <= (setup == KS_EMPTY ? 7u : 6u); t++)
		if (take(q, 0, &ok) != t)
			return -1;
	if (setup == KS_EMPTY) {
		if (put_rec(q, 20, 8, sized(512)) != 0 || take(q, 0, &ok) != 8)
			return -1;
	} else if (setup == KS_FILLER) {
		if (put_rec(q, 20, 8, sized(1024)) != 0 || take(q, 0, &ok) != 7)
			return -1;
	}
	return ok ? 0 : -1;
}

/* The child: what c says, dying at c->point. */
static void
kill_child(struct pgm_mqueue *q, const struct kill_case *c)
{
	struct pgm_mrec	*r;

	kill_point = c->point;
	mqueue_test_hook = die_at;
	switch (c->child) {
	case KC_PUT:
		(void)put_rec(q, 20, 9, sized(1024));
		break;
	case KC_TAKE:
		while ((r = mqueue_get(q)) != NULL) {
			mqueue_done(q, r);
			free(r);
		}
		break;
	case KC_START:
		mqueue_consumer_start(q);
		break;
	}
	_exit(0);
}

static void
test_kill_points(void)
{
	const struct kill_case *c;
	struct pgm_mqueue *q;
	char		 got[64], want[64];
	uint32_t	 txn;
	pid_t		 pid;
	size_t		 i, k;
	struct pgm_mstats st;
	int		 status, ok, rc, saved, devnull, stats_ok;

	for (i = 0; i < sizeof(kill_cases) / sizeof(kill_cases[0]); i++) {
		c = &kill_cases[i];
		q = ring_new(4096, 1000, 4096, -1);
		if (kill_setup(q, c->setup) == -1) {
			tap_ok(0, "killed in %s: setup", c->where);
			tap_ok(0, "killed in %s: records", c->where);
			tap_ok(0, "killed in %s: counters", c->where);
			ring_free(q);
			continue;
		}
		fflush(stdout);
		fflush(stderr);
		if ((pid = fork()) == -1) {
			perror("fork");
			abort();
		}
		if (pid == 0)
			kill_child(q, c);
		status = 0;
		waitpid(pid, &status, 0);
		tap_ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		    "killed in %s: the child died at that point", c->where);

		/* The recovery warning is test_robust's business. */
		if ((devnull = open("/dev/null", O_WRONLY)) == -1 ||
		    (saved = dup(2)) == -1 || dup2(devnull, 2) == -1) {
			perror("dup");
			abort();
		}
		if (c->child != KC_PUT)
			mqueue_consumer_start(q);
		/* Nothing queued but 10 to come: stats must say empty. */
		memset(&st, 0, sizeof(st));
		mqueue_stats(q, &st, 10000000000000LL);
		stats_ok = (c->want[0] == 10) == (st.queue_bytes == 0 &&
		    st.lag_ms == 0);
		rc = put_rec(q, 20, 10, sized(2048));
		ok = 1;
		got[0] = '\0';
		while ((txn = take(q, 0, &ok)) != 0 && strlen(got) < 48)
			snprintf(got + strlen(got), sizeof(got) - strlen(got),
			    "%s%u", got[0] ? " " : "", txn);
		dup2(saved, 2);
		close(saved);
		close(devnull);
		want[0] = '\0';
		for (k = 0; c->want[k] != 0; k++)
			snprintf(want + strlen(want), sizeof(want) -
			    strlen(want), "%s%u", k ? " " : "", c->want[k]);
		if (strcmp(got, want) != 0)
			tap_diag("taken: \"%s\", want \"%s\"", got, want);
		tap_ok(rc == 0 && ok && strcmp(got, want) == 0 &&
		    q->head == q->tail, "killed in %s: then %s taken, each "
		    "once and intact, and a 2048-byte record put after it "
		    "too; the ring ends empty", c->where, want);
		if (!stats_ok)
			tap_diag("stats before 10: queue_bytes %llu, lag_ms "
			    "%lld", (unsigned long long)st.queue_bytes,
			    (long long)st.lag_ms);
		tap_ok(stats_ok && q->dropped_full == 0 && q->held_txns == 0 &&
		    q->dropped >= c->lost && q->dropped <= c->lost + 1,
		    "killed in %s: stats see what is queued; dropped %llu for "
		    "the %llu the dead consumer held (never fewer, at most one "
		    "more)", c->where, (unsigned long long)q->dropped,
		    (unsigned long long)c->lost);
		ring_free(q);
	}
}

/* Four producer processes, one consumer. */
#define NPROD		4
#define PER_PROD	4000
#define PROD_BMAX	1500

struct tally {
	volatile uint64_t ok[NPROD];
	volatile uint64_t full[NPROD];
	volatile uint64_t never[NPROD];
};

static void
test_producers(void)
{
	struct pgm_mqueue *q = ring_new(16384, 64, 16384, -1);
	struct tally	*ty;
	struct pgm_mrec	*r;
	pid_t		 pids[NPROD];
	uint32_t	 last[NPROD + 1], t;
	uint64_t	 got[NPROD + 1], sumok = 0;
	int		 i, alive, status, exits_ok = 1, ok = 1, order = 1;
	int		 strange = 0, counts = 1, was_done, rc;

	ty = mmap(NULL, sizeof(*ty), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ty == MAP_FAILED) {
		perror("mmap");
		abort();
	}
	memset(ty, 0, sizeof(*ty));
	memset(last, 0, sizeof(last));
	memset(got, 0, sizeof(got));
	fflush(stdout);
	for (i = 0; i < NPROD; i++) {
		if ((pids[i] = fork()) == -1) {
			perror("fork");
			abort();
		}
		if (pids[i] != 0)
			continue;
		for (t = 1; t <= PER_PROD; t++) {
			rc = put_rec(q, (uint64_t)i + 1, t,
			    shape_of((uint64_t)i + 1, t, PROD_BMAX));
			if (rc == 0)
				ty->ok[i]++;
			else if (rc == -1)
				ty->full[i]++;
			else
				ty->never[i]++;
			if (t % 64 == 0)
				sched_yield();
		}
		_exit(0);
	}
	alive = NPROD;
	for (;;) {
		was_done = alive == 0;
		if ((r = mqueue_get(q)) != NULL) {
			if (!rec_ok(r, PROD_BMAX))
				ok = 0;
			if (r->session < 1 || r->session > NPROD)
				strange++;
			else {
				if (r->txn <= last[r->session])
					order = 0;
				last[r->session] = r->txn;
				got[r->session]++;
			}
			mqueue_done(q, r);
			free(r);
			continue;
		}
		if (was_done)
			break;
		for (i = 0; i < NPROD; i++) {
			if (pids[i] == 0)
				continue;
			if (waitpid(pids[i], &status, WNOHANG) == pids[i]) {
				if (!WIFEXITED(status) ||
				    WEXITSTATUS(status) != 0)
					exits_ok = 0;
				pids[i] = 0;
				alive--;
			}
		}
		sched_yield();
	}
	for (i = 0; i < NPROD; i++) {
		sumok += ty->ok[i];
		if (got[i + 1] != ty->ok[i] || ty->never[i] != 0)
			counts = 0;
		tap_diag("producer %d: %llu queued, %llu dropped, %llu taken",
		    i + 1, (unsigned long long)ty->ok[i],
		    (unsigned long long)ty->full[i],
		    (unsigned long long)got[i + 1]);
	}
	tap_ok(exits_ok, "4 producers each put %d records and exited 0",
	    PER_PROD);
	tap_ok(ok && strange == 0, "every record taken is intact");
	tap_ok(order, "each session's records come in order");
	tap_ok(counts && sumok > 0, "each producer's queued records all "
	    "taken, none lost");
	tap_ok(q->enqueued == sumok && q->enqueued + q->dropped_full ==
	    (uint64_t)NPROD * PER_PROD, "enqueued + dropped_full == %d "
	    "attempts", NPROD * PER_PROD);
	tap_ok(q->count == 0 && q->held_txns == 0 && q->head == q->tail,
	    "ring empty at the end");
	munmap(ty, sizeof(*ty));
	ring_free(q);
}

/* The hook of a producer that stops, holding the lock, at kill_point. */
static void
stop_at(int point)
{
	if (point == kill_point)
		kill(getpid(), SIGSTOP);
}

/*
 * A producer stopped (not dead) while it holds the ring's mutex: the
 * robust mutex does nothing for it, yet mqueue_stats, which the
 * supervisor calls, must answer at once, and see what is queued.
 */
static void
test_stopped_producer(void)
{
	struct pgm_mqueue *q;
	struct pgm_mstats st;
	pid_t		 pid, reader;
	int		 status = 0, rstatus = 0;

	q = ring_new(8192, 1000, 8192, -1);
	tap_ok(put_rec(q, 1, 1, sized(512)) == 0 && put_rec(q, 1, 2,
	    sized(512)) == 0, "stopped producer: two records queued");
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1) {
		perror("fork");
		abort();
	}
	if (pid == 0) {
		kill_point = MQTP_PUT_COPIED;
		mqueue_test_hook = stop_at;
		(void)put_rec(q, 2, 1, sized(512));
		_exit(0);
	}
	waitpid(pid, &status, WUNTRACED);
	tap_ok(WIFSTOPPED(status), "stopped producer: stopped inside put, "
	    "the lock held");
	/* The reader runs in a child of its own, killed if it hangs. */
	if ((reader = fork()) == 0) {
		alarm(5);
		memset(&st, 0, sizeof(st));
		mqueue_stats(q, &st, mqueue_now_ns() + 2000000000LL);
		_exit(st.queue_length == 2 && st.queue_bytes == 1024 &&
		    st.enqueued == 2 && st.lag_ms >= 2000 ? 0 : 1);
	}
	waitpid(reader, &rstatus, 0);
	tap_ok(WIFEXITED(rstatus) && WEXITSTATUS(rstatus) == 0,
	    "stopped producer: mqueue_stats answers without the lock, with "
	    "2 records, 1024 bytes and their lag");
	kill(pid, SIGCONT);
	waitpid(pid, &status, 0);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    mqueue_pending(q), "stopped producer: once continued, it puts its "
	    "record");
	ring_free(q);
}

int
main(void)
{
	log_init(1, 0);
	log_setproc("test_mqueue", -1);
	tap_plan(62 + 3 * 15);
	test_roundtrip();
	test_fifo();
	test_wrap();
	test_budget();
	test_empty_fits();
	test_stats();
	test_consumer_start();
	test_wake();
	test_robust();
	test_kill_points();
	test_producers();
	test_stopped_producer();
	return tap_done();
}
