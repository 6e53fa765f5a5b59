/*
 * scram.c: SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it, and
 * PostgreSQL md5 password helpers.
 *
 * Owns verifier parsing/derivation/formatting, both sides of the SCRAM
 * exchange, the strict base64 codec they use, and the md5 helpers.  Pure
 * functions over caller memory: no I/O, no logging, no global state.  Every
 * parser here reads bytes sent by untrusted peers and is bounds checked
 * against an explicit length; no parser relies on NUL termination.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "scram.h"

/* Exchange states; distinctive values so a stray struct is not "ready". */
#define SCRAM_ST_INIT	0x53430001	/* client initialised */
#define SCRAM_ST_FIRST	0x53430002	/* first message handled */
#define SCRAM_ST_FINAL	0x53430003	/* client: final sent */
#define SCRAM_ST_DONE	0x53430004	/* finished, ok or not */
#define SCRAM_ST_VERIFIED 0x53430005	/* client: server signature good */

#define SCRAM_ERR_MALFORMED	"malformed SCRAM message"
#define SCRAM_ERR_TOOLONG	"SCRAM message too long"
#define SCRAM_ERR_ORDER		"SCRAM exchange out of order"
#define SCRAM_ERR_OUTBUF	"SCRAM output buffer too small"
#define SCRAM_ERR_CRYPTO	"SCRAM cryptographic failure"
#define SCRAM_ERR_NONCE		"SCRAM nonce mismatch"

#define SCRAM_VERIFIER_PREFIX	"SCRAM-SHA-256$"

#define SCRAM_STR_(x)		#x
#define SCRAM_STR(x)		SCRAM_STR_(x)

static const char scram_b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Bounded output buffer; overflow is sticky and checked once at the end. */
struct scram_buf {
	char		*p;
	size_t		 cap;
	size_t		 len;
	int		 overflow;
};

/* Read position in an untrusted message. */
struct scram_cursor {
	const char	*p;
	const char	*end;
	int		 comma;	/* last attribute ended with ',' */
};

/* Sets *err if the caller gave somewhere to put it. */
static void
scram_set_err(const char **err, const char *msg)
{
	if (err != NULL)
		*err = msg;
}

/* Length of the base64 encoding of n bytes (with padding). */
static size_t
scram_b64_enclen(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* Encodes n bytes as padded base64 into out (no NUL written). */
static void
scram_b64_encode(const uint8_t *in, size_t n, char *out)
{
	uint32_t	 v;
	size_t		 i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = scram_b64_chars[(v >> 18) & 0x3f];
		out[o++] = scram_b64_chars[(v >> 12) & 0x3f];
		out[o++] = scram_b64_chars[(v >> 6) & 0x3f];
		out[o++] = scram_b64_chars[v & 0x3f];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = scram_b64_chars[(v >> 18) & 0x3f];
		out[o++] = scram_b64_chars[(v >> 12) & 0x3f];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = scram_b64_chars[(v >> 18) & 0x3f];
		out[o++] = scram_b64_chars[(v >> 12) & 0x3f];
		out[o++] = scram_b64_chars[(v >> 6) & 0x3f];
		out[o++] = '=';
	}
}

/* Value of one base64 character, or -1. */
static int
scram_b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strictly decodes canonical padded base64 (no whitespace) into out[outsz].
 * 0 ok with *outlen set, -1 on bad input or if it does not fit.
 */
static int
scram_b64_decode(const char *in, size_t n, uint8_t *out, size_t outsz,
    size_t *outlen)
{
	size_t		 i, o = 0, pad;
	int		 a, b, c, d;

	if (n % 4 != 0)
		return -1;
	for (i = 0; i < n; i += 4) {
		pad = 0;
		if (i + 4 == n) {
			if (in[i + 3] == '=')
				pad++;
			if (pad == 1 && in[i + 2] == '=')
				pad++;
		}
		a = scram_b64_val((unsigned char)in[i]);
		b = scram_b64_val((unsigned char)in[i + 1]);
		c = pad >= 2 ? 0 : scram_b64_val((unsigned char)in[i + 2]);
		d = pad >= 1 ? 0 : scram_b64_val((unsigned char)in[i + 3]);
		if (a < 0 || b < 0 || c < 0 || d < 0)
			return -1;
		/* canonical form only: unused trailing bits must be zero */
		if ((pad == 1 && (c & 0x3) != 0) ||
		    (pad == 2 && (b & 0xf) != 0))
			return -1;
		if (o + 3 - pad > outsz)
			return -1;
		out[o++] = (uint8_t)(a << 2 | b >> 4);
		if (pad < 2)
			out[o++] = (uint8_t)((b & 0xf) << 4 | c >> 2);
		if (pad < 1)
			out[o++] = (uint8_t)((c & 0x3) << 6 | d);
	}
	*outlen = o;
	return 0;
}

/* Starts an output buffer over out[cap]. */
static void
scram_buf_init(struct scram_buf *b, char *out, size_t cap)
{
	b->p = out;
	b->cap = cap;
	b->len = 0;
	b->overflow = (out == NULL || cap == 0);
}

/* Appends n bytes, keeping room for a final NUL. */
static void
scram_buf_add(struct scram_buf *b, const void *data, size_t n)
{
	if (b->overflow)
		return;
	if (n >= b->cap - b->len) {
		b->overflow = 1;
		return;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

/* Appends a NUL-terminated string. */
static void
scram_buf_str(struct scram_buf *b, const char *s)
{
	scram_buf_add(b, s, strlen(s));
}

/* Appends the base64 encoding of n bytes. */
static void
scram_buf_b64(struct scram_buf *b, const uint8_t *data, size_t n)
{
	size_t		 elen = scram_b64_enclen(n);

	if (b->overflow)
		return;
	if (elen >= b->cap - b->len) {
		b->overflow = 1;
		return;
	}
	scram_b64_encode(data, n, b->p + b->len);
	b->len += elen;
}

/* Appends a non-negative int in decimal. */
static void
scram_buf_int(struct scram_buf *b, int v)
{
	char		 tmp[16];
	size_t		 n = 0, i;
	unsigned int	 u = v < 0 ? 0 : (unsigned int)v;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0 && n < sizeof(tmp));
	for (i = 0; i < n / 2; i++) {
		char t = tmp[i];
		tmp[i] = tmp[n - 1 - i];
		tmp[n - 1 - i] = t;
	}
	scram_buf_add(b, tmp, n);
}

/* NUL-terminates the buffer; 0 ok, -1 if anything overflowed. */
static int
scram_buf_finish(struct scram_buf *b, size_t *outlen)
{
	if (b->overflow)
		return -1;
	b->p[b->len] = '\0';
	if (outlen != NULL)
		*outlen = b->len;
	return 0;
}

/* Parses a positive decimal int from exactly n chars; -1 if invalid. */
static int
scram_parse_int(const char *s, size_t n, int *out)
{
	long long	 v = 0;
	size_t		 i;

	if (n == 0 || n > 10)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > INT_MAX)
		return -1;
	*out = (int)v;
	return 0;
}

/* True if n chars are all SCRAM "printable" (0x21-0x7e except ','). */
static int
scram_is_printable(const char *s, size_t n)
{
	size_t		 i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e || c == ',')
			return 0;
	}
	return 1;
}

/* Starts a cursor over an untrusted message; -1 if empty or has NUL. */
static int
scram_cursor_init(struct scram_cursor *c, const char *msg, size_t len)
{
	if (msg == NULL || len == 0 || memchr(msg, '\0', len) != NULL)
		return -1;
	c->p = msg;
	c->end = msg + len;
	c->comma = 0;
	return 0;
}

/* True when the whole message was consumed without a trailing ','. */
static int
scram_cursor_at_end(const struct scram_cursor *c)
{
	return c->p == c->end && !c->comma;
}

/* True if the next attribute is named attr (does not consume). */
static int
scram_cursor_peek(const struct scram_cursor *c, char attr)
{
	return c->end - c->p >= 2 && c->p[0] == attr && c->p[1] == '=';
}

/*
 * Reads "<letter>=<value>" up to the next ',' (consumed) or the end.
 * Stores the letter in *attr.  -1 if there is no well-formed attribute.
 */
static int
scram_read_any_attr(struct scram_cursor *c, char *attr, const char **val,
    size_t *vlen)
{
	const char	*v, *comma;
	char		 a;

	if (c->end - c->p < 2)
		return -1;
	a = c->p[0];
	if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z')) ||
	    c->p[1] != '=')
		return -1;
	v = c->p + 2;
	comma = memchr(v, ',', (size_t)(c->end - v));
	if (comma == NULL) {
		*vlen = (size_t)(c->end - v);
		c->p = c->end;
		c->comma = 0;
	} else {
		*vlen = (size_t)(comma - v);
		c->p = comma + 1;
		c->comma = 1;
	}
	*attr = a;
	*val = v;
	return 0;
}

/* Reads the attribute named want; -1 if the next one is anything else. */
static int
scram_read_attr(struct scram_cursor *c, char want, const char **val,
    size_t *vlen)
{
	char		 a;

	if (!scram_cursor_peek(c, want))
		return -1;
	return scram_read_any_attr(c, &a, val, vlen);
}

/* Skips optional extension attributes until the end of the message. */
static int
scram_skip_extensions(struct scram_cursor *c)
{
	const char	*v;
	size_t		 vlen;
	char		 a;

	while (c->p < c->end)
		if (scram_read_any_attr(c, &a, &v, &vlen) == -1)
			return -1;
	return scram_cursor_at_end(c) ? 0 : -1;
}

/* HMAC-SHA-256 of data under key. */
static int
scram_hmac(const uint8_t *key, size_t keylen, const void *data, size_t len,
    uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int	 mdlen = 0;

	if (keylen > INT_MAX)
		return -1;
	if (HMAC(EVP_sha256(), key, (int)keylen, data, len, out,
	    &mdlen) == NULL || mdlen != SCRAM_KEY_LEN)
		return -1;
	return 0;
}

/* SHA-256 of data. */
static int
scram_sha256(const void *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int	 mdlen = 0;

	if (EVP_Digest(data, len, out, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != SCRAM_KEY_LEN)
		return -1;
	return 0;
}

/* ClientKey and ServerKey from a password, salt and iteration count. */
static int
scram_derive_keys(const char *password, size_t pwlen, const uint8_t *salt,
    size_t saltlen, int iterations, uint8_t client_key[SCRAM_KEY_LEN],
    uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t		 salted[SCRAM_KEY_LEN];
	int		 rc = -1;

	if (pwlen > INT_MAX || saltlen > INT_MAX || iterations < 1)
		return -1;
	if (PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)saltlen,
	    iterations, EVP_sha256(), SCRAM_KEY_LEN, salted) != 1)
		goto out;
	if (scram_hmac(salted, sizeof(salted), "Client Key", 10,
	    client_key) == -1)
		goto out;
	if (scram_hmac(salted, sizeof(salted), "Server Key", 10,
	    server_key) == -1)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(salted, sizeof(salted));
	return rc;
}

/* Writes 18 random bytes as base64 (24 chars + NUL) into out[25]. */
static int
scram_random_nonce(char out[SCRAM_RAW_NONCE_LEN / 3 * 4 + 1])
{
	uint8_t		 raw[SCRAM_RAW_NONCE_LEN];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	scram_b64_encode(raw, sizeof(raw), out);
	out[SCRAM_RAW_NONCE_LEN / 3 * 4] = '\0';
	return 0;
}

/*
 * Builds AuthMessage = client-first-bare "," server-first ","
 * client-final-without-proof and returns HMAC(key, AuthMessage).
 */
static int
scram_auth_hmac(const char *cfb, size_t cfblen, const char *sf, size_t sflen,
    const char *cfwop, size_t cfwoplen, const uint8_t key[SCRAM_KEY_LEN],
    uint8_t out[SCRAM_KEY_LEN])
{
	char		 msg[3 * SCRAM_MSG_MAX + 8];
	struct scram_buf b;

	scram_buf_init(&b, msg, sizeof(msg));
	scram_buf_add(&b, cfb, cfblen);
	scram_buf_add(&b, ",", 1);
	scram_buf_add(&b, sf, sflen);
	scram_buf_add(&b, ",", 1);
	scram_buf_add(&b, cfwop, cfwoplen);
	if (b.overflow)
		return -1;
	return scram_hmac(key, SCRAM_KEY_LEN, msg, b.len, out);
}

/* Parses a pg_authid SCRAM verifier into a secret. */
int
scram_secret_parse(const char *verifier, struct scram_secret *sec)
{
	const char	*p, *end, *colon, *dollar;
	struct scram_secret tmp;
	size_t		 n, plen = strlen(SCRAM_VERIFIER_PREFIX);

	if (verifier == NULL || sec == NULL)
		return -1;
	memset(&tmp, 0, sizeof(tmp));
	n = strnlen(verifier, SCRAM_VERIFIER_MAX);
	if (n >= SCRAM_VERIFIER_MAX || n < plen ||
	    memcmp(verifier, SCRAM_VERIFIER_PREFIX, plen) != 0)
		return -1;
	p = verifier + plen;
	end = verifier + n;

	/* <iterations>:<salt>$ */
	if ((colon = memchr(p, ':', (size_t)(end - p))) == NULL)
		return -1;
	if (scram_parse_int(p, (size_t)(colon - p), &tmp.iterations) == -1)
		return -1;
	p = colon + 1;
	if ((dollar = memchr(p, '$', (size_t)(end - p))) == NULL)
		return -1;
	if (scram_b64_decode(p, (size_t)(dollar - p), tmp.salt,
	    sizeof(tmp.salt), &tmp.saltlen) == -1 || tmp.saltlen == 0)
		return -1;
	p = dollar + 1;

	/* <StoredKey>:<ServerKey> */
	if ((colon = memchr(p, ':', (size_t)(end - p))) == NULL)
		return -1;
	if (scram_b64_decode(p, (size_t)(colon - p), tmp.stored_key,
	    sizeof(tmp.stored_key), &n) == -1 || n != SCRAM_KEY_LEN)
		return -1;
	p = colon + 1;
	if (scram_b64_decode(p, (size_t)(end - p), tmp.server_key,
	    sizeof(tmp.server_key), &n) == -1 || n != SCRAM_KEY_LEN)
		return -1;

	*sec = tmp;
	return 0;
}

/* True if s is a well-formed SCRAM verifier. */
int
scram_secret_is_verifier(const char *s)
{
	struct scram_secret tmp;

	return scram_secret_parse(s, &tmp) == 0;
}

/* Derives a secret from a password with a given salt and iterations. */
int
scram_secret_from_password_salt(const char *password, const uint8_t *salt,
    size_t saltlen, int iterations, struct scram_secret *sec)
{
	struct scram_secret tmp;
	int		 rc = -1;

	if (password == NULL || salt == NULL || sec == NULL ||
	    saltlen == 0 || saltlen > SCRAM_SALT_MAX || iterations < 1)
		return -1;
	memset(&tmp, 0, sizeof(tmp));
	tmp.iterations = iterations;
	memcpy(tmp.salt, salt, saltlen);
	tmp.saltlen = saltlen;
	if (scram_derive_keys(password, strlen(password), salt, saltlen,
	    iterations, tmp.client_key, tmp.server_key) == -1)
		goto out;
	if (scram_sha256(tmp.client_key, SCRAM_KEY_LEN, tmp.stored_key) == -1)
		goto out;
	tmp.has_client_key = 1;
	*sec = tmp;
	rc = 0;
out:
	OPENSSL_cleanse(&tmp, sizeof(tmp));
	return rc;
}

/* Derives a secret from a password with a fresh random salt. */
int
scram_secret_from_password(const char *password, struct scram_secret *sec)
{
	uint8_t		 salt[SCRAM_DEFAULT_SALT_LEN];

	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -1;
	return scram_secret_from_password_salt(password, salt, sizeof(salt),
	    SCRAM_DEFAULT_ITERATIONS, sec);
}

/* Formats a secret the way pg_authid stores it. */
int
scram_secret_format(const struct scram_secret *sec, char *out, size_t outsz)
{
	struct scram_buf b;

	if (sec == NULL || sec->saltlen == 0 || sec->saltlen > SCRAM_SALT_MAX ||
	    sec->iterations < 1)
		return -1;
	scram_buf_init(&b, out, outsz);
	scram_buf_str(&b, SCRAM_VERIFIER_PREFIX);
	scram_buf_int(&b, sec->iterations);
	scram_buf_add(&b, ":", 1);
	scram_buf_b64(&b, sec->salt, sec->saltlen);
	scram_buf_add(&b, "$", 1);
	scram_buf_b64(&b, sec->stored_key, SCRAM_KEY_LEN);
	scram_buf_add(&b, ":", 1);
	scram_buf_b64(&b, sec->server_key, SCRAM_KEY_LEN);
	return scram_buf_finish(&b, NULL);
}

/* Server: parses client-first and writes server-first (fixed nonce opt.). */
int
scram_server_first_with_nonce(struct scram_server *s,
    const struct scram_secret *sec, const char *client_first, size_t len,
    const char *server_nonce, char *out, size_t outsz, size_t *outlen,
    const char **err)
{
	struct scram_cursor c;
	struct scram_buf b;
	const uint8_t	*cbind_data;
	const char	*bare, *v, *cnonce;
	char		 rnonce[SCRAM_RAW_NONCE_LEN / 3 * 4 + 1];
	size_t		 cbind_len, vlen, cnlen, snlen;

	if (s == NULL || sec == NULL || sec->saltlen == 0 ||
	    sec->saltlen > SCRAM_SALT_MAX || sec->iterations < 1) {
		scram_set_err(err, "invalid SCRAM secret");
		return -1;
	}
	cbind_data = s->cbind_data;
	cbind_len = s->cbind_len;
	memset(s, 0, sizeof(*s));
	s->cbind_data = cbind_data;
	s->cbind_len = cbind_len;
	s->state = SCRAM_ST_DONE;	/* until this succeeds */

	if (scram_cursor_init(&c, client_first, len) == -1) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		return -1;
	}
	if (len >= SCRAM_MSG_MAX) {
		scram_set_err(err, SCRAM_ERR_TOOLONG);
		return -1;
	}

	/* gs2-cbind-flag */
	switch (*c.p) {
	case 'n':
	case 'y':
		/*
		 * 'y' means the client could bind but thinks we cannot: with
		 * binding data we offered SCRAM-SHA-256-PLUS, so that is a
		 * downgrade by someone in between.
		 */
		if (*c.p == 'y' && s->cbind_data != NULL) {
			scram_set_err(err, "SCRAM channel binding negotiation "
			    "error: the client thinks the server does not "
			    "support channel binding, but it does");
			return -1;
		}
		s->cbind_flag = *c.p++;
		break;
	case 'p':
		/* Only tls-server-end-point, and only over TLS. */
		if (!scram_cursor_peek(&c, 'p')) {
			scram_set_err(err, SCRAM_ERR_MALFORMED);
			return -1;
		}
		if (s->cbind_data == NULL) {
			scram_set_err(err, "channel binding is not supported "
			    "without TLS");
			return -1;
		}
		if ((size_t)(c.end - c.p) < sizeof(SCRAM_CBIND_TYPE) - 1 ||
		    memcmp(c.p, SCRAM_CBIND_TYPE,
		    sizeof(SCRAM_CBIND_TYPE) - 1) != 0) {
			scram_set_err(err, "unsupported SCRAM channel-binding "
			    "type");
			return -1;
		}
		s->cbind_flag = 'p';
		c.p += sizeof(SCRAM_CBIND_TYPE) - 1;
		break;
	default:
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		return -1;
	}
	if (c.p == c.end || *c.p++ != ',') {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		return -1;
	}
	/* authzid: PostgreSQL does not support it either. */
	if (scram_cursor_peek(&c, 'a')) {
		scram_set_err(err,
		    "SCRAM authorization identity is not supported");
		return -1;
	}
	if (c.p == c.end || *c.p++ != ',') {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		return -1;
	}
	s->gs2_len = (size_t)(c.p - client_first);
	memcpy(s->gs2_header, client_first, s->gs2_len);

	/* client-first-message-bare */
	bare = c.p;
	if (scram_cursor_peek(&c, 'm')) {
		scram_set_err(err, "unsupported SCRAM extension required");
		return -1;
	}
	/* The user name is ignored: the startup message's one is used. */
	if (scram_read_attr(&c, 'n', &v, &vlen) == -1 || !c.comma) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		return -1;
	}
	if (scram_read_attr(&c, 'r', &cnonce, &cnlen) == -1 || cnlen == 0 ||
	    !scram_is_printable(cnonce, cnlen)) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		return -1;
	}
	if (scram_skip_extensions(&c) == -1) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		return -1;
	}
	s->client_first_bare_len = (size_t)(c.end - bare);
	memcpy(s->client_first_bare, bare, s->client_first_bare_len);

	/* Our part of the nonce. */
	if (server_nonce == NULL) {
		if (scram_random_nonce(rnonce) == -1) {
			scram_set_err(err, SCRAM_ERR_CRYPTO);
			return -1;
		}
		server_nonce = rnonce;
	}
	snlen = strlen(server_nonce);
	if (snlen == 0 || !scram_is_printable(server_nonce, snlen)) {
		scram_set_err(err, "invalid SCRAM server nonce");
		return -1;
	}
	if (cnlen >= SCRAM_NONCE_MAX - snlen) {
		scram_set_err(err, SCRAM_ERR_TOOLONG);
		return -1;
	}
	memcpy(s->nonce, cnonce, cnlen);
	memcpy(s->nonce + cnlen, server_nonce, snlen);
	s->nonce_len = cnlen + snlen;

	s->secret = *sec;
	s->secret.has_client_key = 0;
	OPENSSL_cleanse(s->secret.client_key, SCRAM_KEY_LEN);

	/* server-first-message: r=<nonce>,s=<salt>,i=<iterations> */
	scram_buf_init(&b, s->server_first, sizeof(s->server_first));
	scram_buf_add(&b, "r=", 2);
	scram_buf_add(&b, s->nonce, s->nonce_len);
	scram_buf_add(&b, ",s=", 3);
	scram_buf_b64(&b, s->secret.salt, s->secret.saltlen);
	scram_buf_add(&b, ",i=", 3);
	scram_buf_int(&b, s->secret.iterations);
	if (scram_buf_finish(&b, &s->server_first_len) == -1) {
		scram_set_err(err, SCRAM_ERR_TOOLONG);
		return -1;
	}
	scram_buf_init(&b, out, outsz);
	scram_buf_add(&b, s->server_first, s->server_first_len);
	if (scram_buf_finish(&b, outlen) == -1) {
		scram_set_err(err, SCRAM_ERR_OUTBUF);
		return -1;
	}
	s->state = SCRAM_ST_FIRST;
	return 0;
}

/* Server: parses client-first and writes server-first. */
int
scram_server_first(struct scram_server *s, const struct scram_secret *sec,
    const char *client_first, size_t len, char *out, size_t outsz,
    size_t *outlen, const char **err)
{
	return scram_server_first_with_nonce(s, sec, client_first, len, NULL,
	    out, outsz, outlen, err);
}

/* Server: verifies client-final and writes server-final. */
int
scram_server_final(struct scram_server *s, const char *client_final,
    size_t len, char *out, size_t outsz, size_t *outlen, const char **err)
{
	struct scram_cursor c;
	struct scram_buf b;
	const char	*v, *proof_start;
	char		 expect[(SCRAM_GS2_MAX + SCRAM_CBIND_MAX) * 2];
	uint8_t		 cbind[SCRAM_GS2_MAX + SCRAM_CBIND_MAX];
	uint8_t		 proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
	uint8_t		 key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	size_t		 vlen, n;
	char		 a;
	int		 rc = -1, i;

	if (s == NULL || s->state != SCRAM_ST_FIRST) {
		scram_set_err(err, SCRAM_ERR_ORDER);
		return -1;
	}
	s->state = SCRAM_ST_DONE;	/* one attempt only */

	if (scram_cursor_init(&c, client_final, len) == -1) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		goto out;
	}
	if (len >= SCRAM_MSG_MAX) {
		scram_set_err(err, SCRAM_ERR_TOOLONG);
		goto out;
	}

	/* c=<base64(gs2 header [|| channel binding data])> */
	if (scram_read_attr(&c, 'c', &v, &vlen) == -1 || !c.comma) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		goto out;
	}
	/* gs2 header, then the TLS binding data for 'p'. */
	memcpy(cbind, s->gs2_header, s->gs2_len);
	n = s->gs2_len;
	if (s->cbind_flag == 'p') {
		if (s->cbind_data == NULL ||
		    s->cbind_len > sizeof(cbind) - n) {
			scram_set_err(err, SCRAM_ERR_MALFORMED);
			goto out;
		}
		memcpy(cbind + n, s->cbind_data, s->cbind_len);
		n += s->cbind_len;
	}
	if (scram_b64_enclen(n) >= sizeof(expect)) {
		scram_set_err(err, SCRAM_ERR_TOOLONG);
		goto out;
	}
	scram_b64_encode(cbind, n, expect);
	if (vlen != scram_b64_enclen(n) || memcmp(v, expect, vlen) != 0) {
		scram_set_err(err,
		    "unexpected SCRAM channel-binding attribute");
		goto out;
	}

	/* r=<nonce> */
	if (scram_read_attr(&c, 'r', &v, &vlen) == -1 || !c.comma) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		goto out;
	}
	if (vlen != s->nonce_len || memcmp(v, s->nonce, vlen) != 0) {
		scram_set_err(err, SCRAM_ERR_NONCE);
		goto out;
	}

	/* Optional extensions, then p=<proof> last. */
	for (;;) {
		proof_start = c.p;
		if (scram_read_any_attr(&c, &a, &v, &vlen) == -1) {
			scram_set_err(err, SCRAM_ERR_MALFORMED);
			goto out;
		}
		if (a == 'p')
			break;
		if (!c.comma) {
			/* reached the end without a proof */
			scram_set_err(err, SCRAM_ERR_MALFORMED);
			goto out;
		}
	}
	if (!scram_cursor_at_end(&c)) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		goto out;
	}
	if (scram_b64_decode(v, vlen, proof, sizeof(proof), &n) == -1 ||
	    n != SCRAM_KEY_LEN) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		goto out;
	}

	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage) */
	if (scram_auth_hmac(s->client_first_bare, s->client_first_bare_len,
	    s->server_first, s->server_first_len, client_final,
	    (size_t)(proof_start - 1 - client_final), s->secret.stored_key,
	    sig) == -1) {
		scram_set_err(err, SCRAM_ERR_CRYPTO);
		goto out;
	}
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	if (scram_sha256(key, sizeof(key), stored) == -1) {
		scram_set_err(err, SCRAM_ERR_CRYPTO);
		goto out;
	}
	if (CRYPTO_memcmp(stored, s->secret.stored_key, SCRAM_KEY_LEN) != 0) {
		scram_set_err(err, "password authentication failed");
		rc = 1;
		goto out;
	}

	/* server-final-message: v=<ServerSignature> */
	if (scram_auth_hmac(s->client_first_bare, s->client_first_bare_len,
	    s->server_first, s->server_first_len, client_final,
	    (size_t)(proof_start - 1 - client_final), s->secret.server_key,
	    sig) == -1) {
		scram_set_err(err, SCRAM_ERR_CRYPTO);
		goto out;
	}
	scram_buf_init(&b, out, outsz);
	scram_buf_add(&b, "v=", 2);
	scram_buf_b64(&b, sig, sizeof(sig));
	if (scram_buf_finish(&b, outlen) == -1) {
		scram_set_err(err, SCRAM_ERR_OUTBUF);
		goto out;
	}
	memcpy(s->client_key, key, SCRAM_KEY_LEN);
	s->has_client_key = 1;
	rc = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(sig, sizeof(sig));
	return rc;
}

/* Server: wipes all state. */
void
scram_server_clear(struct scram_server *s)
{
	if (s != NULL)
		OPENSSL_cleanse(s, sizeof(*s));
}

/* Client: resets state and sets the default gs2 header. */
static void
scram_client_reset(struct scram_client *c)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->gs2_header, "n,,", 4);
	c->state = SCRAM_ST_INIT;
}

/* Client: logs in with a plain password. */
void
scram_client_init_password(struct scram_client *c, const char *password)
{
	size_t		 n;

	if (c == NULL)
		return;
	scram_client_reset(c);
	if (password == NULL) {
		c->init_error = 1;
		return;
	}
	n = strnlen(password, SCRAM_PASSWORD_MAX);
	if (n >= SCRAM_PASSWORD_MAX) {
		c->init_error = 1;
		return;
	}
	memcpy(c->password, password, n);
	c->password_len = n;
}

/* Client: logs in with ClientKey/ServerKey from a known verifier. */
void
scram_client_init_keys(struct scram_client *c,
    const uint8_t client_key[SCRAM_KEY_LEN],
    const uint8_t server_key[SCRAM_KEY_LEN], int iterations,
    const uint8_t *salt, size_t saltlen)
{
	if (c == NULL)
		return;
	scram_client_reset(c);
	c->use_keys = 1;
	if (client_key == NULL || server_key == NULL || salt == NULL ||
	    saltlen == 0 || saltlen > SCRAM_SALT_MAX || iterations < 1) {
		c->init_error = 1;
		return;
	}
	memcpy(c->client_key, client_key, SCRAM_KEY_LEN);
	memcpy(c->server_key, server_key, SCRAM_KEY_LEN);
	c->iterations = iterations;
	memcpy(c->salt, salt, saltlen);
	c->saltlen = saltlen;
}

/* Client (tests only): fixes the client nonce. */
int
scram_client_set_nonce(struct scram_client *c, const char *nonce)
{
	size_t		 n;

	if (c == NULL || c->state != SCRAM_ST_INIT || nonce == NULL)
		return -1;
	n = strnlen(nonce, SCRAM_NONCE_MAX);
	if (n == 0 || n >= SCRAM_NONCE_MAX || !scram_is_printable(nonce, n))
		return -1;
	memcpy(c->nonce, nonce, n);
	c->nonce[n] = '\0';
	c->nonce_len = n;
	return 0;
}

/* Client (tests only): sets the user name sent in client-first. */
int
scram_client_set_user(struct scram_client *c, const char *user)
{
	struct scram_buf b;
	const char	*p;

	if (c == NULL || c->state != SCRAM_ST_INIT || user == NULL)
		return -1;
	scram_buf_init(&b, c->user, sizeof(c->user));
	for (p = user; *p != '\0'; p++) {
		if (*p == ',')
			scram_buf_add(&b, "=2C", 3);
		else if (*p == '=')
			scram_buf_add(&b, "=3D", 3);
		else
			scram_buf_add(&b, p, 1);
	}
	if (scram_buf_finish(&b, NULL) == -1) {
		c->user[0] = '\0';
		return -1;
	}
	return 0;
}

/*
 * Client: bind the exchange to a TLS channel (tls-server-end-point data,
 * at most SCRAM_CBIND_MAX bytes), after init.  0 ok, -1 bad arguments.
 */
int
scram_client_set_cbind(struct scram_client *c, const uint8_t *data,
    size_t len)
{
	if (c == NULL || c->state != SCRAM_ST_INIT || data == NULL ||
	    len == 0 || len > SCRAM_CBIND_MAX)
		return -1;
	memcpy(c->cbind, data, len);
	c->cbind_len = len;
	memcpy(c->gs2_header, SCRAM_CBIND_TYPE ",,",
	    sizeof(SCRAM_CBIND_TYPE ",,"));
	return 0;
}

/* Client: writes client-first-message. */
int
scram_client_first(struct scram_client *c, char *out, size_t outsz,
    size_t *outlen)
{
	struct scram_buf b;
	char		 rnonce[SCRAM_RAW_NONCE_LEN / 3 * 4 + 1];

	if (c == NULL || c->state != SCRAM_ST_INIT || c->init_error)
		return -1;
	if (c->nonce_len == 0) {
		if (scram_random_nonce(rnonce) == -1)
			return -1;
		c->nonce_len = strlen(rnonce);
		memcpy(c->nonce, rnonce, c->nonce_len + 1);
	}
	scram_buf_init(&b, c->client_first_bare, sizeof(c->client_first_bare));
	scram_buf_add(&b, "n=", 2);
	scram_buf_str(&b, c->user);
	scram_buf_add(&b, ",r=", 3);
	scram_buf_add(&b, c->nonce, c->nonce_len);
	if (scram_buf_finish(&b, &c->client_first_bare_len) == -1)
		return -1;

	scram_buf_init(&b, out, outsz);
	scram_buf_str(&b, c->gs2_header);
	scram_buf_add(&b, c->client_first_bare, c->client_first_bare_len);
	if (scram_buf_finish(&b, outlen) == -1)
		return -1;
	c->state = SCRAM_ST_FIRST;
	return 0;
}

/* Client: parses server-first and writes client-final-message. */
int
scram_client_final(struct scram_client *c, const char *server_first,
    size_t len, char *out, size_t outsz, size_t *outlen, const char **err)
{
	struct scram_cursor cur;
	struct scram_buf b;
	const char	*nonce, *v;
	char		 cfwop[SCRAM_MSG_MAX];
	size_t		 nlen, vlen, saltlen, cfwoplen;
	uint8_t		 salt[SCRAM_SALT_MAX];
	uint8_t		 stored[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
	uint8_t		 proof[SCRAM_KEY_LEN];
	int		 iterations, rc = -1, i;

	if (c == NULL || c->state != SCRAM_ST_FIRST) {
		scram_set_err(err, SCRAM_ERR_ORDER);
		return -1;
	}
	c->state = SCRAM_ST_DONE;	/* until this succeeds */

	if (scram_cursor_init(&cur, server_first, len) == -1) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		goto out;
	}
	if (len >= SCRAM_MSG_MAX) {
		scram_set_err(err, SCRAM_ERR_TOOLONG);
		goto out;
	}
	if (scram_cursor_peek(&cur, 'm')) {
		scram_set_err(err, "unsupported SCRAM extension required");
		goto out;
	}
	/* r=<client nonce><server nonce> */
	if (scram_read_attr(&cur, 'r', &nonce, &nlen) == -1 || !cur.comma) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		goto out;
	}
	if (nlen <= c->nonce_len || nlen >= SCRAM_NONCE_MAX ||
	    memcmp(nonce, c->nonce, c->nonce_len) != 0 ||
	    !scram_is_printable(nonce, nlen)) {
		scram_set_err(err, SCRAM_ERR_NONCE);
		goto out;
	}
	/* s=<salt> */
	if (scram_read_attr(&cur, 's', &v, &vlen) == -1 || !cur.comma ||
	    scram_b64_decode(v, vlen, salt, sizeof(salt), &saltlen) == -1 ||
	    saltlen == 0) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		goto out;
	}
	/* i=<iterations> */
	if (scram_read_attr(&cur, 'i', &v, &vlen) == -1 ||
	    scram_parse_int(v, vlen, &iterations) == -1) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		goto out;
	}
	if (scram_skip_extensions(&cur) == -1) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		goto out;
	}
	/* Before any PBKDF2: the server chose the count (see scram.h). */
	if (!c->use_keys && iterations > SCRAM_ITERATIONS_MAX) {
		scram_set_err(err, "server asks for more SCRAM iterations than "
		    "pgmirror runs (" SCRAM_STR(SCRAM_ITERATIONS_MAX) ")");
		goto out;
	}

	if (c->use_keys) {
		if (iterations != c->iterations || saltlen != c->saltlen ||
		    memcmp(salt, c->salt, saltlen) != 0) {
			scram_set_err(err, "server SCRAM salt differs from the "
			    "configured verifier");
			goto out;
		}
	} else {
		if (scram_derive_keys(c->password, c->password_len, salt,
		    saltlen, iterations, c->client_key, c->server_key) == -1) {
			scram_set_err(err, SCRAM_ERR_CRYPTO);
			goto out;
		}
		OPENSSL_cleanse(c->password, sizeof(c->password));
		c->password_len = 0;
	}

	/* client-final-message-without-proof: c=<b64 gs2>,r=<nonce> */
	scram_buf_init(&b, cfwop, sizeof(cfwop));
	scram_buf_add(&b, "c=", 2);
	{
		uint8_t	 cb[SCRAM_GS2_MAX + SCRAM_CBIND_MAX];
		size_t	 n = strlen(c->gs2_header);

		/* gs2 header, then the channel-binding data if bound. */
		memcpy(cb, c->gs2_header, n);
		memcpy(cb + n, c->cbind, c->cbind_len);
		scram_buf_b64(&b, cb, n + c->cbind_len);
	}
	scram_buf_add(&b, ",r=", 3);
	scram_buf_add(&b, nonce, nlen);
	if (scram_buf_finish(&b, &cfwoplen) == -1) {
		scram_set_err(err, SCRAM_ERR_TOOLONG);
		goto out;
	}

	if (scram_sha256(c->client_key, SCRAM_KEY_LEN, stored) == -1 ||
	    scram_auth_hmac(c->client_first_bare, c->client_first_bare_len,
	    server_first, len, cfwop, cfwoplen, stored, sig) == -1 ||
	    scram_auth_hmac(c->client_first_bare, c->client_first_bare_len,
	    server_first, len, cfwop, cfwoplen, c->server_key,
	    c->server_signature) == -1) {
		scram_set_err(err, SCRAM_ERR_CRYPTO);
		goto out;
	}
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = c->client_key[i] ^ sig[i];

	scram_buf_init(&b, out, outsz);
	scram_buf_add(&b, cfwop, cfwoplen);
	scram_buf_add(&b, ",p=", 3);
	scram_buf_b64(&b, proof, sizeof(proof));
	if (scram_buf_finish(&b, outlen) == -1) {
		scram_set_err(err, SCRAM_ERR_OUTBUF);
		goto out;
	}
	c->state = SCRAM_ST_FINAL;
	rc = 0;
out:
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(sig, sizeof(sig));
	return rc;
}

/* Client: checks the server signature in server-final-message. */
int
scram_client_verify(struct scram_client *c, const char *server_final,
    size_t len, const char **err)
{
	struct scram_cursor cur;
	const char	*v;
	uint8_t		 sig[SCRAM_KEY_LEN];
	size_t		 vlen, n;

	if (c == NULL || c->state != SCRAM_ST_FINAL) {
		scram_set_err(err, SCRAM_ERR_ORDER);
		return -1;
	}
	c->state = SCRAM_ST_DONE;

	if (scram_cursor_init(&cur, server_final, len) == -1) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		return -1;
	}
	if (scram_cursor_peek(&cur, 'e')) {
		scram_set_err(err, "server rejected SCRAM authentication");
		return -1;
	}
	if (scram_read_attr(&cur, 'v', &v, &vlen) == -1 ||
	    scram_skip_extensions(&cur) == -1 ||
	    scram_b64_decode(v, vlen, sig, sizeof(sig), &n) == -1 ||
	    n != SCRAM_KEY_LEN) {
		scram_set_err(err, SCRAM_ERR_MALFORMED);
		return -1;
	}
	if (CRYPTO_memcmp(sig, c->server_signature, SCRAM_KEY_LEN) != 0) {
		scram_set_err(err, "wrong SCRAM server signature: the server "
		    "did not prove that it knows the password");
		return -1;
	}
	c->state = SCRAM_ST_VERIFIED;
	return 0;
}

/* Client: has an exchange begun on this (once zeroed) struct? */
int
scram_client_begun(const struct scram_client *c)
{
	return c != NULL && c->state != 0;
}

/* Client: has the server's signature been verified? */
int
scram_client_verified(const struct scram_client *c)
{
	return c != NULL && c->state == SCRAM_ST_VERIFIED;
}

/* Client: wipes all state. */
void
scram_client_clear(struct scram_client *c)
{
	if (c != NULL)
		OPENSSL_cleanse(c, sizeof(*c));
}

/* Writes n bytes as lowercase hex (2n chars, no NUL). */
static void
md5_hex(const uint8_t *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t		 i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 0xf];
	}
}

/* Writes "md5" + hex(md5(a || b)) into out[36]; "" on failure. */
static void
md5_concat_hex(const void *a, size_t alen, const void *b, size_t blen,
    char out[36])
{
	EVP_MD_CTX	*ctx;
	uint8_t		 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	int		 ok;

	out[0] = '\0';
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return;
	ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, a, alen) == 1 &&
	    EVP_DigestUpdate(ctx, b, blen) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return;
	memcpy(out, "md5", 3);
	md5_hex(md, 16, out + 3);
	out[MD5_PASSWD_LEN] = '\0';
}

/* PostgreSQL md5 verifier: "md5" + hex(md5(password || user)). */
void
md5_password_hash(const char *user, const char *password, char out[36])
{
	if (user == NULL || password == NULL) {
		out[0] = '\0';
		return;
	}
	md5_concat_hex(password, strlen(password), user, strlen(user), out);
}

/* True if s is "md5" followed by 32 lowercase hex digits. */
int
md5_is_hash(const char *s)
{
	size_t		 i;

	if (s == NULL || strncmp(s, "md5", 3) != 0)
		return 0;
	for (i = 3; i < MD5_PASSWD_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[MD5_PASSWD_LEN] == '\0';
}

/* Response to AuthenticationMD5Password from an md5 verifier and salt. */
void
md5_salted_response(const char hash[36], const uint8_t salt[4], char out[36])
{
	if (salt == NULL || !md5_is_hash(hash)) {
		out[0] = '\0';
		return;
	}
	md5_concat_hex(hash + 3, MD5_PASSWD_LEN - 3, salt, 4, out);
}
