/*
 * main.c: main() of the daemon: command-line options, loading the
 * config, and handing over to the supervisor.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgmirror.h"

struct pgm_config *pgm_conf;

/* Print usage and exit with status. */
static void __attribute__((noreturn))
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: pgmirror [-dnhV] [-c FILE]\n"
	    "  -c FILE  configuration file (default %s)\n"
	    "  -d       debug: stay in the foreground, log to stderr\n"
	    "  -n       check the configuration and exit\n"
	    "  -V       print the version and exit\n"
	    "  -h       print this help and exit\n", PGM_CONFIG_FILE);
	exit(status);
}

/* Print every error of a config that did not load. */
static void
print_config_errors(const struct pgm_config_errors *errs)
{
	int		 i;

	for (i = 0; i < errs->n; i++) {
		if (errs->err[i].line > 0)
			fprintf(stderr, "%s:%d: %s\n", errs->file,
			    errs->err[i].line, errs->err[i].msg);
		else
			fprintf(stderr, "%s: %s\n", errs->file,
			    errs->err[i].msg);
	}
}

/* Parse the options, load the config, and run the supervisor. */
int
main(int argc, char *argv[])
{
	static struct pgm_config_errors errs;
	const char	*path = PGM_CONFIG_FILE;
	struct stat	 sb;
	char		 tlserr[512];
	int		 ch, debug = 0, check = 0;

	while ((ch = getopt(argc, argv, "c:dhnV")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'V':
			printf("pgmirror %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(0);
		default:
			usage(1);
		}
	}
	if (optind != argc)
		usage(1);

	if ((pgm_conf = config_load(path, &errs)) == NULL) {
		print_config_errors(&errs);
		return 1;
	}
	if (tls_init(pgm_conf, tlserr, sizeof(tlserr)) == -1) {
		if (pgm_conf->tls_line > 0)
			fprintf(stderr, "%s:%d: %s\n", path, pgm_conf->tls_line,
			    tlserr);
		else
			fprintf(stderr, "%s: %s\n", path, tlserr);
		return 1;
	}
	if (check) {
		printf("configuration OK\n");
		return 0;
	}
	log_init(debug || pgm_conf->log_stderr, pgm_conf->log_facility);
	log_verbose(debug);
	log_setproc("supervisor", -1);
	if (stat(path, &sb) == 0 && (sb.st_mode & S_IROTH))
		log_warnx("%s is readable by other users, and it holds "
		    "passwords: chmod o-r it", path);
	return supervisor_main(pgm_conf, debug);
}
