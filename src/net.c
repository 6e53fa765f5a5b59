/*
 * net.c: socket helpers for the blocking, deadline-bounded I/O of the
 * startup and authentication phases, and server connects.
 *
 * Deadlines are absolute monotonic milliseconds (net_now_ms); 0 means
 * none.  Every wait also watches the supervisor-death pipe and the
 * worker's shutdown flags, so a worker never hangs on a silent peer
 * after it was told to go.  Returns are 0 on success, -1 on failure
 * with errno set (ETIMEDOUT for a deadline, ECONNRESET for EOF, EINTR
 * when the worker must stop).
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "pgmirror.h"

/* Milliseconds of the monotonic clock. */
int64_t
net_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Put a descriptor in non-blocking mode. */
int
net_set_nonblock(int fd)
{
	int		 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/*
 * Wait until fd is ready for events or the deadline passes; when
 * stoppable, also until the worker must stop.
 */
static int
net_wait_until(int fd, short events, int64_t deadline, int stoppable)
{
	struct pollfd	 pfd[2];
	int		 timeout, n;

	for (;;) {
		if (stoppable && proc_interrupted()) {
			errno = EINTR;
			return -1;
		}
		timeout = -1;
		if (deadline) {
			int64_t	 left = deadline - net_now_ms();

			if (left <= 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			timeout = left > 1000 ? 1000 : (int)left;
		} else
			timeout = 1000;
		pfd[0].fd = fd;
		pfd[0].events = events;
		pfd[1].fd = proc_death_fd;
		pfd[1].events = POLLIN;
		n = proc_poll(pfd, proc_death_fd >= 0 && stoppable ? 2 : 1,
		    timeout);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n > 0 && stoppable && proc_death_fd >= 0 && pfd[1].revents) {
			proc_orphaned();
			errno = EINTR;
			return -1;
		}
		if (n > 0 && pfd[0].revents)
			return 0;
	}
}

/* Wait until fd is ready for events, the deadline passes or we must stop. */
int
net_wait(int fd, short events, int64_t deadline)
{
	return net_wait_until(fd, events, deadline, 1);
}

/*
 * Map the result of SSL_read or SSL_write to that of recv or send: a
 * session that needs to read or write first fails with EAGAIN like a
 * socket that would block; a TLS protocol error fails with EPROTO; EOF
 * without close_notify reads as EOF.
 */
static ssize_t
net_ssl_result(struct ssl_st *ssl, int rc, int writing)
{
	if (rc > 0)
		return rc;
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		if (!writing)
			return 0;
		errno = EPIPE;
		return -1;
	case SSL_ERROR_SYSCALL:
		if (errno != 0)
			return -1;
		if (!writing)
			return 0;
		errno = EPIPE;
		return -1;
	default:
		errno = EPROTO;
		return -1;
	}
}

/* recv(2) on a plain or TLS connection; flags apply to plain ones. */
ssize_t
net_recv(int fd, struct ssl_st *ssl, void *p, size_t n, int flags)
{
	if (ssl == NULL)
		return recv(fd, p, n, flags);
	if (n > INT_MAX)
		n = INT_MAX;
	ERR_clear_error();
	errno = 0;
	return net_ssl_result(ssl, SSL_read(ssl, p, (int)n), 0);
}

/* send(2) on a plain or TLS connection, never raising SIGPIPE. */
ssize_t
net_send(int fd, struct ssl_st *ssl, const void *p, size_t n, int flags)
{
	if (ssl == NULL)
		return send(fd, p, n, flags | MSG_NOSIGNAL);
	if (n > INT_MAX)
		n = INT_MAX;
	ERR_clear_error();
	errno = 0;
	return net_ssl_result(ssl, SSL_write(ssl, p, (int)n), 1);
}

/* Read exactly n bytes before the deadline. */
int
net_read_full(int fd, struct ssl_st *ssl, void *p, size_t n,
    int64_t deadline)
{
	size_t		 got = 0;
	ssize_t		 r;

	while (got < n) {
		r = net_recv(fd, ssl, (uint8_t *)p + got, n - got,
		    MSG_DONTWAIT);
		if (r > 0) {
			got += r;
			continue;
		}
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (net_wait(fd, POLLIN, deadline) == -1)
			return -1;
	}
	return 0;
}

/* Write exactly n bytes before the deadline. */
int
net_write_full(int fd, struct ssl_st *ssl, const void *p, size_t n,
    int64_t deadline)
{
	size_t		 done = 0;
	ssize_t		 r;

	while (done < n) {
		r = net_send(fd, ssl, (const uint8_t *)p + done, n - done,
		    MSG_DONTWAIT);
		if (r > 0) {
			done += r;
			continue;
		}
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (net_wait(fd, POLLOUT, deadline) == -1)
			return -1;
	}
	return 0;
}

/*
 * Read one typed message whole into b (type byte and length word
 * included), refusing bodies longer than max.  Returns 0, or -1 with
 * errno (EMSGSIZE for a bad length).
 */
int
net_read_message(int fd, struct ssl_st *ssl, struct pgm_buf *b,
    uint8_t *type, size_t max, int64_t deadline)
{
	uint8_t		 hdr[5];
	uint32_t	 len;

	buf_reset(b);
	if (net_read_full(fd, ssl, hdr, 5, deadline) == -1)
		return -1;
	len = proto_get_u32(hdr + 1);
	if (len < 4 || len - 4 > max) {
		errno = EMSGSIZE;
		return -1;
	}
	*type = hdr[0];
	buf_put(b, hdr, 5);
	if (len > 4) {
		if (buf_reserve(b, len - 4) == -1) {
			errno = ENOMEM;
			return -1;
		}
		if (net_read_full(fd, ssl, b->data + 5, len - 4, deadline) ==
		    -1)
			return -1;
		b->len = 5 + len - 4;
	}
	return 0;
}

/* Set the socket options we want on every server and client socket. */
static void
net_tune(int fd, int family)
{
	int		 one = 1;

	if (family == AF_INET || family == AF_INET6) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	}
}

/*
 * Connect to a resolved address before the deadline; returns the fd.
 * A connect that is not stoppable goes on while the worker shuts down
 * (to deliver a last CancelRequest).
 */
int
net_connect_addr(const struct sockaddr_storage *ss, socklen_t len,
    int64_t deadline, int stoppable)
{
	int		 fd, err;
	socklen_t	 elen = sizeof(err);

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return -1;
	net_tune(fd, ss->ss_family);
	if (connect(fd, (const struct sockaddr *)ss, len) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EAGAIN)
		goto fail;
	if (net_wait_until(fd, POLLOUT, deadline, stoppable) == -1)
		goto fail;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
		goto fail;
	if (err != 0) {
		errno = err;
		goto fail;
	}
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

/*
 * Connect to host:port, or to the Unix socket DIR/.s.PGSQL.port when
 * host starts with '/'.  The address used is stored in ss (for
 * forwarding cancel requests).  Returns the fd or -1.
 */
int
net_connect(const char *host, int port, int64_t deadline,
    struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct addrinfo	 hints, *res, *ai;
	char		 portstr[16];
	int		 fd = -1, e;

	memset(ss, 0, sizeof(*ss));
	if (host[0] == '/') {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;

		sun->sun_family = AF_UNIX;
		if ((size_t)snprintf(sun->sun_path, sizeof(sun->sun_path),
		    "%s/.s.PGSQL.%d", host, port) >= sizeof(sun->sun_path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		*sslen = sizeof(*sun);
		return net_connect_addr(ss, *sslen, deadline, 1);
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((e = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		errno = EHOSTUNREACH;
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		memcpy(ss, ai->ai_addr, ai->ai_addrlen);
		*sslen = ai->ai_addrlen;
		if ((fd = net_connect_addr(ss, *sslen, deadline, 1)) != -1)
			break;
	}
	e = errno;
	freeaddrinfo(res);
	errno = e;
	return fd;
}

/* Render a peer address for logs. */
void
net_addr_str(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char		 a[INET6_ADDRSTRLEN];

	switch (ss->ss_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const void *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		snprintf(out, len, "%s:%d", a, ntohs(sin->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		snprintf(out, len, "[%s]:%d", a, ntohs(sin6->sin6_port));
		break;
	}
	case AF_UNIX:
		snprintf(out, len, "unix");
		break;
	default:
		snprintf(out, len, "?");
	}
}

/* Does a live server answer on this Unix socket path? */
int
net_unix_in_use(const struct sockaddr_un *sun)
{
	int		 fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return rc;
}
