/*
 * tls.c: TLS on both sides of sessions (OpenSSL).
 *
 * tls_init builds the two contexts in the supervisor, before the first
 * fork, so every worker inherits them and a bad file is found by
 * `pgmirror -n`: towards clients from tls.cert_file and tls.key_file
 * (tls.client_ca_file for client certificates), towards servers from
 * tls.ca_file (tls.server_cert_file and tls.server_key_file for a
 * certificate of our own).  tls_accept runs the handshake with a client
 * that pgmirror answered 'S'; tls_connect the one with a server that
 * answered 'S', checking its certificate as tls.server_mode says.  The
 * I/O of a TLS session goes through net_recv and net_send (net.c).
 */
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/ssl.h>

#include "pgmirror.h"

static SSL_CTX	*tls_ctx;		/* towards clients */
static SSL_CTX	*tls_server_ctx;	/* towards servers */

/* The text of the last OpenSSL error, for messages. */
static const char *
tls_error(void)
{
	static char	 buf[256];
	unsigned long	 e = ERR_peek_last_error();

	if (e == 0)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

/*
 * Drive a handshake step (SSL_accept or SSL_connect) on a non-blocking
 * socket until it completes or the deadline passes.  Returns 0, or -1
 * with the reason in *why.
 */
static int
tls_handshake(SSL *ssl, int fd, int (*step)(SSL *), int64_t deadline,
    const char **why)
{
	long		 verify;
	int		 rc;

	for (;;) {
		if ((rc = step(ssl)) == 1)
			return 0;
		switch (SSL_get_error(ssl, rc)) {
		case SSL_ERROR_WANT_READ:
			if (net_wait(fd, POLLIN, deadline) == -1)
				goto fail_errno;
			continue;
		case SSL_ERROR_WANT_WRITE:
			if (net_wait(fd, POLLOUT, deadline) == -1)
				goto fail_errno;
			continue;
		case SSL_ERROR_SYSCALL:
			if (errno == 0)
				errno = ECONNRESET;
			goto fail_errno;
		default:
			if ((verify = SSL_get_verify_result(ssl)) != X509_V_OK)
				*why = X509_verify_cert_error_string(verify);
			else
				*why = tls_error();
			return -1;
		}
	}
fail_errno:
	*why = strerror(errno);
	return -1;
}

/*
 * A context with what both sides share: TLS 1.2 at least, and writes
 * that may be partial and retried from a moved buffer (the relay
 * compacts its buffers).  NULL with a message in err on failure.
 */
static SSL_CTX *
tls_ctx_new(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX		*ctx;

	if ((ctx = SSL_CTX_new(method)) == NULL) {
		snprintf(err, errlen, "cannot create a TLS context: %s",
		    tls_error());
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

/* The TLS mode towards the server of a database entry. */
int
tls_server_mode(const struct pgm_config *c, const struct pgm_database *d)
{
	if (d->host[0] == '/')
		return TLS_DISABLE;	/* PostgreSQL has no TLS on sockets */
	return d->tls_mode >= 0 ? d->tls_mode : c->tls_server_mode;
}

/*
 * Build the context for connections to servers into *out, or NULL when
 * no database may use TLS.  Returns 0, or -1 with a message in err.
 */
static int
tls_init_servers(const struct pgm_config *c, SSL_CTX **out, char *err,
    size_t errlen)
{
	SSL_CTX		*ctx;
	int		 i, need = 0;

	*out = NULL;
	for (i = 0; i < c->ndatabases; i++)
		if (tls_server_mode(c, &c->databases[i]) >= TLS_PREFER)
			need = 1;
	if (!need)
		return 0;
	if ((ctx = tls_ctx_new(TLS_client_method(), err, errlen)) == NULL)
		return -1;
	if (c->tls_ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, c->tls_ca_file,
		    NULL) != 1) {
			snprintf(err, errlen, "tls.ca_file \"%s\": %s",
			    c->tls_ca_file, tls_error());
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(err, errlen, "cannot load the system's certificate "
		    "authorities: %s", tls_error());
		goto fail;
	}
	if (c->tls_server_cert_file != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx,
		    c->tls_server_cert_file) != 1) {
			snprintf(err, errlen, "tls.server_cert_file \"%s\": %s",
			    c->tls_server_cert_file, tls_error());
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_server_key_file,
		    SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			snprintf(err, errlen, "tls.server_key_file \"%s\": %s",
			    c->tls_server_key_file, tls_error());
			goto fail;
		}
	}
	*out = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -1;
}

/*
 * Run the client side of a TLS handshake with a server that answered
 * an SSLRequest with 'S'.  verify-ca checks the certificate chain
 * against tls.ca_file, verify-full also the host name (or address).
 * Returns the session, or NULL with the reason in *why.
 */
struct ssl_st *
tls_connect(int fd, const char *host, int mode, int64_t deadline,
    const char **why)
{
	SSL		*ssl;
	uint8_t		 addr[16];
	char		 sni[256];

	ERR_clear_error();
	if ((ssl = SSL_new(tls_server_ctx)) == NULL ||
	    SSL_set_fd(ssl, fd) != 1) {
		*why = tls_error();
		SSL_free(ssl);
		return NULL;
	}
	if (mode >= TLS_VERIFY_CA)
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	if (mode == TLS_VERIFY_FULL) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

		if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1 &&
		    SSL_set1_host(ssl, host) != 1) {
			*why = tls_error();
			SSL_free(ssl);
			return NULL;
		}
	}
	/* SNI, as libpq sends it: a host name, never an address. */
	snprintf(sni, sizeof(sni), "%s", host);	/* OpenSSL takes it unconst */
	if (inet_pton(AF_INET, host, addr) != 1 &&
	    inet_pton(AF_INET6, host, addr) != 1)
		(void)SSL_set_tlsext_host_name(ssl, sni);
	if (tls_handshake(ssl, fd, SSL_connect, deadline, why) == -1) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/*
 * Load the certificates and keys of a config into fresh contexts, and
 * only when all of them load, put them in place of the ones in use: a
 * reload with a bad certificate keeps the old ones.  Returns 0, or -1
 * with a message naming the setting at fault in err.
 */
int
tls_init(const struct pgm_config *c, char *err, size_t errlen)
{
	SSL_CTX		*ctx = NULL, *sctx;

	if (tls_init_servers(c, &sctx, err, errlen) == -1)
		return -1;
	if (c->tls_client_mode == TLS_DISABLE)
		goto done;
	if ((ctx = tls_ctx_new(TLS_server_method(), err, errlen)) == NULL)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert_file) != 1) {
		snprintf(err, errlen, "tls.cert_file \"%s\": %s",
		    c->tls_cert_file, tls_error());
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key_file,
	    SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "tls.key_file \"%s\": %s",
		    c->tls_key_file, tls_error());
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "tls.key_file \"%s\" does not match "
		    "tls.cert_file: %s", c->tls_key_file, tls_error());
		goto fail;
	}
	if (c->tls_client_ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, c->tls_client_ca_file,
		    NULL) != 1) {
			snprintf(err, errlen, "tls.client_ca_file \"%s\": %s",
			    c->tls_client_ca_file, tls_error());
			goto fail;
		}
		/* A certificate is checked when a client sends one. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
done:
	SSL_CTX_free(tls_ctx);
	tls_ctx = ctx;
	SSL_CTX_free(tls_server_ctx);
	tls_server_ctx = sctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	SSL_CTX_free(sctx);
	return -1;
}

/* Is TLS offered to clients? */
int
tls_enabled(void)
{
	return tls_ctx != NULL;
}

/*
 * Run the server side of a TLS handshake on a client socket before the
 * deadline.  Returns the session, or NULL with the reason in *why.
 */
struct ssl_st *
tls_accept(int fd, int64_t deadline, const char **why)
{
	SSL		*ssl;

	ERR_clear_error();
	if ((ssl = SSL_new(tls_ctx)) == NULL || SSL_set_fd(ssl, fd) != 1) {
		*why = tls_error();
		SSL_free(ssl);
		return NULL;
	}
	if (tls_handshake(ssl, fd, SSL_accept, deadline, why) == -1) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/*
 * The tls-server-end-point channel binding data of a session (RFC
 * 5929): the hash of pgmirror's certificate, with the hash of its
 * signature algorithm, SHA-256 in place of MD5 or SHA-1.  Returns the
 * length written to out (at most SCRAM_CBIND_MAX), or 0.
 */
size_t
tls_cbind(struct ssl_st *ssl, uint8_t *out)
{
	X509		*cert;
	const EVP_MD	*md;
	unsigned int	 len = 0;
	int		 mdnid;

	if ((cert = SSL_get_certificate(ssl)) == NULL ||
	    OBJ_find_sigid_algs(X509_get_signature_nid(cert), &mdnid,
	    NULL) != 1)
		return 0;
	if (mdnid == NID_md5 || mdnid == NID_sha1)
		mdnid = NID_sha256;
	if ((md = EVP_get_digestbynid(mdnid)) == NULL ||
	    EVP_MD_size(md) > SCRAM_CBIND_MAX ||
	    X509_digest(cert, md, out, &len) != 1)
		return 0;
	return len;
}

/* End a TLS session politely, without waiting, and free it. */
void
tls_close(struct ssl_st *ssl)
{
	if (ssl == NULL)
		return;
	(void)SSL_shutdown(ssl);
	SSL_free(ssl);
	ERR_clear_error();
}
