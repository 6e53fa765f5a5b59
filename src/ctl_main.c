/*
 * ctl_main.c: pgmirrorctl's command line, its config file, and the
 * helpers all its files use.
 *
 * Owns main: the options (-c -H -j -s -t), the command (parsed in the
 * prefix dialect of ctlcmd.c), and the way it goes: the control socket
 * (ctl_socket.c), the admin consoles (ctl_fleet.c) or verify
 * (ctl_verify.c).  Owns the usage, whose commands are the table's.
 * Owns the config file: loaded once, when a setting of it is needed,
 * and checked by config.c as pgmirror checks it.  And the helpers:
 * allocation that dies on failure, the clock, one-line messages.
 */
#include <err.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgmirror.h"
#include "pgmirrorctl.h"

const char	*pgmctl_conffile;	/* -c, or NULL */
struct pgm_config *pgmctl_conf;		/* once pgmctl_conf_load'ed */

/* Print the usage summary and exit with status. */
static void __attribute__((noreturn))
pgmctl_usage(int status)
{
	FILE		*f = status ? stderr : stdout;
	char		 line[256];
	int		 i;

	fprintf(f, "usage: pgmirrorctl [-hjt] [-c config] [-H host:port,...] "
	    "[-s socket] command\n"
	    "commands:\n");
	for (i = 0; ctlcmd_synopsis(CTLCMD_ARGV, i, line, sizeof(line)) == 0;
	    i++)
		fprintf(f, "  %s\n", line);
	fprintf(f,
	    "options:\n"
	    "  -c config  configuration file (default %s)\n"
	    "  -H hosts   use the admin consoles of these instances\n"
	    "  -j         print tables as JSON\n"
	    "  -s socket  control socket (default %s)\n"
	    "  -t         print tables as tab-separated lines\n"
	    "  -h         print this help and exit\n",
	    PGM_CONFIG_FILE, PGM_CONTROL_SOCKET);
	exit(status);
}

/* Report a command line error, then the usage, and exit 1. */
void
pgmctl_usage_err(const char *fmt, ...)
{
	va_list		 ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	pgmctl_usage(1);
}

/* malloc or die. */
void *
pgmctl_alloc(size_t n)
{
	void		*p;

	if ((p = malloc(n ? n : 1)) == NULL)
		err(1, NULL);
	return p;
}

/* realloc of n elements of size each, or die. */
void *
pgmctl_realloc(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		errx(1, "out of memory");
	if ((p = realloc(p, n * size != 0 ? n * size : 1)) == NULL)
		err(1, NULL);
	return p;
}

/* strdup or die. */
char *
pgmctl_strdup(const char *s)
{
	char		*p;

	if ((p = strdup(s)) == NULL)
		err(1, NULL);
	return p;
}

/* strndup or die. */
char *
pgmctl_strndup(const char *s, size_t n)
{
	char		*p;

	if ((p = strndup(s, n)) == NULL)
		err(1, NULL);
	return p;
}

/* A malloc'ed printf, or die. */
char *
pgmctl_printf(const char *fmt, ...)
{
	va_list		 ap;
	char		*s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		err(1, NULL);
	va_end(ap);
	return s;
}

/* Milliseconds on the monotonic clock. */
int64_t
pgmctl_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Turn a multi-line message into one line, in place; drop the end. */
char *
pgmctl_oneline(char *s)
{
	char		*r, *w;
	size_t		 n;

	for (r = w = s; *r != '\0'; r++) {
		if (*r == '\n' || *r == '\r' || *r == '\t') {
			if (w > s && w[-1] != ' ')
				*w++ = ' ';
		} else
			*w++ = *r;
	}
	*w = '\0';
	n = strlen(s);
	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
	return s;
}

/* The config file: -c, or the default one. */
const char *
pgmctl_conf_path(void)
{
	return pgmctl_conffile ? pgmctl_conffile : PGM_CONFIG_FILE;
}

/*
 * Load and check the config file into pgmctl_conf: -c, or the default
 * one.  A missing default file is no error when optional is set:
 * pgmctl_conf stays NULL, and the settings keep their defaults.  -1
 * after printing why, each error on its line.
 */
int
pgmctl_conf_load(int optional)
{
	static struct pgm_config_errors errs;
	static int	 missing;
	const char	*path = pgmctl_conf_path();
	int		 i;

	if (pgmctl_conf != NULL || missing)
		return 0;
	if (pgmctl_conffile == NULL && optional && access(path, F_OK) == -1 &&
	    errno == ENOENT) {
		missing = 1;
		return 0;
	}
	if ((pgmctl_conf = config_load(path, &errs)) != NULL)
		return 0;
	for (i = 0; i < errs.n; i++)
		if (errs.err[i].line > 0)
			warnx("%s:%d: %s", errs.file, errs.err[i].line,
			    errs.err[i].msg);
		else
			warnx("%s: %s", errs.file, errs.err[i].msg);
	return -1;
}

/* Parse the options and run the command. */
int
main(int argc, char *argv[])
{
	struct ctlcmd_req req;
	char		 why[512];
	const char	*sock = NULL, *hosts = NULL;
	int		 ch, rc;

	/* A line config.c may log names us, not the daemon. */
	log_setproc("pgmirrorctl", -1);
	/* "+": stop at the command, whose own options start with "--". */
	while ((ch = getopt(argc, argv, "+c:hH:js:t")) != -1) {
		switch (ch) {
		case 'c':
			pgmctl_conffile = optarg;
			break;
		case 'H':
			hosts = optarg;
			break;
		case 'j':
			if (pgmctl_format == FMT_TABS)
				pgmctl_usage_err("choose -j or -t");
			pgmctl_format = FMT_JSON;
			break;
		case 's':
			sock = optarg;
			break;
		case 't':
			if (pgmctl_format == FMT_JSON)
				pgmctl_usage_err("choose -j or -t");
			pgmctl_format = FMT_TABS;
			break;
		case 'h':
			pgmctl_usage(0);
		default:
			pgmctl_usage(1);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		pgmctl_usage(1);
	if (sock != NULL && hosts != NULL)
		pgmctl_usage_err("-s and -H do not go together");
	if (ctlcmd_parse(argc, argv, CTLCMD_ARGV, &req, why, sizeof(why)) == -1)
		pgmctl_usage_err("%s", why);
	if (req.id == CTLCMD_VERIFY) {
		if (sock != NULL || hosts != NULL)
			pgmctl_usage_err("verify reads the config file; "
			    "it takes no -s or -H");
		rc = pgmctl_verify(&req);
	} else if (hosts != NULL)
		rc = pgmctl_remote(hosts, &req);
	else
		rc = pgmctl_local(sock, &req);
	config_free(pgmctl_conf);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		warn("stdout");
		rc = 1;
	}
	return rc;
}
