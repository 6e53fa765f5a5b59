/*
 * admin.c: the admin console, a virtual database in a worker.
 *
 * A client that asks for database admin.database as admin.user, and
 * proves it knows admin.password with SCRAM-SHA-256, gets a console
 * that speaks the simple query protocol.  Each query is a command of
 * pgmirrorctl written as a statement ("SHOW MIRRORS;", "MAINTENANCE ON
 * appdb WAIT 10;", "RELOAD;", "SWITCHOVER TIMEOUT 30 SYNC SEQUENCES;"),
 * which the worker turns into a control request, sends to the
 * supervisor over the control socket (control.c does the work, once
 * for both), and answers as a result set of text columns, or as an
 * ErrorResponse whose DETAIL holds the table that came with the error.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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

/*
 * Turn a statement into a control request line: keywords in lower
 * case, WAIT n / TIMEOUT n / CHECK / SYNC SEQUENCES as options.
 * Returns -1 if it is empty or too long.
 */
static int
admin_translate(const char *sql, char *out, size_t outlen)
{
	char		 buf[ADMIN_QUERY_MAX], *w[16], *p;
	size_t		 n = 0;
	int		 nw = 0, i;

	snprintf(buf, sizeof(buf), "%s", sql);
	for (p = buf; *p != '\0' && nw < 16; ) {
		while (isspace((unsigned char)*p) || *p == ';')
			*p++ = '\0';
		if (*p == '\0')
			break;
		w[nw++] = p;
		while (*p != '\0' && !isspace((unsigned char)*p) && *p != ';')
			p++;
	}
	if (nw == 0)
		return -1;
	out[0] = '\0';
	for (i = 0; i < nw; i++) {
		const char *word = w[i];
		char	 lower[64];
		size_t	 k;

		for (k = 0; word[k] != '\0' && k < sizeof(lower) - 1; k++)
			lower[k] = (char)tolower((unsigned char)word[k]);
		lower[k] = '\0';
		if (strcmp(lower, "wait") == 0 || strcmp(lower, "timeout") == 0 ||
		    strcmp(lower, "check") == 0)
			n += snprintf(out + n, outlen - n, "%s--%s",
			    n ? " " : "", lower);
		else if (strcmp(lower, "sync") == 0 && i + 1 < nw &&
		    strcasecmp(w[i + 1], "sequences") == 0) {
			n += snprintf(out + n, outlen - n, "%s%s", n ? " " : "",
			    i == 0 ? "sync-sequences" : "--sync-sequences");
			i++;
		} else if (i == 0 || (i == 1 && (strcmp(lower, "on") == 0 ||
		    strcmp(lower, "off") == 0 || strcasecmp(w[0], "show") ==
		    0)))
			n += snprintf(out + n, outlen - n, "%s%s", n ? " " : "",
			    lower);
		else
			n += snprintf(out + n, outlen - n, "%s%s", n ? " " : "",
			    word);
		if (n >= outlen)
			return -1;
	}
	return 0;
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

/* Answer a control reply as a result set or an error. */
static void
admin_answer(struct pgm_buf *b, const char *cmd, char *ans)
{
	char		*line, *next, *f, *tab, tag[64];
	int		 header = 1, ncols = 0, i, rows = 0;

	if ((next = strchr(ans, '\n')) != NULL)
		*next++ = '\0';
	if (strncmp(ans, "ERROR ", 6) == 0 || strncmp(ans, "OK", 2) != 0) {
		buf_msg_begin(b, 'E');
		buf_put_u8(b, 'S');
		buf_put_str(b, "ERROR");
		buf_put_u8(b, 'V');
		buf_put_str(b, "ERROR");
		buf_put_u8(b, 'C');
		buf_put_str(b, strncmp(ans, "ERROR unknown", 13) == 0 ||
		    strncmp(ans, "ERROR usage", 11) == 0 ? "42601" : "55000");
		buf_put_u8(b, 'M');
		buf_put_str(b, strncmp(ans, "ERROR ", 6) == 0 ? ans + 6 :
		    "no answer from the supervisor");
		if (next != NULL && *next != '\0') {
			buf_put_u8(b, 'D');
			buf_put_str(b, next);
		}
		buf_put_u8(b, 0);
		buf_msg_end(b);
		return;
	}
	for (line = next; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (header) {
			for (ncols = 1, f = line; (f = strchr(f, '\t')) != NULL;
			    f++)
				ncols++;
			buf_msg_begin(b, 'T');
			buf_put_u8(b, (uint8_t)(ncols >> 8));
			buf_put_u8(b, (uint8_t)ncols);
			for (f = line, i = 0; i < ncols; i++) {
				if ((tab = strchr(f, '\t')) != NULL)
					*tab = '\0';
				buf_put_str(b, f);
				buf_put_u32(b, 0);	/* table */
				buf_put_u8(b, 0);	/* column */
				buf_put_u8(b, 0);
				buf_put_u32(b, 25);	/* text */
				buf_put_u8(b, 0xff);	/* typlen -1 */
				buf_put_u8(b, 0xff);
				buf_put_u32(b, 0xffffffff);	/* typmod */
				buf_put_u8(b, 0);	/* text format */
				buf_put_u8(b, 0);
				f = tab != NULL ? tab + 1 : f + strlen(f);
			}
			buf_msg_end(b);
			header = 0;
			continue;
		}
		buf_msg_begin(b, 'D');
		buf_put_u8(b, (uint8_t)(ncols >> 8));
		buf_put_u8(b, (uint8_t)ncols);
		for (f = line, i = 0; i < ncols; i++) {
			size_t	 len;

			tab = f != NULL ? strchr(f, '\t') : NULL;
			len = f == NULL ? 0 : tab != NULL ? (size_t)(tab - f) :
			    strlen(f);
			buf_put_u32(b, (uint32_t)len);
			if (len > 0)
				buf_put(b, f, len);
			f = tab != NULL ? tab + 1 : NULL;
		}
		buf_msg_end(b);
		rows++;
	}
	if (!header && strncmp(cmd, "show", 4) == 0)
		snprintf(tag, sizeof(tag), "SHOW %d", rows);
	else {
		snprintf(tag, sizeof(tag), "%s", cmd);
		if ((f = strchr(tag, ' ')) != NULL && strncmp(tag, "maint",
		    5) != 0)
			*f = '\0';
		else if (f != NULL && (f = strchr(f + 1, ' ')) != NULL)
			*f = '\0';
		for (f = tag; *f != '\0'; f++)
			*f = (char)toupper((unsigned char)*f);
	}
	buf_msg_begin(b, 'C');
	buf_put_str(b, tag);
	buf_msg_end(b);
}

/* One query of the console. */
static void
admin_query(struct pgm_buf *b, const char *sql)
{
	struct pgm_buf	 ans;
	char		 line[ADMIN_QUERY_MAX];

	if (admin_translate(sql, line, sizeof(line)) == -1) {
		buf_msg_begin(b, 'I');		/* EmptyQueryResponse */
		buf_msg_end(b);
		return;
	}
	log_info("admin console: %s", line);
	buf_init(&ans);
	if (admin_control(line, &ans) == -1)
		proto_error(b, "ERROR", "08006", "cannot reach the supervisor "
		    "at %s: %s", pgm_conf->control_socket, strerror(errno));
	else
		admin_answer(b, line, (char *)ans.data);
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
