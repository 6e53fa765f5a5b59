/*
 * auth.c: authentication on both sides of a session.
 *
 * auth_client runs the exchange with the client (trust, md5 or
 * SCRAM-SHA-256) against the users entry it routed to; auth_server_step
 * answers one authentication request of a PostgreSQL server during
 * login (cleartext password, md5 or SCRAM-SHA-256).  Towards servers it
 * also decides what not to answer: a clear-text password over a
 * connection without TLS (unless allow_cleartext_password), and
 * AuthenticationOk after a SCRAM exchange whose server signature was
 * not verified.  The cryptography is in scram.c; this file moves the
 * messages.  Passwords never reach a log line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "pgmirror.h"

/* Authentication request codes of the protocol ('R' messages). */
#define AUTH_REQ_OK		0
#define AUTH_REQ_CLEARTEXT	3
#define AUTH_REQ_MD5		5
#define AUTH_REQ_SASL		10
#define AUTH_REQ_SASL_CONTINUE	11
#define AUTH_REQ_SASL_FINAL	12

/* Read the client's PasswordMessage/SASLResponse ('p') into b. */
static int
auth_read_response(struct pgm_client *cl, struct pgm_buf *b, int64_t deadline)
{
	uint8_t		 type;

	if (net_read_message(cl->fd, cl->ssl, b, &type, PGM_AUTH_MESSAGE_MAX,
	    deadline) == -1) {
		if (errno == EMSGSIZE)
			client_fail(cl, "08P01", "invalid message length");
		else if (errno == ETIMEDOUT)
			log_info("authentication timed out");
		return -1;
	}
	if (type != 'p') {
		client_fail(cl, "08P01", "expected password response, got "
		    "message type %d", type);
		return -1;
	}
	return 0;
}

/* Tell the client its password was wrong, as PostgreSQL words it. */
static int
auth_wrong_password(struct pgm_client *cl, const struct pgm_user *u)
{
	client_fail(cl, "28P01", "password authentication failed for user "
	    "\"%s\"", u->name);
	return -1;
}

/* md5 exchange with the client. */
static int
auth_client_md5(struct pgm_client *cl, const struct pgm_user *u,
    struct pgm_buf *b, int64_t deadline)
{
	uint8_t		 salt[4];
	char		 expect[36];
	struct pgm_reader r;
	const char	*got;

	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -1;
	buf_reset(b);
	proto_auth_request(b, AUTH_REQ_MD5, salt, sizeof(salt));
	if (client_send(cl, b) == -1 || auth_read_response(cl, b, deadline))
		return -1;
	reader_init(&r, b->data + 5, b->len - 5);
	if (reader_str(&r, &got) == -1) {
		client_fail(cl, "08P01", "invalid password packet");
		return -1;
	}
	md5_salted_response(u->md5, salt, expect);
	if (strlen(got) != 35 || CRYPTO_memcmp(got, expect, 35) != 0)
		return auth_wrong_password(cl, u);
	return 0;
}

/* SCRAM-SHA-256 exchange with the client. */
static int
auth_client_scram(struct pgm_client *cl, const struct pgm_user *u,
    struct pgm_buf *b, int64_t deadline)
{
	static const char mech[] = "SCRAM-SHA-256\0";
	static const char mech_plus[] = "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0";
	struct pgm_reader r;
	const char	*name, *err;
	const uint8_t	*data;
	uint32_t	 dlen;
	char		 out[512];
	size_t		 outlen;
	int		 rc;

	/* Over TLS, offer channel binding to pgmirror's certificate. */
	cl->scram.cbind_data = NULL;
	cl->scram.cbind_len = 0;
	if (cl->ssl != NULL &&
	    (cl->scram.cbind_len = tls_cbind(cl->ssl, cl->cbind)) > 0)
		cl->scram.cbind_data = cl->cbind;
	buf_reset(b);
	if (cl->scram.cbind_data != NULL)
		proto_auth_request(b, AUTH_REQ_SASL, mech_plus,
		    sizeof(mech_plus));
	else
		proto_auth_request(b, AUTH_REQ_SASL, mech, sizeof(mech));
	if (client_send(cl, b) == -1 || auth_read_response(cl, b, deadline))
		return -1;
	reader_init(&r, b->data + 5, b->len - 5);
	if (reader_str(&r, &name) == -1 || reader_u32(&r, &dlen) == -1 ||
	    dlen == 0xffffffff || reader_bytes(&r, dlen, &data) == -1) {
		client_fail(cl, "08P01", "malformed SASLInitialResponse");
		return -1;
	}
	/* The mechanism and the gs2 flag must agree on binding. */
	if (!(strcmp(name, "SCRAM-SHA-256") == 0 && (dlen == 0 ||
	    data[0] != 'p')) && !(strcmp(name, "SCRAM-SHA-256-PLUS") == 0 &&
	    cl->scram.cbind_data != NULL && dlen > 0 && data[0] == 'p')) {
		client_fail(cl, "08P01", "client selected an invalid SASL "
		    "authentication mechanism");
		return -1;
	}
	if (scram_server_first(&cl->scram, &u->scram, (const char *)data,
	    dlen, out, sizeof(out), &outlen, &err) != 0) {
		client_fail(cl, "08P01", "%s", err);
		return -1;
	}
	buf_reset(b);
	proto_auth_request(b, AUTH_REQ_SASL_CONTINUE, out, outlen);
	if (client_send(cl, b) == -1 || auth_read_response(cl, b, deadline))
		return -1;
	rc = scram_server_final(&cl->scram, (const char *)b->data + 5,
	    b->len - 5, out, sizeof(out), &outlen, &err);
	if (rc == 1)
		return auth_wrong_password(cl, u);
	if (rc != 0) {
		client_fail(cl, "08P01", "%s", err);
		return -1;
	}
	cl->have_client_key = 1;
	buf_reset(b);
	proto_auth_request(b, AUTH_REQ_SASL_FINAL, out, outlen);
	return client_send(cl, b);
}

/*
 * Authenticate the client against its users entry.  Returns 0 when it
 * proved its identity, -1 when it did not or left (it has been told).
 */
int
auth_client(struct pgm_client *cl, int64_t deadline)
{
	const struct pgm_user *u = &pgm_conf->users[cl->user];

	return auth_client_as(cl, u, u->auth_type == AUTH_DEFAULT ?
	    pgm_conf->auth_type : u->auth_type, deadline);
}

/*
 * Authenticate the client as the user u with authentication type.
 * Returns 0 when it proved its identity, -1 when it did not or left.
 */
int
auth_client_as(struct pgm_client *cl, const struct pgm_user *u, int type,
    int64_t deadline)
{
	struct pgm_buf	 b;
	int		 rc;

	buf_init(&b);
	switch (type) {
	case AUTH_TRUST:
		rc = 0;
		break;
	case AUTH_MD5:
		rc = auth_client_md5(cl, u, &b, deadline);
		break;
	default:
		rc = auth_client_scram(cl, u, &b, deadline);
		break;
	}
	buf_free(&b);
	return rc;
}

/* Send one 'p' message with the given body to the server. */
static int
auth_server_send(int fd, struct ssl_st *ssl, const void *body, size_t len,
    int64_t deadline)
{
	struct pgm_buf	 b;
	int		 rc;

	buf_init(&b);
	buf_msg_begin(&b, 'p');
	buf_put(&b, body, len);
	buf_msg_end(&b);
	rc = b.failed ? -1 : net_write_full(fd, ssl, b.data, b.len, deadline);
	buf_free(&b);
	return rc;
}

/*
 * Refuse an authentication request: *err is why, and the client is told
 * with SQLSTATE 28000, as for a login PostgreSQL's own rules forbid.
 */
static int
auth_server_refuse(const char *why, const char **err, const char **sqlstate)
{
	*err = why;
	*sqlstate = "28000";
	return -1;
}

/*
 * Answer one authentication request (code and data) of a server during
 * login, with the credentials of the client's users entry.  SCRAM state
 * is kept in sc across the requests; the caller zeroes it before the
 * first.  AuthenticationOk (code 0) comes here too: once a SCRAM
 * exchange has begun, it is taken only after the server's signature in
 * SASLFinal was verified, and no other request is answered in between.
 * Returns 0, or -1 with *err and the SQLSTATE for the client in
 * *sqlstate: 28000 when pgmirror will not authenticate to this server
 * (it would give the password away, or the server did not prove that it
 * knows it), else 08006.
 */
int
auth_server_step(int fd, struct ssl_st *ssl, const struct pgm_login *lg,
    uint32_t code, const uint8_t *data, size_t len, struct scram_client *sc,
    int64_t deadline, const char **err, const char **sqlstate)
{
	const struct pgm_user *u = &pgm_conf->users[lg->user];
	const struct pgm_database *d = &pgm_conf->databases[lg->database];
	static char	 why[512];
	char		 out[512];
	size_t		 outlen;
	struct pgm_reader r;
	const char	*mech;
	int		 have_scram = 0;

	*sqlstate = "08006";
	if (scram_client_begun(sc) && code != AUTH_REQ_SASL_CONTINUE &&
	    code != AUTH_REQ_SASL_FINAL) {
		if (code != AUTH_REQ_OK)
			return auth_server_refuse("server changed the "
			    "authentication method in the middle of SCRAM",
			    err, sqlstate);
		if (!scram_client_verified(sc))
			return auth_server_refuse("server sent "
			    "AuthenticationOk without a valid SCRAM server "
			    "signature: the server did not prove that it knows "
			    "the password", err, sqlstate);
		return 0;
	}
	switch (code) {
	case AUTH_REQ_OK:
		return 0;
	case AUTH_REQ_CLEARTEXT:
		if (ssl == NULL && !config_allow_cleartext(pgm_conf, d)) {
			/*
			 * Whoever answers on this address without TLS (a
			 * fake server, a man in the middle) would get the
			 * password: refuse, as libpq's require_auth would.
			 */
			snprintf(why, sizeof(why), "server asks for the "
			    "password in clear text over a connection without "
			    "TLS: refused; set allow_cleartext_password = true "
			    "in databases entry \"%s\" (or "
			    "server.allow_cleartext_password = true), or use "
			    "TLS", d->name);
			return auth_server_refuse(why, err, sqlstate);
		}
		if (u->plain == NULL) {
			*err = "server asks for a cleartext password, but the "
			    "configured password is a hash";
			return -1;
		}
		return auth_server_send(fd, ssl, u->plain, strlen(u->plain) + 1,
		    deadline) == -1 ? (*err = "write failed", -1) : 0;
	case AUTH_REQ_MD5:
		if (!u->has_md5 || len != 4) {
			*err = u->has_md5 ? "malformed md5 request" :
			    "server asks for md5, but the configured password "
			    "is a SCRAM verifier";
			return -1;
		}
		md5_salted_response(u->md5, data, out);
		return auth_server_send(fd, ssl, out, 36, deadline) == -1 ?
		    (*err = "write failed", -1) : 0;
	case AUTH_REQ_SASL:
		reader_init(&r, data, len);
		while (reader_str(&r, &mech) == 0 && *mech != '\0')
			if (strcmp(mech, "SCRAM-SHA-256") == 0)
				have_scram = 1;
		if (!have_scram) {
			*err = "server offers no SASL mechanism we support";
			return -1;
		}
		if (u->plain != NULL)
			scram_client_init_password(sc, u->plain);
		else if (u->has_scram && lg->client_key != NULL)
			scram_client_init_keys(sc, lg->client_key,
			    u->scram.server_key, u->scram.iterations,
			    u->scram.salt, u->scram.saltlen);
		else {
			*err = "server asks for SCRAM-SHA-256, but there is no "
			    "plain password and the client did not log in "
			    "with SCRAM";
			return -1;
		}
		if (scram_client_first(sc, out, sizeof(out), &outlen) != 0) {
			*err = "cannot build SCRAM client-first-message";
			return -1;
		}
		{
			struct pgm_buf	 b;
			int		 rc;

			buf_init(&b);
			buf_put_str(&b, "SCRAM-SHA-256");
			buf_put_u32(&b, outlen);
			buf_put(&b, out, outlen);
			rc = b.failed ? -1 : auth_server_send(fd, ssl, b.data,
			    b.len, deadline);
			buf_free(&b);
			if (rc == -1) {
				*err = "write failed";
				return -1;
			}
		}
		return 0;
	case AUTH_REQ_SASL_CONTINUE:
		if (scram_client_final(sc, (const char *)data, len, out,
		    sizeof(out), &outlen, err) != 0)
			return auth_server_refuse(*err, err, sqlstate);
		return auth_server_send(fd, ssl, out, outlen, deadline) == -1 ?
		    (*err = "write failed", -1) : 0;
	case AUTH_REQ_SASL_FINAL:
		if (scram_client_verify(sc, (const char *)data, len, err) != 0)
			return auth_server_refuse(*err, err, sqlstate);
		return 0;
	}
	*err = "server asks for an authentication method pgmirror does not "
	    "support";
	return -1;
}
