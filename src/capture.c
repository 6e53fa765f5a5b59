/*
 * capture.c: cutting a mirrored session into committed transactions.
 *
 * The worker serving a mirrored session feeds this module the bytes it
 * relays, both ways.  The client's bytes are kept from the start of the
 * current transaction on; the server's are only looked at.  Each Query,
 * FunctionCall and Sync the client sends is a unit the server will end
 * with a ReadyForQuery; the units are kept in order with where each ends
 * in the client's stream (a Query's unit also takes the COPY data that
 * follows it).  Each CommandComplete adds a statement result: its tag,
 * the DataRows before it, and the sum of their hashes (a sum, so the
 * order of rows does not matter); an ErrorResponse adds one too, its
 * tag being "ERROR" and the SQLSTATE, as an error a transaction
 * recovered from with a savepoint is part of what it did.  At a
 * ReadyForQuery with status idle
 * the transaction is over: the bytes up to the end of that unit, with
 * the statement results, go to the done callback, marked committed
 * unless the last unit had an error or the transaction's last tag was
 * ROLLBACK (which is also what COMMIT answers in a failed
 * transaction).  Bytes the client pipelined beyond that unit stay for
 * the next transaction, and so do the named statements a transaction
 * that is not replayed prepared (capture_keep_statements).
 *
 * The module does no I/O and allocates only to grow its buffers, so a
 * busy session reaches a steady size and then allocates nothing.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgmirror.h"

/*
 * Room for what a client sends ahead of the answers, beyond the largest
 * transaction: a pipeline of small transactions is not an overflow.
 */
#define CAPTURE_SLACK	(8 * 1024 * 1024)
#define CAPTURE_KEEP_CAP (1024 * 1024)	/* buffers kept between sessions */

/*
 * Set up a capture; transactions over max_bytes are reported as such,
 * without their bytes.
 */
void
capture_init(struct pgm_capture *c, size_t max_bytes,
    uint64_t (*next_seq)(void *),
    void (*done)(void *, const struct pgm_capture_txn *), void *arg)
{
	memset(c, 0, sizeof(*c));
	buf_init(&c->bytes);
	buf_init(&c->keep);
	c->max_bytes = max_bytes;
	c->next_seq = next_seq;
	c->done = done;
	c->arg = arg;
	capture_reset(c);
}

/* Forget everything of the session followed so far; keep the buffers. */
void
capture_reset(struct pgm_capture *c)
{
	/* A session's burst is not kept for the life of the worker. */
	if (c->bytes.cap > CAPTURE_KEEP_CAP) {
		buf_free(&c->bytes);
		buf_init(&c->bytes);
	}
	if ((size_t)c->capstmts * sizeof(*c->stmts) > CAPTURE_KEEP_CAP) {
		free(c->stmts);
		c->stmts = NULL;
		c->capstmts = 0;
	}
	buf_reset(&c->bytes);
	buf_reset(&c->keep);
	c->too_many = 0;
	c->base = c->fed = c->skip_to = 0;
	c->overflow = 0;
	scan_init(&c->cscan, PGM_MESSAGE_MAX);
	scan_init(&c->sscan, PGM_MESSAGE_MAX);
	c->nunits = 0;
	c->nstmts = 0;
	c->rows = 0;
	c->hash = 0;
	c->status = 'I';
	c->nready = 0;
	c->parsed = c->closed = 0;
	c->error = 0;
	c->rolled_back = 0;
	c->last_request = 0;
	c->syncs_after_execute = 0;
	c->copy_in_ext = 0;
	c->failed = 0;
}

void
capture_free(struct pgm_capture *c)
{
	buf_free(&c->bytes);
	buf_free(&c->keep);
	free(c->units);
	free(c->stmts);
	c->units = NULL;
	c->stmts = NULL;
	c->capunits = c->capstmts = 0;
}

/* Grow an array of n elements of size sz to hold one more. */
static int
capture_grow(void **p, int *cap, int n, size_t sz)
{
	void		*np;
	int		 ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	if ((np = realloc(*p, (size_t)ncap * sz)) == NULL)
		return -1;
	*p = np;
	*cap = ncap;
	return 0;
}

/* Note a unit the client sent; end 0 leaves it open. */
static void
capture_unit(struct pgm_capture *c, uint64_t end, int64_t now)
{
	struct pgm_capture_unit *u;

	if (capture_grow((void **)&c->units, &c->capunits, c->nunits,
	    sizeof(*u)) == -1) {
		c->failed = 1;
		return;
	}
	u = &c->units[c->nunits++];
	u->end = end;
	u->open = end == 0;
	u->sent_ns = now;
	/*
	 * A unit sent inside a transaction, with nothing before it still
	 * unanswered, may be the COMMIT: take its place in the commit order
	 * now, as it goes to the server.  Others take theirs when answered.
	 */
	u->seq = c->nunits == 1 && c->status != 'I' && c->next_seq ?
	    c->next_seq(c->arg) : 0;
}

/* Feed bytes the client sent, as they are relayed. */
void
capture_client(struct pgm_capture *c, const uint8_t *p, size_t n,
    int64_t now)
{
	size_t		 off = 0, used, skip = 0;
	uint64_t	 start;
	enum pgm_scan_event ev;
	struct pgm_capture_unit *last;
	uint8_t		 t;

	if (c->failed)
		return;
	/* Bytes before skip_to belong to a transaction already cut. */
	if (c->fed < c->skip_to)
		skip = c->skip_to - c->fed < n ? (size_t)(c->skip_to - c->fed) :
		    n;
	if (!c->overflow && n > skip) {
		if (c->bytes.len + (n - skip) > c->max_bytes + CAPTURE_SLACK)
			c->overflow = 1;
		else
			buf_put(&c->bytes, p + skip, n - skip);
		if (c->bytes.failed) {
			c->failed = 1;
			return;
		}
	}
	while (off < n) {
		ev = scan_feed(&c->cscan, p + off, n - off, &used);
		off += used;
		if (ev == SCAN_BAD_LENGTH) {
			/* The relay ends such a session; stop following it. */
			c->failed = 1;
			return;
		}
		if (ev != SCAN_HEADER)
			continue;
		t = c->cscan.type;
		start = c->fed + off - 5;
		last = c->nunits > 0 ? &c->units[c->nunits - 1] : NULL;
		/* A Query's unit ends where a message other than COPY's starts. */
		if (last != NULL && last->open && t != 'd' && t != 'c' &&
		    t != 'f') {
			last->open = 0;
			last->end = start;
		}
		switch (t) {
		case 'Q':
			c->last_request = t;
			capture_unit(c, 0, now);
			break;
		case 'F':
			c->last_request = t;
			capture_unit(c, start + 1 + c->cscan.len, now);
			break;
		case 'S':
			/* The server ignores a Sync in extended COPY IN. */
			if (!c->copy_in_ext) {
				capture_unit(c, start + 1 + c->cscan.len, now);
				c->syncs_after_execute++;
			}
			break;
		case 'E':
			c->last_request = t;
			c->syncs_after_execute = 0;
			break;
		case 'c':
		case 'f':
			c->copy_in_ext = 0;
			break;
		}
	}
	c->fed += n;
}

/* Record the result of one statement from a CommandComplete body. */
static void
capture_stmt(struct pgm_capture *c, const uint8_t *tag, size_t len,
    int64_t now)
{
	struct pgm_mstmt *s;

	/* So many results are a transaction too large to mirror. */
	if ((size_t)(c->nstmts + 1) * sizeof(*s) > c->max_bytes) {
		c->too_many = 1;
		c->rows = c->hash = 0;
		return;
	}
	if (capture_grow((void **)&c->stmts, &c->capstmts, c->nstmts,
	    sizeof(*s)) == -1) {
		c->failed = 1;
		return;
	}
	s = &c->stmts[c->nstmts++];
	memset(s->tag, 0, sizeof(s->tag));
	if (len > 0 && tag[len - 1] == '\0')
		len--;
	/* An empty CommandComplete has no tag: tag is NULL then. */
	if (len > 0)
		memcpy(s->tag, tag, len < sizeof(s->tag) - 1 ? len :
		    sizeof(s->tag) - 1);
	s->sent_ns = c->nunits > 0 ? c->units[0].sent_ns : now;
	s->answered_ns = now;
	s->rows = c->rows;
	s->hash = c->hash;
	c->rows = 0;
	c->hash = 0;
	c->rolled_back = strcmp(s->tag, "ROLLBACK") == 0;
}

/*
 * A transaction that is not replayed may still have prepared named
 * statements, which outlive any rollback.  Its Parse messages that the
 * server completed and that name a statement, its Close messages that
 * it completed, and its Queries that are a PREPARE or a DEALLOCATE are
 * reported as a transaction of their own, ended by a Sync, so the
 * destination session knows the same statements.  It is marked kept:
 * an error replaying it is no error of the mirror (that PREPARE may
 * have failed on the source too).
 */
static void
capture_keep_statements(struct pgm_capture *c, size_t len, uint64_t seq)
{
	static const uint8_t sync[5] = { 'S', 0, 0, 0, 4 };
	struct pgm_capture_txn txn;
	const uint8_t	*p = c->bytes.data;
	size_t		 off = 0, mlen;
	int		 parses = 0, closes = 0, queries = 0;

	buf_reset(&c->keep);
	while (len - off >= 5) {
		mlen = 1 + (size_t)proto_get_u32(p + off + 1);
		if (mlen < 5 || mlen > len - off)
			break;
		if (mlen > 5 && ((p[off] == 'P' && parses++ < c->parsed &&
		    p[off + 5] != '\0') ||
		    (p[off] == 'C' && closes++ < c->closed &&
		    p[off + 5] == 'S')))
			buf_put(&c->keep, p + off, mlen);
		else if (mlen > 5 && p[off] == 'Q' &&
		    proto_is_lone_prepare(p + off + 5, mlen - 5)) {
			buf_put(&c->keep, p + off, mlen);
			queries++;
		}
		off += mlen;
	}
	if (c->keep.len == 0 || c->done == NULL)
		return;
	buf_put(&c->keep, sync, sizeof(sync));
	if (c->keep.failed)
		return;
	memset(&txn, 0, sizeof(txn));
	txn.bytes = c->keep.data;
	txn.len = c->keep.len;
	txn.nready = 1 + queries;
	txn.committed = 1;
	txn.kept = 1;
	txn.seq = seq;
	c->done(c->arg, &txn);
}

/* A ReadyForQuery: one unit is answered; maybe a transaction is over. */
static void
capture_ready(struct pgm_capture *c, uint8_t status)
{
	struct pgm_capture_txn txn;
	struct pgm_capture_unit u;
	uint64_t	 end, have;
	size_t		 keep;

	if (c->nunits == 0) {
		/* An answer to nothing we saw: resynchronise. */
		c->status = status;
		return;
	}
	u = c->units[0];
	memmove(c->units, c->units + 1, (c->nunits - 1) * sizeof(u));
	c->nunits--;
	if (!u.open)
		end = u.end;
	else if (c->cscan.hdrlen == 5)
		/* COPY data cut short by an error: the rest is ours too. */
		end = c->fed + c->cscan.remain;
	else
		end = c->fed - c->cscan.hdrlen;	/* a partial header is not */
	c->status = status;
	c->nready++;
	if (status != 'I') {
		c->error = 0;
		return;
	}
	have = end < c->fed ? end : c->fed;
	memset(&txn, 0, sizeof(txn));
	txn.overflow = c->overflow || c->too_many ||
	    have - c->base > c->max_bytes;
	txn.committed = !c->error && !c->rolled_back && !txn.overflow;
	if (!txn.overflow) {
		txn.bytes = c->bytes.data;
		txn.len = have - c->base;
	}
	txn.stmts = c->stmts;
	txn.nstmts = c->nstmts;
	txn.nready = c->nready;
	txn.seq = u.seq ? u.seq : c->next_seq ? c->next_seq(c->arg) : 0;
	if (c->done != NULL)
		c->done(c->arg, &txn);
	c->nstmts = 0;
	c->nready = 0;
	c->error = 0;
	c->rolled_back = 0;
	c->too_many = 0;
	c->rows = c->hash = 0;
	if (end > c->fed)
		c->skip_to = end;
	if (c->overflow) {
		c->parsed = c->closed = 0;
		/* Start afresh only where nothing pipelined was lost. */
		if (end >= c->fed && c->cscan.hdrlen % 5 == 0) {
			c->overflow = 0;
			buf_reset(&c->bytes);
			c->base = end;
		}
		return;
	}
	if (!txn.committed && !txn.overflow)
		capture_keep_statements(c, (size_t)(have - c->base), txn.seq);
	c->parsed = c->closed = 0;
	keep = c->bytes.len - (size_t)(have - c->base);
	if (keep > 0)
		memmove(c->bytes.data, c->bytes.data + (have - c->base),
		    keep);
	c->bytes.len = keep;
	c->base = end;
}

/* Feed bytes the server sent, as they are relayed. */
void
capture_server(struct pgm_capture *c, const uint8_t *p, size_t n,
    int64_t now)
{
	struct pgm_scan	*sc = &c->sscan;
	size_t		 off = 0, used;
	enum pgm_scan_event ev;
	char		 tag[PGM_TAG_MAX];
	int		 k;

	while (off < n && !c->failed) {
		ev = scan_feed(sc, p + off, n - off, &used);
		off += used;
		if (ev == SCAN_BAD_LENGTH) {
			c->failed = 1;
			return;
		}
		if (ev == SCAN_HEADER) {
			switch (sc->type) {
			case 'C':
			case 'Z':
				if (sc->remain > 0)
					sc->capture = 1;
				else if (sc->type == 'C')
					capture_stmt(c, NULL, 0, now);
				break;
			case 'D':
				c->rows++;
				if (sc->remain > 0)
					sc->hashing = 1;
				break;
			case 'E':
				c->error = 1;
				c->rows = c->hash = 0;
				if (sc->remain > 0)
					sc->capture = 1;
				break;
			case '1':
				c->parsed++;
				break;
			case '3':
				c->closed++;
				break;
			case 'G':
			case 'W':
				/* Syncs after a COPY's Execute get no answer. */
				if (c->last_request == 'E') {
					k = c->syncs_after_execute;
					if (k > c->nunits)
						k = c->nunits;
					c->nunits -= k;
					c->syncs_after_execute = 0;
					c->copy_in_ext = 1;
				}
				break;
			}
			continue;
		}
		if (ev != SCAN_BODY)
			continue;
		if (sc->type == 'D')
			c->hash += sc->hash;
		else if (sc->type == 'C')
			capture_stmt(c, sc->cap, sc->caplen, now);
		else if (sc->type == 'E') {
			proto_error_tag(sc->cap, sc->caplen, tag, sizeof(tag));
			capture_stmt(c, (const uint8_t *)tag, strlen(tag), now);
		} else if (sc->type == 'Z' && sc->caplen > 0)
			capture_ready(c, sc->cap[0]);
	}
}
