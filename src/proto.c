/*
 * proto.c: the PostgreSQL frontend/backend protocol codec.
 *
 * Pure code, no I/O: composing the messages pgmirror itself sends
 * (ErrorResponse, authentication requests, ParameterStatus, ...), a
 * bounds-checked reader for the ones it parses (every read returns 0 on
 * success and -1 when the data runs out), the parser of the startup
 * packet forms, and the incremental scanner that follows message
 * boundaries in a forwarded byte stream without holding messages whole.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgmirror.h"

/* Read a big-endian 32-bit word. */
uint32_t
proto_get_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Write a big-endian 32-bit word. */
void
proto_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* Start an empty buffer. */
void
buf_init(struct pgm_buf *b)
{
	memset(b, 0, sizeof(*b));
}

/* Free a buffer's memory. */
void
buf_free(struct pgm_buf *b)
{
	free(b->data);
	buf_init(b);
}

/* Empty a buffer, keeping its memory. */
void
buf_reset(struct pgm_buf *b)
{
	b->len = 0;
	b->failed = 0;
}

/* Make room for n more bytes; on failure mark the buffer failed. */
int
buf_reserve(struct pgm_buf *b, size_t n)
{
	size_t		 cap;
	uint8_t		*p;

	if (b->failed)
		return -1;
	if (b->len + n <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n) {
		if (cap > SIZE_MAX / 2) {
			b->failed = 1;
			return -1;
		}
		cap *= 2;
	}
	if ((p = realloc(b->data, cap)) == NULL) {
		b->failed = 1;
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

/* Append bytes. */
void
buf_put(struct pgm_buf *b, const void *p, size_t n)
{
	if (n == 0 || buf_reserve(b, n) == -1)
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* Append one byte. */
void
buf_put_u8(struct pgm_buf *b, uint8_t v)
{
	buf_put(b, &v, 1);
}

/* Append a big-endian 32-bit word. */
void
buf_put_u32(struct pgm_buf *b, uint32_t v)
{
	uint8_t		 w[4];

	proto_put_u32(w, v);
	buf_put(b, w, 4);
}

/* Append a NUL-terminated string with its NUL. */
/* Append a string without its NUL. */
void
buf_put_strn(struct pgm_buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

void
buf_put_str(struct pgm_buf *b, const char *s)
{
	buf_put(b, s, strlen(s) + 1);
}

/* Begin a message of the given type (0: untyped, as in startup). */
void
buf_msg_begin(struct pgm_buf *b, uint8_t type)
{
	if (type != 0)
		buf_put_u8(b, type);
	b->msgstart = b->len;
	buf_put_u32(b, 0);
}

/* Close the message begun last by filling in its length word. */
void
buf_msg_end(struct pgm_buf *b)
{
	if (b->failed)
		return;
	proto_put_u32(b->data + b->msgstart, b->len - b->msgstart);
}

/* Start reading a byte range. */
void
reader_init(struct pgm_reader *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->pos = 0;
}

/* Read one byte. */
int
reader_u8(struct pgm_reader *r, uint8_t *v)
{
	if (r->len - r->pos < 1)
		return -1;
	*v = r->p[r->pos++];
	return 0;
}

/* Read a big-endian 32-bit word. */
int
reader_u32(struct pgm_reader *r, uint32_t *v)
{
	if (r->len - r->pos < 4)
		return -1;
	*v = proto_get_u32(r->p + r->pos);
	r->pos += 4;
	return 0;
}

/* Take n bytes in place. */
int
reader_bytes(struct pgm_reader *r, size_t n, const uint8_t **p)
{
	if (r->len - r->pos < n)
		return -1;
	*p = r->p + r->pos;
	r->pos += n;
	return 0;
}

/* Take a NUL-terminated string in place. */
int
reader_str(struct pgm_reader *r, const char **s)
{
	const uint8_t	*nul;

	nul = memchr(r->p + r->pos, '\0', r->len - r->pos);
	if (nul == NULL)
		return -1;
	*s = (const char *)(r->p + r->pos);
	r->pos = nul - r->p + 1;
	return 0;
}

/*
 * Parse a startup packet (its length word included) in place.  The
 * parameter strings point into pkt.  Returns 0, or -1 with *err naming
 * what is wrong in words a client can be shown.
 */
int
proto_parse_startup(uint8_t *pkt, size_t len, struct pgm_startup *st,
    const char **err)
{
	struct pgm_reader r;
	uint32_t	 plen, code;
	const char	*name, *value;

	memset(st, 0, sizeof(*st));
	*err = "invalid startup packet layout";
	reader_init(&r, pkt, len);
	if (reader_u32(&r, &plen) == -1 || plen != len || plen < 8 ||
	    reader_u32(&r, &code) == -1)
		return -1;
	st->code = code;
	if (code == PGM_CANCEL_CODE) {
		if (len != 16 || reader_u32(&r, &st->cancel_pid) == -1 ||
		    reader_u32(&r, &st->cancel_key) == -1)
			return -1;
		return 0;
	}
	if (code == PGM_SSL_CODE || code == PGM_GSSENC_CODE)
		return len == 8 ? 0 : -1;
	if ((code >> 16) != 3) {
		*err = "unsupported frontend protocol";
		return -1;
	}
	for (;;) {
		if (reader_str(&r, &name) == -1)
			return -1;
		if (*name == '\0')
			break;
		if (reader_str(&r, &value) == -1)
			return -1;
		if (st->nparams == PGM_MAXPARAMS) {
			*err = "too many startup parameters";
			return -1;
		}
		st->name[st->nparams] = name;
		st->value[st->nparams] = value;
		st->nparams++;
	}
	if (r.pos != r.len)
		return -1;
	if (proto_startup_param(st, "user") == NULL ||
	    *proto_startup_param(st, "user") == '\0') {
		*err = "no PostgreSQL user name specified in startup packet";
		st->nouser = 1;
		return -1;
	}
	return 0;
}

/* The value of a startup parameter, or NULL. */
const char *
proto_startup_param(const struct pgm_startup *st, const char *name)
{
	int		 i;

	for (i = 0; i < st->nparams; i++)
		if (strcmp(st->name[i], name) == 0)
			return st->value[i];
	return NULL;
}

/* Compare two startup parameter names for sorting. */
static int
proto_cmp_param(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;

	return strcmp(x[0], y[0]);
}

/* Append s to b as its length in decimal, a colon and its bytes. */
static void
proto_key_put(struct pgm_buf *b, const char *s)
{
	char		 n[24];
	size_t		 len = strlen(s);

	snprintf(n, sizeof(n), "%zu:", len);
	buf_put_strn(b, n);
	buf_put(b, s, len);
}

/*
 * The canonical key of a client's startup parameters, which pooled
 * server connections are matched on: every parameter but user,
 * database and _pq_.*, sorted by name, each name and each value as
 * "LENGTH:BYTES" (decimal length), end to end.  A value may hold any
 * byte but NUL, so only lengths can tell where it ends: two clients get
 * the same key only if they sent the same parameters.  The key is a C
 * string (NULL if out of memory); proto_params_split reads it back.
 */
char *
proto_params_key(const struct pgm_startup *st)
{
	const char	*pairs[PGM_MAXPARAMS][2];
	struct pgm_buf	 b;
	int		 i, n = 0;

	for (i = 0; i < st->nparams && i < PGM_MAXPARAMS; i++) {
		if (strcmp(st->name[i], "user") == 0 ||
		    strcmp(st->name[i], "database") == 0 ||
		    strncmp(st->name[i], "_pq_.", 5) == 0)
			continue;
		pairs[n][0] = st->name[i];
		pairs[n][1] = st->value[i];
		n++;
	}
	qsort(pairs, n, sizeof(pairs[0]), proto_cmp_param);
	buf_init(&b);
	for (i = 0; i < n; i++) {
		proto_key_put(&b, pairs[i][0]);
		proto_key_put(&b, pairs[i][1]);
	}
	buf_put_u8(&b, 0);
	if (b.failed) {
		buf_free(&b);
		return NULL;
	}
	return (char *)b.data;
}

/*
 * Read a key of proto_params_key back into startup parameters, in
 * place: the names and values of st point into key, which is
 * overwritten (each string is moved left over its length and ended with
 * a NUL; it never passes bytes not yet read).  Returns 0, or -1 if key
 * is not such a key.
 */
int
proto_params_split(char *key, struct pgm_startup *st)
{
	char		*r = key, *w = key, *s;
	size_t		 len, left = strlen(key);
	int		 k = 0;

	memset(st, 0, sizeof(*st));
	while (left > 0) {
		if (*r < '0' || *r > '9')
			return -1;
		for (len = 0; left > 0 && *r >= '0' && *r <= '9'; r++, left--) {
			if (len > left / 10)
				return -1;	/* longer than the key */
			len = len * 10 + (size_t)(*r - '0');
		}
		if (left == 0 || *r != ':')
			return -1;
		r++;
		left--;
		if (len > left)
			return -1;
		memmove(w, r, len);
		s = w;
		w[len] = '\0';
		w += len + 1;
		r += len;
		left -= len;
		if (k % 2 == 0) {
			if (st->nparams == PGM_MAXPARAMS)
				return -1;
			st->name[st->nparams] = s;
		} else
			st->value[st->nparams++] = s;
		k++;
	}
	return k % 2 == 0 ? 0 : -1;
}

/*
 * Append an ErrorResponse: severity ("FATAL", "ERROR"), SQLSTATE and a
 * formatted message, in the fields PostgreSQL itself sends.
 */
void
proto_error(struct pgm_buf *b, const char *severity, const char *sqlstate,
    const char *fmt, ...)
{
	va_list		 ap;
	char		 msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_msg_begin(b, 'E');
	buf_put_u8(b, 'S');
	buf_put_str(b, severity);
	buf_put_u8(b, 'V');
	buf_put_str(b, severity);
	buf_put_u8(b, 'C');
	buf_put_str(b, sqlstate);
	buf_put_u8(b, 'M');
	buf_put_str(b, msg);
	buf_put_u8(b, 0);
	buf_msg_end(b);
}

/* Append an Authentication request of the given code with its data. */
void
proto_auth_request(struct pgm_buf *b, uint32_t code, const void *data,
    size_t len)
{
	buf_msg_begin(b, 'R');
	buf_put_u32(b, code);
	buf_put(b, data, len);
	buf_msg_end(b);
}

/* Append a ParameterStatus. */
void
proto_parameter_status(struct pgm_buf *b, const char *name, const char *value)
{
	buf_msg_begin(b, 'S');
	buf_put_str(b, name);
	buf_put_str(b, value);
	buf_msg_end(b);
}

/* Append a BackendKeyData. */
void
proto_backend_key(struct pgm_buf *b, uint32_t pid, uint32_t key)
{
	buf_msg_begin(b, 'K');
	buf_put_u32(b, pid);
	buf_put_u32(b, key);
	buf_msg_end(b);
}

/* Append a ReadyForQuery with a transaction status. */
void
proto_ready(struct pgm_buf *b, uint8_t status)
{
	buf_msg_begin(b, 'Z');
	buf_put_u8(b, status);
	buf_msg_end(b);
}

/*
 * Append a NegotiateProtocolVersion: we speak 3.0, and list the "_pq_."
 * options of the startup packet that we do not know (all of them).
 */
void
proto_negotiate_version(struct pgm_buf *b, uint32_t newest,
    const struct pgm_startup *st)
{
	int		 i, n = 0;

	for (i = 0; i < st->nparams; i++)
		if (strncmp(st->name[i], "_pq_.", 5) == 0)
			n++;
	buf_msg_begin(b, 'v');
	buf_put_u32(b, newest);
	buf_put_u32(b, n);
	for (i = 0; i < st->nparams; i++)
		if (strncmp(st->name[i], "_pq_.", 5) == 0)
			buf_put_str(b, st->name[i]);
	buf_msg_end(b);
}

/* Append a simple Query. */
void
proto_query(struct pgm_buf *b, const char *sql)
{
	buf_msg_begin(b, 'Q');
	buf_put_str(b, sql);
	buf_msg_end(b);
}

/* Append a big-endian 16-bit word. */
static void
proto_put_u16(struct pgm_buf *b, uint16_t v)
{
	buf_put_u8(b, v >> 8);
	buf_put_u8(b, v & 0xff);
}

/*
 * Append a Parse of sql as statement name ("" the unnamed one), with
 * the type OIDs of its n parameters (0: for the server to infer).
 */
void
proto_parse(struct pgm_buf *b, const char *name, const char *sql, int n,
    const uint32_t *oids)
{
	int		 i;

	buf_msg_begin(b, 'P');
	buf_put_str(b, name);
	buf_put_str(b, sql);
	proto_put_u16(b, n);
	for (i = 0; i < n; i++)
		buf_put_u32(b, oids[i]);
	buf_msg_end(b);
}

/*
 * Append a Bind of statement stmt to portal, with n parameters in text
 * format (NULL: an SQL NULL) and results in text format.
 */
void
proto_bind_text(struct pgm_buf *b, const char *portal, const char *stmt,
    int n, const char *const *values)
{
	size_t		 len;
	int		 i;

	buf_msg_begin(b, 'B');
	buf_put_str(b, portal);
	buf_put_str(b, stmt);
	proto_put_u16(b, 0);		/* every parameter in text */
	proto_put_u16(b, n);
	for (i = 0; i < n; i++) {
		if (values[i] == NULL) {
			buf_put_u32(b, 0xffffffff);
			continue;
		}
		len = strlen(values[i]);
		buf_put_u32(b, len);
		buf_put(b, values[i], len);
	}
	proto_put_u16(b, 0);		/* every result in text */
	buf_msg_end(b);
}

/* Append an Execute of portal, every row. */
void
proto_execute(struct pgm_buf *b, const char *portal)
{
	buf_msg_begin(b, 'E');
	buf_put_str(b, portal);
	buf_put_u32(b, 0);
	buf_msg_end(b);
}

/* Append a Close of prepared statement name. */
void
proto_close_statement(struct pgm_buf *b, const char *name)
{
	buf_msg_begin(b, 'C');
	buf_put_u8(b, 'S');
	buf_put_str(b, name);
	buf_msg_end(b);
}

/* Append a Sync. */
void
proto_sync(struct pgm_buf *b)
{
	buf_msg_begin(b, 'S');
	buf_msg_end(b);
}

/*
 * Pick the severity, SQLSTATE and message out of an ErrorResponse or
 * NoticeResponse body.  Missing fields are set to "".  Returns -1 if the
 * body is malformed.
 */
int
proto_error_fields(const uint8_t *body, size_t len, const char **severity,
    const char **sqlstate, const char **message)
{
	struct pgm_reader r;
	uint8_t		 code;
	const char	*s;

	*severity = *sqlstate = *message = "";
	reader_init(&r, body, len);
	for (;;) {
		if (reader_u8(&r, &code) == -1)
			return -1;
		if (code == 0)
			return 0;
		if (reader_str(&r, &s) == -1)
			return -1;
		if (code == 'S')
			*severity = s;
		else if (code == 'C')
			*sqlstate = s;
		else if (code == 'M')
			*message = s;
	}
}

/*
 * The tag mirroring gives an ErrorResponse in place of a command tag:
 * "ERROR " and its SQLSTATE.  body may be cut short.
 */
void
proto_error_tag(const uint8_t *body, size_t len, char *out, size_t outlen)
{
	struct pgm_reader r;
	const char	*f, *code = "";
	uint8_t		 t;

	reader_init(&r, body, len);
	while (reader_u8(&r, &t) == 0 && t != 0 && reader_str(&r, &f) == 0)
		if (t == 'C') {
			code = f;
			break;
		}
	snprintf(out, outlen, "ERROR %s", code);
}

/* Is this a message type a frontend may send after startup? */
int
proto_valid_frontend_type(uint8_t t)
{
	switch (t) {
	case 'B': case 'C': case 'c': case 'd': case 'D': case 'E':
	case 'f': case 'F': case 'H': case 'P': case 'p': case 'Q':
	case 'S': case 'X':
		return 1;
	}
	return 0;
}

/* Start following a stream; messages longer than maxlen are refused. */
void
scan_init(struct pgm_scan *s, uint32_t maxlen)
{
	memset(s, 0, sizeof(*s));
	s->maxlen = maxlen;
}

/*
 * Feed stream bytes to the scanner.  It stops at the first event and
 * says in *used how many bytes it consumed; the caller feeds the rest
 * again.  On SCAN_HEADER the caller may set s->capture to collect the
 * body (up to sizeof(s->cap) bytes; a longer body is not captured and
 * caplen says how much was).  SCAN_BODY is returned once the captured
 * body is complete, before the next header.  Setting s->hashing
 * instead (or as well) folds the whole body into s->hash, and also
 * ends with SCAN_BODY.  A message with an empty body ends at its
 * SCAN_HEADER.
 */
enum pgm_scan_event
scan_feed(struct pgm_scan *s, const uint8_t *p, size_t n, size_t *used)
{
	size_t		 off = 0, take;

	while (off < n) {
		if (s->hdrlen < 5) {
			take = 5 - s->hdrlen;
			if (take > n - off)
				take = n - off;
			memcpy(s->hdr + s->hdrlen, p + off, take);
			s->hdrlen += take;
			off += take;
			if (s->hdrlen < 5)
				break;
			s->type = s->hdr[0];
			s->len = proto_get_u32(s->hdr + 1);
			if (s->len < 4 || s->len > s->maxlen) {
				*used = off;
				return SCAN_BAD_LENGTH;
			}
			s->remain = s->len - 4;
			s->capture = 0;
			s->caplen = 0;
			s->hashing = 0;
			s->hash = PROTO_HASH_INIT;
			*used = off;
			if (s->remain == 0)
				s->hdrlen = 0;
			return SCAN_HEADER;
		}
		take = s->remain;
		if (take > n - off)
			take = n - off;
		if (s->hashing)
			s->hash = proto_hash(s->hash, p + off, take);
		if (s->capture && s->caplen < sizeof(s->cap)) {
			size_t	 c = take;

			if (c > sizeof(s->cap) - s->caplen)
				c = sizeof(s->cap) - s->caplen;
			memcpy(s->cap + s->caplen, p + off, c);
			s->caplen += c;
		}
		off += take;
		s->remain -= take;
		if (s->remain == 0) {
			s->hdrlen = 0;
			if (s->capture || s->hashing) {
				s->capture = 0;
				*used = off;
				return SCAN_BODY;
			}
		}
	}
	*used = off;
	return SCAN_NEED_MORE;
}

/*
 * Fold bytes into a 64-bit FNV-1a hash; start from PROTO_HASH_INIT.
 * Used to compare the rows two servers return, not for security.
 */
uint64_t
proto_hash(uint64_t h, const uint8_t *p, size_t n)
{
	while (n-- > 0) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * Is a query string a PREPARE or a DEALLOCATE alone (leading blanks and
 * "--" comments allowed, a final semicolon too)?  Those are not
 * transactional: what they do outlives a rollback.  q need not end with
 * a NUL; one at its end is ignored.
 */
int
proto_is_lone_prepare(const uint8_t *q, size_t len)
{
	static const char *const kw[] = { "prepare", "deallocate", NULL };
	const uint8_t	*semi;
	size_t		 i = 0, k, n;

	while (len > 0 && (q[len - 1] == '\0' || q[len - 1] == ' ' ||
	    q[len - 1] == '\t' || q[len - 1] == '\n' || q[len - 1] == '\r'))
		len--;
	for (;;) {
		while (i < len && (q[i] == ' ' || q[i] == '\t' ||
		    q[i] == '\n' || q[i] == '\r'))
			i++;
		if (i + 1 < len && q[i] == '-' && q[i + 1] == '-') {
			while (i < len && q[i] != '\n')
				i++;
			continue;
		}
		break;
	}
	for (k = 0; kw[k] != NULL; k++) {
		n = strlen(kw[k]);
		if (len - i <= n || strncasecmp((const char *)q + i, kw[k],
		    n) != 0 || (q[i + n] != ' ' && q[i + n] != '\t' &&
		    q[i + n] != '\n' && q[i + n] != '\r'))
			continue;
		/* One statement: no semicolon, or only a last one. */
		semi = memchr(q + i, ';', len - i);
		return semi == NULL || semi == q + len - 1;
	}
	return 0;
}

/*
 * The client cancelled requests pgmirror held and never forwarded (see
 * relay.c): find the requests complete in p[0, len), which starts at a
 * message boundary, and append to answer what PostgreSQL answers a
 * cancelled request.  Each Query, FunctionCall and Sync ends a request;
 * each gets an ERROR 57014 and a ReadyForQuery, idle since nothing of
 * them ran, but a Sync with nothing before it in its request, which
 * gets the ReadyForQuery alone.  What follows the last complete request
 * (an unsynced extended message, a message cut short) is not part of
 * it.  Returns the length of the prefix the complete requests fill; the
 * caller drops exactly those bytes, and *nreq is set to their number.
 */
size_t
proto_cancel_requests(const uint8_t *p, size_t len, struct pgm_buf *answer,
    int *nreq)
{
	size_t		 off = 0, done = 0, mlen;
	int		 content = 0;
	uint8_t		 type;

	*nreq = 0;
	while (len - off >= 5) {
		type = p[off];
		mlen = proto_get_u32(p + off + 1);
		if (mlen < 4 || mlen > len - off - 1)
			break;		/* cut short (or broken: never ours) */
		off += 1 + mlen;
		if (type != 'Q' && type != 'F' && type != 'S') {
			content = 1;
			continue;
		}
		if (type != 'S' || content)
			proto_error(answer, "ERROR", "57014", "canceling "
			    "statement due to user request");
		proto_ready(answer, 'I');
		content = 0;
		done = off;
		(*nreq)++;
	}
	return done;
}
