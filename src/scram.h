/*
 * scram.h: SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it, and
 * PostgreSQL md5 password helpers.
 *
 * Owns: pg_authid-style SCRAM verifiers (parse, derive, format), the
 * server side of a SCRAM exchange (pgmirror authenticating a client), the
 * client side (pgmirror logging in to PostgreSQL, with a password or with a
 * ClientKey recovered from a client's proof), and md5 hashes/responses.
 *
 * Everything here is a pure function over caller-owned memory: no I/O, no
 * logging, no global state, no malloc of exchange state.  All message
 * parsers take (pointer, length), do not need NUL termination, and treat
 * their input as hostile.  Error strings returned through *err are static.
 *
 * Passwords are used as raw bytes, without SASLprep.  PostgreSQL applies
 * SASLprep and falls back to the raw bytes when that fails; for ASCII
 * passwords both give the same result.  Non-ASCII (UTF-8) passwords that
 * SASLprep would normalise (NFKC, non-ASCII spaces, ignorable characters)
 * will not match a verifier made by PostgreSQL from the same text.
 */
#ifndef PGMIRROR_SCRAM_H
#define PGMIRROR_SCRAM_H

#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN		32	/* SHA-256 output */
#define SCRAM_SALT_MAX		64	/* largest salt kept, bytes */
#define SCRAM_DEFAULT_ITERATIONS 4096
/*
 * The most PBKDF2 iterations the client side runs for a server (password
 * mode).  The count comes from the server, so without a bound a hostile
 * or impersonated server could make one login cost minutes of a worker's
 * CPU (one iteration is 1-3 us: 100000 is 0.1-0.3 s).  PostgreSQL's
 * default (scram_iterations) is 4096; libpq has no bound.
 */
#define SCRAM_ITERATIONS_MAX	100000
#define SCRAM_DEFAULT_SALT_LEN	16
#define SCRAM_RAW_NONCE_LEN	18	/* random bytes; 24 in base64 */
#define SCRAM_NONCE_MAX		512	/* full nonce incl. NUL */
#define SCRAM_MSG_MAX		1024	/* longest message handled */
#define SCRAM_GS2_MAX		64	/* gs2 header incl. NUL */
#define SCRAM_USER_MAX		256	/* escaped saslname (tests) */
#define SCRAM_PASSWORD_MAX	1024	/* plain password incl. NUL */
#define SCRAM_VERIFIER_MAX	256	/* scram_secret_format output */
#define SCRAM_MECHANISM		"SCRAM-SHA-256"
#define SCRAM_MECHANISM_PLUS	"SCRAM-SHA-256-PLUS"
#define SCRAM_CBIND_TYPE	"p=tls-server-end-point"
#define SCRAM_CBIND_MAX		64	/* largest binding data (SHA-512) */

struct scram_secret {
	int	 iterations;
	uint8_t	 salt[SCRAM_SALT_MAX];
	size_t	 saltlen;
	uint8_t	 stored_key[SCRAM_KEY_LEN];
	uint8_t	 server_key[SCRAM_KEY_LEN];
	int	 has_client_key;	/* from scram_secret_from_password */
	uint8_t	 client_key[SCRAM_KEY_LEN];
};

/*
 * "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>" as in
 * pg_authid.  0 ok, -1 bad.  Leaves has_client_key = 0.
 */
int	scram_secret_parse(const char *verifier, struct scram_secret *);
/* 1 if s is a well-formed SCRAM verifier, else 0. */
int	scram_secret_is_verifier(const char *s);
/*
 * From a plain password: random 16-byte salt, 4096 iterations; also keeps
 * client_key (has_client_key = 1).  Password used raw (see above).
 * 0 ok, -1 on crypto/RNG failure or NULL arguments.
 */
int	scram_secret_from_password(const char *password,
	    struct scram_secret *);
/* As above with a given salt (1..SCRAM_SALT_MAX bytes) and iteration count. */
int	scram_secret_from_password_salt(const char *password,
	    const uint8_t *salt, size_t saltlen, int iterations,
	    struct scram_secret *);
/*
 * Writes the pg_authid form of a secret (NUL-terminated) into out;
 * SCRAM_VERIFIER_MAX bytes always suffice.  0 ok, -1 if it does not fit.
 */
int	scram_secret_format(const struct scram_secret *, char *out,
	    size_t outsz);

/*
 * Server side (pgmirror authenticating a client).
 *
 * scram_server_first() resets all state except cbind_data/cbind_len, so the
 * struct needs no other initialisation.  Over TLS the caller sets
 * cbind_data/cbind_len to the tls-server-end-point binding data (the hash
 * of pgmirror's certificate) before scram_server_first(): then "p=" clients
 * are bound to that data and "y" clients are refused as a downgrade.
 * Without it (NULL), "p=" clients are refused.
 */
struct scram_server {
	int		 state;
	char		 cbind_flag;	/* 'n', 'y' or 'p' */
	char		 gs2_header[SCRAM_GS2_MAX];
	size_t		 gs2_len;
	const uint8_t	*cbind_data;	/* reserved: TLS binding */
	size_t		 cbind_len;
	char		 nonce[SCRAM_NONCE_MAX];	/* client+server */
	size_t		 nonce_len;
	char		 client_first_bare[SCRAM_MSG_MAX];
	size_t		 client_first_bare_len;
	char		 server_first[SCRAM_MSG_MAX];
	size_t		 server_first_len;
	struct scram_secret secret;
	int		 has_client_key;	/* after successful final */
	uint8_t		 client_key[SCRAM_KEY_LEN];
};

/*
 * client_first: SASLInitialResponse data.  Writes the server-first-message
 * (NUL-terminated; *outlen excludes the NUL) into out.  Returns 0, or -1
 * with *err set to a short human reason.  Accepts gs2 "n,,", "y,," (only
 * without binding data) and "p=tls-server-end-point,," (only with it).
 */
int	scram_server_first(struct scram_server *,
	    const struct scram_secret *, const char *client_first, size_t len,
	    char *out, size_t outsz, size_t *outlen, const char **err);
/*
 * For tests only: scram_server_first() with a fixed server nonce part
 * (printable, no ','), instead of 18 random bytes in base64.
 */
int	scram_server_first_with_nonce(struct scram_server *,
	    const struct scram_secret *, const char *client_first, size_t len,
	    const char *server_nonce, char *out, size_t outsz, size_t *outlen,
	    const char **err);
/*
 * client_final: checks the channel-binding echo, nonce and proof (constant
 * time).  On success writes the server-final "v=..." into out and returns
 * 0; s->client_key then holds the recovered ClientKey (has_client_key = 1).
 * Wrong password returns 1 (*err set to "password authentication failed").
 * Malformed input returns -1 with *err.  One attempt per scram_server_first.
 */
int	scram_server_final(struct scram_server *, const char *client_final,
	    size_t len, char *out, size_t outsz, size_t *outlen,
	    const char **err);
/* Wipes all state, including the recovered client key. */
void	scram_server_clear(struct scram_server *);

/*
 * Client side (pgmirror logging in to PostgreSQL), with either a plain
 * password or a ClientKey+ServerKey pair (from a verifier whose client key
 * was recovered).  Call one of the init functions first.
 */
struct scram_client {
	int	 state;
	int	 use_keys;
	int	 init_error;		/* e.g. password too long */
	char	 password[SCRAM_PASSWORD_MAX];
	size_t	 password_len;
	uint8_t	 client_key[SCRAM_KEY_LEN];
	uint8_t	 server_key[SCRAM_KEY_LEN];
	int	 iterations;		/* keys mode: expected */
	uint8_t	 salt[SCRAM_SALT_MAX];	/* keys mode: expected */
	size_t	 saltlen;
	char	 user[SCRAM_USER_MAX];	/* escaped; normally empty */
	char	 gs2_header[SCRAM_GS2_MAX];
	char	 nonce[SCRAM_NONCE_MAX];	/* our client nonce */
	size_t	 nonce_len;
	char	 client_first_bare[SCRAM_MSG_MAX];
	size_t	 client_first_bare_len;
	uint8_t	 server_signature[SCRAM_KEY_LEN];
	uint8_t	 cbind[SCRAM_CBIND_MAX];	/* channel binding, if set */
	size_t	 cbind_len;
};

void	scram_client_init_password(struct scram_client *,
	    const char *password);
/*
 * Keys mode: only usable if the server's salt and iterations match the
 * given ones; scram_client_final() fails with "server SCRAM salt differs
 * from the configured verifier" otherwise.
 */
void	scram_client_init_keys(struct scram_client *,
	    const uint8_t client_key[SCRAM_KEY_LEN],
	    const uint8_t server_key[SCRAM_KEY_LEN], int iterations,
	    const uint8_t *salt, size_t saltlen);
/*
 * Bind to a TLS channel: gs2 header "p=tls-server-end-point,," and the
 * given binding data (1..SCRAM_CBIND_MAX bytes) in c=.  After init.
 * 0 ok, -1 bad arguments.
 */
int	scram_client_set_cbind(struct scram_client *, const uint8_t *data,
	    size_t len);
/* For tests only: fix the client nonce (printable, no ','), after init. */
int	scram_client_set_nonce(struct scram_client *, const char *nonce);
/* For tests only: send n=<user> (PostgreSQL ignores it), after init. */
int	scram_client_set_user(struct scram_client *, const char *user);
/*
 * Writes client-first "n,,n=,r=<nonce>" (NUL-terminated; *outlen excludes
 * the NUL).  0 ok, -1 on bad state, RNG failure or too small a buffer.
 */
int	scram_client_first(struct scram_client *, char *out, size_t outsz,
	    size_t *outlen);
/*
 * Takes server-first, writes client-final (NUL-terminated).  0 ok, -1
 * with *err.  In password mode this runs PBKDF2 with the server's
 * iteration count, which must be 1..SCRAM_ITERATIONS_MAX (checked before
 * any PBKDF2 runs).
 */
int	scram_client_final(struct scram_client *, const char *server_first,
	    size_t len, char *out, size_t outsz, size_t *outlen,
	    const char **err);
/*
 * Checks server-final's v= signature (constant time): 0 ok, -1 with *err
 * (an e= error, a malformed message or a wrong signature).
 */
int	scram_client_verify(struct scram_client *, const char *server_final,
	    size_t len, const char **err);
/*
 * 1 once scram_client_verify() accepted the server's signature: only then
 * has the server proved that it knows the password.  0 before, and after
 * any failure.
 */
int	scram_client_verified(const struct scram_client *);
/*
 * 1 once an init function ran on a zeroed struct: the exchange has begun
 * (and is over only when scram_client_verified() says so).
 */
int	scram_client_begun(const struct scram_client *);
/* Wipes all state, including the password and keys. */
void	scram_client_clear(struct scram_client *);

/*
 * md5: PostgreSQL's "md5" + hex(md5(password || user)), 35 chars + NUL.
 * On digest failure (e.g. a FIPS-only provider) out is set to "".
 */
#define MD5_PASSWD_LEN		35
void	md5_password_hash(const char *user, const char *password,
	    char out[36]);
/*
 * Response to AuthenticationMD5Password: "md5" + hex(md5(hash_hex || salt))
 * where hash is the 35-char md5 verifier and hash_hex drops its "md5".
 * On a malformed hash or digest failure, out is set to "".
 */
void	md5_salted_response(const char hash[36], const uint8_t salt[4],
	    char out[36]);
/* 1 if s looks like an md5 verifier ("md5" + 32 lowercase hex), else 0. */
int	md5_is_hash(const char *s);

#endif /* PGMIRROR_SCRAM_H */
