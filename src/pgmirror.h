/*
 * pgmirror.h: the one internal header of pgmirror.
 *
 * Types shared between modules, then the prototypes grouped under a
 * comment naming the file that defines them.  Pure modules (proto.c,
 * config.c, scram.c) depend on nothing that does I/O so the unit tests
 * can link them alone.
 */
#ifndef PGMIRROR_H
#define PGMIRROR_H

#include <sys/types.h>
#include <sys/socket.h>

#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "scram.h"

/* systemd's notifications, or nothing when built without it. */
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
#define SD_LISTEN_FDS_START	3
static inline int sd_notify(int u, const char *s) { (void)u; (void)s; return 0; }
static inline int sd_notifyf(int u, const char *f, ...) { (void)u; (void)f; return 0; }
static inline int sd_listen_fds(int u) { (void)u; return 0; }
static inline int sd_watchdog_enabled(int u, uint64_t *p) { (void)u; (void)p; return 0; }
#endif

struct ssl_st;

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION	"0.1.0"
#endif

#define PGM_CONFIG_FILE		"/etc/pgmirror/pgmirror.conf"
#define PGM_CONTROL_SOCKET	"/run/pgmirror/pgmirror.sock"

/* PostgreSQL's own limits for what we accept from a peer. */
#define PGM_STARTUP_MAX		10000		/* startup packet bytes */
#define PGM_MESSAGE_MAX		(1024 * 1024 * 1024)	/* one message */
#define PGM_AUTH_MESSAGE_MAX	8192		/* SASL and password messages */

/* Protocol codes of the startup forms. */
#define PGM_PROTO_V3		0x00030000
#define PGM_CANCEL_CODE		80877102
#define PGM_SSL_CODE		80877103
#define PGM_GSSENC_CODE		80877104

enum pgm_auth_type {
	AUTH_TRUST,
	AUTH_MD5,
	AUTH_SCRAM,
	AUTH_DEFAULT = -1		/* per user: use the global one */
};

enum pgm_pool_mode {
	POOL_SESSION
};

enum pgm_tls_mode {
	TLS_DISABLE,
	TLS_ALLOW,
	TLS_PREFER,
	TLS_REQUIRE,
	TLS_VERIFY_CA,		/* server side only */
	TLS_VERIFY_FULL
};

/*
 * Config (config.c).  Loaded whole by the supervisor before the first
 * fork; workers read their inherited copy and never change it.
 */
struct pgm_listen {
	char		*host;		/* NULL or "*" for any, else address */
	char		*path;		/* Unix socket directory, or NULL */
	int		 port;
	int		 line;
};

struct pgm_database {
	char		*name;		/* what clients ask for */
	char		*host;		/* address, name or socket directory */
	int		 port;
	char		*dbname;	/* the database on the server */
	int		 pool_size;	/* -1: pool.default_size */
	int		 tls_mode;	/* -1: tls.server_mode */
	int		 allow_cleartext; /* -1: server.allow_cleartext_password */
	int		 line;
};

struct pgm_user {
	char		*name;
	char		*database;	/* databases entry, NULL for all */
	int		 auth_type;	/* enum pgm_auth_type */
	int		 pool_size;	/* -1: database's, then default */
	int		 line;
	/* What we know of the password; any of the three may be unset. */
	char		*plain;
	int		 has_md5;
	char		 md5[36];	/* "md5" + hex(md5(password || user)) */
	int		 has_scram;
	struct scram_secret scram;
};

/* A mirror: committed traffic of one database copied to another. */
struct pgm_mirror {
	char		*source;	/* databases entry names */
	char		*destination;
	int		 src;		/* their databases[] indexes */
	int		 dst;
	int		 queue;		/* transactions queued at most */
	int		 queue_bytes;	/* bytes queued at most */
	double		 exposure;	/* share of sessions mirrored */
	int		 line;
};

/* The largest config file; its text is kept in shared memory. */
#define PGM_CONFIG_TEXT_MAX	(1024 * 1024)

struct pgm_config {
	char		*path;
	char		*text;		/* the file as loaded, or NULL */
	size_t		 textlen;
	struct pgm_listen *listen;
	int		 nlisten;
	char		*control_socket;
	char		*admin_database;
	char		*admin_user;
	char		*admin_password;
	int		 auth_type;
	int		 workers_min_spare;
	int		 workers_max_spare;
	int		 workers_max;
	int		 workers_max_clients;	/* recycle after; 0: never */
	int		 client_login_timeout;	/* seconds */
	int		 client_idle_timeout;	/* seconds, 0: none */
	int		 client_idle_transaction_timeout; /* seconds, 0: none */
	int		 client_max_connections;	/* 0: workers.max */
	int		 client_max_message_size;	/* bytes */
	int		 server_connect_timeout;	/* seconds */
	int		 server_lifetime;	/* seconds, 0: unlimited */
	int		 server_idle_timeout;	/* seconds, 0: unlimited */
	int		 server_allow_cleartext; /* password in clear without TLS */
	char		*tls_cert_file;
	char		*tls_key_file;
	char		*tls_client_ca_file;
	char		*tls_ca_file;
	char		*tls_server_cert_file;	/* presented to servers */
	char		*tls_server_key_file;
	int		 tls_client_mode;	/* enum pgm_tls_mode */
	int		 tls_server_mode;
	int		 tls_line;		/* of the tls group, for errors */
	int		 pool_default_size;
	int		 pool_min_size;
	int		 pool_wait_timeout;	/* seconds */
	int		 pool_mode;	/* POOL_SESSION, the only one */
	char		*pool_reset_query;
	int		 shutdown_timeout;	/* seconds */
	int		 mirror_queue;	/* default mirrors[].queue */
	int		 mirror_workers;
	int		 mirror_retry_max;	/* seconds between reconnects */
	int		 mirror_replay_timeout;	/* seconds, 0: none */
	char		*metrics_listen;
	int		 log_stderr;
	int		 log_facility;
	int		 stats_period;
	struct pgm_database *databases;
	int		 ndatabases;
	struct pgm_user	*users;
	int		 nusers;
	struct pgm_mirror *mirrors;
	int		 nmirrors;
	int		 has_admin;	/* admin.password set: console on */
	struct pgm_user	 admin;		/* its credentials */
	char		*user;		/* run as, when started as root */
	char		*group;
};

/*
 * The scalar settings of pgmirror.conf: config.c's config_settings[],
 * one row each, ended by a row whose key is NULL.  Loading, defaults,
 * config_free, SHOW CONFIG and the reload's checks walk it; the lists
 * (listen, databases, users, mirrors) are loaded by hand.  The rows of
 * a group are next to each other.
 */
enum pgm_set_type {
	SET_INT,		/* an integer within [min, max] */
	SET_BOOL,		/* true or false, stored as 1 or 0 */
	SET_STR,		/* a string (char *), or NULL when unset */
	SET_ENUM		/* a string among names, stored as its value */
};

#define SET_RESTART	0x01	/* a reload keeps the running value */
#define SET_SHM		0x02	/* sizes shared memory: reload refused */
#define SET_SHM_MIRRORS	0x04	/* ... when there are mirrors */
#define SET_SECRET	0x08	/* never shown; wiped when freed */

struct pgm_set_name {
	const char	*name;
	int		 value;
};

struct pgm_setting {
	const char	*key;		/* full name: "client.idle_timeout" */
	enum pgm_set_type type;
	size_t		 off;		/* of its int or char * in pgm_config */
	int		 def;		/* default of SET_INT, _BOOL, _ENUM */
	const char	*defstr;	/* default of SET_STR */
	int		 min, max;	/* SET_INT */
	const struct pgm_set_name *names; /* SET_ENUM, ended by a NULL name */
	const char	*bad;		/* SET_ENUM: why others are refused */
	int		 flags;		/* SET_RESTART ... */
};

extern const struct pgm_setting config_settings[];

/* One error found while loading a config, with its place. */
struct pgm_config_error {
	int		 line;
	char		 msg[256];
};

#define PGM_CONFIG_MAXERR	64

struct pgm_config_errors {
	const char	*file;
	int		 n;
	struct pgm_config_error err[PGM_CONFIG_MAXERR];
};

/*
 * Protocol codec (proto.c).  A growable output buffer for the messages
 * we compose, a bounds-checked reader for the ones we parse, and the
 * incremental scanner that follows message boundaries in a byte stream.
 */
struct pgm_buf {
	uint8_t		*data;
	size_t		 len;
	size_t		 cap;
	int		 failed;	/* allocation failed; stays set */
	size_t		 msgstart;	/* offset of the message being built */
};

struct pgm_reader {
	const uint8_t	*p;
	size_t		 len;
	size_t		 pos;
};

/* A startup packet's parameters, in the order the client sent them. */
/* Enough for every parameter a packet of PGM_STARTUP_MAX can carry. */
#define PGM_MAXPARAMS	(PGM_STARTUP_MAX / 4)

struct pgm_startup {
	uint32_t	 code;		/* protocol version or request code */
	int		 nparams;
	const char	*name[PGM_MAXPARAMS];
	const char	*value[PGM_MAXPARAMS];
	uint32_t	 cancel_pid;	/* CancelRequest only */
	uint32_t	 cancel_key;
	int		 nouser;	/* parse failed for want of a user */
	/* the strings point into the packet's bytes, owned by the caller */
};

/* Follows message boundaries in one direction of a session. */
struct pgm_scan {
	uint8_t		 hdr[5];
	int		 hdrlen;	/* header bytes seen of current msg */
	uint8_t		 type;		/* current message type */
	uint32_t	 len;		/* its length word (includes itself) */
	uint32_t	 remain;	/* body bytes still to come */
	uint32_t	 maxlen;	/* refuse longer messages */
	/* body capture of the current message, when wanted */
	int		 capture;
	size_t		 caplen;
	uint8_t		 cap[1024];
	/* or a hash of the whole body (FNV-1a), when wanted */
	int		 hashing;
	uint64_t	 hash;
};

/* What proto_scan found: a message start, a captured body, or an error. */
enum pgm_scan_event {
	SCAN_NEED_MORE,		/* consumed everything given */
	SCAN_HEADER,		/* a header completed: type and len are set */
	SCAN_BODY,		/* capture finished: cap/caplen hold the body */
	SCAN_BAD_LENGTH		/* length word < 4 or > maxlen */
};

/*
 * Shared memory (shm.c): created by the supervisor before the first fork
 * and never resized.  Each scoreboard slot is written by its worker only
 * (the supervisor writes it before forking and after reaping); pool
 * counters are changed with atomic operations by any worker.
 */
enum pgm_slot_state {
	SLOT_FREE = 0,
	SLOT_STARTING,
	SLOT_IDLE,		/* waiting in accept */
	SLOT_BUSY,		/* serving a client */
	SLOT_REFUSING,		/* the refuser: all workers are busy */
	SLOT_EXITING
};

#define PGM_SLOT_HELD	16		/* server connections per worker */

struct pgm_slot {
	volatile pid_t	 pid;
	volatile int	 state;
	volatile uint64_t served;	/* clients served by this process */
	volatile int	 idle_servers;	/* pooled server connections held */
	volatile int	 held[PGM_SLOT_HELD];	/* pool + 1 of each, 0: none */
	volatile int	 parked[PGM_SLOT_HELD];	/* same, for parked ones */
	volatile int	 waiting;	/* pool + 1 we wait for, 0: none */
	/* cancel key we handed our client, and where to forward it */
	volatile uint32_t cancel_pid;
	volatile uint32_t cancel_key;
	volatile uint32_t server_pid;
	volatile uint32_t server_key;
	struct sockaddr_storage server_addr;
	volatile socklen_t server_addrlen;
	volatile int	 cancel_gen;	/* odd while being written */
	int		 generation;	/* config generation it was forked with */
	volatile uint64_t session;	/* mirrored session served, 0: none */
	/* the session, for SHOW CLIENTS and maintenance (worker writes) */
	volatile int	 user;		/* users[] index, -1: none */
	volatile int	 database;	/* databases[] index, -1: none */
	char		 addr[64];
	volatile int	 txstate;	/* SLOT_TX_* */
	volatile int64_t state_since;	/* ms, monotonic */
	volatile uint64_t queries;	/* answered in this session */
	volatile uint64_t bytes_in;	/* from the client, this session */
	volatile uint64_t bytes_out;
	volatile int	 cancel_held;	/* cancel the request maintenance holds */
};

/* What a session is doing (pgm_slot.txstate). */
#define SLOT_TX_NONE	0	/* logging in */
#define SLOT_TX_IDLE	'I'
#define SLOT_TX_BLOCK	'T'	/* in a transaction block */
#define SLOT_TX_FAILED	'E'	/* in a failed one */
#define SLOT_TX_ACTIVE	'A'	/* a request is being answered */
#define SLOT_TX_WAITING	'W'	/* held by maintenance */

/* Counters of a database, added to by each session at its end. */
struct pgm_db_stats {
	volatile uint64_t clients;
	volatile uint64_t queries;
	volatile uint64_t bytes_in;
	volatile uint64_t bytes_out;
};

struct pgm_pool_shared {
	volatile int	 count;		/* open server connections */
	volatile int	 waiters;	/* clients waiting for one */
	volatile int	 idle;		/* of those, parked in a worker */
};

struct pgm_shm {
	uint32_t	 magic;
	int		 nslots;
	int		 npools;
	volatile int	 shutdown;	/* supervisor asks workers to go */
	volatile int	 generation;	/* config generation: bumped by reload */
	volatile uint64_t clients_total;
	volatile uint64_t next_session;	/* mirrored session ids */
	volatile uint64_t next_seq;	/* commit order of mirrored work */
	volatile int64_t mirror_logged;	/* ms: last divergence or error log */
	volatile int	 maintenance;	/* for every database */
	/* the text of the running config, for workers (a seqlock) */
	volatile uint32_t conf_seq;	/* odd while being written */
	volatile int	 conf_gen;	/* the generation it belongs to */
	volatile size_t	 conf_len;
	char		*conf_text;	/* PGM_CONFIG_TEXT_MAX bytes */
	volatile uint8_t *maint_db;	/* per databases[] entry */
	struct pgm_db_stats *dbstats;	/* per databases[] entry */
	int		 nmirrors;
	int		 nmworkers;
	struct pgm_slot	*slots;
	struct pgm_pool_shared *pools;
	struct pgm_mirror_shared *mirrors;
	struct pgm_mqueue *mqueues;	/* [mirror * nmworkers + worker] */
	struct pgm_mworker *mworkers;
};

/*
 * Mirroring.  A client worker captures each committed transaction of a
 * mirrored session (capture.c) and puts it, as one record, into the
 * queue of its mirror that the session's mirror worker consumes
 * (mqueue.c); mirror workers replay the records on the destination
 * (mirror.c).
 */
#define PGM_TAG_MAX	32

/* What the source answered to one statement of a transaction. */
struct pgm_mstmt {
	int64_t		 sent_ns;	/* monotonic: its request went out */
	int64_t		 answered_ns;	/* its CommandComplete came back */
	uint64_t	 rows;		/* DataRows returned */
	uint64_t	 hash;		/* sum of the rows' hashes */
	char		 tag[PGM_TAG_MAX];	/* command tag, maybe cut */
};

/*
 * A queued transaction: this header, then nstmts struct pgm_mstmt, then
 * paramslen bytes of startup parameters (name NUL value NUL ...), then
 * byteslen bytes of the client's protocol messages, padded to 8.
 */
struct pgm_mrec {
	uint32_t	 len;		/* whole record */
	uint16_t	 mirror;	/* mirrors[] index; MREC_WRAP: skip */
	uint16_t	 flags;
	uint64_t	 session;
	uint64_t	 seq;		/* commit order among all sessions */
	int64_t		 enqueued_ns;
	uint32_t	 txn;		/* number in its session, from 1 */
	uint32_t	 nstmts;
	uint32_t	 paramslen;
	uint32_t	 byteslen;
	int32_t		 user;		/* source users[] index */
	int32_t		 database;	/* source databases[] index */
	uint32_t	 nready;	/* ReadyForQuery the source sent */
	uint32_t	 unused;
};

#define MREC_WRAP	0xffff	/* mirror of a filler up to the ring's end */
#define MREC_PARAMS	0x0001	/* the record carries startup parameters */
#define MREC_GAP	0x0002	/* a transaction before it was dropped */
#define MREC_KEPT	0x0004	/* statements kept from a failed one */

#define MREC_STMTS(r)	((const struct pgm_mstmt *)((r) + 1))
#define MREC_PARAMSP(r)	((const char *)(MREC_STMTS(r) + (r)->nstmts))
#define MREC_BYTES(r)	((const uint8_t *)MREC_PARAMSP(r) + (r)->paramslen)

/* One ring of a mirror, consumed by one mirror worker (mqueue.c). */
struct pgm_mqueue {
	uint8_t		 lock[64];	/* a robust process-shared mutex */
	uint8_t		*data;
	uint64_t	 size;		/* ring bytes */
	uint64_t	 head, tail;	/* byte positions, under the lock */
	uint32_t	 count;		/* records in the ring, under the lock */
	uint32_t	 max_txns;	/* budget for ring + held */
	uint64_t	 max_bytes;
	int		 efd;		/* eventfd that wakes the consumer */
	volatile int	 sleeping;	/* consumer is about to sleep */
	/* written by producers under the lock */
	volatile uint64_t enqueued;
	volatile uint64_t dropped_full;	/* over budget, or too big */
	/* written by the consumer only */
	volatile uint64_t replayed;
	volatile uint64_t errors;
	volatile uint64_t divergent;
	volatile uint64_t dropped;	/* destination away, consumer died */
	volatile uint64_t held_txns;	/* taken from the ring, not done */
	volatile uint64_t held_bytes;
	volatile int64_t held_oldest_ns;	/* 0: none held */
	volatile uint32_t epoch;	/* bumped by each new consumer */
};

/* Counters of a mirror that are not per ring. */
struct pgm_mirror_shared {
	volatile uint64_t sessions;	/* sessions chosen for mirroring */
	volatile uint64_t gaps;		/* sessions with a lost transaction */
};

/* A mirror worker process. */
struct pgm_mworker {
	volatile pid_t	 pid;
	int		 efd;		/* its wake-up eventfd */
};

/* Totals of a mirror over its rings (mqueue_stats). */
struct pgm_mstats {
	uint64_t	 sessions, gaps;
	uint64_t	 enqueued, replayed, errors, divergent, dropped;
	uint64_t	 queue_length, queue_bytes;
	int64_t		 lag_ms;
};

/* A transaction the capture found finished (capture.c). */
struct pgm_capture_txn {
	const uint8_t	*bytes;		/* the client's messages */
	size_t		 len;
	const struct pgm_mstmt *stmts;
	int		 nstmts;
	uint64_t	 seq;
	int		 nready;	/* ReadyForQuery that answered it */
	int		 committed;	/* 0: failed or rolled back */
	int		 kept;		/* statements kept from one that failed */
	int		 overflow;	/* too big: the bytes were not kept */
};

struct pgm_capture_unit {
	uint64_t	 end;		/* stream position after its last byte */
	int		 open;		/* a Query: COPY data may extend it */
	int64_t		 sent_ns;
	uint64_t	 seq;		/* taken when it was sent, or 0 */
};

/*
 * Follows both directions of a session and cuts the client's stream
 * into transactions at the ReadyForQuery that ends them.
 */
struct pgm_capture {
	struct pgm_buf	 bytes;		/* client bytes from base on */
	uint64_t	 base;		/* stream position of bytes.data[0] */
	uint64_t	 fed;		/* stream position after the last byte */
	uint64_t	 skip_to;	/* bytes before it are not kept */
	size_t		 max_bytes;	/* longer transactions overflow */
	int		 overflow;
	struct pgm_scan	 cscan, sscan;
	struct pgm_capture_unit *units;	/* sent, not yet answered */
	int		 nunits, capunits;
	struct pgm_mstmt *stmts;	/* answered in this transaction */
	int		 nstmts, capstmts;
	uint64_t	 rows, hash;	/* of the statement being answered */
	uint8_t		 status;	/* of the last ReadyForQuery */
	int		 nready;	/* ReadyForQuery in this transaction */
	int		 error;		/* ErrorResponse since it */
	int		 rolled_back;	/* last tag of the transaction */
	int		 too_many;	/* statement results over max_bytes */
	struct pgm_buf	 keep;		/* statements kept from a rollback */
	int		 parsed;	/* ParseComplete in this transaction */
	int		 closed;	/* CloseComplete in this transaction */
	uint8_t		 last_request;
	int		 syncs_after_execute;
	int		 copy_in_ext;
	uint64_t	 (*next_seq)(void *);
	void		 (*done)(void *, const struct pgm_capture_txn *);
	void		*arg;
	int		 failed;	/* out of memory: stopped */
};

/* A server connection owned by a worker (pool.c, server.c). */
#define PGM_MAXSTATUS	32

struct pgm_server {
	int		 fd;
	struct ssl_st	*ssl;		/* TLS session, or NULL */
	int		 pool;		/* users[] index: (database, user) */
	char		*params;	/* canonical startup parameters */
	uint32_t	 be_pid;	/* the server's BackendKeyData */
	uint32_t	 be_key;
	uint8_t		 txstatus;	/* last ReadyForQuery status */
	int		 ready;		/* logged in: past the first ReadyForQuery */
	int		 nstatus;
	char		*status_name[PGM_MAXSTATUS];	/* ParameterStatus */
	char		*status_value[PGM_MAXSTATUS];
	struct sockaddr_storage addr;
	socklen_t	 addrlen;
	int64_t		 created;	/* monotonic ms */
	int64_t		 used;
	struct pgm_server *next;	/* in the worker's idle list */
};

/*
 * Whom a server connection logs in for (server.c): a users entry on a
 * databases entry, with startup parameters to pass on.  No client is
 * needed: mirror workers open theirs with the same code.
 */
struct pgm_login {
	int		 user;		/* users[] index */
	int		 database;	/* databases[] index */
	const struct pgm_startup *startup;	/* or NULL */
	const uint8_t	*client_key;	/* SCRAM ClientKey the client proved,
					   for a user without a plain
					   password, or NULL */
};

/* Why server_open failed, and at which stage. */
enum pgm_server_stage {
	SERVER_ERR_CONNECT = 1,	/* no connection (or no memory) */
	SERVER_ERR_TLS,		/* the TLS the config asks for failed */
	SERVER_ERR_LOGIN,	/* pgmirror would not or could not log in */
	SERVER_ERR_REFUSED	/* the server refused: its ErrorResponse */
};

struct pgm_server_error {
	int		 stage;		/* enum pgm_server_stage, 0: none */
	char		 sqlstate[6];
	char		 message[512];
	struct pgm_buf	 response;	/* the server's ErrorResponse, if any */
};

/* The client being served (worker.c, relay.c). */
struct ssl_st;

struct pgm_client {
	int		 fd;
	struct ssl_st	*ssl;		/* TLS session, or NULL */
	char		 addr[64];	/* for logs */
	int		 local;		/* over a Unix socket */
	int		 user;		/* users[] index */
	int		 database;	/* databases[] index */
	struct pgm_startup startup;
	uint8_t		 startup_buf[PGM_STARTUP_MAX];
	uint32_t	 cancel_pid;
	uint32_t	 cancel_key;
	struct scram_server scram;
	int		 have_client_key;	/* scram.client_key is valid */
	uint8_t		 cbind[SCRAM_CBIND_MAX];	/* TLS binding data */
};

/* capture.c */
void	 capture_init(struct pgm_capture *, size_t,
	    uint64_t (*)(void *), void (*)(void *,
	    const struct pgm_capture_txn *), void *);
void	 capture_reset(struct pgm_capture *);
void	 capture_free(struct pgm_capture *);
void	 capture_client(struct pgm_capture *, const uint8_t *, size_t,
	    int64_t);
void	 capture_server(struct pgm_capture *, const uint8_t *, size_t,
	    int64_t);

/* mqueue.c */
int	 mqueue_init(struct pgm_mqueue *, void *, uint64_t, uint32_t,
	    uint64_t, int);
int	 mqueue_put(struct pgm_mqueue *, struct pgm_mrec *,
	    const struct pgm_mstmt *, const char *, const uint8_t *);
void	 mqueue_drop(struct pgm_mqueue *);
struct pgm_mrec *mqueue_get(struct pgm_mqueue *);
void	 mqueue_done(struct pgm_mqueue *, const struct pgm_mrec *);
void	 mqueue_consumer_start(struct pgm_mqueue *);
void	 mqueue_stats(struct pgm_mqueue *, struct pgm_mstats *, int64_t);
int	 mqueue_pending(struct pgm_mqueue *);
void	 mqueue_wake(struct pgm_mqueue *);
int64_t	 mqueue_now_ns(void);

/*
 * Test hooks of mqueue.c, compiled in only with PGM_TEST_HOOKS (the
 * unit test): when mqueue_test_hook is set, it is called at each point
 * between two stores to a ring, so that a test can kill the process
 * there.
 */
#ifdef PGM_TEST_HOOKS
enum mqueue_test_point {
	MQTP_PUT_FILLER = 1,	/* empty ring: filler written, head not moved */
	MQTP_PUT_EMPTY_HEAD,	/* ... head moved past the filler, tail not */
	MQTP_PUT_EMPTY_TAIL,	/* ... tail moved too */
	MQTP_PUT_COPIED,	/* record copied in, head not moved */
	MQTP_PUT_HEAD,		/* head moved, count not */
	MQTP_PUT_COUNT,		/* count moved, enqueued not */
	MQTP_GET_TXNS,		/* held_txns counted, held_bytes not */
	MQTP_GET_BYTES,		/* held_bytes counted, tail not moved */
	MQTP_GET_TAIL,		/* tail moved, count not */
	MQTP_GET_WRAP,		/* tail moved past a filler */
	MQTP_DONE_TXNS,		/* held_txns down, held_bytes not */
	MQTP_START_DROPPED	/* what was held counted, not yet cleared */
};
extern void (*mqueue_test_hook)(int);
#define MQUEUE_TEST_POINT(n)	do {					\
	if (mqueue_test_hook != NULL)					\
		mqueue_test_hook(n);					\
} while (0)
#else
#define MQUEUE_TEST_POINT(n)	do { } while (0)
#endif

/* mirror.c */
__attribute__((noreturn))
void	 mirror_main(int, int);
void	 mirror_session_start(const struct pgm_client *);
void	 mirror_session_end(void);
struct pgm_capture *mirror_capture(void);
void	 mirror_stats(int, struct pgm_mstats *);
void	 mirror_stats_text(int, int, char *, size_t);
extern const char *const mirror_stats_names[];

/* tls.c */
int	 tls_init(const struct pgm_config *, char *, size_t);
int	 tls_enabled(void);
struct ssl_st *tls_accept(int, int64_t, const char **);
size_t	 tls_cbind(struct ssl_st *, uint8_t *);
int	 tls_server_mode(const struct pgm_config *, const struct pgm_database *);
struct ssl_st *tls_connect(int, const char *, int, int64_t, const char **);
void	 tls_close(struct ssl_st *);

/* log.c */
void	 log_init(int, int);
void	 log_setproc(const char *, int);
void	 log_setsession(const char *);
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_verbose(int);
__attribute__((noreturn))
void	 fatal(const char *, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn))
void	 fatalx(const char *, ...) __attribute__((format(printf, 1, 2)));

/* config.c */
struct pgm_config *config_load(const char *, struct pgm_config_errors *);
struct pgm_config *config_load_text(const char *, const char *,
	    struct pgm_config_errors *);
void	 config_free(struct pgm_config *);
int	 config_find_database(const struct pgm_config *, const char *);
int	 config_find_user(const struct pgm_config *, const char *, int);
int	 config_pool_size(const struct pgm_config *, int);
int	 config_pool_index(const struct pgm_config *, int, int);
int	 config_pool_valid(const struct pgm_config *, int);
int	 config_same_server(const struct pgm_database *,
	    const struct pgm_database *);
int	 config_same_connection(const struct pgm_database *,
	    const struct pgm_database *);
int	 config_allow_cleartext(const struct pgm_config *,
	    const struct pgm_database *);
const char *config_auth_name(int);
int	 config_setting_same(const struct pgm_setting *,
	    const struct pgm_config *, const struct pgm_config *);
void	 config_setting_take(const struct pgm_setting *, struct pgm_config *,
	    struct pgm_config *);
const char *config_setting_text(const struct pgm_setting *,
	    const struct pgm_config *, char *, size_t);

/* proto.c */
void	 buf_init(struct pgm_buf *);
void	 buf_free(struct pgm_buf *);
void	 buf_reset(struct pgm_buf *);
int	 buf_reserve(struct pgm_buf *, size_t);
void	 buf_put(struct pgm_buf *, const void *, size_t);
void	 buf_put_u8(struct pgm_buf *, uint8_t);
void	 buf_put_u32(struct pgm_buf *, uint32_t);
void	 buf_put_str(struct pgm_buf *, const char *);
void	 buf_put_strn(struct pgm_buf *, const char *);
void	 buf_msg_begin(struct pgm_buf *, uint8_t);
void	 buf_msg_end(struct pgm_buf *);
void	 reader_init(struct pgm_reader *, const void *, size_t);
int	 reader_u8(struct pgm_reader *, uint8_t *);
int	 reader_u32(struct pgm_reader *, uint32_t *);
int	 reader_bytes(struct pgm_reader *, size_t, const uint8_t **);
int	 reader_str(struct pgm_reader *, const char **);
uint32_t proto_get_u32(const uint8_t *);
void	 proto_put_u32(uint8_t *, uint32_t);
int	 proto_parse_startup(uint8_t *, size_t, struct pgm_startup *,
	    const char **);
const char *proto_startup_param(const struct pgm_startup *, const char *);
char	*proto_params_key(const struct pgm_startup *);
int	 proto_params_split(char *, struct pgm_startup *);
void	 proto_error(struct pgm_buf *, const char *, const char *,
	    const char *, ...) __attribute__((format(printf, 4, 5)));
void	 proto_auth_request(struct pgm_buf *, uint32_t, const void *, size_t);
void	 proto_parameter_status(struct pgm_buf *, const char *, const char *);
void	 proto_backend_key(struct pgm_buf *, uint32_t, uint32_t);
void	 proto_ready(struct pgm_buf *, uint8_t);
void	 proto_negotiate_version(struct pgm_buf *, uint32_t,
	    const struct pgm_startup *);
void	 proto_query(struct pgm_buf *, const char *);
void	 proto_parse(struct pgm_buf *, const char *, const char *, int,
	    const uint32_t *);
void	 proto_bind_text(struct pgm_buf *, const char *, const char *, int,
	    const char *const *);
void	 proto_execute(struct pgm_buf *, const char *);
void	 proto_close_statement(struct pgm_buf *, const char *);
void	 proto_sync(struct pgm_buf *);
int	 proto_error_fields(const uint8_t *, size_t, const char **,
	    const char **, const char **);
void	 proto_error_tag(const uint8_t *, size_t, char *, size_t);
void	 scan_init(struct pgm_scan *, uint32_t);
enum pgm_scan_event scan_feed(struct pgm_scan *, const uint8_t *, size_t,
	    size_t *);
int	 proto_valid_frontend_type(uint8_t);
uint64_t proto_hash(uint64_t, const uint8_t *, size_t);
int	 proto_is_lone_prepare(const uint8_t *, size_t);
size_t	 proto_cancel_requests(const uint8_t *, size_t, struct pgm_buf *,
	    int *);

#define PROTO_HASH_INIT	0xcbf29ce484222325ULL	/* FNV-1a offset basis */

/* proc.c */
extern volatile sig_atomic_t proc_sig_term;
extern volatile sig_atomic_t proc_sig_int;
extern volatile sig_atomic_t proc_sig_usr1;
extern int proc_slot;
extern int proc_death_fd;	/* read end: EOF when the supervisor dies */
extern sigset_t proc_waitmask;
extern int proc_use_waitmask;
int	 proc_interrupted(void);
void	 proc_orphaned(void);
int	 proc_poll(struct pollfd *, nfds_t, int);
void	 proc_own_fd(int, int);
void	 proc_disown_fd(int);
void	 proc_handlers(void (*)(int), int);
void	 proc_forked(int);

/* net.c */
int64_t	 net_now_ms(void);
int	 net_set_nonblock(int);
int	 net_wait(int, short, int64_t);
ssize_t	 net_recv(int, struct ssl_st *, void *, size_t, int);
ssize_t	 net_send(int, struct ssl_st *, const void *, size_t, int);
int	 net_read_full(int, struct ssl_st *, void *, size_t, int64_t);
int	 net_write_full(int, struct ssl_st *, const void *, size_t, int64_t);
int	 net_read_message(int, struct ssl_st *, struct pgm_buf *, uint8_t *,
	    size_t, int64_t);
int	 net_connect(const char *, int, int64_t, struct sockaddr_storage *,
	    socklen_t *);
int	 net_connect_addr(const struct sockaddr_storage *, socklen_t, int64_t,
	    int);
void	 net_addr_str(const struct sockaddr_storage *, char *, size_t);
struct sockaddr_un;
int	 net_unix_in_use(const struct sockaddr_un *);

/* shm.c */
/* Where to forward a client's cancel (shm_cancel_lookup). */
struct pgm_cancel_dest {
	struct sockaddr_storage addr;	/* the session's server */
	socklen_t	 addrlen;
	uint32_t	 pid;		/* its backend's key */
	uint32_t	 key;
};

extern struct pgm_shm *pgm_shm;
int	 shm_create(const struct pgm_config *);
void	 shm_config_put(const struct pgm_config *, int);
char	*shm_config_get(int *);
struct pgm_slot *shm_slot(int);
int	 shm_pool_try_acquire(int, int);
void	 shm_pool_release(int);
int	 shm_count_state(int);
void	 shm_slot_reclaim(struct pgm_slot *);
int	 shm_cancel_lookup(uint32_t, uint32_t, struct pgm_cancel_dest *);

/* supervisor.c */
int	 supervisor_main(struct pgm_config *, int);

/* reload.c */
#define RELOAD_NEW_GENERATION	0x1	/* workers of the old one go */
#define RELOAD_RETIRE_MIRRORS	0x2	/* mirror workers restart */
int	 reload_check(char *, size_t);
int	 reload_apply(char *, size_t);
int	 reload_take(void);

/* control.c */
#define PGM_CONTROL_MAXCONN	16	/* control connections served at once */
void	 control_open(const struct pgm_config *);
void	 control_close(void);
void	 control_chown(uid_t, gid_t);
int	 control_pollfds(struct pollfd *);
int	 control_busy(void);
void	 control_tick(const struct pollfd *, int);
void	 control_status(char *, size_t);
int	 control_changed(void);
int	 control_reaped(pid_t, int);
int	 control_switching(void);
int	 control_sync_database(const struct pgm_config *, int,
	    const struct pgm_config *);

/* worker.c */
__attribute__((noreturn))
void	 worker_main(int, int *, int, int, int);

/* cancel.c */
void	 cancel_publish(const struct pgm_client *, const struct pgm_server *);
void	 cancel_withdraw(void);
void	 cancel_request(const struct pgm_startup *);

/* auth.c */
int	 auth_client(struct pgm_client *, int64_t);
int	 auth_client_as(struct pgm_client *, const struct pgm_user *, int,
	    int64_t);
int	 auth_server_step(int, struct ssl_st *, const struct pgm_login *,
	    uint32_t, const uint8_t *, size_t, struct scram_client *, int64_t,
	    const char **, const char **);

/* admin.c */
int	 admin_wanted(const struct pgm_client *);
void	 admin_serve(struct pgm_client *, int64_t);

/* server.c */
struct pgm_server *server_open(const struct pgm_login *, const char *,
	    struct pgm_server_error *);
void	 server_error_init(struct pgm_server_error *);
void	 server_error_free(struct pgm_server_error *);
void	 server_error_response(const struct pgm_server_error *,
	    struct pgm_buf *);
void	 server_close(struct pgm_server *);
int	 server_alive(struct pgm_server *);
int	 server_reset(struct pgm_server *);
int	 server_cancel_addr(const struct sockaddr_storage *, socklen_t,
	    uint32_t, uint32_t);
void	 server_cancel(struct pgm_server *);
void	 server_set_status(struct pgm_server *, const char *, const char *);

/* pool.c */
struct pgm_server *pool_get(const struct pgm_client *, struct pgm_buf *);
void	 pool_put(struct pgm_server *, int);
void	 pool_release_for_waiters(void);
void	 pool_maintain(void);
void	 pool_close_all(void);

/* relay.c */
enum pgm_relay_end {
	RELAY_CLIENT_TERMINATE,	/* client sent Terminate: server reusable */
	RELAY_CLIENT_GONE,	/* client closed or failed */
	RELAY_SERVER_GONE,	/* server closed or failed */
	RELAY_PROTOCOL,		/* client broke the protocol */
	RELAY_TOO_LARGE,	/* client sent a message over the limit */
	RELAY_IDLE_TIMEOUT,	/* client idle past client.idle_timeout */
	RELAY_IDLE_IN_TRANSACTION,	/* ... in a transaction */
	RELAY_SHUTDOWN,		/* fast shutdown asked */
	RELAY_MOVE_FAILED	/* could not follow its database (move.c) */
};
enum pgm_relay_end relay_session(struct pgm_client *, struct pgm_server **,
	    int *, int *);

/* client.c */
int	 client_send(struct pgm_client *, struct pgm_buf *);
void	 client_fatal(struct pgm_buf *, const char *, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
void	 client_fail(struct pgm_client *, const char *, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
void	 client_end(struct pgm_client *, enum pgm_relay_end, int);

/* move.c */
void	 move_init(int);
int	 move_generation(void);
int	 move_check(struct pgm_client *, struct pgm_server **,
	    struct pgm_buf *);

/* Globals set up by main and the supervisor, read everywhere. */
extern struct pgm_config *pgm_conf;

#endif /* PGMIRROR_H */
