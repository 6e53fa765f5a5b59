/*
 * log.c: the one logging API of pgmirror.
 *
 * Lines go to syslog (ident "pgmirror", LOG_PID) or, in debug mode, to
 * stderr.  Every line is prefixed with the process role ("supervisor",
 * "worker 3") and, while a worker serves a client, the session.
 * log_warn adds the errno text, log_warnx does not.  fatal and fatalx
 * are for startup only: never for anything a peer sends.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "pgmirror.h"

static int	 log_tostderr = 1;
static int	 log_debugging;
static char	 log_proc[32] = "pgmirror";
static char	 log_session[128];

/* Open the log: to stderr or to syslog with the given facility. */
void
log_init(int tostderr, int facility)
{
	log_tostderr = tostderr;
	if (!tostderr)
		openlog("pgmirror", LOG_PID | LOG_NDELAY, facility);
}

/* Turn debug messages on or off. */
void
log_verbose(int v)
{
	log_debugging = v;
}

/* Name this process in every line: "supervisor", "worker 3". */
void
log_setproc(const char *role, int n)
{
	if (n >= 0)
		snprintf(log_proc, sizeof(log_proc), "%s %d", role, n);
	else
		snprintf(log_proc, sizeof(log_proc), "%s", role);
}

/* Name the session being served, or NULL when there is none. */
void
log_setsession(const char *s)
{
	if (s == NULL)
		log_session[0] = '\0';
	else
		snprintf(log_session, sizeof(log_session), "%s", s);
}

/*
 * Replace control characters in place with '?': names that clients
 * send end up in log lines, and must not start lines of their own.
 */
static void
log_escape(char *s, size_t len)
{
	for (; len > 0 && *s != '\0'; s++, len--)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* Format and emit one line at a syslog priority. */
static void __attribute__((format(printf, 3, 0)))
log_emit(int pri, const char *errtext, const char *fmt, va_list ap)
{
	char		 msg[1024];
	char		 line[1400];
	int		 saved = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	snprintf(line, sizeof(line), "%s: %s%s%s%s%s", log_proc,
	    log_session[0] ? log_session : "", log_session[0] ? ": " : "",
	    msg, errtext ? ": " : "", errtext ? errtext : "");
	log_escape(line, sizeof(line));
	if (log_tostderr) {
		struct timespec	 ts;
		struct tm	 tm;
		char		 stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld [%ld] %s\n", stamp,
		    ts.tv_nsec / 1000000, (long)getpid(), line);
		fflush(stderr);
	} else
		syslog(pri, "%s", line);
	errno = saved;
}

/* A warning with the text of errno. */
void
log_warn(const char *fmt, ...)
{
	va_list		 ap;
	char		 e[128];

	snprintf(e, sizeof(e), "%s", strerror(errno));
	va_start(ap, fmt);
	log_emit(LOG_WARNING, e, fmt, ap);
	va_end(ap);
}

/* A warning. */
void
log_warnx(const char *fmt, ...)
{
	va_list		 ap;

	va_start(ap, fmt);
	log_emit(LOG_WARNING, NULL, fmt, ap);
	va_end(ap);
}

/* An informational line. */
void
log_info(const char *fmt, ...)
{
	va_list		 ap;

	va_start(ap, fmt);
	log_emit(LOG_INFO, NULL, fmt, ap);
	va_end(ap);
}

/* A debug line, shown only with log_verbose on. */
void
log_debug(const char *fmt, ...)
{
	va_list		 ap;

	if (!log_debugging)
		return;
	va_start(ap, fmt);
	log_emit(LOG_DEBUG, NULL, fmt, ap);
	va_end(ap);
}

/* Startup failure with errno text: log and exit. */
void
fatal(const char *fmt, ...)
{
	va_list		 ap;
	char		 e[128];

	snprintf(e, sizeof(e), "%s", strerror(errno));
	va_start(ap, fmt);
	log_emit(LOG_CRIT, e, fmt, ap);
	va_end(ap);
	exit(1);
}

/* Startup failure: log and exit. */
void
fatalx(const char *fmt, ...)
{
	va_list		 ap;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
