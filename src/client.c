/*
 * client.c: what pgmirror itself says to the client of a session.
 *
 * Messages pgmirror composes (the login's answers, errors) go out with
 * client_send, bounded by a write deadline; a FATAL is logged where it
 * is made (client_fatal), and client_fail sends one at once, which is
 * right only while the client's stream is between messages (before the
 * relay, or after it said so).  client_end says why a session ended,
 * as PostgreSQL says it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "pgmirror.h"

#define CLIENT_WRITE_TIMEOUT	30000	/* ms for a message we compose */

/* Send the composed messages in b to the client. */
int
client_send(struct pgm_client *cl, struct pgm_buf *b)
{
	if (b->failed) {
		errno = ENOMEM;
		return -1;
	}
	return net_write_full(cl->fd, cl->ssl, b->data, b->len,
	    net_now_ms() + CLIENT_WRITE_TIMEOUT);
}

/* Append a FATAL error with its SQLSTATE to b, and log it. */
void
client_fatal(struct pgm_buf *b, const char *sqlstate, const char *fmt, ...)
{
	va_list		 ap;
	char		 msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("FATAL %s to client: %s", sqlstate, msg);
	proto_error(b, "FATAL", sqlstate, "%s", msg);
}

/* Tell the client a FATAL error with its SQLSTATE, and log it. */
void
client_fail(struct pgm_client *cl, const char *sqlstate, const char *fmt, ...)
{
	struct pgm_buf	 b;
	va_list		 ap;
	char		 msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_init(&b);
	client_fatal(&b, sqlstate, "%s", msg);
	(void)client_send(cl, &b);
	buf_free(&b);
}

/*
 * The relay ended the session (end): tell the client why, when its
 * stream is between messages (boundary) and pgmirror has something to
 * say.
 */
void
client_end(struct pgm_client *cl, enum pgm_relay_end end, int boundary)
{
	if (!boundary)
		return;
	switch (end) {
	case RELAY_PROTOCOL:
		client_fail(cl, "08P01", "invalid frontend message");
		break;
	case RELAY_TOO_LARGE:
		client_fail(cl, "08P01", "invalid message length: larger than "
		    "client.max_message_size (%d bytes)",
		    pgm_conf->client_max_message_size);
		break;
	case RELAY_IDLE_TIMEOUT:
		client_fail(cl, "57P05", "terminating connection due to "
		    "idle-session timeout");
		break;
	case RELAY_IDLE_IN_TRANSACTION:
		client_fail(cl, "25P03", "terminating connection due to "
		    "idle-in-transaction timeout");
		break;
	case RELAY_SHUTDOWN:
		client_fail(cl, "57P01", "terminating connection due to "
		    "administrator command");
		break;
	case RELAY_CLIENT_TERMINATE:
	case RELAY_CLIENT_GONE:
	case RELAY_SERVER_GONE:
	case RELAY_MOVE_FAILED:		/* the relay told the client */
		break;
	}
}
