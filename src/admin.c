/*
 * admin.c: the admin console, a virtual database in a worker.
 *
 * A client that asks for database admin.database as admin.user, and
 * proves it knows admin.password with SCRAM-SHA-256, gets a console
 * that speaks the simple query protocol.  Each query is a command of
 * pgmirrorctl written as a statement ("SHOW MIRRORS;", "MAINTENANCE ON
 * appdb WAIT 10;", "RELOAD;", "SWITCHOVER TIMEOUT 30 SYNC SEQUENCES;"),
 * which the worker turns into a control request with the grammar of
 * ctlcmd.c, sends to the supervisor over the control socket (control.c
 * does the work, once for both), and answers as a result set of text
 * columns, or as an ErrorResponse whose DETAIL holds the table that
 * came with the error.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctlcmd.h"
#include "pgmirror.h"

#define ADMIN_IDLE_TIMEOUT	3600000	/* ms a console may stay silent */
#define ADMIN_QUERY_MAX		4096

/* Does this client ask for the admin console? */
int
admin_wanted(const struct pgm_client *cl)
{
	const char	*user, *db;

	if (!pgm_conf->has_admin)
		return 0;
	user = proto_startup_param(&cl->startup, "user");
	db = proto_startup_param(&cl->startup, "database");
	if (db == NULL || *db == '\0')
		db = user;
	return db != NULL && strcmp(db, pgm_conf->admin_database) == 0;
}

/* Send a request line to the control socket; the answer goes to ans. */
static int
admin_control(const char *line, struct pgm_buf *ans)
{
	struct sockaddr_un sun;
	char		 buf[8192];
	ssize_t		 n;
	int		 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
	    pgm_conf->control_socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    net_write_full(fd, NULL, line, strlen(line), net_now_ms() +
	    10000) == -1 || net_write_full(fd, NULL, "\n", 1,
	    net_now_ms() + 10000) == -1) {
		close(fd);
		return -1;
	}
	/* Commands that wait answer when done: no deadline here. */
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR) {
			if (proc_interrupted())
				break;
			continue;
		}
		if (n <= 0)
			break;
		buf_put(ans, buf, n);
	}
	close(fd);
	buf_put_u8(ans, 0);
	return ans->failed ? -1 : 0;
}

/*
 * The SQLSTATE of an error of the control grammar or the supervisor:
 * a syntax error for an unknown command or a usage, else "object not
 * in prerequisite state".
 */
static const char *
admin_sqlstate(const char *reason)
{
	return strncmp(reason, "unknown", 7) == 0 ||
	    strncmp(reason, "usage", 5) == 0 ? "42601" : "55000";
}

/* An ErrorResponse with a reason, and a DETAIL unless detail is NULL. */
static void
admin_error(struct pgm_buf *b, const char *sqlstate, const char *reason,
    const char *detail)
{
	buf_msg_begin(b, 'E');
	buf_put_u8(b, 'S');
	buf_put_str(b, "ERROR");
	buf_put_u8(b, 'V');
	buf_put_str(b, "ERROR");
	buf_put_u8(b, 'C');
	buf_put_str(b, sqlstate);
	buf_put_u8(b, 'M');
	buf_put_str(b, reason);
	if (detail != NULL && *detail != '\0') {
		buf_put_u8(b, 'D');
		buf_put_str(b, detail);
	}
	buf_put_u8(b, 0);
	buf_msg_end(b);
}

/* The table of an answer as a RowDescription and its DataRows. */
static void
admin_table(struct pgm_buf *b, const struct ctlcmd_answer *a)
{
	const char	*pos = a->table, *f;
	size_t		 len;
	int		 more;

	buf_msg_begin(b, 'T');
	buf_put_u8(b, (uint8_t)(a->ncols >> 8));
	buf_put_u8(b, (uint8_t)a->ncols);
	do {
		more = ctlcmd_table_field(&pos, &f, &len);
		buf_put(b, f, len);
		buf_put_u8(b, 0);
		buf_put_u32(b, 0);		/* table */
		buf_put_u8(b, 0);		/* column */
		buf_put_u8(b, 0);
		buf_put_u32(b, 25);		/* text */
		buf_put_u8(b, 0xff);		/* typlen -1 */
		buf_put_u8(b, 0xff);
		buf_put_u32(b, 0xffffffff);	/* typmod */
		buf_put_u8(b, 0);		/* text format */
		buf_put_u8(b, 0);
	} while (more);
	buf_msg_end(b);
	while (*pos != '\0') {
		buf_msg_begin(b, 'D');
		buf_put_u8(b, (uint8_t)(a->ncols >> 8));
		buf_put_u8(b, (uint8_t)a->ncols);
		do {
			more = ctlcmd_table_field(&pos, &f, &len);
			buf_put_u32(b, (uint32_t)len);
			buf_put(b, f, len);
		} while (more);
		buf_msg_end(b);
	}
}

/*
 * Answer the supervisor's answer to request r (len bytes at ans, then
 * a NUL) as a result set and a command tag, or as an error.
 */
static void
admin_answer(struct pgm_buf *b, const struct ctlcmd_req *r, char *ans,
    size_t len)
{
	struct ctlcmd_answer a;
	const char	*why;
	char		 tag[64], *p;

	if (len == 0) {
		admin_error(b, "55000", "no answer from the supervisor", NULL);
		return;
	}
	if (ctlcmd_answer_parse(ans, len, &a, &why) == -1) {
		log_warnx("admin console: malformed answer from the "
		    "supervisor: %s", why);
		admin_error(b, "55000", "malformed answer from the supervisor",
		    why);
		return;
	}
	if (!a.ok) {
		admin_error(b, admin_sqlstate(a.reason), a.reason, a.table);
		return;
	}
	if (a.table != NULL)
		admin_table(b, &a);
	if (a.table != NULL && r->id == CTLCMD_SHOW)
		snprintf(tag, sizeof(tag), "SHOW %zu", a.nrows);
	else {
		snprintf(tag, sizeof(tag), "%s%s", ctlcmd_name(r->id),
		    r->id != CTLCMD_MAINTENANCE ? "" : r->sub ? " on" :
		    " off");
		for (p = tag; *p != '\0'; p++)
			*p = (char)toupper((unsigned char)*p);
	}
	buf_msg_begin(b, 'C');
	buf_put_str(b, tag);
	buf_msg_end(b);
}

/*
 * One query of the console: a statement turned into a request line,
 * checked here (an error of the grammar is answered without asking
 * the supervisor), then run by the supervisor.
 */
static void
admin_query(struct pgm_buf *b, const char *sql)
{
	struct ctlcmd_req r;
	struct pgm_buf	 ans;
	char		 line[CTLCMD_LINE_MAX], req[CTLCMD_LINE_MAX];
	char		*w[CTLCMD_WORDS_MAX], err[512];
	int		 n;

	if (ctlcmd_from_sql(sql, line, sizeof(line)) == -1) {
		buf_msg_begin(b, 'I');		/* EmptyQueryResponse */
		buf_msg_end(b);
		return;
	}
	log_info("admin console: %s", line);
	n = ctlcmd_split(line, w, CTLCMD_WORDS_MAX);
	if (ctlcmd_parse(n, w, CTLCMD_REQUEST, &r, err, sizeof(err)) == -1) {
		admin_error(b, admin_sqlstate(err), err, NULL);
		return;
	}
	/* With its newline, CTLCMD_LINE_MAX bytes at most. */
	if (ctlcmd_format(&r, 0, req, sizeof(req)) == -1) {
		admin_error(b, "54000", "request too long", NULL);
		return;
	}
	buf_init(&ans);
	if (admin_control(req, &ans) == -1)
		proto_error(b, "ERROR", "08006", "cannot reach the supervisor "
		    "at %s: %s", pgm_conf->control_socket, strerror(errno));
	else
		admin_answer(b, &r, (char *)ans.data, ans.len - 1);
	buf_free(&ans);
}

/*
 * Answer a query string, which may hold several statements separated
 * by semicolons; as in PostgreSQL, an error skips the rest.  -1 if the
 * client is gone.
 */
static int
admin_statements(struct pgm_client *cl, char *sql)
{
	struct pgm_buf	 out;
	char		*stmt, *p, quote = 0;
	int		 rc, ran = 0;

	buf_init(&out);
	for (stmt = p = sql; ; p++) {
		if (quote != 0) {
			if (*p == quote)
				quote = 0;
			else if (*p == '\0')
				break;
			continue;
		}
		if (*p == '\'' || *p == '"') {
			quote = *p;
			continue;
		}
		if (*p != ';' && *p != '\0')
			continue;
		if (*p == ';')
			*p = '\0';
		else
			p = NULL;
		if (strspn(stmt, " \t\r\n") != strlen(stmt)) {
			size_t	 before = out.len;

			admin_query(&out, stmt);
			ran = 1;
			if (out.len > before && out.data[before] == 'E')
				break;
		}
		if (p == NULL)
			break;
		stmt = p + 1;
	}
	if (!ran) {
		buf_msg_begin(&out, 'I');	/* EmptyQueryResponse */
		buf_msg_end(&out);
	}
	proto_ready(&out, 'I');
	rc = client_send(cl, &out);
	buf_free(&out);
	return rc;
}

/*
 * Serve the console: authenticate, welcome, then answer queries until
 * the client leaves.
 */
void
admin_serve(struct pgm_client *cl, int64_t deadline)
{
	const char	*user = proto_startup_param(&cl->startup, "user");
	struct pgm_buf	 b;
	uint8_t		 type;

	log_setsession("admin console");
	if (user == NULL || strcmp(user, pgm_conf->admin_user) != 0) {
		client_fail(cl, "28000", "role \"%s\" may not use the admin "
		    "console", user ? user : "");
		return;
	}
	if (auth_client_as(cl, &pgm_conf->admin, AUTH_SCRAM, deadline) == -1)
		return;
	buf_init(&b);
	proto_auth_request(&b, 0, NULL, 0);
	proto_parameter_status(&b, "server_version", "15.0 (pgmirror "
	    PACKAGE_VERSION " admin console)");
	proto_parameter_status(&b, "server_encoding", "UTF8");
	proto_parameter_status(&b, "client_encoding", "UTF8");
	proto_parameter_status(&b, "DateStyle", "ISO, MDY");
	proto_parameter_status(&b, "integer_datetimes", "on");
	proto_parameter_status(&b, "standard_conforming_strings", "on");
	proto_backend_key(&b, 0, 0);
	proto_ready(&b, 'I');
	if (client_send(cl, &b) == -1)
		goto out;
	log_info("admin console opened");
	for (;;) {
		buf_reset(&b);
		if (net_read_message(cl->fd, cl->ssl, &b, &type,
		    ADMIN_QUERY_MAX, net_now_ms() + ADMIN_IDLE_TIMEOUT) == -1) {
			if (errno == EMSGSIZE)
				client_fail(cl, "08P01", "invalid message "
				    "length: the admin console takes queries "
				    "of at most %d bytes", ADMIN_QUERY_MAX - 5);
			break;
		}
		if (type == 'X')
			break;
		if (type != 'Q') {
			buf_reset(&b);
			proto_error(&b, "FATAL", "0A000", "the admin console "
			    "speaks only the simple query protocol");
			(void)client_send(cl, &b);
			break;
		}
		/* the body is a NUL-terminated string; make sure of it */
		buf_put_u8(&b, 0);
		if (admin_statements(cl, (char *)b.data + 5) == -1)
			break;
	}
	log_info("admin console closed");
out:
	buf_free(&b);
}
