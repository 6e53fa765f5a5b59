/*
 * fuzz_proto.c: libFuzzer target for the protocol codec (src/proto.c).
 *
 * An input is two bytes of options, then a client's byte stream: a
 * startup packet when its length word fits, then messages.  The target
 * parses the startup packet (and the whole stream as one) with
 * proto_parse_startup, turns the parameters into a pool key and back
 * (proto_params_key, proto_params_split), and reads the rest of the
 * stream as a C string key too.  It follows the messages with
 * scan_feed twice, once in one piece and once in chunks of sizes drawn
 * from the first option byte, each chunk in a heap buffer of its exact
 * size: the two must see the same events at the same stream positions,
 * with the captured bodies and hashes that the stream really holds.
 * Each captured body goes through proto_error_fields, proto_error_tag,
 * proto_is_lone_prepare and a random walk of reader_* calls, and the
 * stream through proto_cancel_requests.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgmirror.h"
#include "fuzz.h"

/* The largest messages the scanner accepts, by the second option byte. */
static const uint32_t maxlens[4] = { PGM_MESSAGE_MAX, 65536, 300, 8 };

/* Is p within the n bytes at base? */
static int
within(const void *p, const void *base, size_t n)
{
	const uint8_t	*q = p, *b = base;

	return q >= b && q < b + n;
}

/* A string a parser returned: "" or NUL-terminated within buf[0, n). */
static void
check_str(const char *s, const uint8_t *buf, size_t n)
{
	FUZZ_CHECK(s != NULL);
	if (*s == '\0' && !within(s, buf, n))
		return;
	FUZZ_CHECK(within(s, buf, n));
	FUZZ_CHECK(fuzz_has_nul(s, (size_t)(buf + n - (const uint8_t *)s)));
}

/* Is name one that proto_params_key leaves out? */
static int
key_skips(const char *name)
{
	return strcmp(name, "user") == 0 || strcmp(name, "database") == 0 ||
	    strncmp(name, "_pq_.", 5) == 0;
}

/*
 * A pool key read back holds the parameters it was made of, sorted;
 * made again from them it is the same key when no name repeats.
 */
static void
check_key(const struct pgm_startup *st)
{
	struct pgm_startup back;
	char		*key, *copy, *again;
	int		 i, j, n = 0, dup = 0, found;

	if ((key = proto_params_key(st)) == NULL)
		return;			/* out of memory */
	for (i = 0; i < st->nparams; i++) {
		if (key_skips(st->name[i]))
			continue;
		n++;
		for (j = 0; j < i; j++)
			if (strcmp(st->name[i], st->name[j]) == 0)
				dup = 1;
	}
	copy = strdup(key);
	FUZZ_CHECK(copy != NULL);
	FUZZ_CHECK(proto_params_split(copy, &back) == 0);
	FUZZ_CHECK(back.nparams == n);
	for (i = 0; i < back.nparams; i++) {
		if (i > 0)
			FUZZ_CHECK(strcmp(back.name[i - 1], back.name[i]) <= 0);
		for (found = 0, j = 0; j < st->nparams && !found; j++)
			found = !key_skips(st->name[j]) &&
			    strcmp(st->name[j], back.name[i]) == 0 &&
			    strcmp(st->value[j], back.value[i]) == 0;
		FUZZ_CHECK(found);
	}
	if (!dup && (again = proto_params_key(&back)) != NULL) {
		FUZZ_CHECK(strcmp(again, key) == 0);
		free(again);
	}
	free(copy);
	free(key);
}

/* Parse n bytes as a startup packet and check what comes out. */
static void
fuzz_startup(const uint8_t *p, size_t n)
{
	struct pgm_startup *st;
	struct pgm_buf	 b;
	const char	*err = NULL;
	uint8_t		*pkt = fuzz_dup(p, n);
	int		 i;

	if ((st = malloc(sizeof(*st))) == NULL)
		abort();
	if (proto_parse_startup(pkt, n, st, &err) == -1) {
		FUZZ_CHECK(err != NULL && *err != '\0');
		goto out;
	}
	FUZZ_CHECK(n >= 8 && proto_get_u32(pkt) == n);
	FUZZ_CHECK(st->code == proto_get_u32(pkt + 4));
	if (st->code == PGM_CANCEL_CODE) {
		FUZZ_CHECK(n == 16);
		goto out;
	}
	if (st->code == PGM_SSL_CODE || st->code == PGM_GSSENC_CODE) {
		FUZZ_CHECK(n == 8 && st->nparams == 0);
		goto out;
	}
	FUZZ_CHECK((st->code >> 16) == 3);
	FUZZ_CHECK(st->nparams >= 1 && st->nparams <= PGM_MAXPARAMS);
	for (i = 0; i < st->nparams; i++) {
		check_str(st->name[i], pkt, n);
		check_str(st->value[i], pkt, n);
		FUZZ_CHECK(within(st->name[i], pkt, n));
		FUZZ_CHECK(within(st->value[i], pkt, n));
	}
	FUZZ_CHECK(proto_startup_param(st, "user") != NULL &&
	    *proto_startup_param(st, "user") != '\0');
	check_key(st);
	buf_init(&b);
	proto_negotiate_version(&b, 0x30000, st);
	if (!b.failed) {
		FUZZ_CHECK(b.len >= 13 && b.data[0] == 'v');
		FUZZ_CHECK(proto_get_u32(b.data + 1) == b.len - 1);
	}
	buf_free(&b);
out:
	free(st);
	free(pkt);
}

/*
 * Read n bytes as a pool key.  What reads back and is in key order,
 * with no name proto_params_key leaves out, must make a key that reads
 * back the same (not the same bytes: "02:ab" reads as "2:ab").
 */
static void
fuzz_key(const uint8_t *p, size_t n)
{
	struct pgm_startup *st, *back;
	char		*key, *again;
	int		 i, canonical = 1;

	if ((st = malloc(sizeof(*st))) == NULL ||
	    (back = malloc(sizeof(*back))) == NULL ||
	    (key = malloc(n + 1)) == NULL)
		abort();
	memcpy(key, p, n);
	key[n] = '\0';
	if (proto_params_split(key, st) == 0) {
		for (i = 0; i < st->nparams; i++) {
			check_str(st->name[i], (uint8_t *)key, n + 1);
			check_str(st->value[i], (uint8_t *)key, n + 1);
			if (key_skips(st->name[i]) || (i > 0 &&
			    strcmp(st->name[i - 1], st->name[i]) >= 0))
				canonical = 0;
		}
		if (canonical && (again = proto_params_key(st)) != NULL) {
			FUZZ_CHECK(proto_params_split(again, back) == 0);
			FUZZ_CHECK(back->nparams == st->nparams);
			for (i = 0; i < st->nparams; i++) {
				FUZZ_CHECK(strcmp(back->name[i],
				    st->name[i]) == 0);
				FUZZ_CHECK(strcmp(back->value[i],
				    st->value[i]) == 0);
			}
			free(again);
		}
	}
	free(key);
	free(back);
	free(st);
}

/* Walk a reader over a body; a read that fails must not move it. */
static void
fuzz_reader(const uint8_t *body, size_t n, uint32_t seed)
{
	struct pgm_reader r;
	const uint8_t	*bytes;
	const char	*s;
	uint32_t	 v32;
	uint8_t		 v8;
	size_t		 pos, take;
	int		 rc, steps;

	reader_init(&r, body, n);
	for (steps = 0; steps < 64; steps++) {
		pos = r.pos;
		switch (fuzz_rng(&seed) % 4) {
		case 0:
			rc = reader_u8(&r, &v8);
			FUZZ_CHECK(rc == -1 || v8 == body[pos]);
			break;
		case 1:
			rc = reader_u32(&r, &v32);
			FUZZ_CHECK(rc == -1 || v32 == proto_get_u32(body + pos));
			break;
		case 2:
			take = fuzz_rng(&seed) % 8;
			if (fuzz_rng(&seed) % 4 == 0)
				take = SIZE_MAX - take;
			rc = reader_bytes(&r, take, &bytes);
			FUZZ_CHECK(rc == -1 || bytes == body + pos);
			break;
		default:
			rc = reader_str(&r, &s);
			if (rc == 0) {
				FUZZ_CHECK(s == (const char *)body + pos);
				FUZZ_CHECK(r.pos == pos + strlen(s) + 1);
			}
			break;
		}
		FUZZ_CHECK(rc == 0 || rc == -1);
		FUZZ_CHECK(r.pos <= r.len);
		if (rc == -1) {
			FUZZ_CHECK(r.pos == pos);
			break;
		}
	}
}

/* The parsers of message bodies, on one captured body. */
static void
fuzz_body(uint8_t type, const uint8_t *p, size_t n, uint32_t seed)
{
	uint8_t		*body = fuzz_dup(p, n);
	const char	*sev, *code, *msg;
	char		 tag[PGM_TAG_MAX];
	size_t		 taglen;
	int		 rc;

	rc = proto_error_fields(body, n, &sev, &code, &msg);
	FUZZ_CHECK(rc == 0 || rc == -1);
	check_str(sev, body, n);
	check_str(code, body, n);
	check_str(msg, body, n);
	taglen = 1 + seed % sizeof(tag);
	memset(tag, 'x', sizeof(tag));
	proto_error_tag(body, n, tag, taglen);
	FUZZ_CHECK(fuzz_has_nul(tag, taglen));
	FUZZ_CHECK(strncmp(tag, "ERROR ", taglen - 1 < 6 ? taglen - 1 : 6) ==
	    0);
	rc = proto_is_lone_prepare(body, n);
	FUZZ_CHECK(rc == 0 || rc == 1);
	(void)proto_valid_frontend_type(type);
	fuzz_reader(body, n, seed | 1);
	free(body);
}

/*
 * What scan_feed saw, in order: each event but SCAN_NEED_MORE, with the
 * stream position after it and what the scanner held then.
 */
struct scan_log {
	uint64_t	*v;
	size_t		 n, cap;
};

static void
log_add(struct scan_log *l, uint64_t x)
{
	uint64_t	*nv;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		if ((nv = realloc(l->v, l->cap * sizeof(*nv))) == NULL)
			abort();
		l->v = nv;
	}
	l->v[l->n++] = x;
}

/* Whether to capture or hash a message's body: a function of its type. */
static void
scan_policy(struct pgm_scan *s, uint8_t opt)
{
	s->capture = ((s->type ^ opt) & 1) != 0;
	s->hashing = ((s->type ^ opt) & 2) != 0;
}

/*
 * Follow stream p[0, n) in chunks (sizes from seed; seed 0: one piece),
 * logging the events.  The one-piece run also checks each event
 * against the stream and parses the bodies.  Returns the log.
 */
static void
scan_run(const uint8_t *p, size_t n, uint32_t maxlen, uint8_t opt,
    uint32_t seed, struct scan_log *log)
{
	struct pgm_scan	 s;
	enum pgm_scan_event ev;
	uint8_t		*chunk;
	size_t		 pos = 0, clen, off, used, body = 0;
	uint32_t	 limit = 0;
	int		 bad = 0;

	scan_init(&s, maxlen);
	if (seed != 0)
		limit = (uint32_t[]){ 1, 7, 64, 4096 }[seed % 4];
	while (pos < n && !bad) {
		clen = seed == 0 ? n : 1 + fuzz_rng(&seed) % limit;
		if (clen > n - pos)
			clen = n - pos;
		chunk = fuzz_dup(p + pos, clen);
		for (off = 0; off < clen; ) {
			ev = scan_feed(&s, chunk + off, clen - off, &used);
			FUZZ_CHECK(used <= clen - off);
			off += used;
			if (ev == SCAN_NEED_MORE) {
				FUZZ_CHECK(off == clen);
				break;
			}
			FUZZ_CHECK(used > 0);
			log_add(log, ((uint64_t)ev << 56) | (pos + off));
			if (ev == SCAN_BAD_LENGTH) {
				FUZZ_CHECK(s.len < 4 || s.len > maxlen);
				bad = 1;
				break;
			}
			if (ev == SCAN_HEADER) {
				FUZZ_CHECK(s.len >= 4 && s.len <= maxlen);
				FUZZ_CHECK(s.remain == s.len - 4);
				FUZZ_CHECK(s.hdrlen == (s.remain ? 5 : 0));
				log_add(log, ((uint64_t)s.type << 32) | s.len);
				scan_policy(&s, opt);
				body = pos + off;
				continue;
			}
			/* SCAN_BODY: the whole body is in; check it. */
			FUZZ_CHECK(s.remain == 0 && s.hdrlen == 0);
			FUZZ_CHECK(pos + off - body == s.len - 4);
			FUZZ_CHECK(s.caplen <= sizeof(s.cap));
			log_add(log, s.caplen);
			log_add(log, s.hash);
			if (((s.type ^ opt) & 1) != 0) {
				FUZZ_CHECK(s.caplen == (s.len - 4 < sizeof(s.cap) ?
				    s.len - 4 : sizeof(s.cap)));
				FUZZ_CHECK(memcmp(s.cap, p + body, s.caplen) == 0);
			}
			if (((s.type ^ opt) & 2) != 0)
				FUZZ_CHECK(s.hash == proto_hash(PROTO_HASH_INIT,
				    p + body, s.len - 4));
			if (seed == 0 && ((s.type ^ opt) & 1) != 0)
				fuzz_body(s.type, s.cap, s.caplen,
				    (uint32_t)(s.len * 2654435761u) | 1);
		}
		free(chunk);
		pos += clen;
	}
}

/* The answer to cancelled requests: complete messages, one Z a request. */
static void
fuzz_cancel(const uint8_t *p, size_t n)
{
	struct pgm_buf	 answer;
	uint8_t		*copy = fuzz_dup(p, n);
	size_t		 done, off = 0, mlen;
	int		 nreq, req = 0, ready = 0;

	buf_init(&answer);
	done = proto_cancel_requests(copy, n, &answer, &nreq);
	FUZZ_CHECK(done <= n);
	while (off < done) {
		FUZZ_CHECK(done - off >= 5);
		mlen = 1 + (size_t)proto_get_u32(copy + off + 1);
		FUZZ_CHECK(mlen >= 5 && mlen <= done - off);
		if (copy[off] == 'Q' || copy[off] == 'F' || copy[off] == 'S')
			req++;
		off += mlen;
	}
	FUZZ_CHECK(off == done);
	FUZZ_CHECK(nreq == req);
	for (off = 0; !answer.failed && off < answer.len; off += mlen) {
		FUZZ_CHECK(answer.len - off >= 5);
		mlen = 1 + (size_t)proto_get_u32(answer.data + off + 1);
		FUZZ_CHECK(mlen >= 5 && mlen <= answer.len - off);
		FUZZ_CHECK(answer.data[off] == 'E' || answer.data[off] == 'Z');
		ready += answer.data[off] == 'Z';
	}
	if (!answer.failed)
		FUZZ_CHECK(ready == nreq);
	buf_free(&answer);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scan_log	 whole = { 0 }, split = { 0 };
	const uint8_t	*p;
	size_t		 n, start = 0, i;
	uint32_t	 seed, plen, maxlen;
	uint8_t		 opt;

	if (size < 2)
		return 0;
	seed = data[0] * 0x01000193u + 1;
	opt = data[1];
	maxlen = maxlens[opt & 3];
	p = data + 2;
	n = size - 2;

	if (n <= PGM_STARTUP_MAX)
		fuzz_startup(p, n);
	if (n >= 4 && (plen = proto_get_u32(p)) >= 8 && plen <= n &&
	    plen <= PGM_STARTUP_MAX && plen != n) {
		fuzz_startup(p, plen);
		start = plen;
	}
	fuzz_key(p, n);

	scan_run(p + start, n - start, maxlen, opt, 0, &whole);
	scan_run(p + start, n - start, maxlen, opt, seed, &split);
	FUZZ_CHECK(whole.n == split.n);
	for (i = 0; i < whole.n; i++)
		FUZZ_CHECK(whole.v[i] == split.v[i]);
	free(whole.v);
	free(split.v);

	fuzz_cancel(p + start, n - start);
	return 0;
}
