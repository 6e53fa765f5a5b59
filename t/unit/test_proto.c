/*
 * test_proto.c: TAP unit tests for src/proto.c (the protocol codec).
 *
 * Owns: the composed messages (lengths and fields parsed back), the
 * bounds-checked reader, the startup packet parser (every form, every
 * malformation, every prefix), the incremental message scanner fed
 * in every kind of split, the extended-query messages pgmirror sends
 * itself (Parse, Bind, Execute, Close, Sync), the tag mirroring gives
 * an ErrorResponse (proto_error_tag: whole, without a C field, cut
 * short), and the pool key of startup parameters (proto_params_key:
 * injective, read back exactly by proto_params_split, which refuses
 * malformed keys).  Inputs are copied into exact-size heap buffers so
 * AddressSanitizer catches any read past the given length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgmirror.h"
#include "tap.h"

/* The message in b starting at off: its type, length word and body. */
static int
msg_at(const struct pgm_buf *b, size_t off, uint8_t *type, uint32_t *len,
    const uint8_t **body)
{
	if (off + 5 > b->len)
		return -1;
	*type = b->data[off];
	*len = proto_get_u32(b->data + off + 1);
	if (*len < 4 || off + 1 + *len > b->len)
		return -1;
	*body = b->data + off + 5;
	return 0;
}

/* buf_* and buf_msg_begin/end. */
static void
test_buf(void)
{
	struct pgm_buf	 b;
	uint8_t		 w[4], *big;
	size_t		 i, cap;
	int		 ok;

	proto_put_u32(w, 0x01020304);
	tap_ok(w[0] == 1 && w[1] == 2 && w[2] == 3 && w[3] == 4,
	    "proto_put_u32 is big-endian");
	tap_is_int(proto_get_u32(w), 0x01020304, "proto_get_u32 round trip");
	proto_put_u32(w, 0xfffffffe);
	tap_is_int(proto_get_u32(w), 0xfffffffeu, "proto_get_u32 high bit");

	buf_init(&b);
	tap_ok(b.data == NULL && b.len == 0 && b.cap == 0 && !b.failed,
	    "buf_init gives an empty buffer");

	/* A typed message: type byte, then a length counting itself. */
	buf_msg_begin(&b, 'Q');
	buf_put_str(&b, "SELECT 1");
	buf_msg_end(&b);
	tap_is_int(b.len, 1 + 4 + 9, "typed message total size");
	tap_ok(b.data[0] == 'Q' && proto_get_u32(b.data + 1) == 4 + 9 &&
	    memcmp(b.data + 5, "SELECT 1", 9) == 0,
	    "typed message: type, length 13, body with NUL");

	/* A second message after it gets its own length. */
	buf_msg_begin(&b, 'S');
	buf_msg_end(&b);
	tap_ok(b.len == 14 + 5 && b.data[14] == 'S' &&
	    proto_get_u32(b.data + 15) == 4 &&
	    proto_get_u32(b.data + 1) == 13,
	    "second message (empty body) has length 4, first unchanged");

	/* Untyped (startup style): the length word starts the message. */
	buf_reset(&b);
	tap_ok(b.len == 0 && b.cap >= 256 && b.data != NULL,
	    "buf_reset empties but keeps memory");
	buf_msg_begin(&b, 0);
	buf_put_u32(&b, PGM_PROTO_V3);
	buf_put_u8(&b, 0);
	buf_msg_end(&b);
	tap_ok(b.len == 9 && proto_get_u32(b.data) == 9 &&
	    proto_get_u32(b.data + 4) == PGM_PROTO_V3 && b.data[8] == 0,
	    "untyped message: length word includes itself, no type byte");

	/* buf_put with n == 0 appends nothing. */
	buf_put(&b, NULL, 0);
	tap_is_int(b.len, 9, "buf_put of 0 bytes appends nothing");

	/* Growth keeps content; a large message gets the right length. */
	buf_reset(&b);
	big = malloc(300000);
	if (big == NULL)
		abort();
	for (i = 0; i < 300000; i++)
		big[i] = (uint8_t)(i * 7 + 3);
	buf_msg_begin(&b, 'd');
	for (i = 0; i < 300000; i += 1000)
		buf_put(&b, big + i, 1000);
	buf_msg_end(&b);
	tap_ok(!b.failed && b.len == 300005 && b.cap >= b.len &&
	    proto_get_u32(b.data + 1) == 300004 &&
	    memcmp(b.data + 5, big, 300000) == 0,
	    "grown buffer keeps 300000 bytes and the length word");
	free(big);

	cap = b.cap;
	tap_ok(buf_reserve(&b, 10) == 0 && b.cap == cap,
	    "buf_reserve within capacity does not reallocate");

	/* A failed buffer stays failed and appends nothing. */
	b.failed = 1;
	i = b.len;
	buf_put_u32(&b, 1);
	buf_msg_end(&b);
	tap_ok(b.len == i && buf_reserve(&b, 1) == -1,
	    "failed buffer appends nothing and refuses to reserve");

	buf_free(&b);
	tap_ok(b.data == NULL && b.len == 0 && b.cap == 0 && !b.failed,
	    "buf_free leaves an empty buffer");

	/* buf_put_u8 and buf_put_str byte layout. */
	buf_put_u8(&b, 0xab);
	buf_put_str(&b, "");
	buf_put_str(&b, "xy");
	ok = b.len == 5 && b.data[0] == 0xab && b.data[1] == 0 &&
	    memcmp(b.data + 2, "xy", 3) == 0;
	tap_ok(ok, "buf_put_u8 and buf_put_str (empty string is one NUL)");
	buf_free(&b);
}

/* proto_error_fields on an exact-size copy. */
static int
error_fields_n(const uint8_t *body, size_t n, const char **sev,
    const char **code, const char **msg, uint8_t **keep)
{
	uint8_t		*c = tap_dup_exact(body, n);

	*keep = c;
	return proto_error_fields(c, n, sev, code, msg);
}

/* The messages pgmirror composes. */
static void
test_compose(void)
{
	struct pgm_buf	 b;
	struct pgm_startup st;
	uint8_t		 type, *copy;
	uint32_t	 len;
	const uint8_t	*body;
	const char	*sev, *code, *msg;
	char		 longmsg[1001];
	struct pgm_reader r;
	uint32_t	 v1, v2;
	const char	*s1, *s2;
	int		 rc;

	buf_init(&b);

	proto_error(&b, "FATAL", "3D000", "database \"%s\" does not exist",
	    "nope");
	rc = msg_at(&b, 0, &type, &len, &body);
	tap_ok(rc == 0 && type == 'E' && len == b.len - 1,
	    "ErrorResponse: type E, length = size - 1");
	if (rc != 0) {
		printf("Bail out! ErrorResponse has no valid frame\n");
		exit(1);
	}
	rc = error_fields_n(body, len - 4, &sev, &code, &msg, &copy);
	tap_is_int(rc, 0, "ErrorResponse parses back");
	tap_is_str(sev, "FATAL", "ErrorResponse severity");
	tap_is_str(code, "3D000", "ErrorResponse SQLSTATE");
	tap_is_str(msg, "database \"nope\" does not exist",
	    "ErrorResponse message formatted");
	free(copy);
	tap_ok(len - 4 >= 8 && memcmp(body, "SFATAL\0VFATAL\0C3D000\0M", 22)
	    == 0 && body[len - 5] == 0,
	    "ErrorResponse carries S, V, C, M and the final NUL");

	/* A message longer than the internal buffer is cut, not overrun. */
	buf_reset(&b);
	memset(longmsg, 'x', 1000);
	longmsg[1000] = '\0';
	proto_error(&b, "ERROR", "XX000", "%s", longmsg);
	rc = msg_at(&b, 0, &type, &len, &body) == 0 ?
	    error_fields_n(body, len - 4, &sev, &code, &msg, &copy) : -2;
	tap_ok(rc == 0 && strlen(msg) == 511 && msg[0] == 'x' &&
	    strcmp(sev, "ERROR") == 0, "long error message cut to 511 bytes");
	if (rc != -2)
		free(copy);

	/* proto_error_fields on malformed and minimal bodies. */
	rc = error_fields_n((const uint8_t *)"", 0, &sev, &code, &msg, &copy);
	tap_is_int(rc, -1, "error fields: empty body is malformed");
	free(copy);
	rc = error_fields_n((const uint8_t *)"\0", 1, &sev, &code, &msg,
	    &copy);
	tap_ok(rc == 0 && *sev == '\0' && *code == '\0' && *msg == '\0',
	    "error fields: lone terminator gives three empty fields");
	free(copy);
	rc = error_fields_n((const uint8_t *)"SERROR\0Mabc", 11, &sev, &code,
	    &msg, &copy);
	tap_is_int(rc, -1, "error fields: unterminated string is malformed");
	free(copy);
	rc = error_fields_n((const uint8_t *)"SERROR\0Mabc\0", 12, &sev,
	    &code, &msg, &copy);
	tap_is_int(rc, -1, "error fields: missing final NUL is malformed");
	free(copy);
	rc = error_fields_n((const uint8_t *)"Xskip\0Cabc\0Mhi\0\0", 16, &sev,
	    &code, &msg, &copy);
	tap_ok(rc == 0 && *sev == '\0' && strcmp(code, "abc") == 0 &&
	    strcmp(msg, "hi") == 0,
	    "error fields: unknown fields skipped, missing severity empty");
	free(copy);

	/* Authentication requests. */
	buf_reset(&b);
	proto_auth_request(&b, 0, NULL, 0);
	tap_ok(b.len == 9 && b.data[0] == 'R' &&
	    proto_get_u32(b.data + 1) == 8 && proto_get_u32(b.data + 5) == 0,
	    "AuthenticationOk: R, length 8, code 0");
	buf_reset(&b);
	proto_auth_request(&b, 5, "\x01\x02\x03\x04", 4);
	tap_ok(b.len == 13 && b.data[0] == 'R' &&
	    proto_get_u32(b.data + 1) == 12 && proto_get_u32(b.data + 5) == 5 &&
	    memcmp(b.data + 9, "\x01\x02\x03\x04", 4) == 0,
	    "AuthenticationMD5Password: length 12, code 5, salt");
	buf_reset(&b);
	proto_auth_request(&b, 10, "SCRAM-SHA-256\0", 15);
	tap_ok(b.len == 1 + 4 + 4 + 15 && proto_get_u32(b.data + 1) == 23 &&
	    proto_get_u32(b.data + 5) == 10 &&
	    memcmp(b.data + 9, "SCRAM-SHA-256\0\0", 15) == 0,
	    "AuthenticationSASL: length 23, code 10, mechanism list");

	/* ParameterStatus. */
	buf_reset(&b);
	proto_parameter_status(&b, "client_encoding", "UTF8");
	reader_init(&r, b.data, b.len);
	tap_ok(b.data[0] == 'S' && proto_get_u32(b.data + 1) == b.len - 1 &&
	    b.len == 1 + 4 + 16 + 5,
	    "ParameterStatus: type S and length");
	r.pos = 5;
	tap_ok(reader_str(&r, &s1) == 0 && reader_str(&r, &s2) == 0 &&
	    strcmp(s1, "client_encoding") == 0 && strcmp(s2, "UTF8") == 0 &&
	    r.pos == r.len, "ParameterStatus: name and value");

	/* BackendKeyData. */
	buf_reset(&b);
	proto_backend_key(&b, 12345, 0xdeadbeef);
	reader_init(&r, b.data + 5, b.len - 5);
	tap_ok(b.len == 13 && b.data[0] == 'K' &&
	    proto_get_u32(b.data + 1) == 12 && reader_u32(&r, &v1) == 0 &&
	    reader_u32(&r, &v2) == 0 && v1 == 12345 && v2 == 0xdeadbeef,
	    "BackendKeyData: length 12, pid and key");

	/* ReadyForQuery. */
	buf_reset(&b);
	proto_ready(&b, 'I');
	tap_ok(b.len == 6 && b.data[0] == 'Z' &&
	    proto_get_u32(b.data + 1) == 5 && b.data[5] == 'I',
	    "ReadyForQuery: length 5, status I");

	/* NegotiateProtocolVersion lists only the _pq_. options. */
	memset(&st, 0, sizeof(st));
	st.code = 0x00030002;
	st.name[0] = "user";		st.value[0] = "bob";
	st.name[1] = "_pq_.foo";	st.value[1] = "1";
	st.name[2] = "database";	st.value[2] = "db";
	st.name[3] = "_pq_.bar";	st.value[3] = "2";
	st.name[4] = "_pq_";		st.value[4] = "3";
	st.name[5] = "pq_.x";		st.value[5] = "4";
	st.nparams = 6;
	buf_reset(&b);
	proto_negotiate_version(&b, PGM_PROTO_V3, &st);
	reader_init(&r, b.data + 5, b.len - 5);
	tap_ok(b.data[0] == 'v' && proto_get_u32(b.data + 1) == b.len - 1 &&
	    b.len == 1 + 4 + 4 + 4 + 9 + 9,
	    "NegotiateProtocolVersion: type v and length");
	tap_ok(reader_u32(&r, &v1) == 0 && v1 == PGM_PROTO_V3 &&
	    reader_u32(&r, &v2) == 0 && v2 == 2 &&
	    reader_str(&r, &s1) == 0 && strcmp(s1, "_pq_.foo") == 0 &&
	    reader_str(&r, &s2) == 0 && strcmp(s2, "_pq_.bar") == 0 &&
	    r.pos == r.len,
	    "NegotiateProtocolVersion: 3.0, 2 options, only _pq_. ones");
	st.nparams = 1;
	buf_reset(&b);
	proto_negotiate_version(&b, PGM_PROTO_V3, &st);
	tap_ok(b.len == 13 && proto_get_u32(b.data + 1) == 12 &&
	    proto_get_u32(b.data + 9) == 0,
	    "NegotiateProtocolVersion without _pq_. options: count 0");

	/* Query. */
	buf_reset(&b);
	proto_query(&b, "DISCARD ALL");
	tap_ok(b.len == 1 + 4 + 12 && b.data[0] == 'Q' &&
	    proto_get_u32(b.data + 1) == 16 &&
	    memcmp(b.data + 5, "DISCARD ALL", 12) == 0,
	    "Query: type Q, length 16, SQL with NUL");

	buf_free(&b);
}

/* The reader never reads past its range. */
static void
test_reader(void)
{
	struct pgm_reader r;
	uint8_t		*p, v8;
	uint32_t	 v32;
	const uint8_t	*bp;
	const char	*s;
	size_t		 n;
	int		 ok;

	p = tap_dup_exact("\x01\x02\x03\x04\x05", 5);
	reader_init(&r, p, 5);
	tap_ok(reader_u32(&r, &v32) == 0 && v32 == 0x01020304 && r.pos == 4,
	    "reader_u32 reads a big-endian word");
	tap_ok(reader_u32(&r, &v32) == -1 && r.pos == 4,
	    "reader_u32 with 1 byte left: -1, position kept");
	tap_ok(reader_u8(&r, &v8) == 0 && v8 == 5 && r.pos == 5,
	    "reader_u8 reads the last byte");
	tap_ok(reader_u8(&r, &v8) == -1 && r.pos == 5,
	    "reader_u8 at the end: -1");
	tap_ok(reader_bytes(&r, 1, &bp) == -1 &&
	    reader_bytes(&r, 0, &bp) == 0 && bp == p + 5,
	    "reader_bytes at the end: 1 byte refused, 0 bytes fine");
	tap_ok(reader_str(&r, &s) == -1 && r.pos == 5,
	    "reader_str at the end: -1");
	free(p);

	p = tap_dup_exact("abc", 3);
	reader_init(&r, p, 3);
	tap_ok(reader_str(&r, &s) == -1 && r.pos == 0,
	    "reader_str on an unterminated string: -1");
	tap_ok(reader_bytes(&r, 4, &bp) == -1 &&
	    reader_bytes(&r, SIZE_MAX, &bp) == -1 && r.pos == 0,
	    "reader_bytes past the end (and SIZE_MAX): -1");
	tap_ok(reader_bytes(&r, 3, &bp) == 0 && bp == p && r.pos == 3,
	    "reader_bytes of exactly the rest");
	free(p);

	p = tap_dup_exact("ab\0\0c\0", 6);
	reader_init(&r, p, 6);
	ok = reader_str(&r, &s) == 0 && strcmp(s, "ab") == 0 && r.pos == 3;
	ok = ok && reader_str(&r, &s) == 0 && *s == '\0' && r.pos == 4;
	ok = ok && reader_str(&r, &s) == 0 && strcmp(s, "c") == 0 &&
	    r.pos == 6;
	ok = ok && reader_str(&r, &s) == -1;
	tap_ok(ok, "reader_str walks strings, including an empty one");
	free(p);

	/* Every short length: each read fails instead of overreading. */
	ok = 1;
	for (n = 0; n < 4; n++) {
		p = tap_dup_exact("\xff\xff\xff\xff", n);
		reader_init(&r, p, n);
		if (reader_u32(&r, &v32) != -1 || r.pos != 0)
			ok = 0;
		if (reader_bytes(&r, n + 1, &bp) != -1)
			ok = 0;
		if (n > 0 && reader_str(&r, &s) != -1)
			ok = 0;
		free(p);
	}
	tap_ok(ok, "reads on 0..3 byte buffers fail cleanly");
}

/* A startup packet under construction. */
static void
sp_begin(struct pgm_buf *b, uint32_t code)
{
	buf_init(b);
	buf_msg_begin(b, 0);
	buf_put_u32(b, code);
}

static void
sp_param(struct pgm_buf *b, const char *name, const char *value)
{
	buf_put_str(b, name);
	buf_put_str(b, value);
}

static void
sp_end(struct pgm_buf *b)
{
	buf_put_u8(b, 0);
	buf_msg_end(b);
}

/*
 * Parse an exact-size copy of data[0..n).  The copy is returned in *keep
 * (the parameters point into it); the caller frees it.
 */
static int
parse_n(const uint8_t *data, size_t n, struct pgm_startup *st,
    const char **err, uint8_t **keep)
{
	uint8_t		*c = tap_dup_exact(data, n);

	*keep = c;
	*err = NULL;
	return proto_parse_startup(c, n, st, err);
}

/* Parse a built packet (exact-size copy), then free it and the copy. */
static int
parse_buf(struct pgm_buf *b, struct pgm_startup *st, const char **err)
{
	uint8_t		*c;
	int		 rc;

	rc = parse_n(b->data, b->len, st, err, &c);
	free(c);
	buf_free(b);
	return rc;
}

/* A packet with one more parameter, of any bytes. */
static int
parse_with_value(const char *name, const char *value, const char **err)
{
	struct pgm_buf	 b;
	struct pgm_startup st;

	sp_begin(&b, PGM_PROTO_V3);
	sp_param(&b, "user", "bob");
	sp_param(&b, name, value);
	sp_end(&b);
	return parse_buf(&b, &st, err);
}

static void
test_startup(void)
{
	struct pgm_buf	 b;
	struct pgm_startup st;
	const char	*err;
	uint8_t		*c;
	char		 name[16];
	size_t		 i, full;
	int		 rc, ok, parsed;

	/* A valid 3.0 packet: parameters in order. */
	sp_begin(&b, PGM_PROTO_V3);
	sp_param(&b, "user", "alice");
	sp_param(&b, "database", "original");
	sp_param(&b, "options", "-c search_path=x");
	sp_param(&b, "application_name", "psql");
	sp_end(&b);
	rc = parse_n(b.data, b.len, &st, &err, &c);
	tap_is_int(rc, 0, "valid 3.0 startup packet parses");
	tap_ok(st.code == PGM_PROTO_V3 && st.nparams == 4,
	    "code 3.0 and 4 parameters");
	tap_ok(st.nparams == 4 && strcmp(st.name[0], "user") == 0 &&
	    strcmp(st.value[0], "alice") == 0 &&
	    strcmp(st.name[1], "database") == 0 &&
	    strcmp(st.value[1], "original") == 0 &&
	    strcmp(st.name[2], "options") == 0 &&
	    strcmp(st.value[2], "-c search_path=x") == 0 &&
	    strcmp(st.name[3], "application_name") == 0 &&
	    strcmp(st.value[3], "psql") == 0,
	    "parameters kept in the order sent");
	tap_ok(st.nparams == 4 && (const uint8_t *)st.name[0] == c + 8 &&
	    (const uint8_t *)st.value[3] < c + b.len,
	    "parameters point into the packet");
	tap_is_str(proto_startup_param(&st, "database"), "original",
	    "proto_startup_param finds database");
	tap_ok(proto_startup_param(&st, "replication") == NULL,
	    "proto_startup_param of an absent name is NULL");
	free(c);

	/* Every prefix, length word patched, parses or fails cleanly. */
	full = b.len;
	ok = 1;
	parsed = 0;
	for (i = 0; i <= full; i++) {
		uint8_t *p = tap_dup_exact(b.data, i);

		if (i >= 4)
			proto_put_u32(p, (uint32_t)i);
		err = NULL;
		rc = proto_parse_startup(p, i, &st, &err);
		if (rc == 0) {
			parsed++;
			if (i != full || st.nparams != 4)
				ok = 0;
		} else if (rc != -1 || err == NULL)
			ok = 0;
		free(p);
	}
	tap_ok(ok && parsed == 1,
	    "every prefix fails cleanly with a reason; only the whole parses");

	/* The same prefixes with the original length word: mismatch. */
	ok = 1;
	for (i = 0; i < full; i++) {
		rc = parse_n(b.data, i, &st, &err, &c);
		if (rc != -1 || err == NULL ||
		    strcmp(err, "invalid startup packet layout") != 0)
			ok = 0;
		free(c);
	}
	tap_ok(ok, "prefixes with the full length word are refused as layout");

	/* Length word not matching the buffer. */
	proto_put_u32(b.data, full + 1);
	rc = parse_n(b.data, full, &st, &err, &c);
	free(c);
	tap_ok(rc == -1 && strcmp(err, "invalid startup packet layout") == 0,
	    "length word one more than the buffer: refused");
	proto_put_u32(b.data, full - 1);
	rc = parse_n(b.data, full, &st, &err, &c);
	free(c);
	tap_ok(rc == -1 && strcmp(err, "invalid startup packet layout") == 0,
	    "length word one less than the buffer: refused");
	buf_free(&b);

	/* Trailing garbage after the terminator. */
	sp_begin(&b, PGM_PROTO_V3);
	sp_param(&b, "user", "alice");
	buf_put_u8(&b, 0);
	buf_put_u8(&b, 'x');
	buf_msg_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && strcmp(err, "invalid startup packet layout") == 0,
	    "trailing byte after the terminator: refused");

	/* Unterminated value (no NUL before the end). */
	sp_begin(&b, PGM_PROTO_V3);
	buf_put_str(&b, "user");
	buf_put(&b, "alice", 5);
	buf_msg_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && strcmp(err, "invalid startup packet layout") == 0,
	    "unterminated value: refused");

	/* Unterminated name. */
	sp_begin(&b, PGM_PROTO_V3);
	sp_param(&b, "user", "alice");
	buf_put(&b, "datab", 5);
	buf_msg_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && strcmp(err, "invalid startup packet layout") == 0,
	    "unterminated name: refused");

	/* Missing final terminator. */
	sp_begin(&b, PGM_PROTO_V3);
	sp_param(&b, "user", "alice");
	buf_msg_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && strcmp(err, "invalid startup packet layout") == 0,
	    "missing list terminator: refused");

	/* No parameters at all (length 8). */
	sp_begin(&b, PGM_PROTO_V3);
	buf_msg_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && err != NULL, "3.0 packet of length 8: refused");

	/* Missing and empty user. */
	sp_begin(&b, PGM_PROTO_V3);
	sp_param(&b, "database", "original");
	sp_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && strcmp(err, "no PostgreSQL user name specified "
	    "in startup packet") == 0, "missing user: refused");
	sp_begin(&b, PGM_PROTO_V3);
	sp_param(&b, "user", "");
	sp_param(&b, "database", "original");
	sp_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && strcmp(err, "no PostgreSQL user name specified "
	    "in startup packet") == 0, "empty user: refused");

	/* An empty value other than user is fine. */
	sp_begin(&b, PGM_PROTO_V3);
	sp_param(&b, "options", "");
	sp_param(&b, "user", "u");
	sp_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == 0 && st.nparams == 2, "empty options value accepted");

	/* PGM_MAXPARAMS parameters pass, one more is refused. */
	sp_begin(&b, PGM_PROTO_V3);
	sp_param(&b, "user", "u");
	for (i = 1; i < PGM_MAXPARAMS; i++) {
		snprintf(name, sizeof(name), "p%zu", i);
		sp_param(&b, name, "v");
	}
	sp_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == 0 && st.nparams == PGM_MAXPARAMS,
	    "exactly %d parameters accepted", PGM_MAXPARAMS);
	sp_begin(&b, PGM_PROTO_V3);
	sp_param(&b, "user", "u");
	for (i = 1; i <= PGM_MAXPARAMS; i++) {
		snprintf(name, sizeof(name), "p%zu", i);
		sp_param(&b, name, "v");
	}
	sp_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && strcmp(err, "too many startup parameters") == 0,
	    "%d parameters: too many", PGM_MAXPARAMS + 1);

	/*
	 * Bytes that are not UTF-8 pass as they are: PostgreSQL accepts
	 * them in the startup packet and interprets them itself.
	 */
	rc = parse_with_value("application_name",
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf", &err);
	tap_is_int(rc, 0, "valid 2, 3 and 4 byte UTF-8 accepted");
	rc = parse_with_value("application_name", "a\xc0\xaf", &err);
	tap_ok(rc == 0, "overlong 2-byte sequence (C0 AF) passed on (the server judges it)");
	rc = parse_with_value("application_name", "\xe0\x80\xaf", &err);
	tap_ok(rc == 0, "overlong 3-byte sequence (E0 80 AF) passed on (the server judges it)");
	rc = parse_with_value("application_name", "\xf0\x80\x80\xaf", &err);
	tap_ok(rc == 0, "overlong 4-byte sequence (F0 80 80 AF) passed on (the server judges it)");
	rc = parse_with_value("application_name", "x\xed\xa0\x80y", &err);
	tap_ok(rc == 0, "surrogate U+D800 (ED A0 80) passed on (the server judges it)");
	rc = parse_with_value("application_name", "x\xed\xbf\xbf", &err);
	tap_ok(rc == 0, "surrogate U+DFFF (ED BF BF) passed on (the server judges it)");
	rc = parse_with_value("application_name", "ab\xe2\x82", &err);
	tap_ok(rc == 0, "truncated 3-byte sequence at the end passed on (the server judges it)");
	rc = parse_with_value("application_name", "\xf0\x9f\x98", &err);
	tap_ok(rc == 0, "truncated 4-byte sequence passed on (the server judges it)");
	rc = parse_with_value("application_name", "\xc3z", &err);
	tap_ok(rc == 0, "lead byte followed by ASCII passed on (the server judges it)");
	rc = parse_with_value("application_name", "\xc3\xc3", &err);
	tap_ok(rc == 0, "lead byte followed by a lead byte passed on (the server judges it)");
	rc = parse_with_value("application_name", "\xf4\x90\x80\x80", &err);
	tap_ok(rc == 0, "code point above U+10FFFF passed on (the server judges it)");
	rc = parse_with_value("application_name", "\x80", &err);
	tap_ok(rc == 0, "lone continuation byte passed on (the server judges it)");
	rc = parse_with_value("application_name", "\xff", &err);
	tap_ok(rc == 0, "byte FF passed on (the server judges it)");
	rc = parse_with_value("na\xc3\xa9\xc0\x80me", "v", &err);
	tap_ok(rc == 0, "invalid UTF-8 in a parameter name passed on (the server judges it)");

	/* SSLRequest and GSSENCRequest: 8 bytes, nothing more. */
	sp_begin(&b, PGM_SSL_CODE);
	buf_msg_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == 0 && st.code == PGM_SSL_CODE && st.nparams == 0,
	    "SSLRequest (length 8) parses");
	sp_begin(&b, PGM_GSSENC_CODE);
	buf_msg_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == 0 && st.code == PGM_GSSENC_CODE,
	    "GSSENCRequest (length 8) parses");
	sp_begin(&b, PGM_SSL_CODE);
	buf_put_u32(&b, 0);
	buf_msg_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && err != NULL, "SSLRequest of length 12: refused");
	sp_begin(&b, PGM_GSSENC_CODE);
	buf_put_u8(&b, 0);
	buf_msg_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && err != NULL, "GSSENCRequest of length 9: refused");

	/* CancelRequest: exactly 16 bytes. */
	sp_begin(&b, PGM_CANCEL_CODE);
	buf_put_u32(&b, 4242);
	buf_put_u32(&b, 0x87654321);
	buf_msg_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == 0 && st.code == PGM_CANCEL_CODE &&
	    st.cancel_pid == 4242 && st.cancel_key == 0x87654321,
	    "CancelRequest (length 16): pid and key");
	sp_begin(&b, PGM_CANCEL_CODE);
	buf_put_u32(&b, 4242);
	buf_msg_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && err != NULL, "CancelRequest of length 12: refused");
	sp_begin(&b, PGM_CANCEL_CODE);
	buf_put_u32(&b, 4242);
	buf_put_u32(&b, 1);
	buf_put_u32(&b, 2);
	buf_msg_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && err != NULL, "CancelRequest of length 20: refused");

	/* Protocol versions. */
	sp_begin(&b, 0x00020000);
	sp_param(&b, "user", "u");
	sp_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && strcmp(err, "unsupported frontend protocol") == 0 &&
	    st.code == 0x00020000,
	    "protocol 2.0 refused as unsupported, code reported");
	sp_begin(&b, 0x00040000);
	sp_param(&b, "user", "u");
	sp_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == -1 && strcmp(err, "unsupported frontend protocol") == 0,
	    "protocol 4.0 refused as unsupported");
	sp_begin(&b, 0x00030001);
	sp_param(&b, "user", "u");
	sp_param(&b, "_pq_.x", "1");
	sp_end(&b);
	rc = parse_buf(&b, &st, &err);
	tap_ok(rc == 0 && st.code == 0x00030001 && st.nparams == 2,
	    "protocol 3.1 accepted with its code reported");

	/* Shorter than a header. */
	ok = 1;
	for (i = 0; i < 8; i++) {
		static const uint8_t hdr[8] = { 0, 0, 0, 8, 0, 3, 0, 0 };
		uint8_t *p = tap_dup_exact(hdr, i);

		if (i >= 4)
			proto_put_u32(p, (uint32_t)i);
		err = NULL;
		if (proto_parse_startup(p, i, &st, &err) != -1 ||
		    err == NULL)
			ok = 0;
		free(p);
	}
	tap_ok(ok, "packets of 0..7 bytes refused");
}

/* One thing the scanner reported. */
struct scan_ev {
	enum pgm_scan_event ev;
	uint8_t		 type;
	uint32_t	 len;
	size_t		 caplen;
	const uint8_t	*cap;	/* expected body, or a copy of the captured */
};

#define MAXEV	64

struct scan_log {
	struct scan_ev	 e[MAXEV];
	int		 n;
	int		 broken;	/* contract violated */
};

static void
scan_log_free(struct scan_log *l)
{
	int		 i;

	for (i = 0; i < l->n; i++)
		if (l->e[i].ev == SCAN_BODY)
			free((void *)(uintptr_t)l->e[i].cap);	/* our copy */
	l->n = 0;
}

/*
 * Feed one chunk (copied to an exact-size buffer) to the scanner,
 * recording its events; capture is set on 'Z' and 'S' with a body,
 * as relay.c does.
 */
static void
scan_chunk(struct pgm_scan *s, const uint8_t *data, size_t n,
    struct scan_log *l)
{
	uint8_t		*c = tap_dup_exact(data, n);
	size_t		 off = 0, used;
	enum pgm_scan_event ev;
	int		 spins = 0;

	while (off < n) {
		used = (size_t)-1;
		ev = scan_feed(s, c + off, n - off, &used);
		if (used > n - off || (ev == SCAN_NEED_MORE && used !=
		    n - off) || (used == 0 && ++spins > 2)) {
			l->broken = 1;
			break;
		}
		off += used;
		if (ev == SCAN_NEED_MORE)
			continue;
		if (l->n == MAXEV || ev == SCAN_BAD_LENGTH) {
			l->broken = 1;
			break;
		}
		l->e[l->n].ev = ev;
		l->e[l->n].type = s->type;
		l->e[l->n].len = s->len;
		l->e[l->n].caplen = 0;
		l->e[l->n].cap = NULL;
		if (ev == SCAN_BODY) {
			l->e[l->n].caplen = s->caplen;
			l->e[l->n].cap = tap_dup_exact(s->cap, s->caplen);
		}
		l->n++;
		if (ev == SCAN_HEADER && (s->type == 'Z' || s->type == 'S') &&
		    s->remain > 0)
			s->capture = 1;
	}
	free(c);
}

/* Are two event logs the same? */
static int
scan_log_eq(const struct scan_log *a, const struct scan_log *b)
{
	int		 i;

	if (a->broken || b->broken || a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++) {
		if (a->e[i].ev != b->e[i].ev || a->e[i].type != b->e[i].type ||
		    a->e[i].len != b->e[i].len ||
		    a->e[i].caplen != b->e[i].caplen)
			return 0;
		if (a->e[i].caplen > 0 &&
		    memcmp(a->e[i].cap, b->e[i].cap, a->e[i].caplen) != 0)
			return 0;
	}
	return 1;
}

/* Append a message with a patterned body to the stream. */
static void
stream_msg(struct pgm_buf *b, uint8_t type, const void *body, size_t n)
{
	buf_msg_begin(b, type);
	buf_put(b, body, n);
	buf_msg_end(b);
}

static void
test_scan(void)
{
	struct pgm_buf	 b;
	struct pgm_scan	 s;
	struct scan_log	 want, got;
	uint8_t		 big[3000], hdr[5], *huge;
	uint32_t	 seed;
	size_t		 i, off, k, n, used;
	enum pgm_scan_event ev;
	int		 ok, round;

	for (i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 31 + 7);

	/* The stream and the events it must give. */
	buf_init(&b);
	memset(&want, 0, sizeof(want));
#define WANT(t, l, body, cl) do {					\
	want.e[want.n].ev = SCAN_HEADER;				\
	want.e[want.n].type = (t);					\
	want.e[want.n++].len = (l);					\
	if ((cl) > 0) {							\
		want.e[want.n].ev = SCAN_BODY;				\
		want.e[want.n].type = (t);				\
		want.e[want.n].len = (l);				\
		want.e[want.n].caplen = (cl);				\
		want.e[want.n++].cap = (const uint8_t *)(body);		\
	}								\
} while (0)
	stream_msg(&b, 'Q', "SELECT 1", 9);
	WANT('Q', 13, NULL, 0);
	stream_msg(&b, 'S', NULL, 0);			/* Sync */
	WANT('S', 4, NULL, 0);
	stream_msg(&b, 'Z', "I", 1);
	WANT('Z', 5, "I", 1);
	stream_msg(&b, 'S', "client_encoding\0UTF8", 21);
	WANT('S', 25, "client_encoding\0UTF8", 21);
	stream_msg(&b, 'D', big, sizeof(big));		/* large, not captured */
	WANT('D', 3004, NULL, 0);
	stream_msg(&b, 'H', NULL, 0);			/* Flush */
	WANT('H', 4, NULL, 0);
	stream_msg(&b, 'S', big, 1500);			/* captured, truncated */
	WANT('S', 1504, big, sizeof(s.cap));
	stream_msg(&b, 'c', NULL, 0);
	WANT('c', 4, NULL, 0);
	stream_msg(&b, 'Z', "T", 1);
	WANT('Z', 5, "T", 1);
	stream_msg(&b, 'X', NULL, 0);
	WANT('X', 4, NULL, 0);
#undef WANT

	/* All at once. */
	memset(&got, 0, sizeof(got));
	scan_init(&s, PGM_MESSAGE_MAX);
	scan_chunk(&s, b.data, b.len, &got);
	tap_ok(scan_log_eq(&got, &want) && s.hdrlen == 0,
	    "whole stream: %d expected headers and captured bodies", want.n);
	scan_log_free(&got);

	/* One byte at a time. */
	scan_init(&s, PGM_MESSAGE_MAX);
	for (i = 0; i < b.len; i++)
		scan_chunk(&s, b.data + i, 1, &got);
	tap_ok(scan_log_eq(&got, &want) && s.hdrlen == 0,
	    "stream fed one byte at a time gives the same events");
	scan_log_free(&got);

	/* Every split in two. */
	ok = 1;
	for (k = 0; k <= b.len && ok; k++) {
		scan_init(&s, PGM_MESSAGE_MAX);
		scan_chunk(&s, b.data, k, &got);
		scan_chunk(&s, b.data + k, b.len - k, &got);
		if (!scan_log_eq(&got, &want) || s.hdrlen != 0) {
			tap_diag("split at %zu differs", k);
			ok = 0;
		}
		scan_log_free(&got);
	}
	tap_ok(ok, "stream split at each of %zu points gives the same events",
	    b.len + 1);

	/* Random chunk sizes from fixed seeds. */
	ok = 1;
	for (round = 0; round < 200 && ok; round++) {
		seed = 0x9e3779b9u + round * 7919;
		scan_init(&s, PGM_MESSAGE_MAX);
		for (off = 0; off < b.len; off += n) {
			n = 1 + tap_rng(&seed) % (round < 100 ? 17 : 700);
			if (n > b.len - off)
				n = b.len - off;
			scan_chunk(&s, b.data + off, n, &got);
		}
		if (!scan_log_eq(&got, &want) || s.hdrlen != 0) {
			tap_diag("random round %d differs", round);
			ok = 0;
		}
		scan_log_free(&got);
	}
	tap_ok(ok, "200 random chunkings give the same events");

	/* The truncated capture: exactly sizeof(cap) bytes, in sync after. */
	memset(&got, 0, sizeof(got));
	scan_init(&s, PGM_MESSAGE_MAX);
	scan_chunk(&s, b.data, b.len, &got);
	tap_ok(got.n == want.n && got.e[9].ev == SCAN_BODY &&
	    got.e[9].type == 'S' && got.e[9].caplen == 1024 &&
	    memcmp(got.e[9].cap, big, 1024) == 0 &&
	    got.e[10].ev == SCAN_HEADER && got.e[10].type == 'c',
	    "1500-byte body captured as its first 1024 bytes, next header "
	    "found");
	scan_log_free(&got);
	buf_free(&b);

	/* A message of 256 KiB in random chunks: one header, in sync. */
	n = 256 * 1024;
	huge = malloc(5 + n + 6);
	if (huge == NULL)
		abort();
	huge[0] = 'd';
	proto_put_u32(huge + 1, (uint32_t)n + 4);
	memset(huge + 5, 'D', n);
	huge[5 + n] = 'Z';
	proto_put_u32(huge + 6 + n, 5);
	huge[10 + n] = 'E';
	seed = 12345;
	memset(&got, 0, sizeof(got));
	scan_init(&s, PGM_MESSAGE_MAX);
	for (off = 0; off < 5 + n + 6; off += k) {
		k = 1 + tap_rng(&seed) % 9000;
		if (k > 5 + n + 6 - off)
			k = 5 + n + 6 - off;
		scan_chunk(&s, huge + off, k, &got);
	}
	tap_ok(!got.broken && got.n == 3 && got.e[0].type == 'd' &&
	    got.e[0].len == n + 4 && got.e[1].type == 'Z' &&
	    got.e[1].ev == SCAN_HEADER && got.e[2].ev == SCAN_BODY &&
	    got.e[2].caplen == 1 && got.e[2].cap[0] == 'E' && s.hdrlen == 0,
	    "256 KiB message in random chunks: in sync after it");
	scan_log_free(&got);
	free(huge);

	/* Bad lengths. */
	scan_init(&s, PGM_MESSAGE_MAX);
	memcpy(hdr, "Q\0\0\0\3", 5);
	ev = scan_feed(&s, hdr, 5, &used);
	tap_ok(ev == SCAN_BAD_LENGTH && used == 5 && s.type == 'Q' &&
	    s.len == 3, "length 3: SCAN_BAD_LENGTH");
	scan_init(&s, PGM_MESSAGE_MAX);
	memcpy(hdr, "Q\0\0\0\0", 5);
	ev = scan_feed(&s, hdr, 5, &used);
	tap_ok(ev == SCAN_BAD_LENGTH && s.len == 0, "length 0: SCAN_BAD_LENGTH");
	scan_init(&s, 1000);
	hdr[0] = 'D';
	proto_put_u32(hdr + 1, 1001);
	ev = scan_feed(&s, hdr, 5, &used);
	tap_ok(ev == SCAN_BAD_LENGTH && s.len == 1001,
	    "length maxlen + 1: SCAN_BAD_LENGTH");
	scan_init(&s, 1000);
	proto_put_u32(hdr + 1, 1000);
	ev = scan_feed(&s, hdr, 5, &used);
	tap_ok(ev == SCAN_HEADER && s.len == 1000 && s.remain == 996,
	    "length maxlen: accepted");
	scan_init(&s, PGM_MESSAGE_MAX);
	proto_put_u32(hdr + 1, 0xffffffff);
	ok = 1;
	for (i = 0; i < 4; i++) {
		ev = scan_feed(&s, hdr + i, 1, &used);
		if (ev != SCAN_NEED_MORE || used != 1)
			ok = 0;
	}
	ev = scan_feed(&s, hdr + 4, 1, &used);
	tap_ok(ok && ev == SCAN_BAD_LENGTH && used == 1,
	    "length 0xffffffff fed bytewise: SCAN_BAD_LENGTH at the 5th byte");
	{
		uint8_t	 two[10];

		scan_init(&s, PGM_MESSAGE_MAX);
		memcpy(two, "S\0\0\0\4Q\0\0\0\2", 10);
		ev = scan_feed(&s, two, 10, &used);
		tap_ok(ev == SCAN_HEADER && used == 5 && s.type == 'S' &&
		    s.len == 4, "bad second message: first header reported");
		ev = scan_feed(&s, two + 5, 5, &used);
		tap_ok(ev == SCAN_BAD_LENGTH && used == 5 && s.type == 'Q' &&
		    s.len == 2, "then the bad length of the second");
	}

	/* Nothing in, nothing out. */
	scan_init(&s, PGM_MESSAGE_MAX);
	used = 99;
	ev = scan_feed(&s, hdr, 0, &used);
	tap_ok(ev == SCAN_NEED_MORE && used == 0, "empty feed: need more");
}

/* proto_error_tag on an exact-size copy of n bytes of body. */
static void
error_tag_n(const uint8_t *body, size_t n, char *out, size_t outlen)
{
	uint8_t		*c = tap_dup_exact(body, n);

	proto_error_tag(c, n, out, outlen);
	free(c);
}

/*
 * The result an ErrorResponse stands for in a mirrored transaction:
 * "ERROR " and its SQLSTATE, from a body that may be cut short (the
 * scanner captures at most sizeof(cap) bytes of it).
 */
static void
test_error_tag(void)
{
	struct pgm_buf	 b;
	struct pgm_scan	 s;
	enum pgm_scan_event ev;
	uint8_t		 type;
	uint32_t	 len;
	const uint8_t	*body, *m;
	char		 tag[PGM_TAG_MAX], longmsg[2001];
	size_t		 used, off, cut;
	int		 rc;

	buf_init(&b);
	proto_error(&b, "ERROR", "23505", "duplicate key value violates "
	    "unique constraint \"t_pkey\"");
	rc = msg_at(&b, 0, &type, &len, &body);
	if (rc != 0) {
		printf("Bail out! ErrorResponse has no valid frame\n");
		exit(1);
	}
	error_tag_n(body, len - 4, tag, sizeof(tag));
	tap_is_str(tag, "ERROR 23505", "error tag: a whole ErrorResponse");

	/* Cut in the middle of the M field, after the C field. */
	m = memchr(body, 'M', len - 4);
	cut = m != NULL ? (size_t)(m - body) + 5 : 0;
	tap_ok(m != NULL && cut < len - 4 && memcmp(body + cut - 6,
	    "\0M", 2) == 0, "error tag: the M field follows the C field");
	error_tag_n(body, cut, tag, sizeof(tag));
	tap_is_str(tag, "ERROR 23505",
	    "error tag: body cut in the M field keeps the SQLSTATE");

	/* Cut inside the C field: no partial SQLSTATE. */
	error_tag_n(body, (size_t)(m - body) - 3, tag, sizeof(tag));
	tap_is_str(tag, "ERROR ", "error tag: body cut in the C field: "
	    "no SQLSTATE");

	/* No C field at all, and nothing at all. */
	error_tag_n((const uint8_t *)"SERROR\0VERROR\0Mno code\0", 24, tag,
	    sizeof(tag));
	tap_is_str(tag, "ERROR ", "error tag: no C field");
	error_tag_n((const uint8_t *)"", 0, tag, sizeof(tag));
	tap_is_str(tag, "ERROR ", "error tag: empty body");

	/* A small output buffer is cut, not overrun. */
	memset(tag, 'z', sizeof(tag));
	error_tag_n(body, len - 4, tag, 9);
	tap_ok(strcmp(tag, "ERROR 23") == 0 && tag[9] == 'z',
	    "error tag: cut to the output size");

	/*
	 * As mirroring sees it: an ErrorResponse longer than the scanner's
	 * capture, fed in one go, gives its first bytes only.
	 */
	buf_reset(&b);
	memset(longmsg, 'x', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	buf_msg_begin(&b, 'E');
	buf_put_u8(&b, 'S');
	buf_put_str(&b, "ERROR");
	buf_put_u8(&b, 'V');
	buf_put_str(&b, "ERROR");
	buf_put_u8(&b, 'C');
	buf_put_str(&b, "22P02");
	buf_put_u8(&b, 'M');
	buf_put_str(&b, longmsg);
	buf_put_u8(&b, 0);
	buf_msg_end(&b);
	scan_init(&s, PGM_MESSAGE_MAX);
	ev = scan_feed(&s, b.data, b.len, &used);
	off = used;
	if (ev == SCAN_HEADER) {
		s.capture = 1;
		ev = scan_feed(&s, b.data + off, b.len - off, &used);
	}
	tap_ok(ev == SCAN_BODY && s.caplen == sizeof(s.cap) &&
	    s.caplen < b.len - 5, "error tag: a %zu-byte body is captured "
	    "cut to %zu bytes", b.len - 5, s.caplen);
	proto_error_tag(s.cap, s.caplen, tag, sizeof(tag));
	tap_is_str(tag, "ERROR 22P02",
	    "error tag: from the cut capture of a long ErrorResponse");
	buf_free(&b);
}

static void
test_frontend_types(void)
{
	static const char valid[] = "BCcdDEfFHPpQSX";
	int		 t, ok = 1;

	for (t = 0; t < 256; t++) {
		int want = t != 0 && strchr(valid, t) != NULL;

		if (proto_valid_frontend_type((uint8_t)t) != want) {
			tap_diag("type %d: got %d", t, !want);
			ok = 0;
		}
	}
	tap_ok(ok, "exactly the 14 frontend message types are valid");
	tap_ok(!proto_valid_frontend_type('Z') &&
	    !proto_valid_frontend_type('R') && !proto_valid_frontend_type(0),
	    "backend types Z, R and NUL are not frontend types");
}


/* Append a message of type t with body b (n bytes) to out. */
static size_t
msg_put(uint8_t *out, uint8_t t, const char *b, size_t n)
{
	out[0] = t;
	proto_put_u32(out + 1, (uint32_t)(4 + n));
	memcpy(out + 5, b, n);
	return 5 + n;
}

/* Count the messages of each type in b: "E" errors, "Z" readies. */
static void
count_answers(const struct pgm_buf *b, int *errors, int *readies, int *bad)
{
	size_t		 off = 0, len;

	*errors = *readies = *bad = 0;
	while (b->len - off >= 5) {
		len = proto_get_u32(b->data + off + 1);
		if (b->data[off] == 'E')
			(*errors)++;
		else if (b->data[off] == 'Z' && len == 5 &&
		    b->data[off + 5] == 'I')
			(*readies)++;
		else
			(*bad)++;
		off += 1 + len;
	}
	if (off != b->len)
		(*bad)++;
}

static void
test_cancel_requests(void)
{
	uint8_t		 in[512];
	struct pgm_buf	 b;
	size_t		 n = 0, q1, q2, got, cut;
	int		 nreq, e, z, bad;

	buf_init(&b);
	n += msg_put(in + n, 'Q', "SELECT 1", 9);
	q1 = n;
	n += msg_put(in + n, 'Q', "INSERT INTO t VALUES (666)", 27);
	q2 = n;
	got = proto_cancel_requests(in, n, &b, &nreq);
	count_answers(&b, &e, &z, &bad);
	tap_ok(got == q2 && nreq == 2 && e == 2 && z == 2 && !bad,
	    "two Queries: both dropped, each ERROR + ReadyForQuery");

	/* Every cut inside the second Query leaves it whole, undropped. */
	for (cut = q1; cut < q2; cut++) {
		buf_reset(&b);
		got = proto_cancel_requests(in, cut, &b, &nreq);
		count_answers(&b, &e, &z, &bad);
		if (got != q1 || nreq != 1 || e != 1 || z != 1 || bad)
			break;
	}
	tap_ok(cut == q2, "a Query cut short at any byte is not dropped");
	buf_reset(&b);
	got = proto_cancel_requests(in, 7, &b, &nreq);
	tap_ok(got == 0 && nreq == 0 && b.len == 0,
	    "nothing complete: nothing dropped, nothing answered");

	/* Extended: Parse/Bind/Execute/Sync, a lone Sync, then an unsynced Parse. */
	n = 0;
	n += msg_put(in + n, 'P', "\0SELECT 1\0\0\0", 12);
	n += msg_put(in + n, 'B', "\0\0\0\0\0\0\0\0", 8);
	n += msg_put(in + n, 'E', "\0\0\0\0\0", 5);
	n += msg_put(in + n, 'S', "", 0);
	n += msg_put(in + n, 'S', "", 0);
	q1 = n;
	n += msg_put(in + n, 'P', "\0SELECT 2\0\0\0", 12);
	buf_reset(&b);
	got = proto_cancel_requests(in, n, &b, &nreq);
	count_answers(&b, &e, &z, &bad);
	tap_ok(got == q1 && nreq == 2 && e == 1 && z == 2 && !bad,
	    "extended request: ERROR + ReadyForQuery; lone Sync: ReadyForQuery; "
	    "an unsynced Parse stays");

	/* A broken length stops the walk: nothing beyond is ours to drop. */
	n = msg_put(in, 'Q', "SELECT 1", 9);
	in[n] = 'Q';
	proto_put_u32(in + n + 1, 2);
	buf_reset(&b);
	got = proto_cancel_requests(in, n + 5, &b, &nreq);
	tap_ok(got == n && nreq == 1, "a length under 4 ends the walk");
	buf_free(&b);
}

/* The extended-query messages: Parse, Bind, Execute, Close, Sync. */
static void
test_extended(void)
{
	static const uint8_t parse[] = { 'P', 0, 0, 0, 27, 'p', 'q', 0,
	    'S', 'E', 'L', 'E', 'C', 'T', ' ', '$', '1', 0, 0, 2,
	    0, 0, 0, 25, 0, 0, 0, 23 };
	static const uint8_t bind[] = { 'B', 0, 0, 0, 30, 0, 'p', 'q', 0,
	    0, 0, 0, 3, 0, 0, 0, 4, 0x95, 0x5c, '\'', '\\',
	    0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0 };
	static const uint8_t rest[] = { 'E', 0, 0, 0, 9, 0, 0, 0, 0, 0,
	    'C', 0, 0, 0, 6, 'S', 0, 'S', 0, 0, 0, 4 };
	static const char *const vals[] = { "\x95\x5c'\\", NULL, "" };
	static const uint32_t oids[] = { 25, 23 };
	struct pgm_buf	 b;

	buf_init(&b);
	proto_parse(&b, "pq", "SELECT $1", 2, oids);
	tap_ok(b.len == sizeof(parse) && memcmp(b.data, parse, b.len) == 0,
	    "Parse: name, text, 2 parameter type OIDs");
	buf_reset(&b);
	proto_bind_text(&b, "", "pq", 3, vals);
	tap_ok(b.len == sizeof(bind) && memcmp(b.data, bind, b.len) == 0,
	    "Bind: text parameters sent as they are (0x5C, quote, "
	    "backslash), NULL as -1, empty as 0");
	buf_reset(&b);
	proto_execute(&b, "");
	proto_close_statement(&b, "");
	proto_sync(&b);
	tap_ok(b.len == sizeof(rest) && memcmp(b.data, rest, b.len) == 0,
	    "Execute of every row, Close of a statement, Sync");
	buf_free(&b);
}

/* Startup parameters from alternating name/value strings, NULL-ended. */
static void
params_of(struct pgm_startup *st, const char *const *nv)
{
	memset(st, 0, sizeof(*st));
	for (; nv[0] != NULL; nv += 2) {
		st->name[st->nparams] = nv[0];
		st->value[st->nparams++] = nv[1];
	}
}

/*
 * Does proto_params_split give back st's pooled parameters (all but
 * user, database, _pq_.*), each once, sorted by name?
 */
static int
params_round_trip(const struct pgm_startup *st, const char *key)
{
	struct pgm_startup back;
	char		*k;
	int		 i, j, n = 0, ok;

	k = (char *)tap_dup_exact(key, strlen(key) + 1);
	ok = proto_params_split(k, &back) == 0;
	for (i = 0; ok && i < st->nparams; i++) {
		if (strcmp(st->name[i], "user") == 0 ||
		    strcmp(st->name[i], "database") == 0 ||
		    strncmp(st->name[i], "_pq_.", 5) == 0)
			continue;
		n++;
		for (j = 0; j < back.nparams; j++)
			if (strcmp(back.name[j], st->name[i]) == 0 &&
			    strcmp(back.value[j], st->value[i]) == 0)
				break;
		ok = j < back.nparams;
	}
	for (j = 1; ok && j < back.nparams; j++)
		ok = strcmp(back.name[j - 1], back.name[j]) <= 0;
	ok = ok && n == back.nparams;
	free(k);
	return ok;
}

/* proto_params_key and proto_params_split. */
static void
test_params_key(void)
{
	static const char *const inject[] = { "application_name",
	    "x\001options=-c search_path=evil", NULL };
	static const char *const real[] = { "application_name", "x",
	    "options", "-c search_path=evil", NULL };
	static const char *const sorted[] = { "a", "1", "b", "2", NULL };
	static const char *const unsorted[] = { "user", "u", "b", "2",
	    "_pq_.x", "y", "database", "d", "a", "1", NULL };
	static const char *const odd[] = { "application_name", "3:abc",
	    "options", "", "x:", "12:\001\002=:\\'\"", "client_encoding",
	    "SJIS", NULL };
	static const char *const bad[] = { "3", "3:", "3:ab", "x:abc",
	    "1:a", "1:a1:b1:c", "1:a2b", ":a0:", "-1:a0:",
	    "99999999999999999999999:a0:", "1:a18446744073709551617:b", NULL };
	struct pgm_startup a, b, st;
	char		*ka, *kb, *k;
	int		 i, ok;

	params_of(&a, inject);
	params_of(&b, real);
	ka = proto_params_key(&a);
	kb = proto_params_key(&b);
	tap_ok(ka != NULL && kb != NULL && strcmp(ka, kb) != 0,
	    "an application_name holding \\001options=... has another key "
	    "than a client that sent those options");
	tap_ok(params_round_trip(&a, ka),
	    "that application_name splits back as one parameter");
	tap_ok(params_round_trip(&b, kb), "and the real options as two");
	free(ka);
	free(kb);

	params_of(&a, sorted);
	params_of(&b, unsorted);
	ka = proto_params_key(&a);
	kb = proto_params_key(&b);
	tap_is_str(ka, "1:a1:11:b1:2",
	    "the key: sorted LENGTH:BYTES, name then value");
	tap_is_str(kb, ka,
	    "user, database and _pq_.* are left out, the order does not count");
	tap_ok(params_round_trip(&b, kb), "split back: a and b");
	free(ka);
	free(kb);

	params_of(&a, odd);
	ka = proto_params_key(&a);
	tap_ok(ka != NULL && params_round_trip(&a, ka),
	    "values with digits, colons, quotes, control bytes and empty "
	    "strings split back exactly");
	free(ka);

	memset(&a, 0, sizeof(a));
	ka = proto_params_key(&a);
	tap_is_str(ka, "", "no parameters: an empty key");
	tap_ok(proto_params_split(ka, &st) == 0 && st.nparams == 0,
	    "which splits into no parameters");
	free(ka);

	for (ok = 1, i = 0; bad[i] != NULL; i++) {
		k = (char *)tap_dup_exact(bad[i], strlen(bad[i]) + 1);
		if (proto_params_split(k, &st) != -1) {
			tap_diag("\"%s\" was accepted", bad[i]);
			ok = 0;
		}
		free(k);
	}
	tap_ok(ok, "keys cut short, without lengths, with an odd count or "
	    "huge lengths are refused");
}

int
main(void)
{
	tap_plan(137);
	test_buf();
	test_compose();
	test_reader();
	test_startup();
	test_scan();
	test_error_tag();
	test_frontend_types();
	test_cancel_requests();
	test_params_key();
	test_extended();
	return tap_done();
}
