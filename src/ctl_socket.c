/*
 * ctl_socket.c: one command through pgmirror's control socket.
 *
 * Owns the exchange: one request line out ("maintenance on appdb
 * --wait 10\n", written by ctlcmd_format); "OK" or "ERROR reason",
 * maybe a table of tab-separated lines (header first), and EOF back.
 * The wait for the answer is bounded by the command's own timeout plus
 * a grace, but for a switchover without --timeout, which waits as long
 * as pgmirror takes.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgmirror.h"
#include "pgmirrorctl.h"

#define PGMCTL_ANSWER_MAX	(64 * 1024 * 1024)

/*
 * Send one request line to the control socket at path and read the
 * answer into a, waiting at most timeout seconds for it (-1: forever).
 * -1 after printing why there is no answer.
 */
static int
pgmctl_sock_call(const char *path, const char *line, int timeout,
    struct pgmctl_answer *a)
{
	struct sockaddr_un sun;
	struct pollfd	 pfd;
	const char	*why;
	char		*buf = NULL;
	size_t		 len = 0, cap = 0, off = 0, linelen = strlen(line);
	ssize_t		 n;
	int64_t		 deadline = 0, left;
	int		 fd, werr = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		warnx("cannot connect to %s: the path is too long", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		warn("socket");
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		warn("cannot connect to %s", path);
		close(fd);
		return -1;
	}

	/*
	 * The write side stays open: the daemon may take a closed one for
	 * a client that went away.  If the daemon refuses us before
	 * reading, the send fails but its answer may still be there.
	 */
	while (off < linelen) {
		if ((n = send(fd, line + off, linelen - off,
		    MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			werr = errno;
			break;
		}
		off += n;
	}

	if (timeout >= 0)
		deadline = pgmctl_now_ms() + (int64_t)timeout * 1000;
	for (;;) {
		if (cap - len < 4096) {
			if (cap >= PGMCTL_ANSWER_MAX) {
				warnx("the answer from %s is too long", path);
				goto fail;
			}
			cap = cap ? cap * 2 : 8192;
			buf = pgmctl_realloc(buf, cap, 1);
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		left = -1;
		if (timeout >= 0 && (left = deadline - pgmctl_now_ms()) < 0)
			left = 0;
		if ((n = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX :
		    (int)left)) == -1) {
			if (errno == EINTR)
				continue;
			warn("poll");
			goto fail;
		}
		if (n == 0) {
			if (pgmctl_now_ms() < deadline)
				continue;
			warnx("no answer from %s within %d seconds", path,
			    timeout);
			goto fail;
		}
		if ((n = read(fd, buf + len, cap - len - 1)) == -1) {
			if (errno == EINTR)
				continue;
			/*
			 * Closed without reading our request (a refused
			 * peer): what it sent before is still the answer.
			 */
			if (errno == ECONNRESET || (len == 0 && werr != 0))
				break;
			warn("cannot read from %s", path);
			goto fail;
		}
		if (n == 0)
			break;
		len += n;
	}
	close(fd);
	if (len == 0) {
		if (werr != 0 && werr != EPIPE && werr != ECONNRESET)
			warnx("cannot send to %s: %s", path, strerror(werr));
		else
			warnx("%s closed the connection without answering "
			    "(is this user allowed to use it?)", path);
		free(buf);
		return -1;
	}
	buf[len] = '\0';
	if (pgmctl_answer_parse(buf, len, a, &why) == -1) {
		warnx("malformed answer from %s: %s", path, why);
		free(buf);
		return -1;
	}
	free(buf);
	return 0;
fail:
	close(fd);
	free(buf);
	return -1;
}

/* Run a command through the control socket; the exit status. */
int
pgmctl_local(const char *path, const struct ctlcmd_req *r)
{
	struct pgmctl_answer a;
	char		 line[CTLCMD_LINE_MAX + 1];
	int		 timeout = PGMCTL_READ_TIMEOUT, rc;

	if (path == NULL) {
		path = PGM_CONTROL_SOCKET;
		if (pgmctl_conffile != NULL) {
			if (pgmctl_conf_load(0) == -1)
				return 1;
			path = pgmctl_conf->control_socket;
		}
	}
	/* The newline makes it CTLCMD_LINE_MAX at most. */
	if (ctlcmd_format(r, 0, line, sizeof(line) - 1) == -1) {
		warnx("the request is longer than %d bytes", CTLCMD_LINE_MAX);
		return 1;
	}
	strcat(line, "\n");
	/* --wait and --timeout are at most CTLCMD_SECONDS_MAX. */
	if (r->id == CTLCMD_MAINTENANCE && r->seconds >= 0)
		timeout = (int)r->seconds + PGMCTL_GRACE;
	else if (r->id == CTLCMD_SWITCHOVER)
		timeout = r->seconds >= 0 ? (int)r->seconds + PGMCTL_GRACE : -1;
	if (pgmctl_sock_call(path, line, timeout, &a) == -1)
		return 1;
	if (!a.ok)
		warnx("%s", a.reason);
	if (a.ok || a.table != NULL)
		pgmctl_print(a.table);
	rc = a.ok ? 0 : 1;
	pgmctl_answer_clear(&a);
	return rc;
}
