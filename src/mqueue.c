/*
 * mqueue.c: the mirror queues, rings of transaction records in shared
 * memory.
 *
 * Each mirror has one ring per mirror worker; a session's records all go
 * to the ring of the worker that replays that session, so the records
 * of a session stay in order and each ring has a single consumer.
 * Client workers are the producers.
 *
 * Layout of a ring: `size` bytes of data and two byte positions that
 * only grow, head (where the next record goes) and tail (the oldest
 * record); the bytes in use are [tail, head) modulo size.  A record
 * (struct pgm_mrec, 8-byte aligned) is never split: when it does not
 * fit before the end of the data, a filler record (mirror MREC_WRAP)
 * takes the rest and the record starts at offset 0.  An empty ring
 * starts again at offset 0, so any record up to its size fits.
 *
 * Concurrency: head, tail and count change only under the ring's
 * mutex, which is process-shared and robust.  Statistics are read
 * without it (mqueue_stats, for the supervisor, which takes no lock in
 * shared memory): every counter is stored atomically by its one writer
 * or under the lock, and the oldest record's time is read between two
 * equal loads of tail (mqueue_peek).  head and tail alone say
 * what the ring holds; count is for the budget and the statistics.
 * Invariant: each store to the positions leaves a whole ring, so that
 * a process killed at any instruction leaves one.  A producer copies
 * its record into the free space and only then moves head, in one
 * store; the consumer copies the oldest record out to its own memory
 * and then moves tail.  To start an empty ring again at offset 0, a
 * producer writes a filler from head to the end of the data, moves
 * head past it, and only then moves tail to head: killed in between,
 * it leaves that filler alone queued, which counts as empty (never the
 * old records behind head).  These stores are atomic release stores,
 * so no build reorders them.  The next locker after a death gets
 * EOWNERDEAD, marks the mutex consistent and goes on; there is nothing
 * to repair, and no lock stays held by a dead process.  The only loss
 * is the record being put and a counter update the dead process had
 * not made yet (count then errs by one until the ring is next empty).
 * The consumer counts a record as held before it moves tail, and a new
 * consumer counts what the dead one held as dropped before clearing
 * it: a consumer killed in between leaves a drop counted that did not
 * happen (the record is still queued, or was counted already), never
 * a loss uncounted.  The unit test kills a process at each of these
 * points (MQUEUE_TEST_POINT, empty in the daemon).
 *
 * The budget of a ring counts what the consumer holds as well (taken
 * from the ring, not yet replayed: held_txns and held_bytes, written by
 * the consumer alone), so the memory a mirror uses is bounded even when
 * its consumer empties the ring at once.  A producer never waits: a
 * record over the budget is dropped and counted.  When the consumer has
 * said it is going to sleep, the producer that adds a record wakes it
 * through its eventfd; under load the consumer does not sleep and no
 * wake-up is written.
 */
#include <sys/eventfd.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgmirror.h"

_Static_assert(sizeof(pthread_mutex_t) <= 64, "mutex fits the lock field");
_Static_assert(sizeof(struct pgm_mrec) % 8 == 0, "records stay aligned");
_Static_assert(sizeof(struct pgm_mstmt) % 8 == 0, "records stay aligned");

#ifdef PGM_TEST_HOOKS
void (*mqueue_test_hook)(int);
#endif

#define MQ_LOCK(q)	((pthread_mutex_t *)(void *)(q)->lock)

/* Store a value that mqueue_stats reads without the lock. */
#define MQ_SET(field, v)	__atomic_store_n(&(field), (v), __ATOMIC_RELAXED)
#define MQ_GET(field)		__atomic_load_n(&(field), __ATOMIC_RELAXED)

/* Monotonic clock in nanoseconds: enqueue times and lag. */
int64_t
mqueue_now_ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Set up a ring over size bytes of data (a multiple of 8), with a budget
 * of max_txns records and max_bytes bytes, waking its consumer through
 * efd (-1: never).  Returns 0 or -1.
 */
int
mqueue_init(struct pgm_mqueue *q, void *data, uint64_t size,
    uint32_t max_txns, uint64_t max_bytes, int efd)
{
	pthread_mutexattr_t ma;
	int		 rc;

	memset(q, 0, sizeof(*q));
	q->data = data;
	q->size = size & ~(uint64_t)7;
	q->max_txns = max_txns;
	q->max_bytes = max_bytes;
	q->efd = efd;
	if (pthread_mutexattr_init(&ma) != 0)
		return -1;
	rc = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) != 0 ||
	    pthread_mutex_init(MQ_LOCK(q), &ma) != 0 ? -1 : 0;
	pthread_mutexattr_destroy(&ma);
	return rc;
}

/* Take the ring's mutex, recovering it from a process that died. */
static void
mqueue_lock(struct pgm_mqueue *q)
{
	if (pthread_mutex_lock(MQ_LOCK(q)) == EOWNERDEAD) {
		/* Each store left a whole ring: nothing to repair. */
		pthread_mutex_consistent(MQ_LOCK(q));
		log_warnx("a process died holding a mirror queue: recovered");
	}
}

static void
mqueue_unlock(struct pgm_mqueue *q)
{
	pthread_mutex_unlock(MQ_LOCK(q));
}

/* Wake the consumer if it said it is going to sleep. */
void
mqueue_wake(struct pgm_mqueue *q)
{
	uint64_t	 one = 1;

	if (q->efd >= 0 && __atomic_exchange_n(&q->sleeping, 0,
	    __ATOMIC_SEQ_CST) != 0)
		(void)write(q->efd, &one, sizeof(one));
}

/*
 * Is the ring empty?  A filler alone counts as empty: a producer
 * killed in mqueue_restart leaves one, and no put leaves one otherwise.
 */
static int
mqueue_empty(struct pgm_mqueue *q)
{
	const struct pgm_mrec *w;

	if (q->head == q->tail)
		return 1;
	w = (const struct pgm_mrec *)(q->data + q->tail % q->size);
	return w->mirror == MREC_WRAP && q->tail + w->len == q->head;
}

/*
 * Start an empty ring again at offset 0, where any record fits: a
 * filler from head to the end of the data, head moved past it, then
 * tail.  Each store leaves a whole ring (see the header).
 */
static void
mqueue_restart(struct pgm_mqueue *q)
{
	struct pgm_mrec	*w;
	uint64_t	 off;

	MQ_SET(q->count, 0);
	/* A filler alone, ending at the end of the data: skip it. */
	if (q->tail != q->head)
		__atomic_store_n(&q->tail, q->head, __ATOMIC_RELEASE);
	if ((off = q->head % q->size) == 0)
		return;
	/* off and size are multiples of 8: the filler's header fits. */
	w = (struct pgm_mrec *)(q->data + off);
	w->len = (uint32_t)(q->size - off);
	w->mirror = MREC_WRAP;
	MQUEUE_TEST_POINT(MQTP_PUT_FILLER);
	__atomic_store_n(&q->head, q->head + (q->size - off),
	    __ATOMIC_RELEASE);
	MQUEUE_TEST_POINT(MQTP_PUT_EMPTY_HEAD);
	__atomic_store_n(&q->tail, q->head, __ATOMIC_RELEASE);
	MQUEUE_TEST_POINT(MQTP_PUT_EMPTY_TAIL);
}

/*
 * Put a record: the header r (its len is set here) and the parts its
 * counts describe.  Returns 0 when queued, -1 when dropped for the
 * budget or a full ring, -2 when it can never fit.
 */
int
mqueue_put(struct pgm_mqueue *q, struct pgm_mrec *r,
    const struct pgm_mstmt *stmts, const char *params, const uint8_t *bytes)
{
	uint64_t	 len, used, off, pad;
	uint8_t		*p;

	len = sizeof(*r) + (uint64_t)r->nstmts * sizeof(*stmts) +
	    r->paramslen + r->byteslen;
	len = (len + 7) & ~(uint64_t)7;
	if (len > q->size || len > q->max_bytes || len > UINT32_MAX) {
		mqueue_drop(q);
		return -2;
	}
	r->len = (uint32_t)len;
	mqueue_lock(q);
	if (mqueue_empty(q))
		mqueue_restart(q);
	used = q->head - q->tail;
	off = q->head % q->size;
	pad = off + len > q->size ? q->size - off : 0;
	if (q->count + __atomic_load_n(&q->held_txns, __ATOMIC_RELAXED) >=
	    q->max_txns || used + __atomic_load_n(&q->held_bytes,
	    __ATOMIC_RELAXED) + len > q->max_bytes ||
	    used + pad + len > q->size) {
		MQ_SET(q->dropped_full, q->dropped_full + 1);
		mqueue_unlock(q);
		return -1;
	}
	if (pad > 0) {
		struct pgm_mrec *w = (struct pgm_mrec *)(q->data + off);

		/* pad is a multiple of 8, and 8 bytes hold len and mirror */
		w->len = (uint32_t)pad;
		w->mirror = MREC_WRAP;
		off = 0;
	}
	p = q->data + off;
	memcpy(p, r, sizeof(*r));
	p += sizeof(*r);
	if (r->nstmts > 0) {
		memcpy(p, stmts, r->nstmts * sizeof(*stmts));
		p += r->nstmts * sizeof(*stmts);
	}
	if (r->paramslen > 0) {
		memcpy(p, params, r->paramslen);
		p += r->paramslen;
	}
	if (r->byteslen > 0)
		memcpy(p, bytes, r->byteslen);
	MQUEUE_TEST_POINT(MQTP_PUT_COPIED);
	__atomic_store_n(&q->head, q->head + pad + len, __ATOMIC_RELEASE);
	MQUEUE_TEST_POINT(MQTP_PUT_HEAD);
	MQ_SET(q->count, q->count + 1);
	MQUEUE_TEST_POINT(MQTP_PUT_COUNT);
	MQ_SET(q->enqueued, q->enqueued + 1);
	mqueue_unlock(q);
	mqueue_wake(q);
	return 0;
}

/* Count a record that was dropped before it could be put. */
void
mqueue_drop(struct pgm_mqueue *q)
{
	mqueue_lock(q);
	MQ_SET(q->dropped_full, q->dropped_full + 1);
	mqueue_unlock(q);
}

/*
 * Take the oldest record into memory of our own (free() it), or NULL
 * when the ring is empty (or memory is short).  Consumer only.
 */
struct pgm_mrec *
mqueue_get(struct pgm_mqueue *q)
{
	struct pgm_mrec	*r, *copy = NULL;
	uint64_t	 off, room;

	if (!mqueue_pending(q))
		return NULL;
	mqueue_lock(q);
	while (q->tail != q->head) {
		off = q->tail % q->size;
		r = (struct pgm_mrec *)(q->data + off);
		room = q->size - off < q->head - q->tail ? q->size - off :
		    q->head - q->tail;
		if (r->len < 8 || r->len % 8 != 0 || r->len > room ||
		    (r->mirror != MREC_WRAP && r->len < sizeof(*r))) {
			/* Only a bug can get here: start the ring afresh. */
			log_warnx("mirror queue damaged: %llu bytes dropped",
			    (unsigned long long)(q->head - q->tail));
			MQ_SET(q->dropped_full, q->dropped_full + q->count);
			q->tail = q->head;
			MQ_SET(q->count, 0);
					break;
		}
		if (r->mirror == MREC_WRAP) {
			__atomic_store_n(&q->tail, q->tail + r->len,
			    __ATOMIC_RELEASE);
			MQUEUE_TEST_POINT(MQTP_GET_WRAP);
			continue;
		}
		if ((copy = malloc(r->len)) == NULL)
			break;
		memcpy(copy, r, r->len);
		/* Held first: the budget never counts it out too soon. */
		__atomic_store_n(&q->held_txns, q->held_txns + 1,
		    __ATOMIC_RELAXED);
		MQUEUE_TEST_POINT(MQTP_GET_TXNS);
		__atomic_store_n(&q->held_bytes, q->held_bytes + r->len,
		    __ATOMIC_RELAXED);
		MQUEUE_TEST_POINT(MQTP_GET_BYTES);
		__atomic_store_n(&q->tail, q->tail + r->len, __ATOMIC_RELEASE);
		MQUEUE_TEST_POINT(MQTP_GET_TAIL);
		if (q->count > 0)
			MQ_SET(q->count, q->count - 1);
		break;
	}
	mqueue_unlock(q);
	return copy;
}

/* The consumer is done with a record it took.  Consumer only. */
void
mqueue_done(struct pgm_mqueue *q, const struct pgm_mrec *r)
{
	__atomic_store_n(&q->held_txns, q->held_txns - 1, __ATOMIC_RELAXED);
	MQUEUE_TEST_POINT(MQTP_DONE_TXNS);
	__atomic_store_n(&q->held_bytes, q->held_bytes - r->len,
	    __ATOMIC_RELAXED);
}

/*
 * A new consumer takes over the ring: what the previous one held died
 * with it, so it is counted as dropped, and the epoch tells producers
 * that their sessions must be introduced again.
 */
void
mqueue_consumer_start(struct pgm_mqueue *q)
{
	/* Counted before cleared: a death between counts twice, not never. */
	__atomic_store_n(&q->dropped, q->dropped + q->held_txns,
	    __ATOMIC_RELEASE);
	MQUEUE_TEST_POINT(MQTP_START_DROPPED);
	__atomic_store_n(&q->held_txns, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&q->held_bytes, 0, __ATOMIC_RELAXED);
	q->held_oldest_ns = 0;
	__atomic_add_fetch(&q->epoch, 1, __ATOMIC_SEQ_CST);
}

/* Records waiting in the ring? */
int
mqueue_pending(struct pgm_mqueue *q)
{
	return __atomic_load_n(&q->head, __ATOMIC_ACQUIRE) !=
	    __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE);
}

/*
 * What the ring holds, read without the lock: its bytes, and the
 * enqueue time of its oldest record (0 if none).  The oldest record
 * cannot be overwritten while tail stays where it was read (producers
 * write only free space, and start an empty ring again only after
 * moving tail), so what was read between two equal loads of tail is
 * whole.  Returns 0, or -1 if tail kept moving.
 */
static int
mqueue_peek(struct pgm_mqueue *q, uint64_t *bytes, int64_t *oldest)
{
	const struct pgm_mrec *r;
	uint64_t	 tail, head;
	uint32_t	 len;
	int		 tries;

	for (tries = 0; tries < 8; tries++) {
		*bytes = 0;
		*oldest = 0;
		tail = __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE);
		head = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
		if (head != tail) {
			r = (const struct pgm_mrec *)(q->data + tail % q->size);
			len = __atomic_load_n(&r->len, __ATOMIC_RELAXED);
			if (__atomic_load_n(&r->mirror, __ATOMIC_RELAXED) ==
			    MREC_WRAP)
				r = tail + len == head ? NULL :
				    (const struct pgm_mrec *)q->data;
			if (r != NULL) {
				*bytes = head - tail;
				*oldest = __atomic_load_n(&r->enqueued_ns,
				    __ATOMIC_RELAXED);
			}
		}
		if (__atomic_load_n(&q->tail, __ATOMIC_ACQUIRE) == tail)
			return 0;
	}
	return -1;
}

/*
 * Add a ring's counters to a mirror's totals; lag is the largest.
 * Takes no lock: it reads what producers and the consumer publish, so
 * the supervisor never waits on a process that holds the ring's mutex
 * (one stopped, not dead, would hold it for ever).  Each value is
 * whole; together they may be a moment apart.
 */
void
mqueue_stats(struct pgm_mqueue *q, struct pgm_mstats *st, int64_t now)
{
	int64_t		 oldest, held;
	uint64_t	 bytes;

	st->enqueued += MQ_GET(q->enqueued);
	st->dropped += MQ_GET(q->dropped_full);
	st->queue_length += MQ_GET(q->count);
	if (mqueue_peek(q, &bytes, &oldest) == 0)
		st->queue_bytes += bytes;
	else
		oldest = 0;	/* the consumer is busy: it is not behind */
	st->replayed += MQ_GET(q->replayed);
	st->errors += MQ_GET(q->errors);
	st->divergent += MQ_GET(q->divergent);
	st->dropped += MQ_GET(q->dropped);
	st->queue_length += MQ_GET(q->held_txns);
	st->queue_bytes += MQ_GET(q->held_bytes);
	held = MQ_GET(q->held_oldest_ns);
	if (held != 0 && (oldest == 0 || held < oldest))
		oldest = held;
	if (oldest != 0 && (now - oldest) / 1000000 > st->lag_ms)
		st->lag_ms = (now - oldest) / 1000000;
}
