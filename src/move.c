/*
 * move.c: moving a live session to another server after a reload.
 *
 * A reload may point a database entry at another server (a
 * switchover).  Sessions opened before it run on the old one; the
 * relay calls move_check when such a session is between transactions
 * and has just sent a new request, not yet forwarded.  If the worker's
 * config is older than the running one, the worker loads the running
 * one from the text the supervisor published in shared memory, and if
 * the session's database entry now leads elsewhere, the session moves:
 *
 *   1. On the old server: does the session hold anything that cannot
 *      move (temporary tables, advisory locks, LISTEN, cursors WITH
 *      HOLD)?  Then it ends with a FATAL naming what.
 *   2. Also there: the settings it changed (pg_settings, source
 *      "session") and its prepared statements (pg_prepared_statements).
 *   3. The old connection is closed (its pool place freed), then a
 *      new server connection on the new server, with the client's
 *      startup parameters; the settings applied again with set_config
 *      and the statements prepared again: an SQL PREPARE by running it
 *      again, a statement prepared through the protocol by a Parse with
 *      the same name, text and parameter types.
 *   4. The client is told, with ParameterStatus, the values that differ
 *      on the new server; the old connection is closed and the held
 *      request goes to the new one.
 *
 * Nothing of this reaches the client but those ParameterStatus
 * messages.  When the new server cannot be reached, or refuses what the
 * session had, the session ends with a FATAL saying why.  Both are
 * composed into a buffer the relay sends between the server's messages,
 * never written to the client directly.
 *
 * What is read on the old server comes in the session's client
 * encoding, which may be one (SJIS, BIG5, GBK) whose second bytes can
 * be a backslash or a quote: none of it is ever quoted into SQL.  The
 * new connection is first given that client_encoding, alone, and the
 * settings are then sent as parameters of an extended-protocol
 * set_config; the statement texts follow in the same encoding they
 * were read in.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgmirror.h"

#define MOVE_TIMEOUT	30000		/* ms for each exchange */

/* The generation of the config this worker's sessions run with. */
static int	 move_gen = -1;

/* One row of a result: up to 4 text columns. */
struct move_row {
	char		*col[4];
};

struct move_result {
	struct move_row	*rows;
	int		 nrows;
	char		 error[256];	/* an ErrorResponse's message, or "" */
};

static void
move_result_free(struct move_result *r)
{
	int		 i, k;

	for (i = 0; i < r->nrows; i++)
		for (k = 0; k < 4; k++)
			free(r->rows[i].col[k]);
	free(r->rows);
	memset(r, 0, sizeof(*r));
}

/* Keep the DataRow in body as a row of r.  0, or -1. */
static int
move_datarow(struct move_result *r, const uint8_t *body, size_t len)
{
	struct pgm_reader rd;
	struct move_row	*nr, *row;
	uint32_t	 clen;
	uint8_t		 h, l;
	const uint8_t	*p;
	int		 i, n;

	reader_init(&rd, body, len);
	if (reader_u8(&rd, &h) == -1 || reader_u8(&rd, &l) == -1)
		return -1;
	n = h << 8 | l;
	if ((nr = realloc(r->rows, (r->nrows + 1) * sizeof(*nr))) == NULL)
		return -1;
	r->rows = nr;
	row = &r->rows[r->nrows++];
	memset(row, 0, sizeof(*row));
	for (i = 0; i < n; i++) {
		if (reader_u32(&rd, &clen) == -1)
			return -1;
		if (clen == 0xffffffff)
			continue;		/* NULL */
		if (reader_bytes(&rd, clen, &p) == -1)
			return -1;
		if (i < 4 && (row->col[i] = strndup((const char *)p,
		    clen)) == NULL)
			return -1;
	}
	return 0;
}

/*
 * Send the messages in out on a server connection and read every
 * answer up to the nready-th ReadyForQuery: the rows of the last result
 * set, the first error.  ParameterStatus values are recorded on the
 * connection.  Returns 0, or -1 if the connection failed.
 */
static int
move_exchange(struct pgm_server *s, const struct pgm_buf *out, int nready,
    struct move_result *r)
{
	struct pgm_buf	 b;
	struct pgm_reader rd;
	const char	*sev, *code, *msg, *name, *value;
	int64_t		 deadline = net_now_ms() + MOVE_TIMEOUT;
	uint8_t		 type;
	int		 rc = -1;

	memset(r, 0, sizeof(*r));
	buf_init(&b);
	if (out->failed || net_write_full(s->fd, s->ssl, out->data, out->len,
	    deadline) == -1)
		goto out;
	while (nready > 0) {
		if (net_read_message(s->fd, s->ssl, &b, &type, 64 * 1024 * 1024,
		    deadline) == -1)
			goto out;
		switch (type) {
		case 'T':
			/* a new result set: keep only the last one's rows */
			while (r->nrows > 0) {
				struct move_row *row = &r->rows[--r->nrows];

				free(row->col[0]);
				free(row->col[1]);
				free(row->col[2]);
				free(row->col[3]);
			}
			break;
		case 'D':
			if (move_datarow(r, b.data + 5, b.len - 5) == -1)
				goto out;
			break;
		case 'E':
			if (r->error[0] == '\0') {
				proto_error_fields(b.data + 5, b.len - 5, &sev,
				    &code, &msg);
				snprintf(r->error, sizeof(r->error), "%s (%s)",
				    msg, code);
			}
			break;
		case 'S':
			reader_init(&rd, b.data + 5, b.len - 5);
			if (reader_str(&rd, &name) == 0 &&
			    reader_str(&rd, &value) == 0)
				server_set_status(s, name, value);
			break;
		case 'Z':
			s->txstatus = b.len > 5 ? b.data[5] : 'I';
			nready--;
			deadline = net_now_ms() + MOVE_TIMEOUT;
			break;
		}
	}
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

/* Run a simple query on a server connection, as move_exchange. */
static int
move_query(struct pgm_server *s, const char *sql, struct move_result *r)
{
	struct pgm_buf	 b;
	int		 rc;

	buf_init(&b);
	proto_query(&b, sql);
	rc = move_exchange(s, &b, 1, r);
	buf_free(&b);
	return rc;
}

/*
 * What the old server's session holds that cannot move, as text in why
 * (empty: nothing).  -1 if the server failed.
 */
static int
move_blockers(struct pgm_server *s, char *why, size_t len)
{
	static const char *q = "SELECT "
	    "(SELECT count(*) FROM pg_class WHERE relnamespace = "
	    "pg_my_temp_schema()), "
	    "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
	    "pid = pg_backend_pid()), "
	    "(SELECT count(*) FROM pg_listening_channels()), "
	    "(SELECT count(*) FROM pg_cursors WHERE is_holdable)";
	static const char *what[4] = { "temporary tables", "advisory locks",
	    "LISTEN", "cursors WITH HOLD" };
	struct move_result r;
	size_t		 n = 0;
	int		 i;

	why[0] = '\0';
	if (move_query(s, q, &r) == -1)
		return -1;
	if (r.error[0] != '\0' || r.nrows != 1) {
		snprintf(why, len, "cannot inspect the session: %s",
		    r.error[0] ? r.error : "no answer");
		move_result_free(&r);
		return 0;
	}
	for (i = 0; i < 4; i++)
		if (r.rows[0].col[i] != NULL && strcmp(r.rows[0].col[i],
		    "0") != 0 && n + 2 < len)
			n += snprintf(why + n, len - n, "%s%s", n ? ", " : "",
			    what[i]);
	move_result_free(&r);
	return 0;
}

/* What a session takes to its new server, read on the old one. */
struct move_state {
	char		*encoding;	/* its client_encoding */
	struct move_result settings;	/* name, value */
	struct move_result stmts;	/* name, statement, from_sql, OIDs */
};

static void
move_state_free(struct move_state *st)
{
	free(st->encoding);
	move_result_free(&st->settings);
	move_result_free(&st->stmts);
	memset(st, 0, sizeof(*st));
}

/*
 * Read the parameter type OIDs of a prepared statement, "23,25" (empty:
 * none), into a new array in *oids.  Their count, or -1 if the list is
 * malformed or memory runs out.
 */
static int
move_oids(const char *list, uint32_t **oids)
{
	const char	*p;
	char		*end;
	unsigned long	 v;
	int		 n;

	*oids = NULL;
	if (list == NULL || *list == '\0')
		return 0;
	for (n = 1, p = list; *p != '\0'; p++)
		if (*p == ',')
			n++;
	if (n > 65535 || (*oids = calloc(n, sizeof(**oids))) == NULL)
		return -1;
	for (n = 0, p = list; ; p = end + 1) {
		if (*p < '0' || *p > '9')
			break;
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno != 0 || v > 0xffffffffUL)
			break;
		(*oids)[n++] = v;
		if (*end == '\0')
			return n;
		if (*end != ',')
			break;
	}
	free(*oids);
	*oids = NULL;
	return -1;
}

/*
 * Read on the old server what a new session needs to be the same: its
 * client encoding, its session settings and its prepared statements.
 * -1 if the old server failed or refused, or a statement cannot move
 * (why says so).
 */
static int
move_state(struct pgm_server *s, struct move_state *st, char *why,
    size_t len)
{
	struct move_result r;
	uint32_t	*oids;
	int		 i;

	memset(st, 0, sizeof(*st));
	if (move_query(s, "SELECT pg_catalog.current_setting("
	    "'client_encoding')", &r) == -1)
		return -1;
	if (r.error[0] != '\0' || r.nrows != 1 || r.rows[0].col[0] == NULL) {
		snprintf(why, len, "reading its client_encoding: %s",
		    r.error[0] ? r.error : "no answer");
		move_result_free(&r);
		return -1;
	}
	st->encoding = r.rows[0].col[0];
	r.rows[0].col[0] = NULL;
	move_result_free(&r);
	/* Settings from the startup packet come back with the login. */
	if (move_query(s, "SELECT name, setting FROM pg_settings WHERE "
	    "source = 'session' AND name NOT IN ('is_superuser', "
	    "'server_encoding', 'server_version', 'integer_datetimes', "
	    "'session_authorization', 'transaction_isolation', "
	    "'transaction_read_only', 'transaction_deferrable')",
	    &st->settings) == -1)
		goto fail;
	if (st->settings.error[0] != '\0') {
		snprintf(why, len, "reading its settings: %s",
		    st->settings.error);
		goto fail;
	}
	if (move_query(s, "SELECT name, statement, from_sql::text, "
	    "array_to_string(parameter_types::oid[], ',') FROM "
	    "pg_prepared_statements", &st->stmts) == -1)
		goto fail;
	if (st->stmts.error[0] != '\0') {
		snprintf(why, len, "reading its prepared statements: %s",
		    st->stmts.error);
		goto fail;
	}
	for (i = 0; i < st->stmts.nrows; i++) {
		struct move_row *row = &st->stmts.rows[i];

		if (row->col[0] == NULL || row->col[1] == NULL)
			continue;
		if (row->col[2] != NULL && strcmp(row->col[2], "true") == 0) {
			/*
			 * The client's whole query string: run it again only
			 * if it is that PREPARE alone, else it might do more.
			 */
			if (!proto_is_lone_prepare((const uint8_t *)row->col[1],
			    strlen(row->col[1]))) {
				snprintf(why, len, "prepared statement \"%s\" "
				    "was made by a query string that did more "
				    "than PREPARE it", row->col[0]);
				goto fail;
			}
			continue;
		}
		if (move_oids(row->col[3], &oids) == -1) {
			snprintf(why, len, "prepared statement \"%s\" has "
			    "parameter types that cannot be read", row->col[0]);
			goto fail;
		}
		free(oids);
	}
	return 0;
fail:
	move_state_free(st);
	return -1;
}

/*
 * Give the new server's session what the old one had.  Returns 0 with
 * the first error the server answered in r (empty: none), or -1 if the
 * connection failed.
 */
static int
move_apply(struct pgm_server *s, const struct move_state *st,
    struct move_result *r)
{
	static const char *set = "SELECT pg_catalog.set_config($1, $2, false)";
	static const uint32_t textoids[2] = { 25, 25 };	/* text, text */
	struct pgm_buf	 b;
	const char	*v[2];
	uint32_t	*oids;
	int		 i, n, nready, rc;

	/*
	 * The client encoding first, alone: the server reads every text
	 * that follows in it, and it is the one they were read in.
	 */
	buf_init(&b);
	v[0] = "client_encoding";
	v[1] = st->encoding;
	proto_parse(&b, "", set, 2, textoids);
	proto_bind_text(&b, "", "", 2, v);
	proto_execute(&b, "");
	proto_close_statement(&b, "");
	proto_sync(&b);
	if ((rc = move_exchange(s, &b, 1, r)) == -1 || r->error[0] != '\0')
		goto out;
	move_result_free(r);
	/* The settings, then each statement, each with its own Sync. */
	buf_reset(&b);
	nready = 0;
	if (st->settings.nrows > 0) {
		proto_parse(&b, "", set, 2, textoids);
		for (i = 0; i < st->settings.nrows; i++) {
			v[0] = st->settings.rows[i].col[0];
			v[1] = st->settings.rows[i].col[1];
			if (v[0] == NULL || v[1] == NULL)
				continue;
			proto_bind_text(&b, "", "", 2, v);
			proto_execute(&b, "");
		}
		/* The client's unnamed statement is not ours to leave. */
		proto_close_statement(&b, "");
		proto_sync(&b);
		nready++;
	}
	for (i = 0; i < st->stmts.nrows; i++) {
		const struct move_row *row = &st->stmts.rows[i];

		if (row->col[0] == NULL || row->col[1] == NULL)
			continue;
		if (row->col[2] != NULL && strcmp(row->col[2], "true") == 0)
			proto_query(&b, row->col[1]);
		else {
			if ((n = move_oids(row->col[3], &oids)) == -1) {
				b.failed = 1;
				break;
			}
			proto_parse(&b, row->col[0], row->col[1], n, oids);
			free(oids);
			proto_sync(&b);
		}
		nready++;
	}
	rc = 0;
	if (nready > 0)
		rc = move_exchange(s, &b, nready, r);
out:
	buf_free(&b);
	return rc;
}

/* The ParameterStatus values a session had, kept past its connection. */
struct move_status {
	int		 n;
	char		*name[PGM_MAXSTATUS];
	char		*value[PGM_MAXSTATUS];
};

static void
move_status_save(struct move_status *st, const struct pgm_server *s)
{
	int		 i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < s->nstatus && i < PGM_MAXSTATUS; i++) {
		if ((st->name[st->n] = strdup(s->status_name[i])) == NULL)
			break;
		if ((st->value[st->n] = strdup(s->status_value[i])) == NULL) {
			free(st->name[st->n]);
			break;
		}
		st->n++;
	}
}

static void
move_status_free(struct move_status *st)
{
	int		 i;

	for (i = 0; i < st->n; i++) {
		free(st->name[i]);
		free(st->value[i]);
	}
	st->n = 0;
}

/*
 * Tell the client the ParameterStatus values the new server changed,
 * appended to what the relay will send it.
 */
static void
move_tell_client(struct pgm_buf *b, const struct move_status *old,
    const struct pgm_server *nw)
{
	int		 i, k, same;

	for (i = 0; i < nw->nstatus; i++) {
		for (same = 0, k = 0; k < old->n; k++)
			if (strcmp(old->name[k], nw->status_name[i]) == 0) {
				same = strcmp(old->value[k],
				    nw->status_value[i]) == 0;
				break;
			}
		if (!same)
			proto_parameter_status(b, nw->status_name[i],
			    nw->status_value[i]);
	}
}

/*
 * Load the running config in this worker, from the text the supervisor
 * published with it (never from the file, which may have changed
 * since).  Returns it, with its generation in *gen, or NULL.
 */
static struct pgm_config *
move_load(int *gen)
{
	static struct pgm_config_errors errs;
	struct pgm_config *nc;
	char		 tlserr[256], *text;

	if ((text = shm_config_get(gen)) == NULL) {
		log_warnx("reload in worker: the running configuration is not "
		    "available");
		return NULL;
	}
	nc = config_load_text(pgm_conf->path, text, &errs);
	free(text);
	if (nc == NULL) {
		log_warnx("reload in worker: %s:%d: %s", errs.file,
		    errs.n ? errs.err[0].line : 0,
		    errs.n ? errs.err[0].msg : "?");
		return NULL;
	}
	if (nc->ndatabases != pgm_conf->ndatabases ||
	    nc->nusers != pgm_conf->nusers) {
		log_warnx("reload in worker: the running configuration has "
		    "another shape");
		config_free(nc);
		return NULL;
	}
	if (tls_init(nc, tlserr, sizeof(tlserr)) == -1) {
		log_warnx("reload in worker: %s", tlserr);
		config_free(nc);
		return NULL;
	}
	return nc;
}

/* Note the generation this worker's config belongs to. */
void
move_init(int generation)
{
	move_gen = generation;
}

/* The generation of the config this worker's sessions run with. */
int
move_generation(void)
{
	return move_gen;
}

/*
 * Called by the relay when the session is between transactions and a
 * new request waits, unsent.  Moves the session if a reload pointed its
 * database elsewhere.  Returns 0 to go on (on *srvp, which may be a new
 * connection), or -1 when the session must end.  What the client must
 * be told either way is appended to tell.
 */
int
move_check(struct pgm_client *cl, struct pgm_server **srvp,
    struct pgm_buf *tell)
{
	struct pgm_server *old = *srvp, *nw;
	struct pgm_config *nc, *oc;
	struct pgm_buf	 out;
	struct move_result r;
	struct move_state state;
	struct move_status was;
	char		 why[512];
	int		 gen, rc;

	gen = __atomic_load_n(&pgm_shm->generation, __ATOMIC_ACQUIRE);
	if (gen == move_gen)
		return 0;
	if ((nc = move_load(&gen)) == NULL) {
		/* Staying on a server the config left would be wrong. */
		client_fatal(tell, "57P01", "terminating connection: pgmirror "
		    "was reloaded and this session cannot load the new "
		    "configuration");
		return -1;
	}
	move_gen = gen;
	oc = pgm_conf;
	if (config_same_connection(&oc->databases[cl->database],
	    &nc->databases[cl->database])) {
		/* Nothing moves; this worker leaves after its session. */
		config_free(nc);
		return 0;
	}
	log_info("database \"%s\" now on %s:%d: moving the session",
	    nc->databases[cl->database].name, nc->databases[cl->database].host,
	    nc->databases[cl->database].port);
	if (move_blockers(old, why, sizeof(why)) == -1) {
		config_free(nc);
		client_fatal(tell, "08006", "terminating connection: database "
		    "moved to another server and the old one failed while this "
		    "session was leaving it");
		return -1;
	}
	if (why[0] != '\0') {
		log_info("session cannot move: it holds %s", why);
		client_fatal(tell, "57P01", "terminating connection: database "
		    "\"%s\" moved to another server and this session holds %s, "
		    "which cannot move with it",
		    oc->databases[cl->database].name, why);
		config_free(nc);
		return -1;
	}
	why[0] = '\0';
	if (move_state(old, &state, why, sizeof(why)) == -1) {
		config_free(nc);
		client_fatal(tell, "57P01", "terminating connection: database "
		    "moved to another server and this session cannot follow: %s",
		    why[0] != '\0' ? why : "the old server failed");
		return -1;
	}
	/*
	 * Everything the new connection needs is read: the old one goes
	 * now, so its place in the pool is free for the new one (a full
	 * pool must not keep sessions from moving).  From here on the
	 * worker runs with the new config, and a failure ends the session.
	 */
	move_status_save(&was, old);
	pool_put(old, 0);
	*srvp = NULL;
	pool_close_all();
	pgm_conf = nc;
	config_free(oc);
	buf_init(&out);
	nw = pool_get(cl, &out);
	if (nw == NULL) {
		log_warnx("session could not move to the new server");
		if (out.len > 0)
			buf_put(tell, out.data, out.len);
		else
			client_fatal(tell, "08006", "terminating connection: "
			    "database moved and the new server cannot be "
			    "reached");
		buf_free(&out);
		move_state_free(&state);
		move_status_free(&was);
		return -1;
	}
	buf_free(&out);
	rc = move_apply(nw, &state, &r);
	move_state_free(&state);
	if (rc == -1) {
		move_result_free(&r);
		pool_put(nw, 0);
		move_status_free(&was);
		client_fatal(tell, "08006", "terminating connection: the new "
		    "server failed while the session moved");
		return -1;
	}
	if (r.error[0] != '\0') {
		log_warnx("session could not take its state to the new "
		    "server: %s", r.error);
		client_fatal(tell, "57P01", "terminating connection: database "
		    "moved to another server and this session's settings or "
		    "prepared statements failed there: %s", r.error);
		move_result_free(&r);
		pool_put(nw, 0);
		move_status_free(&was);
		return -1;
	}
	move_result_free(&r);
	move_tell_client(tell, &was, nw);
	move_status_free(&was);
	*srvp = nw;
	cancel_publish(cl, nw);
	log_info("session moved to %s:%d (backend pid %u)",
	    pgm_conf->databases[cl->database].host,
	    pgm_conf->databases[cl->database].port, nw->be_pid);
	return 0;
}
