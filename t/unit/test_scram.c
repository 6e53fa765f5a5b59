/*
 * test_scram.c: TAP unit tests for src/scram.c (SCRAM-SHA-256 and md5).
 *
 * Owns: RFC 7677 test-vector checks for both exchange sides, full
 * server<->client exchanges (password and recovered-key modes), verifier
 * parsing, malformed/truncated input handling and the md5 helpers.
 * Untrusted inputs are copied into exact-size heap buffers (no NUL) so
 * AddressSanitizer catches any read past the given length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scram.h"
#include "tap.h"

/* RFC 7677 section 3 test vector (user "user", password "pencil"). */
#define RFC_PASSWORD	"pencil"
#define RFC_CNONCE	"rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE	"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT_B64	"W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SERVER_FIRST "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64 \
			",i=4096"
#define RFC_CFWOP	"c=biws,r=" RFC_CNONCE RFC_SNONCE
#define RFC_PROOF	"dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_CLIENT_FINAL RFC_CFWOP ",p=" RFC_PROOF
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* Same secret in pg_authid form, computed independently (Python hashlib). */
#define RFC_VERIFIER	"SCRAM-SHA-256$4096:" RFC_SALT_B64 \
	"$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=" \
	":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static const uint8_t rfc_salt[16] = {
	0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
	0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81
};
static const uint8_t rfc_client_key[SCRAM_KEY_LEN] = {
	0xa6, 0x0f, 0xc9, 0x23, 0xd6, 0x7e, 0x86, 0x44,
	0xa9, 0x2d, 0x16, 0xb9, 0x6e, 0xda, 0x5e, 0xf4,
	0x65, 0x6b, 0x0c, 0x72, 0x5c, 0x48, 0x43, 0x74,
	0xbe, 0x25, 0x53, 0x55, 0x76, 0x99, 0x6e, 0x8b
};

/* scram_server_first on an exact-size copy of msg[0..n). */
static int
srv_first_n(struct scram_server *s, const struct scram_secret *sec,
    const char *msg, size_t n, const char *snonce, char *out, size_t outsz,
    const char **err)
{
	char	*m = (char *)tap_dup_exact(msg, n);
	size_t	 outlen = 0;
	int	 rc;

	memset(s, 0, sizeof(*s));
	*err = NULL;
	if (snonce != NULL)
		rc = scram_server_first_with_nonce(s, sec, m, n, snonce, out,
		    outsz, &outlen, err);
	else
		rc = scram_server_first(s, sec, m, n, out, outsz, &outlen,
		    err);
	free(m);
	if (rc == 0 && outlen != strlen(out))
		rc = 99;
	return rc;
}

/* scram_server_final on an exact-size copy of msg[0..n). */
static int
srv_final_n(struct scram_server *s, const char *msg, size_t n, char *out,
    size_t outsz, const char **err)
{
	char	*m = (char *)tap_dup_exact(msg, n);
	size_t	 outlen = 0;
	int	 rc;

	*err = NULL;
	rc = scram_server_final(s, m, n, out, outsz, &outlen, err);
	free(m);
	if (rc == 0 && outlen != strlen(out))
		rc = 99;
	return rc;
}

/* scram_client_final on an exact-size copy of msg[0..n). */
static int
cli_final_n(struct scram_client *c, const char *msg, size_t n, char *out,
    size_t outsz, const char **err)
{
	char	*m = (char *)tap_dup_exact(msg, n);
	size_t	 outlen = 0;
	int	 rc;

	*err = NULL;
	rc = scram_client_final(c, m, n, out, outsz, &outlen, err);
	free(m);
	if (rc == 0 && outlen != strlen(out))
		rc = 99;
	return rc;
}

/* scram_client_verify on an exact-size copy of msg[0..n). */
static int
cli_verify_n(struct scram_client *c, const char *msg, size_t n,
    const char **err)
{
	char	*m = (char *)tap_dup_exact(msg, n);
	int	 rc;

	*err = NULL;
	rc = scram_client_verify(c, m, n, err);
	free(m);
	return rc;
}

/* The RFC 7677 secret, derived from the password. */
static struct scram_secret
rfc_secret(void)
{
	struct scram_secret sec;

	if (scram_secret_from_password_salt(RFC_PASSWORD, rfc_salt,
	    sizeof(rfc_salt), 4096, &sec) != 0)
		abort();
	return sec;
}

/* Puts a server through the RFC client-first; returns its rc. */
static int
rfc_server_first(struct scram_server *s, const struct scram_secret *sec)
{
	char		 out[SCRAM_MSG_MAX];
	const char	*err;

	return srv_first_n(s, sec, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
	    RFC_SNONCE, out, sizeof(out), &err);
}

/* Initialises an RFC client and sends client-first; returns its rc. */
static int
rfc_client_first(struct scram_client *c)
{
	char		 out[SCRAM_MSG_MAX];
	size_t		 outlen;

	scram_client_init_password(c, RFC_PASSWORD);
	if (scram_client_set_user(c, "user") != 0 ||
	    scram_client_set_nonce(c, RFC_CNONCE) != 0)
		return -1;
	return scram_client_first(c, out, sizeof(out), &outlen);
}

/*
 * Runs a whole exchange between client c (already initialised) and a
 * server using sec.  Returns the server-final rc; *vrc gets the client's
 * verify rc (or -2 if not reached).  s is left for inspection.
 */
static int
exchange(struct scram_client *c, struct scram_server *s,
    const struct scram_secret *sec, int *vrc, const char **err)
{
	char		 m1[SCRAM_MSG_MAX], m2[SCRAM_MSG_MAX];
	char		 m3[SCRAM_MSG_MAX], m4[SCRAM_MSG_MAX];
	size_t		 n1, n2, n3, n4;
	int		 rc;

	*vrc = -2;
	*err = NULL;
	memset(s, 0, sizeof(*s));
	if (scram_client_first(c, m1, sizeof(m1), &n1) != 0)
		return -10;
	if (scram_server_first(s, sec, m1, n1, m2, sizeof(m2), &n2, err) != 0)
		return -11;
	if (scram_client_final(c, m2, n2, m3, sizeof(m3), &n3, err) != 0)
		return -12;
	rc = scram_server_final(s, m3, n3, m4, sizeof(m4), &n4, err);
	if (rc == 0)
		*vrc = scram_client_verify(c, m4, n4, err);
	return rc;
}

/* md5 helpers against values from md5sum / Python hashlib. */
static void
test_md5(void)
{
	static const uint8_t salt[4] = { 1, 2, 3, 4 };
	char		 hash[36], resp[36], nothex[36];

	md5_password_hash("postgres", "secret", hash);
	tap_is_str(hash, "md553f48b7c4b76a86ce72276c5755f217d",
	    "md5 hash of postgres/secret");
	md5_salted_response(hash, salt, resp);
	tap_is_str(resp, "md5bb41a296aab6baccb36ff243a562abff",
	    "md5 salted response with salt 01020304");
	tap_ok(md5_is_hash(hash) && !md5_is_hash("md5abc") &&
	    !md5_is_hash("md553F48B7C4B76A86CE72276C5755F217D") &&
	    !md5_is_hash(RFC_VERIFIER) && !md5_is_hash(NULL),
	    "md5_is_hash");
	memset(nothex, 0, sizeof(nothex));
	memcpy(nothex, "md5nothex", 9);
	md5_salted_response(nothex, salt, resp);
	tap_is_str(resp, "", "md5 salted response of a bad hash is empty");
}

/* Verifier parsing, formatting and derivation. */
static void
test_secret(void)
{
	static const char *bad[] = {
		"",
		"SCRAM-SHA-256",
		"SCRAM-SHA-256$",
		"SCRAM-SHA-256$4096",
		"SCRAM-SHA-256$4096:" RFC_SALT_B64,
		"SCRAM-SHA-256$4096:" RFC_SALT_B64 "$",
		"SCRAM-SHA-256$4096:" RFC_SALT_B64
		    "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
		"SCRAM-SHA-256$4096:" RFC_SALT_B64
		    "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:",
		"SCRAM-SHA-256$0:" RFC_SALT_B64
		    "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
		    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$-1:" RFC_SALT_B64
		    "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
		    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$99999999999:" RFC_SALT_B64
		    "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
		    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:"
		    "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
		    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6g!=="
		    "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
		    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:" RFC_SALT_B64
		    "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4q="
		    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:" RFC_SALT_B64
		    "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
		    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU",
		RFC_VERIFIER "x",
		RFC_VERIFIER ":",
		RFC_VERIFIER "====",
		"SCRAM-SHA-1$4096:" RFC_SALT_B64
		    "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
		    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"md553f48b7c4b76a86ce72276c5755f217d",
		/* 66-byte salt: larger than SCRAM_SALT_MAX */
		"SCRAM-SHA-256$4096:"
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		    "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
		    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	};
	struct scram_secret parsed, derived, fresh, again;
	char		 buf[SCRAM_VERIFIER_MAX];
	size_t		 i;
	int		 allbad = 1;

	tap_is_int(scram_secret_parse(RFC_VERIFIER, &parsed), 0,
	    "parse the RFC 7677 verifier");
	tap_ok(parsed.iterations == 4096 && parsed.saltlen == 16 &&
	    memcmp(parsed.salt, rfc_salt, 16) == 0 && !parsed.has_client_key,
	    "parsed iterations, salt, no client key");
	derived = rfc_secret();
	tap_ok(memcmp(derived.stored_key, parsed.stored_key,
	    SCRAM_KEY_LEN) == 0 && memcmp(derived.server_key,
	    parsed.server_key, SCRAM_KEY_LEN) == 0,
	    "derived StoredKey/ServerKey match the independent verifier");
	tap_ok(derived.has_client_key && memcmp(derived.client_key,
	    rfc_client_key, SCRAM_KEY_LEN) == 0,
	    "derived ClientKey matches the expected value");
	tap_ok(scram_secret_format(&parsed, buf, sizeof(buf)) == 0 &&
	    strcmp(buf, RFC_VERIFIER) == 0, "format round-trips the verifier");
	tap_is_int(scram_secret_format(&parsed, buf, 20), -1,
	    "format into a too-small buffer fails");
	tap_ok(scram_secret_is_verifier(RFC_VERIFIER) &&
	    !scram_secret_is_verifier("md553f48b7c4b76a86ce72276c5755f217d") &&
	    !scram_secret_is_verifier("pencil") &&
	    !scram_secret_is_verifier(NULL), "scram_secret_is_verifier");

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (scram_secret_parse(bad[i], &again) != -1) {
			tap_diag("accepted bad verifier %zu: %s", i, bad[i]);
			allbad = 0;
		}
	}
	tap_ok(allbad, "%zu malformed verifiers rejected",
	    sizeof(bad) / sizeof(bad[0]));

	tap_is_int(scram_secret_from_password("s3cret", &fresh), 0,
	    "scram_secret_from_password");
	tap_ok(fresh.iterations == 4096 && fresh.saltlen == 16 &&
	    fresh.has_client_key,
	    "fresh secret: 4096 iterations, 16-byte salt");
	tap_ok(scram_secret_format(&fresh, buf, sizeof(buf)) == 0 &&
	    scram_secret_parse(buf, &again) == 0 &&
	    memcmp(again.stored_key, fresh.stored_key, SCRAM_KEY_LEN) == 0 &&
	    memcmp(again.server_key, fresh.server_key, SCRAM_KEY_LEN) == 0 &&
	    again.saltlen == fresh.saltlen &&
	    memcmp(again.salt, fresh.salt, fresh.saltlen) == 0,
	    "fresh secret formats and parses back");
	tap_ok(scram_secret_from_password("s3cret", &again) == 0 &&
	    memcmp(again.salt, fresh.salt, 16) != 0,
	    "two fresh secrets get different salts");
}

/* Both sides against the RFC 7677 test vector. */
static void
test_rfc_vector(void)
{
	struct scram_secret sec = rfc_secret(), parsed;
	struct scram_server s;
	struct scram_client c;
	char		 out[SCRAM_MSG_MAX];
	const char	*err;
	size_t		 outlen = 0;
	int		 rc;

	/* client side */
	scram_client_init_password(&c, RFC_PASSWORD);
	tap_ok(scram_client_set_user(&c, "user") == 0 &&
	    scram_client_set_nonce(&c, RFC_CNONCE) == 0,
	    "client test hooks accept user and nonce");
	rc = scram_client_first(&c, out, sizeof(out), &outlen);
	tap_ok(rc == 0 && outlen == strlen(RFC_CLIENT_FIRST) &&
	    strcmp(out, RFC_CLIENT_FIRST) == 0, "RFC client-first: %s", out);
	rc = cli_final_n(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out,
	    sizeof(out), &err);
	tap_is_int(rc, 0, "client accepts RFC server-first");
	tap_is_str(out, RFC_CLIENT_FINAL, "RFC client-final");
	rc = cli_verify_n(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err);
	tap_is_int(rc, 0, "client verifies RFC server signature");

	/* server side, with the secret parsed from pg_authid form */
	if (scram_secret_parse(RFC_VERIFIER, &parsed) != 0)
		abort();
	rc = srv_first_n(&s, &parsed, RFC_CLIENT_FIRST,
	    strlen(RFC_CLIENT_FIRST), RFC_SNONCE, out, sizeof(out), &err);
	tap_is_int(rc, 0, "server accepts RFC client-first");
	tap_is_str(out, RFC_SERVER_FIRST, "RFC server-first");
	rc = srv_final_n(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out,
	    sizeof(out), &err);
	tap_is_int(rc, 0, "server accepts RFC client-final proof");
	tap_is_str(out, RFC_SERVER_FINAL, "RFC server-final");
	tap_ok(s.has_client_key && memcmp(s.client_key, rfc_client_key,
	    SCRAM_KEY_LEN) == 0 && memcmp(s.client_key, sec.client_key,
	    SCRAM_KEY_LEN) == 0, "server recovered the RFC ClientKey");
	rc = srv_final_n(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out,
	    sizeof(out), &err);
	tap_ok(rc == -1 && err != NULL, "second server-final is refused (%s)",
	    err ? err : "");
}

/*
 * An exchange whose server holds channel-binding data (as over TLS) and
 * whose client binds to cdata (or not, when clen is 0).  Returns the
 * server-final rc, or -11 if server-first refused; *vrc as exchange().
 */
static int
bound_exchange(const struct scram_secret *sec, const uint8_t *sdata,
    const uint8_t *cdata, size_t clen, int *vrc, const char **err)
{
	struct scram_server s;
	struct scram_client c;
	char		 m1[SCRAM_MSG_MAX], m2[SCRAM_MSG_MAX];
	char		 m3[SCRAM_MSG_MAX], m4[SCRAM_MSG_MAX];
	size_t		 n1, n2, n3, n4;
	int		 rc;

	*vrc = -2;
	*err = NULL;
	scram_client_init_password(&c, "pencil");
	if (clen > 0 && scram_client_set_cbind(&c, cdata, clen) != 0)
		return -10;
	memset(&s, 0, sizeof(s));
	s.cbind_data = sdata;
	s.cbind_len = 32;
	if (scram_client_first(&c, m1, sizeof(m1), &n1) != 0)
		return -10;
	if (scram_server_first(&s, sec, m1, n1, m2, sizeof(m2), &n2, err) != 0)
		return -11;
	if (scram_client_final(&c, m2, n2, m3, sizeof(m3), &n3, err) != 0)
		return -12;
	rc = scram_server_final(&s, m3, n3, m4, sizeof(m4), &n4, err);
	if (rc == 0)
		*vrc = scram_client_verify(&c, m4, n4, err);
	return rc;
}

/* SCRAM-SHA-256-PLUS: tls-server-end-point binding, and its downgrade. */
static void
test_channel_binding(void)
{
	struct scram_secret sec;
	struct scram_server s;
	uint8_t		 a[32], b[32];
	char		 out[SCRAM_MSG_MAX];
	const char	*err;
	size_t		 outlen;
	int		 rc, vrc;

	memset(a, 0xa5, sizeof(a));
	memset(b, 0x5a, sizeof(b));
	if (scram_secret_from_password("pencil", &sec) != 0)
		abort();
	rc = bound_exchange(&sec, a, a, sizeof(a), &vrc, &err);
	tap_ok(rc == 0 && vrc == 0, "bound to the same TLS data: accepted");
	rc = bound_exchange(&sec, a, b, sizeof(b), &vrc, &err);
	tap_ok(rc == -1 && err != NULL && strstr(err, "channel-binding"),
	    "bound to other TLS data: refused (%s)", err ? err : "");
	rc = bound_exchange(&sec, a, NULL, 0, &vrc, &err);
	tap_ok(rc == 0 && vrc == 0,
	    "a client without binding support (n) still logs in over TLS");
	memset(&s, 0, sizeof(s));
	s.cbind_data = a;
	s.cbind_len = sizeof(a);
	err = NULL;
	rc = scram_server_first(&s, &sec, "y,,n=,r=abc", 11, out, sizeof(out),
	    &outlen, &err);
	tap_ok(rc == -1 && err != NULL && strstr(err, "negotiation"),
	    "y while the server offers binding: refused as a downgrade (%s)",
	    err ? err : "");
}

/* Full exchanges between our own client and server. */
static void
test_exchange(void)
{
	struct scram_secret sec, other, pgsec;
	struct scram_server s, s2;
	struct scram_client c;
	char		 buf[SCRAM_VERIFIER_MAX];
	uint8_t		 key[SCRAM_KEY_LEN];
	const char	*err;
	int		 rc, vrc;

	if (scram_secret_from_password("correct horse", &sec) != 0 ||
	    scram_secret_from_password("battery staple", &other) != 0)
		abort();

	scram_client_init_password(&c, "correct horse");
	rc = exchange(&c, &s, &sec, &vrc, &err);
	tap_ok(rc == 0 && vrc == 0, "right password accepted, server verified"
	    " (rc %d, verify %d, %s)", rc, vrc, err ? err : "");
	tap_ok(s.has_client_key && memcmp(s.client_key, sec.client_key,
	    SCRAM_KEY_LEN) == 0,
	    "recovered client_key equals scram_secret_from_password's");
	memcpy(key, s.client_key, sizeof(key));

	scram_client_init_password(&c, "correct horsE");
	rc = exchange(&c, &s, &sec, &vrc, &err);
	tap_is_int(rc, 1, "wrong password rejected with 1");
	tap_ok(!s.has_client_key, "no client key after a wrong password");

	scram_client_init_password(&c, "");
	rc = exchange(&c, &s, &sec, &vrc, &err);
	tap_is_int(rc, 1, "empty password rejected with 1");

	/* "y,," flag: accepted when echoed as c=eSws */
	scram_client_init_password(&c, "correct horse");
	memcpy(c.gs2_header, "y,,", 4);
	rc = exchange(&c, &s, &sec, &vrc, &err);
	tap_ok(rc == 0 && vrc == 0, "gs2 'y,,' exchange works (rc %d)", rc);

	/*
	 * Recovered-key login against an upstream holding only the verifier
	 * (as PostgreSQL does: parsed, so no client key).
	 */
	if (scram_secret_format(&sec, buf, sizeof(buf)) != 0 ||
	    scram_secret_parse(buf, &pgsec) != 0)
		abort();
	scram_client_init_keys(&c, key, pgsec.server_key, pgsec.iterations,
	    pgsec.salt, pgsec.saltlen);
	rc = exchange(&c, &s2, &pgsec, &vrc, &err);
	tap_ok(rc == 0 && vrc == 0, "scram_client_init_keys login accepted"
	    " (rc %d, verify %d)", rc, vrc);

	/* A server with a different salt: the keys cannot be used. */
	scram_client_init_keys(&c, key, pgsec.server_key, pgsec.iterations,
	    pgsec.salt, pgsec.saltlen);
	rc = exchange(&c, &s2, &other, &vrc, &err);
	tap_ok(rc == -12 && err != NULL && strcmp(err, "server SCRAM salt "
	    "differs from the configured verifier") == 0,
	    "keys mode refuses a different salt: %s", err ? err : "(null)");

	/* Same salt, different iteration count. */
	other = pgsec;
	other.iterations = 4097;
	scram_client_init_keys(&c, key, pgsec.server_key, pgsec.iterations,
	    pgsec.salt, pgsec.saltlen);
	rc = exchange(&c, &s2, &other, &vrc, &err);
	tap_ok(rc == -12 && err != NULL && strcmp(err, "server SCRAM salt "
	    "differs from the configured verifier") == 0,
	    "keys mode refuses a different iteration count");

	/* Wrong client key in keys mode. */
	key[0] ^= 1;
	scram_client_init_keys(&c, key, pgsec.server_key, pgsec.iterations,
	    pgsec.salt, pgsec.saltlen);
	rc = exchange(&c, &s2, &pgsec, &vrc, &err);
	tap_is_int(rc, 1, "wrong client key rejected with 1");

	/* Wrong server key: the client must reject the server's signature. */
	key[0] ^= 1;
	other = pgsec;
	other.server_key[5] ^= 0x80;
	scram_client_init_keys(&c, key, pgsec.server_key, pgsec.iterations,
	    pgsec.salt, pgsec.saltlen);
	rc = exchange(&c, &s2, &other, &vrc, &err);
	tap_ok(rc == 0 && vrc == -1, "client rejects a bad server signature");

	/* Random nonces differ between exchanges. */
	{
		struct scram_client c1, c2;
		char	 a[SCRAM_MSG_MAX], b[SCRAM_MSG_MAX];
		size_t	 na, nb;

		scram_client_init_password(&c1, "x");
		scram_client_init_password(&c2, "x");
		tap_ok(scram_client_first(&c1, a, sizeof(a), &na) == 0 &&
		    scram_client_first(&c2, b, sizeof(b), &nb) == 0 &&
		    na == strlen("n,,n=,r=") + 24 &&
		    strncmp(a, "n,,n=,r=", 8) == 0 && strcmp(a, b) != 0,
		    "client-first is n,,n=,r=<24-char random nonce>: %s", a);
	}
	scram_server_clear(&s);
	scram_server_clear(&s2);
	scram_client_clear(&c);
}

/* Malformed client-first messages are refused with -1 and a reason. */
static void
test_bad_client_first(void)
{
	static const char *bad[] = {
		"", "n", "n,", "n,,", ",,n=,r=abc", "x,,n=,r=abc",
		"p,,n=,r=abc",
		"nn,,n=,r=abc", "n=,,n=,r=abc", "n,a=bob,n=,r=abc",
		"n,,,n=,r=abc", "n,,m=ext,n=,r=abc", "n,,n=,r=", "n,,n=",
		"n,,n=,", "n,,r=abc", "n,,n=,r=abc,", "n,,n=,r=abc,x",
		"n,,n=,r=abc,=x", "n,,n=,r=abc,1=x", "n,,n=,r=a c",
		"n,,n=,r=a\x01" "c", "n,,n=,r=a\x7f" "c", "n,,n=,r=abc\xff",
		"n,,n=x", "n,,x=1,n=,r=abc", "n,n=,r=abc", "n,,n=,s=abc",
	};
	struct scram_secret sec = rfc_secret();
	struct scram_server s;
	char		 out[SCRAM_MSG_MAX], big[2 * SCRAM_MSG_MAX];
	const char	*err, *valid = "n,,n=,r=" RFC_CNONCE;
	size_t		 i, n;
	int		 rc, allbad = 1, ok;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rc = srv_first_n(&s, &sec, bad[i], strlen(bad[i]), NULL, out,
		    sizeof(out), &err);
		if (rc != -1 || err == NULL) {
			tap_diag("bad client-first %zu '%s': rc %d", i, bad[i],
			    rc);
			allbad = 0;
		}
	}
	tap_ok(allbad, "%zu malformed client-first messages refused",
	    sizeof(bad) / sizeof(bad[0]));

	rc = srv_first_n(&s, &sec, "n,,n=,r=abc\0", 12, NULL, out, sizeof(out),
	    &err);
	tap_ok(rc == -1 && err != NULL, "client-first with a NUL refused");

	rc = srv_first_n(&s, &sec, "p=tls-server-end-point,,n=,r=abc", 32,
	    NULL, out, sizeof(out), &err);
	tap_ok(rc == -1 && err != NULL &&
	    strcmp(err, "channel binding is not supported "
	    "without TLS") == 0,
	    "p= refused: %s", err ? err : "(null)");

	memcpy(big, "n,,n=,r=", 8);
	memset(big + 8, 'a', sizeof(big) - 8);
	rc = srv_first_n(&s, &sec, big, sizeof(big), NULL, out, sizeof(out),
	    &err);
	tap_ok(rc == -1 && err != NULL, "oversized client-first refused: %s",
	    err ? err : "(null)");

	rc = srv_first_n(&s, &sec, valid, strlen(valid), NULL, out, 10, &err);
	tap_ok(rc == -1 && err != NULL, "too small output buffer refused: %s",
	    err ? err : "(null)");

	rc = srv_first_n(&s, &sec, "y,,n=,r=abc", 11, NULL, out, sizeof(out),
	    &err);
	tap_is_int(rc, 0, "client-first with 'y,,' accepted");
	rc = srv_first_n(&s, &sec, "n,,n=u=2Cv,r=abc,x=ext,y=", 25, NULL, out,
	    sizeof(out), &err);
	tap_is_int(rc, 0, "client-first with escaped user and extensions "
	    "accepted");
	tap_ok(strncmp(out, "r=abc", 5) == 0 && strlen(out) > 5 + 24,
	    "server-first carries client nonce + server nonce: %s", out);

	/* Every truncation: handled, never out of bounds. */
	ok = 1;
	for (n = 0; n < strlen(valid); n++) {
		rc = srv_first_n(&s, &sec, valid, n, NULL, out, sizeof(out),
		    &err);
		if (!(rc == 0 || (rc == -1 && err != NULL)))
			ok = 0;
	}
	tap_ok(ok, "all %zu truncations of client-first handled",
	    strlen(valid));
}

/* Malformed client-final messages are refused with -1 and a reason. */
static void
test_bad_client_final(void)
{
	static const char *bad[] = {
		"",
		"c=biws",
		"c=biws,",
		"c=biws,r=" RFC_CNONCE RFC_SNONCE,
		"c=biws,r=" RFC_CNONCE RFC_SNONCE ",",
		"c=eSws,r=" RFC_CNONCE RFC_SNONCE ",p=" RFC_PROOF,
		"c=,r=" RFC_CNONCE RFC_SNONCE ",p=" RFC_PROOF,
		"c=biws==,r=" RFC_CNONCE RFC_SNONCE ",p=" RFC_PROOF,
		"c=biws,r=" RFC_CNONCE ",p=" RFC_PROOF,
		"c=biws,r=" RFC_CNONCE RFC_SNONCE "x,p=" RFC_PROOF,
		"c=biws,r=,p=" RFC_PROOF,
		"c=biws,p=" RFC_PROOF,
		"r=" RFC_CNONCE RFC_SNONCE ",c=biws,p=" RFC_PROOF,
		"c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=!!!!",
		"c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=AAAA",
		"c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=",
		"c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=" RFC_PROOF "AAAA",
		"c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=" RFC_PROOF ",x=y",
		"c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=" RFC_PROOF ",",
		"c=biws,r=" RFC_CNONCE RFC_SNONCE ",x=y",
		"c=biws,r=" RFC_CNONCE RFC_SNONCE ",,p=" RFC_PROOF,
		"c=biws,r=" RFC_CNONCE RFC_SNONCE ",p= " RFC_PROOF,
	};
	struct scram_secret sec = rfc_secret();
	struct scram_server s;
	char		 out[SCRAM_MSG_MAX], big[2 * SCRAM_MSG_MAX];
	const char	*err;
	size_t		 i, n, len = strlen(RFC_CLIENT_FINAL);
	int		 rc, allbad = 1, ok;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (rfc_server_first(&s, &sec) != 0)
			abort();
		rc = srv_final_n(&s, bad[i], strlen(bad[i]), out, sizeof(out),
		    &err);
		if (rc != -1 || err == NULL || s.has_client_key) {
			tap_diag("bad client-final %zu '%s': rc %d", i, bad[i],
			    rc);
			allbad = 0;
		}
	}
	tap_ok(allbad, "%zu malformed client-final messages refused",
	    sizeof(bad) / sizeof(bad[0]));

	rfc_server_first(&s, &sec);
	rc = srv_final_n(&s, "c=biws,r=" RFC_CNONCE "XXX,p=" RFC_PROOF,
	    strlen("c=biws,r=" RFC_CNONCE "XXX,p=" RFC_PROOF), out,
	    sizeof(out), &err);
	tap_ok(rc == -1 && err != NULL && strcmp(err,
	    "SCRAM nonce mismatch") == 0, "nonce mismatch: %s",
	    err ? err : "(null)");

	rfc_server_first(&s, &sec);
	rc = srv_final_n(&s, RFC_CFWOP ",x=ext,p=" RFC_PROOF,
	    strlen(RFC_CFWOP ",x=ext,p=" RFC_PROOF), out, sizeof(out), &err);
	tap_is_int(rc, 1, "extension before proof parsed (and alters the "
	    "AuthMessage, so the RFC proof is wrong)");

	rfc_server_first(&s, &sec);
	rc = srv_final_n(&s, RFC_CLIENT_FINAL, len, out, 10, &err);
	tap_ok(rc == -1 && err != NULL && !s.has_client_key,
	    "server-final into a too-small buffer refused");

	rfc_server_first(&s, &sec);
	memcpy(big, RFC_CLIENT_FINAL, len);
	memset(big + len, 'A', sizeof(big) - len);
	rc = srv_final_n(&s, big, sizeof(big), out, sizeof(out), &err);
	tap_ok(rc == -1 && err != NULL, "oversized client-final refused");

	memset(&s, 0, sizeof(s));
	rc = srv_final_n(&s, RFC_CLIENT_FINAL, len, out, sizeof(out), &err);
	tap_ok(rc == -1 && err != NULL, "server-final before server-first "
	    "refused");

	rfc_server_first(&s, &sec);
	rc = srv_final_n(&s, "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=\0AAA",
	    strlen(RFC_CFWOP) + 7, out, sizeof(out), &err);
	tap_ok(rc == -1 && err != NULL, "client-final with a NUL refused");

	ok = 1;
	for (n = 0; n < len; n++) {
		rfc_server_first(&s, &sec);
		rc = srv_final_n(&s, RFC_CLIENT_FINAL, n, out, sizeof(out),
		    &err);
		if (rc != -1 || err == NULL)
			ok = 0;
	}
	tap_ok(ok, "all %zu truncations of client-final refused", len);
}

/* Malformed server messages are refused by the client. */
static void
test_bad_server_msgs(void)
{
	static const char *bad_first[] = {
		"",
		"r=" RFC_CNONCE RFC_SNONCE,
		"r=" RFC_CNONCE RFC_SNONCE ",",
		"r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64,
		"r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64 ",",
		"r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64 ",i=",
		"r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64 ",i=0",
		"r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64 ",i=-1",
		"r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64 ",i=abc",
		"r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64 ",i=4096x",
		"r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64 ",i=99999999999",
		"r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64 ",i=4096,",
		"r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64 ",i=4096,x",
		"r=" RFC_CNONCE RFC_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096",
		"r=" RFC_CNONCE RFC_SNONCE ",s=!!!!,i=4096",
		"r=" RFC_CNONCE RFC_SNONCE ",s=,i=4096",
		"r=" RFC_CNONCE RFC_SNONCE ",i=4096,s=" RFC_SALT_B64,
		"r=" RFC_CNONCE ",s=" RFC_SALT_B64 ",i=4096",
		"r=XOprNGfwEbeRWgbNEkqO" RFC_SNONCE ",s=" RFC_SALT_B64
		    ",i=4096",
		"r=rOprNG,s=" RFC_SALT_B64 ",i=4096",
		"r=" RFC_CNONCE "a b,s=" RFC_SALT_B64 ",i=4096",
		"m=x,r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT_B64 ",i=4096",
		"s=" RFC_SALT_B64 ",r=" RFC_CNONCE RFC_SNONCE ",i=4096",
		/* 66-byte salt */
		"r=" RFC_CNONCE RFC_SNONCE ",s="
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,i=4096",
	};
	static const char *bad_final[] = {
		"",
		"v=",
		"v=!!!!",
		"v=AAAA",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=",
		"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		"e=invalid-proof",
		"x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	};
	struct scram_client c;
	char		 out[SCRAM_MSG_MAX];
	const char	*err;
	size_t		 i, n, len = strlen(RFC_SERVER_FIRST), outlen;
	int		 rc, allbad = 1, ok;

	for (i = 0; i < sizeof(bad_first) / sizeof(bad_first[0]); i++) {
		if (rfc_client_first(&c) != 0)
			abort();
		rc = cli_final_n(&c, bad_first[i], strlen(bad_first[i]), out,
		    sizeof(out), &err);
		if (rc != -1 || err == NULL) {
			tap_diag("bad server-first %zu '%s': rc %d", i,
			    bad_first[i], rc);
			allbad = 0;
		}
	}
	tap_ok(allbad, "%zu malformed server-first messages refused",
	    sizeof(bad_first) / sizeof(bad_first[0]));

	rfc_client_first(&c);
	rc = cli_final_n(&c, "r=XYZ" RFC_SNONCE ",s=" RFC_SALT_B64 ",i=4096",
	    strlen("r=XYZ" RFC_SNONCE ",s=" RFC_SALT_B64 ",i=4096"), out,
	    sizeof(out), &err);
	tap_ok(rc == -1 && err != NULL && strcmp(err,
	    "SCRAM nonce mismatch") == 0, "client: nonce mismatch: %s",
	    err ? err : "(null)");

	ok = 1;
	for (n = 0; n < len; n++) {
		rfc_client_first(&c);
		rc = cli_final_n(&c, RFC_SERVER_FIRST, n, out, sizeof(out),
		    &err);
		if (!(rc == 0 || (rc == -1 && err != NULL)))
			ok = 0;
	}
	tap_ok(ok, "all %zu truncations of server-first handled", len);

	rfc_client_first(&c);
	rc = cli_final_n(&c, RFC_SERVER_FIRST ",x=ext", len + 6, out,
	    sizeof(out), &err);
	tap_is_int(rc, 0, "server-first with an extension accepted");

	rfc_client_first(&c);
	rc = cli_final_n(&c, RFC_SERVER_FIRST, len, out, 20, &err);
	tap_ok(rc == -1 && err != NULL, "client-final into a too-small buffer "
	    "refused");

	scram_client_init_password(&c, "x");
	rc = cli_final_n(&c, RFC_SERVER_FIRST, len, out, sizeof(out), &err);
	tap_ok(rc == -1 && err != NULL, "client-final before client-first "
	    "refused");
	rc = cli_verify_n(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL),
	    &err);
	tap_ok(rc == -1 && err != NULL, "verify before client-final refused");

	scram_client_init_password(&c, "x");
	tap_is_int(scram_client_first(&c, out, 5, &outlen), -1,
	    "client-first into a too-small buffer refused");

	allbad = 1;
	for (i = 0; i < sizeof(bad_final) / sizeof(bad_final[0]); i++) {
		rfc_client_first(&c);
		if (cli_final_n(&c, RFC_SERVER_FIRST, len, out, sizeof(out),
		    &err) != 0)
			abort();
		rc = cli_verify_n(&c, bad_final[i], strlen(bad_final[i]),
		    &err);
		if (rc != -1 || err == NULL) {
			tap_diag("bad server-final %zu '%s': rc %d", i,
			    bad_final[i], rc);
			allbad = 0;
		}
	}
	tap_ok(allbad, "%zu bad server-final messages refused",
	    sizeof(bad_final) / sizeof(bad_final[0]));

	rfc_client_first(&c);
	cli_final_n(&c, RFC_SERVER_FIRST, len, out, sizeof(out), &err);
	rc = cli_verify_n(&c, "e=invalid-proof", 15, &err);
	tap_ok(rc == -1 && err != NULL && strstr(err, "rejected") != NULL,
	    "server error e= reported: %s", err ? err : "(null)");

	/* Long passwords: refused at first rather than truncated. */
	{
		char	 pw[SCRAM_PASSWORD_MAX + 10];

		memset(pw, 'p', sizeof(pw) - 1);
		pw[sizeof(pw) - 1] = '\0';
		scram_client_init_password(&c, pw);
		tap_is_int(scram_client_first(&c, out, sizeof(out), &outlen),
		    -1, "over-long password refused");
	}
	tap_ok(scram_client_set_nonce(&c, "a,b") == -1 &&
	    scram_client_set_nonce(&c, "") == -1,
	    "set_nonce refuses non-printable nonces");
}

/*
 * The server is authenticated only by a verified server signature:
 * scram_client_verified() says so after a good SASLFinal only, never
 * before it, after a wrong signature or after an e= error.
 */
static void
test_server_authenticated(void)
{
	struct scram_client c;
	char		 out[SCRAM_MSG_MAX];
	const char	*err;
	size_t		 len = strlen(RFC_SERVER_FIRST);
	int		 rc;

	memset(&c, 0, sizeof(c));
	tap_ok(!scram_client_begun(&c) && !scram_client_verified(&c),
	    "zeroed client: not begun, not verified");
	if (rfc_client_first(&c) != 0)
		abort();
	tap_ok(scram_client_begun(&c) && !scram_client_verified(&c),
	    "after client-first: begun, not verified");
	if (cli_final_n(&c, RFC_SERVER_FIRST, len, out, sizeof(out),
	    &err) != 0)
		abort();
	tap_ok(!scram_client_verified(&c),
	    "after client-final, before server-final: not verified "
	    "(AuthenticationOk now must be refused)");
	rc = cli_verify_n(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL),
	    &err);
	tap_ok(rc == 0 && scram_client_verified(&c),
	    "right server signature: verified");

	/* One bit off in the signature's first byte. */
	rfc_client_first(&c);
	cli_final_n(&c, RFC_SERVER_FIRST, len, out, sizeof(out), &err);
	rc = cli_verify_n(&c, "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	    strlen("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), &err);
	tap_ok(rc == -1 && !scram_client_verified(&c) && err != NULL &&
	    strstr(err, "wrong SCRAM server signature") != NULL,
	    "wrong server signature: refused, not verified: %s",
	    err ? err : "(null)");
	rc = cli_verify_n(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL),
	    &err);
	tap_ok(rc == -1 && !scram_client_verified(&c),
	    "no second chance after a wrong signature");

	rfc_client_first(&c);
	cli_final_n(&c, RFC_SERVER_FIRST, len, out, sizeof(out), &err);
	rc = cli_verify_n(&c, "e=other-error", 13, &err);
	tap_ok(rc == -1 && !scram_client_verified(&c),
	    "server-final e=: refused, not verified");
	scram_client_clear(&c);
}

/* server-first with the RFC nonce and salt and iteration count i. */
static int
cli_final_iter(struct scram_client *c, const char *i, char *out,
    size_t outsz, const char **err)
{
	char		 m[SCRAM_MSG_MAX];

	snprintf(m, sizeof(m), "%s%s", "r=" RFC_CNONCE RFC_SNONCE ",s="
	    RFC_SALT_B64 ",i=", i);
	return cli_final_n(c, m, strlen(m), out, outsz, err);
}

/*
 * The iteration count is the server's choice: in password mode it is
 * bounded by SCRAM_ITERATIONS_MAX before PBKDF2 runs; in keys mode no
 * PBKDF2 runs, and the count must equal the configured verifier's.
 */
static void
test_iteration_bound(void)
{
	struct scram_client c;
	char		 out[SCRAM_MSG_MAX], n[16];
	uint8_t		 key[SCRAM_KEY_LEN];
	const char	*err;
	int		 rc;

	tap_is_int(SCRAM_ITERATIONS_MAX, 100000, "the bound is 100000");
	snprintf(n, sizeof(n), "%d", SCRAM_ITERATIONS_MAX + 1);
	rfc_client_first(&c);
	rc = cli_final_iter(&c, n, out, sizeof(out), &err);
	tap_ok(rc == -1 && err != NULL && strstr(err, "iterations") != NULL,
	    "i=%s refused: %s", n, err ? err : "(null)");
	rfc_client_first(&c);
	rc = cli_final_iter(&c, "2147483647", out, sizeof(out), &err);
	tap_ok(rc == -1 && err != NULL && strstr(err, "iterations") != NULL,
	    "i=2147483647 refused (without running it)");
	rfc_client_first(&c);
	rc = cli_final_iter(&c, "0", out, sizeof(out), &err);
	tap_ok(rc == -1 && err != NULL, "i=0 refused");
	snprintf(n, sizeof(n), "%d", SCRAM_ITERATIONS_MAX);
	rfc_client_first(&c);
	rc = cli_final_iter(&c, n, out, sizeof(out), &err);
	tap_is_int(rc, 0, "i=SCRAM_ITERATIONS_MAX still accepted");

	/* Keys mode: a large configured count is no CPU cost. */
	memset(key, 7, sizeof(key));
	scram_client_init_keys(&c, key, key, 1000000, rfc_salt,
	    sizeof(rfc_salt));
	if (scram_client_set_nonce(&c, RFC_CNONCE) != 0 ||
	    scram_client_first(&c, out, sizeof(out), NULL) != 0)
		abort();
	rc = cli_final_iter(&c, "1000000", out, sizeof(out), &err);
	tap_is_int(rc, 0, "keys mode: i=1000000 matching the verifier taken");
	scram_client_clear(&c);
}

/* Byte-flip fuzzing of every message on both sides: no crashes. */
static void
test_fuzz(void)
{
	static const char flips[] = { ',', '=', '\0', 'A', '/', 'p', '\x80' };
	struct scram_secret sec = rfc_secret();
	struct scram_server s;
	struct scram_client c;
	char		 m[SCRAM_MSG_MAX], out[SCRAM_MSG_MAX];
	const char	*err;
	size_t		 i, f, len;
	int		 rc, ok = 1, accepted = 0;

	len = strlen(RFC_CLIENT_FINAL);
	for (i = 0; i < len; i++) {
		for (f = 0; f < sizeof(flips); f++) {
			memcpy(m, RFC_CLIENT_FINAL, len);
			if (m[i] == flips[f])
				continue;
			m[i] = flips[f];
			if (rfc_server_first(&s, &sec) != 0)
				abort();
			rc = srv_final_n(&s, m, len, out, sizeof(out), &err);
			if (rc == 0)
				accepted++;
			if (rc != -1 && rc != 1)
				ok = 0;
		}
	}
	tap_ok(ok && accepted == 0, "client-final byte flips never accepted");

	ok = 1;
	len = strlen(RFC_SERVER_FIRST);
	for (i = 0; i < len; i++) {
		for (f = 0; f < sizeof(flips); f++) {
			memcpy(m, RFC_SERVER_FIRST, len);
			m[i] = flips[f];
			/* keep PBKDF2 cheap when the count is altered */
			if (rfc_client_first(&c) != 0)
				abort();
			rc = cli_final_n(&c, m, len, out, sizeof(out), &err);
			if (!(rc == 0 || (rc == -1 && err != NULL)))
				ok = 0;
		}
	}
	tap_ok(ok, "server-first byte flips handled");
}

/* Runs every group and reports the TAP result. */
int
main(void)
{
	tap_plan(87);
	test_md5();
	test_secret();
	test_rfc_vector();
	test_exchange();
	test_channel_binding();
	test_bad_client_first();
	test_bad_client_final();
	test_bad_server_msgs();
	test_server_authenticated();
	test_iteration_bound();
	test_fuzz();
	return tap_done();
}
