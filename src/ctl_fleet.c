/*
 * ctl_fleet.c: pgmirrorctl -H, the admin consoles of one or more
 * pgmirror instances, and the fleet switchover.
 *
 * Owns the instances of -H and a libpq multiplexer that runs one
 * statement at all of them at once ("MAINTENANCE ON appdb WAIT 10;",
 * written by ctlcmd_format), without blocking: connections started
 * with PQconnectStartParams, statements sent and answers read in
 * non-blocking mode, one poll over all sockets, each instance with its
 * deadline.  An error's table comes back in its DETAIL.  The tables of
 * several instances are merged under a first column "instance".
 *
 * And the fleet switchover: several instances step by step (check,
 * pause, drain, sync sequences, reload, resume), each step with a
 * deadline; maintenance turned off everywhere on a failure or a
 * SIGINT/SIGTERM before the reload, kept on everywhere when only some
 * instances reloaded, with the ways out spelled as commands.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pgmirror.h"
#include "pgmirrorctl.h"

#define PGMCTL_ADMIN_DATABASE	"pgmirror"	/* without a config file */
#define PGMCTL_ADMIN_USER	"admin"
#define PGMCTL_ADMIN_PORT	"6432"	/* -H HOST without a port */
#define PGMCTL_FLEET_TIMEOUT	60	/* s, fleet switchover, as pgmirror's */
#define PGMCTL_DRAIN_POLL_MS	250	/* fleet switchover: SHOW MIRRORS */
#define PGMCTL_FLEET_GRACE	10	/* s, fleet: an answer beyond its wait */
#define PGMCTL_KEEPALIVES_IDLE	"10"	/* s, -H: TCP keepalives */
#define PGMCTL_KEEPALIVES_INTERVAL "5"
#define PGMCTL_KEEPALIVES_COUNT	"3"

/* Where an instance is in pgmctl_inst_run. */
enum pgmctl_inst_state {
	INST_IDLE,			/* nothing in flight */
	INST_CONNECTING,		/* PQconnectPoll */
	INST_SENDING,			/* libpq holds part of the statement */
	INST_WAITING			/* for the answer */
};

/* One pgmirror instance reached through its admin console (-H). */
struct pgmctl_inst {
	char		*name;		/* HOST:PORT as given */
	char		*host;
	char		*port;
	PGconn		*conn;
	enum pgmctl_inst_state state;
	PostgresPollingStatusType polling;	/* INST_CONNECTING */
	int64_t		 until;		/* ms: given up on then */
	int		 skip;		/* left out of pgmctl_inst_run */
	int		 unanswered;	/* the statement went out, no answer */
	int		 late;		/* given up on at the deadline */
	struct pgmctl_answer ans;	/* of the last statement */
};

/* Fleet switchover: the signal caught, and a pipe to wake poll with. */
static volatile sig_atomic_t pgmctl_interrupted;
static int		 pgmctl_sigfd[2] = { -1, -1 };

/* --- admin consoles (-H) --------------------------------------------- */

/*
 * One table from the tables of several instances: a first column
 * "instance", then the union of their columns in order of first
 * appearance; a cell an instance has no column for is empty.  Only the
 * instances that failed, with failed set.  NULL if no instance has a
 * table.
 */
static struct pgmctl_table *
pgmctl_table_merge(struct pgmctl_inst *in, size_t n, int failed)
{
	struct pgmctl_table *m = NULL, *t;
	const char	**hdr, **row;
	size_t		 i, r, c, ncols = 1, cap = 1;
	int		*map, k, seen = 0;

	hdr = pgmctl_realloc(NULL, cap, sizeof(*hdr));
	hdr[0] = "instance";
	for (i = 0; i < n; i++) {
		if ((t = in[i].ans.table) == NULL || (failed && in[i].ans.ok))
			continue;
		for (c = 0; c < t->ncols; c++) {
			for (k = 0; (size_t)k < ncols; k++)
				if (strcmp(hdr[k], PGMCTL_CELL(t, 0, c)) == 0)
					break;
			if ((size_t)k < ncols)
				continue;
			if (ncols == cap) {
				cap *= 2;
				hdr = pgmctl_realloc(hdr, cap, sizeof(*hdr));
			}
			hdr[ncols++] = PGMCTL_CELL(t, 0, c);
		}
		seen = 1;
	}
	if (!seen) {
		free(hdr);
		return NULL;
	}
	m = pgmctl_table_new(ncols, hdr);
	row = pgmctl_realloc(NULL, ncols, sizeof(*row));
	map = pgmctl_realloc(NULL, ncols, sizeof(*map));
	for (i = 0; i < n; i++) {
		if ((t = in[i].ans.table) == NULL || (failed && in[i].ans.ok))
			continue;
		for (c = 1; c < ncols; c++)
			map[c] = pgmctl_table_col(t, hdr[c]);
		for (r = 1; r <= t->nrows; r++) {
			row[0] = in[i].name;
			for (c = 1; c < ncols; c++)
				row[c] = map[c] >= 0 ?
				    PGMCTL_CELL(t, r, map[c]) : "";
			pgmctl_table_add(m, row);
		}
	}
	free(row);
	free(map);
	free(hdr);
	return m;
}

/* Parse -H "HOST[:PORT],..." into instances; NULL after a usage error. */
static struct pgmctl_inst *
pgmctl_inst_parse(const char *list, size_t *np)
{
	struct pgmctl_inst	*in = NULL, *p;
	char		*copy, *tok, *save, *colon, *host;
	size_t		 n = 0;

	copy = pgmctl_strdup(list);
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		in = pgmctl_realloc(in, n + 1, sizeof(*in));
		p = &in[n++];
		memset(p, 0, sizeof(*p));
		p->name = pgmctl_strdup(tok);
		if (tok[0] == '[') {
			if ((colon = strchr(tok, ']')) == NULL ||
			    (colon[1] != '\0' && colon[1] != ':'))
				pgmctl_usage_err("-H: bad address \"%s\"", tok);
			*colon++ = '\0';
			host = tok + 1;
			colon = *colon == ':' ? colon : NULL;
		} else {
			host = tok;
			colon = strrchr(tok, ':');
			if (colon != NULL && strchr(tok, ':') != colon)
				pgmctl_usage_err("-H: write an IPv6 address as "
				    "[ADDRESS]:PORT, not \"%s\"", tok);
		}
		if (colon != NULL)
			*colon++ = '\0';
		if (*host == '\0' || (colon != NULL && (*colon == '\0' ||
		    strspn(colon, "0123456789") != strlen(colon))))
			pgmctl_usage_err("-H: bad address \"%s\"", p->name);
		p->host = pgmctl_strdup(host);
		p->port = pgmctl_strdup(colon ? colon : PGMCTL_ADMIN_PORT);
	}
	free(copy);
	if (n == 0)
		pgmctl_usage_err("-H wants HOST:PORT[,HOST:PORT...]");
	*np = n;
	return in;
}

/* Seconds to connect to an admin console: PGCONNECT_TIMEOUT, or ours. */
static long
pgmctl_connect_timeout(void)
{
	const char	*s = getenv("PGCONNECT_TIMEOUT");
	char		*end;
	long		 v;

	if (s != NULL) {
		errno = 0;
		v = strtol(s, &end, 10);
		/* As libpq: at least 2 s. */
		if (errno == 0 && end != s && *end == '\0' && v > 0)
			return v < 2 ? 2 : v > CTLCMD_SECONDS_MAX ?
			    CTLCMD_SECONDS_MAX : v;
	}
	return atol(PGMCTL_CONNECT_TIMEOUT);
}

/* Close an instance's connection, whatever is in flight on it. */
static void
pgmctl_inst_close(struct pgmctl_inst *p)
{
	if (p->conn != NULL)
		PQfinish(p->conn);
	p->conn = NULL;
	p->state = INST_IDLE;
}

/*
 * Give up on what is in flight at an instance: fail its answer with
 * this reason and close its connection.  A statement sent is marked
 * unanswered: it may have run there, or may still run.
 */
static void __attribute__((format(printf, 2, 3)))
pgmctl_inst_drop(struct pgmctl_inst *p, const char *fmt, ...)
{
	va_list		 ap;
	char		*why;

	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) == -1)
		err(1, NULL);
	va_end(ap);
	if (p->state == INST_SENDING || p->state == INST_WAITING)
		p->unanswered = 1;
	pgmctl_answer_fail(&p->ans, "%s", why);
	free(why);
	pgmctl_inst_close(p);
}

/*
 * Start connecting to an instance's admin console, without waiting:
 * pgmctl_inst_run drives PQconnectPoll, which ignores connect_timeout,
 * so the instance gets until to be connected.  With the error in ans
 * if it cannot even start.
 */
static void
pgmctl_inst_start(struct pgmctl_inst *p, int64_t deadline)
{
	const char	*keys[16], *vals[16], *pw;
	int64_t		 limit;
	int		 k = 0;

	keys[k] = "host";
	vals[k++] = p->host;
	keys[k] = "port";
	vals[k++] = p->port;
	keys[k] = "dbname";
	vals[k++] = pgmctl_conf ? pgmctl_conf->admin_database :
	    PGMCTL_ADMIN_DATABASE;
	keys[k] = "user";
	vals[k++] = pgmctl_conf ? pgmctl_conf->admin_user : PGMCTL_ADMIN_USER;
	/* Without one, libpq looks at PGPASSWORD and ~/.pgpass. */
	pw = pgmctl_conf ? pgmctl_conf->admin.plain : NULL;
	if (pw != NULL) {
		keys[k] = "password";
		vals[k++] = pw;
	}
	keys[k] = "fallback_application_name";
	vals[k++] = "pgmirrorctl";
	/* A peer gone without a word is noticed in about 25 s. */
	keys[k] = "keepalives";
	vals[k++] = "1";
	keys[k] = "keepalives_idle";
	vals[k++] = PGMCTL_KEEPALIVES_IDLE;
	keys[k] = "keepalives_interval";
	vals[k++] = PGMCTL_KEEPALIVES_INTERVAL;
	keys[k] = "keepalives_count";
	vals[k++] = PGMCTL_KEEPALIVES_COUNT;
	keys[k] = NULL;
	vals[k] = NULL;
	if ((p->conn = PQconnectStartParams(keys, vals, 0)) == NULL)
		err(1, NULL);
	if (PQstatus(p->conn) == CONNECTION_BAD || PQsocket(p->conn) < 0) {
		pgmctl_answer_fail(&p->ans, "cannot connect: %s",
		    PQerrorMessage(p->conn));
		pgmctl_inst_close(p);
		return;
	}
	/* Before the first PQconnectPoll, wait as for writing. */
	p->state = INST_CONNECTING;
	p->polling = PGRES_POLLING_WRITING;
	limit = pgmctl_now_ms() + (int64_t)pgmctl_connect_timeout() * 1000;
	p->until = limit < deadline ? limit : deadline;
}

/*
 * The reason of an error result, and its table: the DETAIL field when it
 * holds tab-separated lines, header first (so a table of one column is
 * not told from text); otherwise a DETAIL is added to the reason.
 */
static void
pgmctl_inst_error(struct pgmctl_inst *p, const PGresult *res)
{
	const char	*msg, *detail, *why;
	char		*prefix;

	if ((msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)) == NULL) {
		msg = PQresultErrorMessage(res);
		if (*msg == '\0')
			msg = PQerrorMessage(p->conn);
		if ((prefix = strstr(msg, ":  ")) != NULL &&
		    prefix - msg < 10)
			msg = prefix + 3;
	}
	detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	if (detail == NULL || p->ans.table != NULL) {
		pgmctl_answer_fail(&p->ans, "%s", msg);
		return;
	}
	if (strchr(detail, '\t') != NULL &&
	    (p->ans.table = pgmctl_table_parse(detail, 1, &why)) != NULL)
		pgmctl_answer_fail(&p->ans, "%s", msg);
	else
		pgmctl_answer_fail(&p->ans, "%s (%s)", msg, detail);
}

/* Take one result of the statement running at an instance. */
static void
pgmctl_inst_result(struct pgmctl_inst *p, PGresult *res)
{
	struct pgmctl_table *t;
	const char	**row;
	int		 r, c, nc;

	switch (PQresultStatus(res)) {
	case PGRES_TUPLES_OK:
		nc = PQnfields(res);
		row = pgmctl_realloc(NULL, nc, sizeof(*row));
		for (c = 0; c < nc; c++)
			row[c] = PQfname(res, c);
		t = pgmctl_table_new(nc, row);
		for (r = 0; r < PQntuples(res); r++) {
			for (c = 0; c < nc; c++)
				row[c] = PQgetvalue(res, r, c);
			pgmctl_table_add(t, row);
		}
		free(row);
		pgmctl_table_free(p->ans.table);
		p->ans.table = t;
		break;
	case PGRES_COMMAND_OK:
		break;
	case PGRES_FATAL_ERROR:
	case PGRES_NONFATAL_ERROR:
		pgmctl_inst_error(p, res);
		break;
	default:
		pgmctl_answer_fail(&p->ans, "unexpected answer: %s",
		    PQresStatus(PQresultStatus(res)));
		break;
	}
}

/* Send what libpq still holds of the statement. */
static void
pgmctl_inst_flush(struct pgmctl_inst *p)
{
	switch (PQflush(p->conn)) {
	case 0:
		p->state = INST_WAITING;
		break;
	case 1:
		break;
	default:
		pgmctl_inst_drop(p, "cannot send: %s",
		    PQerrorMessage(p->conn));
		break;
	}
}

/* Send the statement to a connected instance; NULL: just connect. */
static void
pgmctl_inst_send(struct pgmctl_inst *p, const char *sql, int64_t deadline)
{
	p->state = INST_IDLE;
	p->until = deadline;
	if (sql == NULL)
		return;
	if (PQsetnonblocking(p->conn, 1) == -1 || !PQsendQuery(p->conn, sql)) {
		pgmctl_answer_fail(&p->ans, "cannot send: %s",
		    PQerrorMessage(p->conn));
		pgmctl_inst_close(p);
		return;
	}
	p->state = INST_SENDING;
	pgmctl_inst_flush(p);
}

/* Go on with a connection attempt whose socket is ready. */
static void
pgmctl_inst_connecting(struct pgmctl_inst *p, const char *sql,
    int64_t deadline)
{
	switch ((p->polling = PQconnectPoll(p->conn))) {
	case PGRES_POLLING_OK:
		pgmctl_inst_send(p, sql, deadline);
		break;
	case PGRES_POLLING_FAILED:
		pgmctl_answer_fail(&p->ans, "cannot connect: %s",
		    PQerrorMessage(p->conn));
		pgmctl_inst_close(p);
		break;
	default:		/* reading or writing */
		break;
	}
}

/* Read what came from an instance whose statement is in flight. */
static void
pgmctl_inst_input(struct pgmctl_inst *p)
{
	PGresult	*res;

	if (!PQconsumeInput(p->conn)) {
		pgmctl_inst_drop(p, "connection lost: %s",
		    PQerrorMessage(p->conn));
		return;
	}
	if (p->state == INST_SENDING)
		pgmctl_inst_flush(p);
	while (p->state == INST_WAITING && !PQisBusy(p->conn)) {
		if ((res = PQgetResult(p->conn)) == NULL) {
			p->state = INST_IDLE;
			break;
		}
		pgmctl_inst_result(p, res);
		PQclear(res);
	}
	/*
	 * After an error that is the end of the connection, the fate of
	 * the statement is not known.
	 */
	if (p->state == INST_IDLE && PQstatus(p->conn) != CONNECTION_OK) {
		if (!p->ans.ok)
			p->unanswered = 1;
		pgmctl_inst_close(p);
	}
}

/*
 * Run one statement at the n instances at once (but those with skip
 * set) and wait for all the answers, each in its in[i].ans, until
 * deadline (ms, pgmctl_now_ms).  Instances not connected yet, or that
 * lost their connection, are connected first, each for at most the
 * connect timeout; sql NULL only connects.  An instance that does not
 * answer by the deadline fails and its connection is closed.  With
 * intr, a SIGINT or SIGTERM ends the wait at once, the instances still
 * in flight failing as interrupted.  The number of failures.
 */
static int
pgmctl_inst_run(struct pgmctl_inst *in, size_t n, const char *sql,
    int64_t deadline, int intr)
{
	struct pgmctl_inst *p;
	struct pollfd	*pfd;
	size_t		*idx, i, k, np;
	int64_t		 start = pgmctl_now_ms(), now, next;
	int		 failed = 0;

	for (i = 0; i < n; i++) {
		p = &in[i];
		if (p->skip)
			continue;
		pgmctl_answer_clear(&p->ans);
		p->ans.ok = 1;
		p->unanswered = p->late = 0;
		p->state = INST_IDLE;
		if (intr && pgmctl_interrupted) {
			pgmctl_answer_fail(&p->ans, "interrupted");
			continue;
		}
		if (p->conn != NULL && PQstatus(p->conn) != CONNECTION_OK)
			pgmctl_inst_close(p);
		if (p->conn != NULL)
			pgmctl_inst_send(p, sql, deadline);
		else
			pgmctl_inst_start(p, deadline);
	}

	pfd = pgmctl_realloc(NULL, n + 1, sizeof(*pfd));
	idx = pgmctl_realloc(NULL, n + 1, sizeof(*idx));
	for (;;) {
		now = pgmctl_now_ms();
		next = INT64_MAX;
		for (i = np = 0; i < n; i++) {
			p = &in[i];
			if (p->skip || p->state == INST_IDLE)
				continue;
			if (intr && pgmctl_interrupted) {
				pgmctl_inst_drop(p, "interrupted");
				continue;
			}
			if (now >= p->until) {
				p->late = 1;
				if (p->state == INST_CONNECTING)
					pgmctl_inst_drop(p, "cannot connect: "
					    "no answer within %lld s",
					    (long long)(p->until - start +
					    500) / 1000);
				else
					pgmctl_inst_drop(p, "no answer within "
					    "%lld s; connection closed",
					    (long long)(p->until - start +
					    500) / 1000);
				continue;
			}
			if (p->until < next)
				next = p->until;
			pfd[np].fd = PQsocket(p->conn);
			if (p->state == INST_CONNECTING)
				pfd[np].events = p->polling ==
				    PGRES_POLLING_READING ? POLLIN : POLLOUT;
			else if (p->state == INST_SENDING)
				pfd[np].events = POLLIN | POLLOUT;
			else
				pfd[np].events = POLLIN;
			pfd[np].revents = 0;
			idx[np++] = i;
		}
		if (np == 0)
			break;
		if (intr && pgmctl_sigfd[0] != -1) {
			pfd[np].fd = pgmctl_sigfd[0];
			pfd[np].events = POLLIN;
			pfd[np].revents = 0;
			idx[np++] = n;
		}
		if (poll(pfd, np, next - now > INT_MAX ? INT_MAX :
		    (int)(next - now)) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "poll");
		}
		for (k = 0; k < np; k++) {
			if (pfd[k].revents == 0 || idx[k] == n)
				continue;
			p = &in[idx[k]];
			if (p->state == INST_CONNECTING)
				pgmctl_inst_connecting(p, sql, deadline);
			else if (p->state == INST_SENDING &&
			    (pfd[k].revents & (POLLIN | POLLERR | POLLHUP)) == 0)
				pgmctl_inst_flush(p);
			else
				pgmctl_inst_input(p);
		}
	}
	free(pfd);
	free(idx);
	for (i = 0; i < n; i++)
		failed += !in[i].skip && !in[i].ans.ok;
	return failed;
}

/*
 * Print the failures of the last statement, one line each, and the
 * tables that came with them.  The number of failures.
 */
static int
pgmctl_inst_report(struct pgmctl_inst *in, size_t n)
{
	struct pgmctl_table *t;
	size_t		 i;
	int		 failed = 0;

	for (i = 0; i < n; i++)
		if (!in[i].ans.ok) {
			warnx("%s: %s", in[i].name, in[i].ans.reason);
			failed++;
		}
	if (failed && (t = pgmctl_table_merge(in, n, 1)) != NULL) {
		pgmctl_print(t);
		pgmctl_table_free(t);
	}
	return failed;
}

/* --- fleet switchover ------------------------------------------------ */

/* SIGINT and SIGTERM: note it, and wake the poll of pgmctl_inst_run. */
static void
pgmctl_on_signal(int sig)
{
	int		 saved = errno;

	pgmctl_interrupted = sig;
	if (pgmctl_sigfd[1] != -1 && write(pgmctl_sigfd[1], "", 1) == -1) {
		/* full: it is readable already */
	}
	errno = saved;
}

/* From now on, SIGINT and SIGTERM set pgmctl_interrupted. */
static void
pgmctl_catch_signals(void)
{
	struct sigaction sa;
	int		 i;

	if (pipe(pgmctl_sigfd) == -1)
		err(1, "pipe");
	for (i = 0; i < 2; i++)
		if (fcntl(pgmctl_sigfd[i], F_SETFL, O_NONBLOCK) == -1 ||
		    fcntl(pgmctl_sigfd[i], F_SETFD, FD_CLOEXEC) == -1)
			err(1, "fcntl");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pgmctl_on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;		/* no SA_RESTART: poll returns */
	if (sigaction(SIGINT, &sa, NULL) == -1 ||
	    sigaction(SIGTERM, &sa, NULL) == -1)
		err(1, "sigaction");
}

/* Sleep ms milliseconds, or less if a signal is caught. */
static void
pgmctl_nap(int64_t ms)
{
	struct pollfd	 pfd;

	pfd.fd = pgmctl_sigfd[0];
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (!pgmctl_interrupted)
		poll(&pfd, pgmctl_sigfd[0] != -1, ms > INT_MAX ? INT_MAX :
		    (int)ms);
}

/*
 * The names of the instances whose mark is one of those in which,
 * joined by sep: "a, b" to read, "a,b" for -H.  "" if there are none.
 */
static char *
pgmctl_names(const struct pgmctl_inst *in, size_t n, const char *mark,
    const char *which, const char *sep)
{
	size_t		 i, len = 1;
	char		*s;

	for (i = 0; i < n; i++)
		len += strlen(in[i].name) + strlen(sep);
	s = pgmctl_alloc(len);
	s[0] = '\0';
	for (i = 0; i < n; i++) {
		if (strchr(which, mark[i]) == NULL)
			continue;
		if (s[0] != '\0')
			strcat(s, sep);
		strcat(s, in[i].name);
	}
	return s;
}

/* A progress line of the fleet switchover, on stderr. */
static void __attribute__((format(printf, 1, 2)))
pgmctl_progress(const char *fmt, ...)
{
	va_list		 ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The deadline of a step that only waits for its answer. */
static int64_t
pgmctl_grace(void)
{
	return pgmctl_now_ms() + (int64_t)PGMCTL_FLEET_GRACE * 1000;
}

/*
 * Fleet switchover: turn maintenance off everywhere after a failure or
 * an interruption at step, each instance given PGMCTL_FLEET_GRACE
 * seconds, so that one that does not answer holds up none of the
 * others.
 */
static int
pgmctl_fleet_rollback(struct pgmctl_inst *in, size_t n, const char *step)
{
	const char	*how = pgmctl_interrupted ? "interrupted" : "failed";
	char		*mark, *late;
	size_t		 i;
	int		 failed;

	/*
	 * A MAINTENANCE ON given up on may still run where maintenance
	 * is turned off now, later.
	 */
	mark = pgmctl_alloc(n);
	for (i = 0; i < n; i++)
		mark[i] = strcmp(step, "pause") == 0 && in[i].late &&
		    in[i].unanswered ? 'l' : '-';
	pgmctl_progress("resume: %zu instances (rolling back)", n);
	failed = pgmctl_inst_run(in, n, "MAINTENANCE OFF;", pgmctl_grace(), 0);
	for (i = 0; i < n; i++)
		if (!in[i].ans.ok)
			mark[i] = '-';
	late = pgmctl_names(in, n, mark, "l", ",");
	if (failed) {
		pgmctl_inst_report(in, n);
		warnx("switchover %s at %s; maintenance may still be on "
		    "at the instances named above", how, step);
	} else
		warnx("switchover %s at %s; maintenance is off again", how,
		    step);
	if (*late != '\0')
		warnx("%s did not answer MAINTENANCE ON in time: should it "
		    "still run it, maintenance would be on there again; "
		    "check with \"pgmirrorctl -H %s status\"", late, late);
	free(mark);
	free(late);
	return 1;
}

/*
 * Fleet switchover: wait until the queue_length of every mirror of
 * every instance is 0, or fail at deadline naming what is still queued.
 * -1 also when interrupted.
 */
static int
pgmctl_fleet_drain(struct pgmctl_inst *in, size_t n, int64_t deadline)
{
	struct pgmctl_table *t;
	const char	*sname, *dname;
	size_t		 i, r, pending;
	int64_t		 now, nap;
	int		 q, src, dst, late;

	for (;;) {
		if (pgmctl_interrupted)
			return -1;
		if (pgmctl_inst_run(in, n, "SHOW MIRRORS;", deadline +
		    (int64_t)PGMCTL_FLEET_GRACE * 1000, 1) != 0) {
			pgmctl_inst_report(in, n);
			return -1;
		}
		if (pgmctl_interrupted)
			return -1;
		now = pgmctl_now_ms();
		late = now >= deadline;
		pending = 0;
		for (i = 0; i < n; i++) {
			if ((t = in[i].ans.table) == NULL ||
			    (q = pgmctl_table_col(t, "queue_length")) == -1) {
				warnx("%s: SHOW MIRRORS has no queue_length "
				    "column", in[i].name);
				return -1;
			}
			src = pgmctl_table_col(t, "source");
			dst = pgmctl_table_col(t, "destination");
			for (r = 1; r <= t->nrows; r++) {
				if (strcmp(PGMCTL_CELL(t, r, q), "0") == 0)
					continue;
				pending++;
				if (!late)
					continue;
				sname = src >= 0 ? PGMCTL_CELL(t, r, src) : "?";
				dname = dst >= 0 ? PGMCTL_CELL(t, r, dst) : "?";
				warnx("%s: mirror %s -> %s not drained: "
				    "queue_length %s", in[i].name, sname,
				    dname, PGMCTL_CELL(t, r, q));
			}
		}
		if (pending == 0)
			return 0;
		if (late)
			return -1;
		nap = deadline - now;
		if (nap > PGMCTL_DRAIN_POLL_MS)
			nap = PGMCTL_DRAIN_POLL_MS;
		pgmctl_nap(nap);
	}
}

/*
 * Fleet switchover: the reload failed at some instances.  If none may
 * have reloaded, roll back.  Otherwise retry once where it failed; if
 * some still did not reload, fail closed: maintenance stays on
 * everywhere (turning it off would send the clients of a database to
 * the old server from some instances and to the new one from others),
 * and say which instance runs which configuration and what to do.
 * 0 if all have reloaded in the end, else the exit status.
 */
static int
pgmctl_fleet_reload_failed(struct pgmctl_inst *in, size_t n)
{
	char		*mark, *reloaded, *old, *unknown, *unknown_h;
	char		*redo, *undo, *all, *ctl;
	size_t		 i, nnew = 0, nunknown = 0;

	pgmctl_inst_report(in, n);
	/* n: new configuration, o: old one, u: not known */
	mark = pgmctl_alloc(n);
	for (i = 0; i < n; i++) {
		mark[i] = in[i].ans.ok ? 'n' : in[i].unanswered ? 'u' : 'o';
		nnew += mark[i] == 'n';
		nunknown += mark[i] == 'u';
	}
	if (nnew == 0 && nunknown == 0) {
		free(mark);
		warnx("no instance reloaded: none changed its "
		    "configuration");
		return pgmctl_fleet_rollback(in, n, "reload");
	}

	pgmctl_progress("reload: retrying at %zu instance%s", n - nnew,
	    n - nnew == 1 ? "" : "s");
	for (i = 0; i < n; i++)
		in[i].skip = mark[i] == 'n';
	pgmctl_inst_run(in, n, "RELOAD;", pgmctl_grace(), 0);
	for (i = 0; i < n; i++) {
		if (in[i].skip) {
			in[i].skip = 0;
			continue;
		}
		if (in[i].ans.ok) {
			mark[i] = 'n';
			nnew++;
			continue;
		}
		warnx("%s: %s", in[i].name, in[i].ans.reason);
		if (in[i].unanswered)
			mark[i] = 'u';
	}
	if (nnew == n) {
		free(mark);
		return 0;
	}

	ctl = pgmctl_conffile != NULL ? pgmctl_printf("pgmirrorctl -c %s",
	    pgmctl_conffile) : pgmctl_strdup("pgmirrorctl");
	reloaded = pgmctl_names(in, n, mark, "n", ", ");
	old = pgmctl_names(in, n, mark, "o", ", ");
	unknown = pgmctl_names(in, n, mark, "u", ", ");
	unknown_h = pgmctl_names(in, n, mark, "u", ",");
	redo = pgmctl_names(in, n, mark, "ou", ",");
	undo = pgmctl_names(in, n, mark, "nu", ",");
	all = pgmctl_names(in, n, mark, "nou", ",");
	warnx("switchover failed at reload, %s at some instances only: "
	    "MAINTENANCE STAYS ON at all of them, so that no database is "
	    "sent to the old server by some and to the new one by others",
	    nnew == 0 ? "maybe done" : "done");
	if (*reloaded != '\0')
		warnx("running the new configuration: %s", reloaded);
	if (*old != '\0')
		warnx("running the old configuration: %s", old);
	if (*unknown != '\0')
		warnx("not known (RELOAD unanswered; see the generation in "
		    "\"%s -H %s status\"): %s", ctl, unknown_h, unknown);
	warnx("to go forward, fix the configuration file at %s%s%s, then "
	    "run \"%s -H %s reload\" and \"%s -H %s maintenance off\"", old,
	    *old && *unknown ? ", " : "", unknown, ctl, redo, ctl, all);
	warnx("or, to go back, put the old configuration file back at all "
	    "of them, then run \"%s -H %s reload\" and \"%s -H %s "
	    "maintenance off\"", ctl, undo, ctl, all);
	free(ctl);
	free(mark);
	free(reloaded);
	free(old);
	free(unknown);
	free(unknown_h);
	free(redo);
	free(undo);
	free(all);
	return 1;
}

/*
 * Switch several instances over together, through their admin consoles:
 * check the configs, pause, drain the mirrors, sync the sequences if
 * asked, reload, resume.  Every step has a deadline; a failure, or a
 * SIGINT or SIGTERM, before the reload turns maintenance off
 * everywhere; a reload done at some instances only keeps it on.
 */
static int
pgmctl_fleet_switchover(struct pgmctl_inst *in, size_t n,
    const struct ctlcmd_req *r)
{
	long		 timeout = r->seconds >= 0 ? r->seconds :
			    PGMCTL_FLEET_TIMEOUT;
	int64_t		 start = pgmctl_now_ms(), deadline;
	char		 sql[64];

	deadline = start + (int64_t)timeout * 1000;
	pgmctl_catch_signals();
	if (pgmctl_inst_run(in, n, NULL, start +
	    (int64_t)pgmctl_connect_timeout() * 1000, 1) != 0 ||
	    pgmctl_interrupted) {
		if (pgmctl_interrupted)
			warnx("switchover interrupted; nothing was changed");
		else {
			pgmctl_inst_report(in, n);
			warnx("switchover stopped; nothing was changed");
		}
		return 1;
	}

	pgmctl_progress("check: %zu instances", n);
	if (pgmctl_inst_run(in, n, "RELOAD CHECK;", pgmctl_grace(), 1) != 0 ||
	    pgmctl_interrupted) {
		if (pgmctl_interrupted)
			warnx("switchover interrupted at check; nothing was "
			    "changed");
		else {
			pgmctl_inst_report(in, n);
			warnx("switchover stopped at check; nothing was "
			    "changed");
		}
		return 1;
	}

	pgmctl_progress("pause: %zu instances, waiting up to %ld s", n,
	    timeout);
	snprintf(sql, sizeof(sql), "MAINTENANCE ON WAIT %ld;", timeout);
	if (pgmctl_inst_run(in, n, sql, deadline +
	    (int64_t)PGMCTL_FLEET_GRACE * 1000, 1) != 0) {
		pgmctl_inst_report(in, n);
		return pgmctl_fleet_rollback(in, n, "pause");
	}
	if (pgmctl_interrupted)
		return pgmctl_fleet_rollback(in, n, "pause");

	pgmctl_progress("drain: %zu instances", n);
	if (pgmctl_fleet_drain(in, n, deadline) == -1)
		return pgmctl_fleet_rollback(in, n, "drain");

	if (r->opts & CTLCMD_OPT_SYNC) {
		pgmctl_progress("sync sequences: %s", in[0].name);
		if (pgmctl_inst_run(in, 1, "SYNC SEQUENCES;", pgmctl_now_ms() +
		    ((int64_t)timeout + PGMCTL_FLEET_GRACE) * 1000, 1) != 0) {
			pgmctl_inst_report(in, 1);
			return pgmctl_fleet_rollback(in, n, "sync sequences");
		}
		if (pgmctl_interrupted)
			return pgmctl_fleet_rollback(in, n, "sync sequences");
	}

	/* From here on, a signal no longer stops the switchover. */
	pgmctl_progress("reload: %zu instances", n);
	if (pgmctl_inst_run(in, n, "RELOAD;", pgmctl_grace(), 0) != 0 &&
	    pgmctl_fleet_reload_failed(in, n) != 0)
		return 1;

	pgmctl_progress("resume: %zu instances", n);
	if (pgmctl_inst_run(in, n, "MAINTENANCE OFF;", pgmctl_grace(),
	    0) != 0) {
		pgmctl_inst_report(in, n);
		warnx("switched over, but maintenance is still on at the "
		    "instances named above");
		return 1;
	}
	pgmctl_progress("switchover done in %.1f s%s",
	    (double)(pgmctl_now_ms() - start) / 1000, pgmctl_interrupted ?
	    " (the signal came after the reload had begun)" : "");
	return 0;
}

/* Run a command through the admin consoles of -H; the exit status. */
int
pgmctl_remote(const char *hosts, const struct ctlcmd_req *r)
{
	struct pgmctl_inst	*in;
	struct pgmctl_table *t;
	char		 sql[CTLCMD_LINE_MAX];
	size_t		 i, n;
	long		 timeout = PGMCTL_READ_TIMEOUT;
	int		 failed;

	in = pgmctl_inst_parse(hosts, &n);
	if (pgmctl_conf_load(1) == -1)
		return 1;
	if (ctlcmd_format(r, 1, sql, sizeof(sql)) == -1) {
		warnx("the statement is longer than %d bytes", CTLCMD_LINE_MAX);
		return 1;
	}
	/* As through the control socket, but never forever. */
	if (r->id == CTLCMD_MAINTENANCE && r->seconds >= 0)
		timeout = r->seconds + PGMCTL_GRACE;
	else if (r->id == CTLCMD_SWITCHOVER)
		timeout = (r->seconds >= 0 ? r->seconds :
		    PGMCTL_FLEET_TIMEOUT) + PGMCTL_GRACE;
	if (r->id == CTLCMD_SWITCHOVER && n > 1)
		failed = pgmctl_fleet_switchover(in, n, r);
	else {
		pgmctl_inst_run(in, n, sql, pgmctl_now_ms() +
		    (int64_t)timeout * 1000, 0);
		for (i = failed = 0; i < n; i++)
			if (!in[i].ans.ok) {
				if (n > 1)
					warnx("%s: %s", in[i].name,
					    in[i].ans.reason);
				else
					warnx("%s", in[i].ans.reason);
				failed++;
			}
		if (n > 1)
			t = pgmctl_table_merge(in, n, 0);
		else {
			t = in[0].ans.table;
			in[0].ans.table = NULL;
		}
		if (t != NULL || !failed)
			pgmctl_print(t);
		pgmctl_table_free(t);
	}
	for (i = 0; i < n; i++) {
		pgmctl_inst_close(&in[i]);
		pgmctl_answer_clear(&in[i].ans);
		free(in[i].name);
		free(in[i].host);
		free(in[i].port);
	}
	free(in);
	return failed ? 1 : 0;
}
