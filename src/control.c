/*
 * control.c: the control socket, in the supervisor.
 *
 * pgmirrorctl and the admin console (admin.c) drive pgmirror through a
 * Unix stream socket at control_socket, mode 0660, answering only root
 * and the daemon's own user or group (SO_PEERCRED).  The protocol: the
 * client sends one line of at most CTLCMD_LINE_MAX bytes, the command
 * words separated by spaces ("show clients", "maintenance on appdb
 * --wait 10", "switchover --timeout 30 --sync-sequences"); the daemon
 * answers "OK" or "ERROR reason" on the first line, then maybe a table
 * (a line of column names, then rows; fields separated by tabs), then
 * closes.  The grammar of the requests and the answer format are
 * ctlcmd.c's; this file runs the commands.
 *
 * The supervisor never waits on a control client: connections are
 * non-blocking and kept in a small table that the supervisor's loop
 * polls.  Commands that take time (maintenance --wait, switchover) are
 * state machines advanced by ctl_tick on every turn of that loop.
 *
 * Maintenance lives in shared memory (pgm_shm->maintenance for all
 * databases, maint_db[] for one): a worker about to send the first
 * message of a new request while its session is idle waits instead,
 * until maintenance is off (relay.c).  A switchover is: maintenance on,
 * wait until no session is in a transaction or running a query, wait
 * until the mirror queues are empty, optionally copy sequence values to
 * the new servers (a child process, with libpq), reload, maintenance
 * off; on a timeout or a failure, maintenance goes back to what it was
 * and the new file is not applied.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "ctlcmd.h"
#include "pgmirror.h"

#define CTL_MAXCONN	PGM_CONTROL_MAXCONN
#define CTL_READ_TIMEOUT 10000		/* ms for a client to send its line */
#define CTL_DEFAULT_TIMEOUT 60		/* s: switchover without --timeout */

enum ctl_wait {
	CTL_NONE,
	CTL_MAINT_WAIT,			/* maintenance on --wait */
	CTL_SW_IDLE,			/* switchover: sessions to settle */
	CTL_SW_DRAIN,			/* ... mirror queues to empty */
	CTL_SW_SYNC			/* ... the sequence copy to finish */
};

struct ctl_conn {
	int		 fd;		/* -1: free */
	char		 line[CTLCMD_LINE_MAX + 1];
	size_t		 len;
	int64_t		 deadline;	/* for reading the request */
	struct pgm_buf	 out;		/* the answer, being written */
	size_t		 sent;
	int		 answered;	/* out is complete */
	/* a command in progress */
	enum ctl_wait	 wait;
	int64_t		 until;		/* its timeout */
	int		 db;		/* maintenance: databases[] or -1 */
	int		 sync_sequences;
	pid_t		 helper;	/* the sequence copy, or 0 */
	int		 helper_done;	/* reaped by the supervisor: */
	int		 helper_status;	/* ... with this status */
	int		 old_maint;	/* maintenance before a switchover */
	int		 sync_only;	/* sync-sequences: no reload after */
	int		 gone;		/* hung up while its command waits */
	int		 refused;	/* not a peer we answer */
};

static int	 ctl_fd = -1;
static int	 ctl_changed;	/* the status changed (control_changed) */
static int	 ctl_made_dir;
static char	*ctl_path;
static struct ctl_conn ctl_conns[CTL_MAXCONN];
static int64_t	 ctl_started;

/* ------------------------------------------------------------------ */
/* Answers.                                                           */

static void
ctl_ok(struct ctl_conn *c)
{
	buf_put(&c->out, "OK\n", 3);
}

static void __attribute__((format(printf, 2, 3)))
ctl_error(struct ctl_conn *c, const char *fmt, ...)
{
	char		 msg[512];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctlcmd_clean(msg, strlen(msg), 0);
	buf_put_strn(&c->out, "ERROR ");
	buf_put_strn(&c->out, msg);
	buf_put(&c->out, "\n", 1);
}

/* Append one field of a table row: tabs and newlines become spaces. */
static void
ctl_field(struct ctl_conn *c, const char *s, int last)
{
	size_t		 start = c->out.len;

	buf_put_strn(&c->out, s);
	if (!c->out.failed)
		ctlcmd_clean((char *)c->out.data + start, c->out.len - start,
		    0);
	buf_put_u8(&c->out, last ? '\n' : '\t');
}

/* A row (or the header) of NULL-terminated fields. */
static void
ctl_row(struct ctl_conn *c, const char *const *f)
{
	for (; *f != NULL; f++)
		ctl_field(c, *f, f[1] == NULL);
}

/* A row of printf-formatted fields separated by tabs in fmt. */
static void __attribute__((format(printf, 2, 3)))
ctl_rowf(struct ctl_conn *c, const char *fmt, ...)
{
	char		 line[2048];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	ctlcmd_clean(line, strlen(line), 1);
	buf_put_strn(&c->out, line);
	buf_put(&c->out, "\n", 1);
}

/* The answer is complete: send it, then close. */
static void
ctl_done(struct ctl_conn *c)
{
	c->answered = 1;
	c->wait = CTL_NONE;
	c->deadline = net_now_ms();	/* from now on, for writing it */
}

/* ------------------------------------------------------------------ */
/* What the scoreboard says.                                          */

static const char *
ctl_state_name(int st)
{
	switch (st) {
	case SLOT_TX_IDLE:
		return "idle";
	case SLOT_TX_BLOCK:
		return "in transaction";
	case SLOT_TX_FAILED:
		return "in failed transaction";
	case SLOT_TX_ACTIVE:
		return "active";
	case SLOT_TX_WAITING:
		return "waiting (maintenance)";
	}
	return "login";
}

/* Is a session inside a transaction or a query (for database db, or any)? */
static int
ctl_slot_busy(const struct pgm_slot *s, int db)
{
	int		 st = __atomic_load_n(&s->txstate, __ATOMIC_SEQ_CST);

	if (s->state != SLOT_BUSY || (db >= 0 && s->database != db))
		return 0;
	return st == SLOT_TX_ACTIVE || st == SLOT_TX_BLOCK ||
	    st == SLOT_TX_FAILED;
}

/* The sessions that keep maintenance from being complete. */
static int
ctl_count_busy(int db)
{
	int		 i, n = 0;

	for (i = 0; i < pgm_shm->nslots; i++)
		if (ctl_slot_busy(shm_slot(i), db))
			n++;
	return n;
}

static void
ctl_clients_header(struct ctl_conn *c)
{
	static const char *const h[] = { "pid", "user", "database",
	    "address", "state", "state_seconds", "server", "backend_pid",
	    NULL };

	ctl_row(c, h);
}

/* A row of SHOW CLIENTS for a busy slot. */
static void
ctl_client_row(struct ctl_conn *c, const struct pgm_slot *s, int64_t now)
{
	const struct pgm_config *cf = pgm_conf;
	char		 srv[128] = "";

	if (s->server_addrlen > 0)
		net_addr_str(&s->server_addr, srv, sizeof(srv));
	ctl_rowf(c, "%ld\t%s\t%s\t%s\t%s\t%lld\t%s\t%u", (long)s->pid,
	    s->user >= 0 && s->user < cf->nusers ? cf->users[s->user].name :
	    "", s->database >= 0 && s->database < cf->ndatabases ?
	    cf->databases[s->database].name : "", s->addr,
	    ctl_state_name(s->txstate),
	    (long long)(s->state_since ? (now - s->state_since) / 1000 : 0),
	    srv, s->server_pid);
}

static void
ctl_show_clients(struct ctl_conn *c, int only_busy, int db)
{
	int64_t		 now = net_now_ms();
	int		 i;

	ctl_clients_header(c);
	for (i = 0; i < pgm_shm->nslots; i++) {
		const struct pgm_slot *s = shm_slot(i);

		if (s->state != SLOT_BUSY || s->pid <= 0 || s->database < 0)
			continue;
		if (only_busy && !ctl_slot_busy(s, db))
			continue;
		ctl_client_row(c, s, now);
	}
}

static void
ctl_show_mirrors(struct ctl_conn *c)
{
	const char	*h[16];
	char		 text[512];
	int		 i, k = 0;

	h[k++] = "source";
	h[k++] = "destination";
	for (i = 0; mirror_stats_names[i] != NULL && k < 15; i++)
		h[k++] = mirror_stats_names[i];
	h[k] = NULL;
	ctl_row(c, h);
	for (i = 0; i < pgm_shm->nmirrors; i++) {
		mirror_stats_text(i, 0, text, sizeof(text));
		ctl_rowf(c, "%s\t%s\t%s", pgm_conf->mirrors[i].source,
		    pgm_conf->mirrors[i].destination, text);
	}
}

static void
ctl_show_pools(struct ctl_conn *c)
{
	static const char *const h[] = { "database", "user", "size", "open",
	    "parked", "waiting", NULL };
	const struct pgm_config *cf = pgm_conf;
	int		 p;

	ctl_row(c, h);
	for (p = 0; p < pgm_shm->npools; p++) {
		const struct pgm_pool_shared *ps = &pgm_shm->pools[p];

		if (!config_pool_valid(cf, p))
			continue;
		ctl_rowf(c, "%s\t%s\t%d\t%d\t%d\t%d",
		    cf->databases[p % cf->ndatabases].name,
		    cf->users[p / cf->ndatabases].name,
		    config_pool_size(cf, p), ps->count, ps->idle, ps->waiters);
	}
}

static void
ctl_show_servers(struct ctl_conn *c)
{
	static const char *const h[] = { "pid", "database", "user", "server",
	    "backend_pid", "state", NULL };
	const struct pgm_config *cf = pgm_conf;
	char		 srv[128];
	int		 i, k, p;

	ctl_row(c, h);
	for (i = 0; i < pgm_shm->nslots; i++) {
		const struct pgm_slot *s = shm_slot(i);

		if (s->pid <= 0 || s->state == SLOT_FREE)
			continue;
		if (s->state == SLOT_BUSY && s->server_addrlen > 0) {
			net_addr_str(&s->server_addr, srv, sizeof(srv));
			ctl_rowf(c, "%ld\t%s\t%s\t%s\t%u\tin use", (long)s->pid,
			    s->database >= 0 && s->database < cf->ndatabases ?
			    cf->databases[s->database].name : "",
			    s->user >= 0 && s->user < cf->nusers ?
			    cf->users[s->user].name : "", srv, s->server_pid);
		}
		for (k = 0; k < PGM_SLOT_HELD; k++) {
			if ((p = s->parked[k]) == 0 || !config_pool_valid(cf,
			    p - 1))
				continue;
			p--;
			ctl_rowf(c, "%ld\t%s\t%s\t%s:%d\t\tparked", (long)s->pid,
			    cf->databases[p % cf->ndatabases].name,
			    cf->users[p / cf->ndatabases].name,
			    cf->databases[p % cf->ndatabases].host,
			    cf->databases[p % cf->ndatabases].port);
		}
	}
}

static void
ctl_show_stats(struct ctl_conn *c)
{
	static const char *const h[] = { "database", "clients", "active",
	    "queries", "bytes_in", "bytes_out", NULL };
	const struct pgm_config *cf = pgm_conf;
	uint64_t	 q, bi, bo;
	int		 d, i, active;

	ctl_row(c, h);
	for (d = 0; d < cf->ndatabases; d++) {
		const struct pgm_db_stats *ds = &pgm_shm->dbstats[d];

		q = ds->queries;
		bi = ds->bytes_in;
		bo = ds->bytes_out;
		active = 0;
		for (i = 0; i < pgm_shm->nslots; i++) {
			const struct pgm_slot *s = shm_slot(i);

			if (s->state != SLOT_BUSY || s->database != d)
				continue;
			active++;
			q += s->queries;
			bi += s->bytes_in;
			bo += s->bytes_out;
		}
		ctl_rowf(c, "%s\t%llu\t%d\t%llu\t%llu\t%llu", cf->databases[d].name,
		    (unsigned long long)ds->clients, active,
		    (unsigned long long)q, (unsigned long long)bi,
		    (unsigned long long)bo);
	}
}

/*
 * SHOW CONFIG: the file, the listen addresses, every setting of the
 * table in its order (a password only as "********"), then the
 * databases and mirrors entries.
 */
static void
ctl_show_config(struct ctl_conn *c)
{
	const struct pgm_config *cf = pgm_conf;
	const struct pgm_setting *s;
	const char	*f[3];
	char		 v[32];
	int		 i;

	ctl_rowf(c, "name\tvalue");
	ctl_rowf(c, "config_file\t%s", cf->path);
	for (i = 0; i < cf->nlisten; i++)
		ctl_rowf(c, "listen\t%s%s%s:%d", cf->listen[i].path ?
		    cf->listen[i].path : "", cf->listen[i].host ?
		    cf->listen[i].host : "", cf->listen[i].path || cf->listen[i].host
		    ? "" : "*", cf->listen[i].port);
	for (s = config_settings; s->key != NULL; s++) {
		f[0] = s->key;
		f[1] = config_setting_text(s, cf, v, sizeof(v));
		f[2] = NULL;
		ctl_row(c, f);
	}
	for (i = 0; i < cf->ndatabases; i++)
		ctl_rowf(c, "databases.%s\t%s:%d/%s", cf->databases[i].name,
		    cf->databases[i].host, cf->databases[i].port,
		    cf->databases[i].dbname);
	for (i = 0; i < cf->nmirrors; i++)
		ctl_rowf(c, "mirrors.%s\t%s exposure %.2f queue %d",
		    cf->mirrors[i].source, cf->mirrors[i].destination,
		    cf->mirrors[i].exposure, cf->mirrors[i].queue);
}

/* Say which databases are in maintenance, as text. */
static void
ctl_maint_text(char *out, size_t len)
{
	size_t		 n = 0;
	int		 d;

	if (pgm_shm->maintenance) {
		snprintf(out, len, "on");
		return;
	}
	out[0] = '\0';
	for (d = 0; d < pgm_conf->ndatabases; d++)
		if (pgm_shm->maint_db[d] && n + 2 < len)
			n += snprintf(out + n, len - n, "%s%s", n ? "," : "",
			    pgm_conf->databases[d].name);
	if (n == 0)
		snprintf(out, len, "off");
}

static void
ctl_status(struct ctl_conn *c)
{
	char		 maint[256];
	int		 i, mw = 0;

	for (i = 0; i < pgm_shm->nmworkers; i++)
		if (pgm_shm->mworkers[i].pid > 0)
			mw++;
	ctl_maint_text(maint, sizeof(maint));
	ctl_rowf(c, "name\tvalue");
	ctl_rowf(c, "version\t%s", PACKAGE_VERSION);
	ctl_rowf(c, "pid\t%ld", (long)getpid());
	ctl_rowf(c, "uptime_seconds\t%lld",
	    (long long)((net_now_ms() - ctl_started) / 1000));
	ctl_rowf(c, "config_file\t%s", pgm_conf->path);
	ctl_rowf(c, "generation\t%d", pgm_shm->generation);
	ctl_rowf(c, "maintenance\t%s", maint);
	ctl_rowf(c, "workers\t%d", pgm_shm->nslots -
	    shm_count_state(SLOT_FREE));
	ctl_rowf(c, "clients\t%d", shm_count_state(SLOT_BUSY));
	ctl_rowf(c, "clients_in_transaction\t%d", ctl_count_busy(-1));
	ctl_rowf(c, "clients_served\t%llu",
	    (unsigned long long)pgm_shm->clients_total);
	ctl_rowf(c, "mirror_workers\t%d", mw);
	ctl_rowf(c, "mirrors\t%d", pgm_shm->nmirrors);
}

/* ------------------------------------------------------------------ */
/* Maintenance and switchover.                                        */

/* Turn maintenance on or off for database db, or for all (-1). */
static void
ctl_set_maintenance(int db, int on)
{
	int		 d;

	if (db >= 0)
		__atomic_store_n(&pgm_shm->maint_db[db], (uint8_t)on,
		    __ATOMIC_SEQ_CST);
	else {
		/* "off" for all lifts the per-database ones too. */
		if (!on)
			for (d = 0; d < pgm_conf->ndatabases; d++)
				__atomic_store_n(&pgm_shm->maint_db[d], 0,
				    __ATOMIC_SEQ_CST);
		__atomic_store_n(&pgm_shm->maintenance, on, __ATOMIC_SEQ_CST);
	}
	log_info("maintenance %s%s%s", on ? "on" : "off",
	    db >= 0 ? " for " : "", db >= 0 ? pgm_conf->databases[db].name :
	    "");
	ctl_changed = 1;
}

/*
 * Turn the maintenance of every database on or off, leaving the
 * per-database ones as they are (a switchover's own pause).
 */
static void
ctl_set_global_maintenance(int on)
{
	__atomic_store_n(&pgm_shm->maintenance, on, __ATOMIC_SEQ_CST);
	log_info("maintenance %s", on ? "on" : "off");
	ctl_changed = 1;
}

/* Are the mirror queues empty?  Names the first that is not. */
static int
ctl_drained(char *why, size_t len)
{
	struct pgm_mstats st;
	int		 i;

	for (i = 0; i < pgm_shm->nmirrors; i++) {
		mirror_stats(i, &st);
		if (st.queue_length > 0) {
			snprintf(why, len, "mirror %s -> %s still has %llu "
			    "transactions queued (lag %lld ms)",
			    pgm_conf->mirrors[i].source,
			    pgm_conf->mirrors[i].destination,
			    (unsigned long long)st.queue_length,
			    (long long)st.lag_ms);
			return 0;
		}
	}
	return 1;
}

/* A switchover failed: maintenance back to what it was, nothing applied. */
static void __attribute__((format(printf, 2, 3)))
ctl_sw_fail(struct ctl_conn *c, const char *fmt, ...)
{
	char		 msg[512];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->helper > 0) {
		kill(c->helper, SIGKILL);
		c->helper = 0;
	}
	if (!c->old_maint)
		ctl_set_global_maintenance(0);
	log_warnx("switchover rolled back: %s", msg);
	ctl_error(c, "switchover rolled back: %s", msg);
}

/*
 * Copy sequence values from the old servers to the new ones (a child
 * process: libpq blocks).  For every database entry whose server the
 * file on disk changes, every sequence on the new server is set to at
 * least its value on the old one.  Exits 0 on success.
 */
static void __attribute__((noreturn))
ctl_sync_child(const struct pgm_config *oc, const struct pgm_config *nc)
{
	int		 d;

	for (d = 0; d < oc->ndatabases; d++) {
		const struct pgm_database *a = &oc->databases[d];
		const struct pgm_database *b = &nc->databases[d];

		if (config_same_server(a, b))
			continue;	/* the data is where it was */
		if (control_sync_database(oc, d, nc) == -1)
			_exit(1);
	}
	_exit(0);
}

/* Open a libpq connection to a database entry as its first usable user. */
static PGconn *
ctl_pq_connect(const struct pgm_config *cf, int db)
{
	const struct pgm_database *d = &cf->databases[db];
	const struct pgm_user *u = NULL;
	const char	*keys[8], *vals[8];
	char		 port[16];
	PGconn		*conn;
	int		 i;

	for (i = 0; i < cf->nusers; i++)
		if (config_find_user(cf, cf->users[i].name, db) == i &&
		    cf->users[i].plain != NULL) {
			u = &cf->users[i];
			break;
		}
	if (u == NULL) {
		log_warnx("sync-sequences: no users entry with a plain "
		    "password for database \"%s\"", d->name);
		return NULL;
	}
	snprintf(port, sizeof(port), "%d", d->port);
	keys[0] = "host";	vals[0] = d->host;
	keys[1] = "port";	vals[1] = port;
	keys[2] = "dbname";	vals[2] = d->dbname;
	keys[3] = "user";	vals[3] = u->name;
	keys[4] = "password";	vals[4] = u->plain;
	keys[5] = "application_name"; vals[5] = "pgmirror sync-sequences";
	keys[6] = "connect_timeout"; vals[6] = "10";
	keys[7] = NULL;		vals[7] = NULL;
	conn = PQconnectdbParams(keys, vals, 0);
	if (PQstatus(conn) != CONNECTION_OK) {
		log_warnx("sync-sequences: cannot connect to %s:%d/%s: %s",
		    d->host, d->port, d->dbname, PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/*
 * Set every sequence of database entry db on its server under nc to at
 * least its value on its server under oc.  0, or -1 (logged).
 */
int
control_sync_database(const struct pgm_config *oc, int db,
    const struct pgm_config *nc)
{
	static const char *list = "SELECT format('%I.%I', schemaname, "
	    "sequencename), last_value FROM pg_sequences WHERE last_value IS "
	    "NOT NULL";
	PGconn		*from, *to = NULL;
	PGresult	*r, *s;
	const char	*params[2];
	int		 i, rc = -1, n = 0;

	if ((from = ctl_pq_connect(oc, db)) == NULL)
		return -1;
	if ((to = ctl_pq_connect(nc, db)) == NULL)
		goto out;
	r = PQexec(from, list);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		log_warnx("sync-sequences: reading sequences: %s",
		    PQerrorMessage(from));
		PQclear(r);
		goto out;
	}
	for (i = 0; i < PQntuples(r); i++) {
		params[0] = PQgetvalue(r, i, 0);
		params[1] = PQgetvalue(r, i, 1);
		s = PQexecParams(to, "SELECT setval(format('%I.%I', "
		    "schemaname, sequencename)::regclass, $2::bigint) FROM "
		    "pg_sequences WHERE format('%I.%I', schemaname, "
		    "sequencename) = $1::text AND coalesce(last_value, 0) < "
		    "$2::bigint", 2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(s) != PGRES_TUPLES_OK) {
			log_warnx("sync-sequences: %s: %s", params[0],
			    PQerrorMessage(to));
			PQclear(s);
			PQclear(r);
			goto out;
		}
		n += PQntuples(s);
		PQclear(s);
	}
	log_info("sync-sequences: database \"%s\": %d of %d sequences "
	    "raised on the new server", oc->databases[db].name, n,
	    PQntuples(r));
	PQclear(r);
	rc = 0;
out:
	PQfinish(from);
	PQfinish(to);
	return rc;
}

/* Start copying sequences in a child; 0, or -1 with the answer set. */
static int
ctl_sw_start_sync(struct ctl_conn *c)
{
	static struct pgm_config_errors errs;
	struct pgm_config *nc;
	pid_t		 pid;

	if ((nc = config_load(pgm_conf->path, &errs)) == NULL) {
		ctl_sw_fail(c, "%s:%d: %s", errs.file, errs.n ?
		    errs.err[0].line : 0, errs.n ? errs.err[0].msg : "?");
		return -1;
	}
	switch ((pid = fork())) {
	case -1:
		config_free(nc);
		ctl_sw_fail(c, "fork: %s", strerror(errno));
		return -1;
	case 0:
		proc_forked(0);
		proc_handlers(SIG_DFL, 0);
		ctl_sync_child(pgm_conf, nc);
	}
	config_free(nc);
	c->helper = pid;
	c->wait = CTL_SW_SYNC;
	return 0;
}

/* Reload and finish a switchover. */
static void
ctl_sw_apply(struct ctl_conn *c)
{
	char		 why[512];

	if (reload_apply(why, sizeof(why)) == -1) {
		ctl_sw_fail(c, "reload: %s", why);
		ctl_done(c);
		return;
	}
	if (!c->old_maint)
		ctl_set_global_maintenance(0);
	log_info("switchover done (generation %d)", pgm_shm->generation);
	ctl_ok(c);
	ctl_rowf(c, "name\tvalue");
	ctl_rowf(c, "generation\t%d", pgm_shm->generation);
	ctl_done(c);
}

/* Advance a command that waits. */
static void
ctl_advance(struct ctl_conn *c, int64_t now)
{
	char		 why[512];
	int		 status, n;

	switch (c->wait) {
	case CTL_NONE:
		return;
	case CTL_MAINT_WAIT:
		if (ctl_count_busy(c->db) == 0) {
			ctl_ok(c);
			ctl_done(c);
		} else if (now >= c->until) {
			n = ctl_count_busy(c->db);
			ctl_error(c, "%d session%s still in a transaction or a "
			    "query after the wait; maintenance stays on", n,
			    n == 1 ? "" : "s");
			ctl_show_clients(c, 1, c->db);
			ctl_done(c);
		}
		return;
	case CTL_SW_IDLE:
		if (ctl_count_busy(-1) == 0) {
			c->wait = CTL_SW_DRAIN;
			log_info("switchover: no session in a transaction; "
			    "waiting for the mirror queues");
			ctl_advance(c, now);
		} else if (now >= c->until) {
			n = ctl_count_busy(-1);
			ctl_sw_fail(c, "timed out: %d session%s still in a "
			    "transaction or a query", n, n == 1 ? "" : "s");
			ctl_show_clients(c, 1, -1);
			ctl_done(c);
		}
		return;
	case CTL_SW_DRAIN:
		if (ctl_drained(why, sizeof(why))) {
			if (c->sync_sequences) {
				log_info("switchover: queues empty; copying "
				    "sequences");
				if (ctl_sw_start_sync(c) == -1)
					ctl_done(c);
			} else
				ctl_sw_apply(c);
		} else if (now >= c->until) {
			ctl_sw_fail(c, "timed out: %s", why);
			ctl_show_mirrors(c);
			ctl_done(c);
		}
		return;
	case CTL_SW_SYNC:
		if (c->helper > 0 && (c->helper_done ||
		    waitpid(c->helper, &status, WNOHANG) == c->helper)) {
			if (c->helper_done)
				status = c->helper_status;
			c->helper = 0;
			c->helper_done = 0;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
			    c->sync_only) {
				ctl_ok(c);
				ctl_done(c);
			} else if (WIFEXITED(status) &&
			    WEXITSTATUS(status) == 0)
				ctl_sw_apply(c);
			else {
				ctl_sw_fail(c, "copying sequences failed (see "
				    "the log)");
				ctl_done(c);
			}
		} else if (now >= c->until) {
			ctl_sw_fail(c, "timed out copying sequences");
			ctl_done(c);
		}
		return;
	}
}

/* ------------------------------------------------------------------ */
/* Requests.                                                          */

/* Run maintenance on|off [DATABASE] [--wait SECONDS]. */
static void
ctl_cmd_maintenance(struct ctl_conn *c, const struct ctlcmd_req *r)
{
	int		 db = -1;

	if (r->arg[0] != NULL &&
	    (db = config_find_database(pgm_conf, r->arg[0])) == -1) {
		ctl_error(c, "no database \"%s\"", r->arg[0]);
		return;
	}
	ctl_set_maintenance(db, r->sub);
	if (r->sub && r->seconds >= 0) {
		c->wait = CTL_MAINT_WAIT;
		c->db = db;
		c->until = net_now_ms() + (int64_t)r->seconds * 1000;
		ctl_advance(c, net_now_ms());
		return;
	}
	ctl_ok(c);
}

/* Start a switchover [--timeout SECONDS] [--sync-sequences]. */
static void
ctl_cmd_switchover(struct ctl_conn *c, const struct ctlcmd_req *r)
{
	static struct pgm_config_errors errs;
	struct pgm_config *nc;
	int		 timeout, i;

	timeout = r->seconds >= 0 ? (int)r->seconds : CTL_DEFAULT_TIMEOUT;
	for (i = 0; i < CTL_MAXCONN; i++)
		if (&ctl_conns[i] != c && ctl_conns[i].fd != -1 &&
		    ctl_conns[i].wait >= CTL_SW_IDLE) {
			ctl_error(c, "a switchover is already running");
			return;
		}
	/* Refuse a file that would not load before pausing anyone. */
	if ((nc = config_load(pgm_conf->path, &errs)) == NULL) {
		ctl_error(c, "%s:%d: %s; nothing changed", errs.file,
		    errs.n ? errs.err[0].line : 0,
		    errs.n ? errs.err[0].msg : "?");
		return;
	}
	config_free(nc);
	c->old_maint = pgm_shm->maintenance;
	c->sync_sequences = (r->opts & CTLCMD_OPT_SYNC) != 0;
	c->until = net_now_ms() + (int64_t)timeout * 1000;
	c->wait = CTL_SW_IDLE;
	log_info("switchover: maintenance on; waiting up to %d s", timeout);
	ctl_set_global_maintenance(1);
	ctl_advance(c, net_now_ms());
}

/* Run reload [--check]. */
static void
ctl_cmd_reload(struct ctl_conn *c, const struct ctlcmd_req *r)
{
	char		 why[512];

	if (r->opts & CTLCMD_OPT_CHECK) {
		if (reload_check(why, sizeof(why)) == -1)
			ctl_error(c, "%s", why);
		else
			ctl_ok(c);
		return;
	}
	if (reload_apply(why, sizeof(why)) == -1)
		ctl_error(c, "%s", why);
	else
		ctl_ok(c);
}

/* Start copying the sequences alone (a fleet switchover's step). */
static void
ctl_cmd_sync(struct ctl_conn *c)
{
	c->old_maint = 1;	/* a failure must not lift maintenance */
	c->sync_only = 1;
	if (ctl_sw_start_sync(c) == 0)
		c->until = net_now_ms() + 600 * 1000;
	/* ctl_advance answers; a failure answered already */
}

/* Answer show WHAT. */
static void
ctl_cmd_show(struct ctl_conn *c, int what)
{
	ctl_ok(c);
	switch (what) {
	case CTLCMD_SHOW_CLIENTS:
		ctl_show_clients(c, 0, -1);
		break;
	case CTLCMD_SHOW_CONFIG:
		ctl_show_config(c);
		break;
	case CTLCMD_SHOW_MIRRORS:
		ctl_show_mirrors(c);
		break;
	case CTLCMD_SHOW_POOLS:
		ctl_show_pools(c);
		break;
	case CTLCMD_SHOW_SERVERS:
		ctl_show_servers(c);
		break;
	case CTLCMD_SHOW_STATS:
		ctl_show_stats(c);
		break;
	case CTLCMD_SHOW_VERSION:
		ctl_rowf(c, "version");
		ctl_rowf(c, "pgmirror %s", PACKAGE_VERSION);
		break;
	}
}

/* Run one request line. */
static void
ctl_request(struct ctl_conn *c)
{
	struct ctlcmd_req r;
	char		*w[CTLCMD_WORDS_MAX], err[512];
	int		 n;

	if (c->refused) {
		log_warnx("control: refused a peer that is neither root nor "
		    "our user or group");
		ctl_error(c, "permission denied");
		ctl_done(c);
		return;
	}
	n = ctlcmd_split(c->line, w, CTLCMD_WORDS_MAX);
	log_debug("control: %s%s%s", n > 0 ? w[0] : "", n > 1 ? " " : "",
	    n > 1 ? w[1] : "");
	if (ctlcmd_parse(n, w, CTLCMD_REQUEST, &r, err, sizeof(err)) == -1)
		ctl_error(c, "%s", err);
	else {
		switch (r.id) {
		case CTLCMD_STATUS:
			ctl_ok(c);
			ctl_status(c);
			break;
		case CTLCMD_SHOW:
			ctl_cmd_show(c, r.sub);
			break;
		case CTLCMD_MAINTENANCE:
			ctl_cmd_maintenance(c, &r);
			break;
		case CTLCMD_RELOAD:
			ctl_cmd_reload(c, &r);
			break;
		case CTLCMD_SWITCHOVER:
			ctl_cmd_switchover(c, &r);
			break;
		case CTLCMD_SYNC_SEQUENCES:
			ctl_cmd_sync(c);
			break;
		case CTLCMD_VERIFY:	/* pgmirrorctl's own: no request */
			ctl_error(c, "unknown command \"%s\"", w[0]);
			break;
		}
	}
	if (c->wait == CTL_NONE)
		ctl_done(c);
}

/* ------------------------------------------------------------------ */
/* The socket.                                                        */

/*
 * Open the control socket.  Refuses (fatal) when another live process
 * answers at that path.  The parent directory is created if missing.
 */
void
control_open(const struct pgm_config *cf)
{
	struct sockaddr_un sun;
	char		 dir[sizeof(sun.sun_path)], *slash;
	int		 i;

	for (i = 0; i < CTL_MAXCONN; i++) {
		ctl_conns[i].fd = -1;
		buf_init(&ctl_conns[i].out);
	}
	ctl_started = net_now_ms();
	if (cf->control_socket == NULL || cf->control_socket[0] == '\0')
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(cf->control_socket) >= sizeof(sun.sun_path))
		fatalx("control_socket %s: path too long", cf->control_socket);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", cf->control_socket);
	snprintf(dir, sizeof(dir), "%s", sun.sun_path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0750) == 0)
			ctl_made_dir = 1;
		else if (errno != EEXIST)
			log_warn("mkdir %s", dir);
	}
	if (net_unix_in_use(&sun))
		fatalx("control socket %s is in use by a running pgmirror",
		    sun.sun_path);
	(void)unlink(sun.sun_path);
	if ((ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		fatal("socket");
	proc_own_fd(ctl_fd, 0);
	if (bind(ctl_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("bind %s", sun.sun_path);
	if (chmod(sun.sun_path, 0660) == -1)
		fatal("chmod %s", sun.sun_path);
	if (listen(ctl_fd, 16) == -1)
		fatal("listen %s", sun.sun_path);
	if ((ctl_path = strdup(sun.sun_path)) == NULL)
		fatal("strdup");
	log_info("control socket %s", ctl_path);
}

/* Give the control socket, and its directory if we made it, to uid. */
void
control_chown(uid_t uid, gid_t gid)
{
	char		 dir[PATH_MAX], *slash;

	if (ctl_path == NULL)
		return;
	if (chown(ctl_path, uid, gid) == -1)
		log_warn("chown %s", ctl_path);
	snprintf(dir, sizeof(dir), "%s", ctl_path);
	if (ctl_made_dir && (slash = strrchr(dir, '/')) != NULL &&
	    slash != dir) {
		*slash = '\0';
		if (chown(dir, uid, gid) == -1)
			log_warn("chown %s", dir);
	}
}

/* Close the control socket and remove its file (shutdown). */
void
control_close(void)
{
	int		 i;

	for (i = 0; i < CTL_MAXCONN; i++) {
		if (ctl_conns[i].helper > 0)
			kill(ctl_conns[i].helper, SIGKILL);
		if (ctl_conns[i].fd != -1) {
			proc_disown_fd(ctl_conns[i].fd);
			close(ctl_conns[i].fd);
			ctl_conns[i].fd = -1;
		}
	}
	if (ctl_fd != -1) {
		proc_disown_fd(ctl_fd);
		close(ctl_fd);
		ctl_fd = -1;
	}
	if (ctl_path != NULL) {
		(void)unlink(ctl_path);
		free(ctl_path);
		ctl_path = NULL;
	}
}

/* May this peer drive us?  Root, our user, or our group. */
static int
ctl_peer_ok(int fd)
{
	struct ucred	 cr;
	socklen_t	 len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == -1)
		return 0;
	return cr.uid == 0 || cr.uid == geteuid() || cr.gid == getegid();
}

/* Accept new control clients. */
static void
ctl_accept(void)
{
	struct ctl_conn	*c = NULL;
	int		 fd, i;

	while ((fd = accept4(ctl_fd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) != -1) {
		for (i = 0, c = NULL; i < CTL_MAXCONN; i++)
			if (ctl_conns[i].fd == -1) {
				c = &ctl_conns[i];
				break;
			}
		if (c == NULL) {
			static const char busy[] = "ERROR busy: too many "
			    "control connections\n";

			(void)write(fd, busy, sizeof(busy) - 1);
			close(fd);
			continue;
		}
		c->fd = fd;
		proc_own_fd(fd, 0);
		c->len = 0;
		c->sent = 0;
		c->answered = 0;
		c->wait = CTL_NONE;
		c->helper = 0;
		c->sync_only = 0;
		c->gone = 0;
		c->refused = 0;
		buf_reset(&c->out);
		c->deadline = net_now_ms() + CTL_READ_TIMEOUT;
		/* Refused after its request, which it may send meanwhile. */
		c->refused = !ctl_peer_ok(fd);
	}
}

/* Read what a client sent; run its request once the line is whole. */
static void
ctl_read(struct ctl_conn *c)
{
	ssize_t		 n;
	char		*nl;

	n = read(c->fd, c->line + c->len, sizeof(c->line) - 1 - c->len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* Gone before asking. */
		c->answered = 1;
		c->out.len = 0;
		return;
	}
	c->len += n;
	c->line[c->len] = '\0';
	if ((nl = memchr(c->line, '\n', c->len)) != NULL) {
		*nl = '\0';
		if (nl > c->line && nl[-1] == '\r')
			nl[-1] = '\0';
		ctl_request(c);
	} else if (c->len == sizeof(c->line) - 1) {
		log_warnx("control: request longer than %d bytes refused",
		    CTLCMD_LINE_MAX);
		ctl_error(c, "request too long");
		ctl_done(c);
	}
}

/* Write what we can of an answer; close when all is sent. */
static void
ctl_write(struct ctl_conn *c)
{
	ssize_t		 n;

	while (c->sent < c->out.len) {
		n = send(c->fd, c->out.data + c->sent, c->out.len - c->sent,
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0)
			break;
		c->sent += n;
	}
	proc_disown_fd(c->fd);
	close(c->fd);
	c->fd = -1;
	buf_reset(&c->out);
}

/*
 * Fill pollfds for the control socket and its clients (at most
 * PGM_CONTROL_MAXCONN + 1 of them).  Returns how many were used.
 */
int
control_pollfds(struct pollfd *pfd)
{
	int		 i, n = 0;

	if (ctl_fd == -1)
		return 0;
	pfd[n].fd = ctl_fd;
	pfd[n++].events = POLLIN;
	for (i = 0; i < CTL_MAXCONN; i++) {
		struct ctl_conn *c = &ctl_conns[i];

		if (c->fd == -1 || c->gone)
			continue;
		pfd[n].fd = c->fd;
		/*
		 * A command that waits goes on to its end even if its client
		 * leaves (or only shut its side, as socat does); its answer
		 * then finds nobody.
		 */
		pfd[n++].events = c->answered ? POLLOUT : c->wait != CTL_NONE ?
		    0 : POLLIN;
	}
	return n;
}

/* Is a switchover under way (a SIGHUP waits for its end)? */
int
control_switching(void)
{
	int		 i;

	for (i = 0; i < CTL_MAXCONN; i++)
		if (ctl_conns[i].fd != -1 && ctl_conns[i].wait >= CTL_SW_IDLE &&
		    !ctl_conns[i].sync_only)
			return 1;
	return 0;
}

/* Is a command waiting, so the supervisor should turn faster? */
int
control_busy(void)
{
	int		 i;

	for (i = 0; i < CTL_MAXCONN; i++)
		if (ctl_conns[i].fd != -1 && (ctl_conns[i].wait != CTL_NONE ||
		    ctl_conns[i].answered))
			return 1;
	return 0;
}

/* Act on what poll found, and advance the waiting commands. */
void
control_tick(const struct pollfd *pfd, int n)
{
	int64_t		 now = net_now_ms();
	int		 i, k;

	for (k = 0; k < n; k++) {
		if (pfd[k].fd == ctl_fd) {
			if (pfd[k].revents & POLLIN)
				ctl_accept();
			continue;
		}
		for (i = 0; i < CTL_MAXCONN; i++) {
			struct ctl_conn *c = &ctl_conns[i];

			if (c->fd != pfd[k].fd || pfd[k].revents == 0)
				continue;
			if (!c->answered && c->wait == CTL_NONE &&
			    pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
				ctl_read(c);
			else if (c->wait != CTL_NONE &&
			    pfd[k].revents & (POLLHUP | POLLERR))
				c->gone = 1;	/* poll it no more */
		}
	}
	for (i = 0; i < CTL_MAXCONN; i++) {
		struct ctl_conn *c = &ctl_conns[i];

		if (c->fd == -1)
			continue;
		if (!c->answered && c->wait == CTL_NONE && now >= c->deadline) {
			ctl_error(c, "no request within %d s",
			    CTL_READ_TIMEOUT / 1000);
			ctl_done(c);
			c->deadline = now + CTL_READ_TIMEOUT;
		}
		if (c->answered && c->sent < c->out.len && now >= c->deadline +
		    CTL_READ_TIMEOUT) {
			/* It does not read its answer: let it go. */
			proc_disown_fd(c->fd);
			close(c->fd);
			c->fd = -1;
			buf_reset(&c->out);
			continue;
		}
		if (c->wait != CTL_NONE)
			ctl_advance(c, now);
		if (c->answered)
			ctl_write(c);
	}
}

/*
 * The supervisor reaped a child it does not know: if it is a sequence
 * copy, keep its status for the command waiting on it.  Returns 1 if
 * it was ours.
 */
int
control_reaped(pid_t pid, int status)
{
	int		 i;

	for (i = 0; i < CTL_MAXCONN; i++)
		if (ctl_conns[i].fd != -1 && ctl_conns[i].helper == pid) {
			ctl_conns[i].helper_done = 1;
			ctl_conns[i].helper_status = status;
			return 1;
		}
	return 0;
}

/* A one-line summary for systemd's STATUS=. */
void
control_status(char *out, size_t len)
{
	char		 maint[128];
	struct pgm_mstats st;
	uint64_t	 q = 0;
	int		 i;

	ctl_maint_text(maint, sizeof(maint));
	for (i = 0; i < pgm_shm->nmirrors; i++) {
		mirror_stats(i, &st);
		q += st.queue_length;
	}
	snprintf(out, len, "clients %d, maintenance %s, mirror queue %llu",
	    shm_count_state(SLOT_BUSY), maint, (unsigned long long)q);
}

/* Has the status changed since the last call (maintenance)? */
int
control_changed(void)
{
	int		 changed = ctl_changed;

	ctl_changed = 0;
	return changed;
}
