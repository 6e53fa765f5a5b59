/*
 * fuzz_capture.c: libFuzzer target for the capture (src/capture.c).
 *
 * An input is an option byte, then records, each a header byte and the
 * bytes of one read the relay passed on: header bit 7 says the server
 * sent them (else the client), bit 6 that a two-byte length follows
 * (else the length is bits 0-5); a header of 0 is the end of a session
 * (capture_reset) instead.  A length past the input's end takes what is
 * left.  Each read is fed from a heap buffer of its exact size.  The
 * option byte picks max_bytes (bits 0-1), so that small settings
 * overflow, and how the second run splits the reads (bits 2-7).
 *
 * The input runs twice: once with the reads as they are, once with
 * each read cut into smaller ones (same time, nothing of the other
 * side between them).  Both runs must report the same transactions.
 *
 * The done callback checks what it can: a replayed transaction's bytes
 * are client bytes of this session, in stream order after the ones of
 * the transaction before; a kept one is whole messages the client sent,
 * ended by a Sync; an overflow has no bytes; every statement's tag is a
 * C string; the sequence number is one that next_seq handed out.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgmirror.h"
#include "fuzz.h"

static const size_t max_bytes[4] = { 1024 * 1024, 4096, 256, 16 };

/* What the callbacks know of the session being followed. */
struct fuzz_session {
	uint8_t		*client;	/* every client byte of the session */
	size_t		 clen, ccap;
	size_t		 next;		/* the next transaction starts here or later */
	uint64_t	 seq;		/* the last number next_seq gave */
	uint64_t	*log;		/* a digest of each transaction reported */
	size_t		 nlog, caplog;
};

static uint64_t
fuzz_next_seq(void *arg)
{
	struct fuzz_session *fs = arg;

	return ++fs->seq;
}

/* Find the n bytes at p in the client's stream at from or after. */
static const uint8_t *
find_client(const struct fuzz_session *fs, size_t from, const uint8_t *p,
    size_t n)
{
	if (from > fs->clen)
		return NULL;
	if (n == 0)
		return fs->client + from;
	return memmem(fs->client + from, fs->clen - from, p, n);
}

/* A kept transaction: whole client messages, then one Sync. */
static void
check_kept(const struct fuzz_session *fs, const struct pgm_capture_txn *t)
{
	static const uint8_t sync[5] = { 'S', 0, 0, 0, 4 };
	size_t		 off = 0, mlen;

	FUZZ_CHECK(t->bytes != NULL && t->len > 5);
	FUZZ_CHECK(memcmp(t->bytes + t->len - 5, sync, 5) == 0);
	FUZZ_CHECK(t->committed && !t->overflow && t->nready >= 1);
	while (off < t->len - 5) {
		FUZZ_CHECK(t->len - 5 - off >= 5);
		mlen = 1 + (size_t)proto_get_u32(t->bytes + off + 1);
		FUZZ_CHECK(mlen >= 5 && mlen <= t->len - 5 - off);
		FUZZ_CHECK(t->bytes[off] == 'P' || t->bytes[off] == 'C' ||
		    t->bytes[off] == 'Q');
		FUZZ_CHECK(find_client(fs, 0, t->bytes + off, mlen) != NULL);
		off += mlen;
	}
}

/* Log a digest of everything the done callback was given. */
static void
log_txn(struct fuzz_session *fs, const struct pgm_capture_txn *t)
{
	uint64_t	 h = PROTO_HASH_INIT, *nl;
	int		 i;

#define FOLD(x) do {							\
	uint64_t v_ = (uint64_t)(x);					\
	h = proto_hash(h, (const uint8_t *)&v_, sizeof(v_));		\
} while (0)
	FOLD(t->len);
	FOLD(t->nstmts);
	FOLD(t->seq);
	FOLD(t->nready);
	FOLD(t->committed);
	FOLD(t->kept);
	FOLD(t->overflow);
	if (t->len > 0)
		h = proto_hash(h, t->bytes, t->len);
	for (i = 0; i < t->nstmts; i++) {
		FOLD(t->stmts[i].sent_ns);
		FOLD(t->stmts[i].answered_ns);
		FOLD(t->stmts[i].rows);
		FOLD(t->stmts[i].hash);
		h = proto_hash(h, (const uint8_t *)t->stmts[i].tag,
		    strlen(t->stmts[i].tag));
	}
#undef FOLD
	if (fs->nlog == fs->caplog) {
		fs->caplog = fs->caplog ? fs->caplog * 2 : 16;
		if ((nl = realloc(fs->log, fs->caplog * sizeof(*nl))) == NULL)
			abort();
		fs->log = nl;
	}
	fs->log[fs->nlog++] = h;
}

static void
fuzz_done(void *arg, const struct pgm_capture_txn *t)
{
	struct fuzz_session *fs = arg;
	const uint8_t	*at;
	int		 i;

	FUZZ_CHECK(t != NULL);
	FUZZ_CHECK(t->seq >= 1 && t->seq <= fs->seq);
	FUZZ_CHECK(t->nstmts >= 0 && (t->nstmts == 0 || t->stmts != NULL));
	for (i = 0; i < t->nstmts; i++)
		FUZZ_CHECK(fuzz_has_nul(t->stmts[i].tag,
		    sizeof(t->stmts[i].tag)));
	log_txn(fs, t);
	if (t->kept) {
		check_kept(fs, t);
		return;
	}
	FUZZ_CHECK(t->nready >= 1);
	if (t->overflow) {
		FUZZ_CHECK(t->bytes == NULL && t->len == 0 && !t->committed);
		return;
	}
	FUZZ_CHECK(t->len <= fs->clen);
	FUZZ_CHECK(t->len == 0 || t->bytes != NULL);
	at = find_client(fs, fs->next, t->bytes, t->len);
	FUZZ_CHECK(at != NULL);
	fs->next = (size_t)(at - fs->client) + t->len;
}

/* Note client bytes the capture is about to be fed. */
static void
session_add(struct fuzz_session *fs, const uint8_t *p, size_t n)
{
	uint8_t		*np;

	if (fs->clen + n > fs->ccap) {
		fs->ccap = (fs->clen + n) * 2;
		if ((np = realloc(fs->client, fs->ccap)) == NULL)
			abort();
		fs->client = np;
	}
	if (n > 0)
		memcpy(fs->client + fs->clen, p, n);
	fs->clen += n;
}

/* Feed n bytes, in pieces of 1 to limit bytes (0: in one piece). */
static void
feed(struct pgm_capture *c, struct fuzz_session *fs, int server,
    const uint8_t *p, size_t n, int64_t now, uint32_t limit,
    uint32_t *rng)
{
	size_t		 off = 0, k;
	uint8_t		*piece;

	do {
		k = limit == 0 ? n - off : 1 + fuzz_rng(rng) % limit;
		if (k > n - off)
			k = n - off;
		piece = fuzz_dup(p + off, k);
		if (server)
			capture_server(c, piece, k, now);
		else {
			session_add(fs, piece, k);
			capture_client(c, piece, k, now);
		}
		free(piece);
		off += k;
	} while (off < n);
}

/* Run the input's reads through a capture; the log is left in fs. */
static void
run(const uint8_t *data, size_t size, uint32_t limit, uint32_t seed,
    struct fuzz_session *fs)
{
	struct pgm_capture c;
	size_t		 off = 1, n;
	uint8_t		 h;
	int64_t		 now = 1000000;

	memset(fs, 0, sizeof(*fs));
	capture_init(&c, max_bytes[data[0] & 3], fuzz_next_seq, fuzz_done,
	    fs);
	while (off < size) {
		h = data[off++];
		if (h == 0) {
			capture_reset(&c);
			fs->clen = fs->next = 0;
			continue;
		}
		n = h & 0x3f;
		if (h & 0x40) {
			if (size - off < 2)
				break;
			n = (size_t)data[off] << 8 | data[off + 1];
			off += 2;
		}
		if (n > size - off)
			n = size - off;
		now += 1000;
		feed(&c, fs, (h & 0x80) != 0, data + off, n, now, limit,
		    &seed);
		off += n;
	}
	capture_free(&c);
	free(fs->client);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t limits[4] = { 1, 3, 17, 300 };
	struct fuzz_session whole, split;
	size_t		 i;

	if (size < 1)
		return 0;
	run(data, size, 0, 1, &whole);
	run(data, size, limits[(data[0] >> 2) & 3],
	    (uint32_t)(data[0] >> 4) * 0x9e3779b9u + 1, &split);
	FUZZ_CHECK(whole.nlog == split.nlog);
	for (i = 0; i < whole.nlog; i++)
		FUZZ_CHECK(whole.log[i] == split.log[i]);
	free(whole.log);
	free(split.log);
	return 0;
}
