/*
 * config.c: loading and checking pgmirror.conf (libconfig syntax).
 *
 * config_load reads a file into a fresh struct pgm_config and checks
 * every setting, collecting all errors with their line numbers instead
 * of stopping at the first, so `pgmirror -n` can show them together.
 * A config is immutable once loaded; a reload builds a new one.  The
 * password of each user is prepared here (md5 hash, SCRAM secret) so
 * no PBKDF2 runs per connection.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <libconfig.h>

#include "pgmirror.h"

struct config_ctx {
	struct pgm_config_errors *errs;
	struct pgm_config *conf;
};

/* Record one error at a line. */
static void __attribute__((format(printf, 3, 4)))
config_err(struct config_ctx *cx, int line, const char *fmt, ...)
{
	struct pgm_config_error *e;
	va_list		 ap;

	if (cx->errs->n == PGM_CONFIG_MAXERR)
		return;
	e = &cx->errs->err[cx->errs->n++];
	e->line = line;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

/* strdup that records an error instead of failing silently. */
static char *
config_strdup(struct config_ctx *cx, const char *s)
{
	char		*p;

	if (s == NULL)
		return NULL;
	if ((p = strdup(s)) == NULL)
		config_err(cx, 0, "out of memory");
	return p;
}

/* Line of a setting, for messages. */
static int
config_line(const config_setting_t *s)
{
	return s ? (int)config_setting_source_line(s) : 0;
}

/* Is name one of the NULL-terminated list? */
static int
config_known(const char *name, const char *const *known)
{
	for (; *known; known++)
		if (strcmp(name, *known) == 0)
			return 1;
	return 0;
}

/* Report the members of a group that are not in the known list. */
static void
config_check_keys(struct config_ctx *cx, const config_setting_t *group,
    const char *where, const char *const *known)
{
	const config_setting_t *m;
	int		 i;

	for (i = 0; (m = config_setting_get_elem(group, i)) != NULL; i++) {
		const char	*name = config_setting_name(m);

		if (name != NULL && !config_known(name, known))
			config_err(cx, config_line(m),
			    "unknown setting \"%s%s%s\"", where,
			    *where ? "." : "", name);
	}
}

/* Fetch an optional string member; errors if it has another type. */
static int
config_get_str(struct config_ctx *cx, const config_setting_t *g,
    const char *key, const char *what, char **out)
{
	const config_setting_t *s;

	if (g == NULL || (s = config_setting_get_member(g, key)) == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		config_err(cx, config_line(s), "%s must be a string", what);
		return -1;
	}
	free(*out);
	*out = config_strdup(cx, config_setting_get_string(s));
	return 1;
}

/* Fetch an optional integer member within [min, max]. */
static int
config_get_int(struct config_ctx *cx, const config_setting_t *g,
    const char *key, const char *what, int min, int max, int *out)
{
	const config_setting_t *s;
	long long	 v;

	if (g == NULL || (s = config_setting_get_member(g, key)) == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		config_err(cx, config_line(s), "%s must be an integer", what);
		return -1;
	}
	v = config_setting_get_int64(s);
	if (v < min || v > max) {
		config_err(cx, config_line(s),
		    "%s must be between %d and %d, not %lld", what, min, max,
		    v);
		return -1;
	}
	*out = (int)v;
	return 1;
}

/* Fetch an optional boolean member (true or false). */
static int
config_get_bool(struct config_ctx *cx, const config_setting_t *g,
    const char *key, const char *what, int *out)
{
	const config_setting_t *s;

	if (g == NULL || (s = config_setting_get_member(g, key)) == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		config_err(cx, config_line(s), "%s must be true or false",
		    what);
		return -1;
	}
	*out = config_setting_get_bool(s) ? 1 : 0;
	return 1;
}

/* Fetch a group member, checking that it is a group. */
static const config_setting_t *
config_get_group(struct config_ctx *cx, const config_setting_t *g,
    const char *key)
{
	const config_setting_t *s;

	if ((s = config_setting_get_member(g, key)) == NULL)
		return NULL;
	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		config_err(cx, config_line(s),
		    "%s must be a group: %s = { ... };", key, key);
		return NULL;
	}
	return s;
}

/* Map an auth_type name. */
static int
config_auth_type(const char *s)
{
	if (strcmp(s, "scram-sha-256") == 0)
		return AUTH_SCRAM;
	if (strcmp(s, "md5") == 0)
		return AUTH_MD5;
	if (strcmp(s, "trust") == 0)
		return AUTH_TRUST;
	return -2;
}

/* The config name of an auth type. */
const char *
config_auth_name(int t)
{
	switch (t) {
	case AUTH_SCRAM:
		return "scram-sha-256";
	case AUTH_MD5:
		return "md5";
	case AUTH_TRUST:
		return "trust";
	}
	return "default";
}

/* Map a TLS mode name, or -1. */
static int
config_tls_mode(const char *s)
{
	if (strcmp(s, "disable") == 0)
		return TLS_DISABLE;
	if (strcmp(s, "allow") == 0)
		return TLS_ALLOW;
	if (strcmp(s, "prefer") == 0)
		return TLS_PREFER;
	if (strcmp(s, "require") == 0)
		return TLS_REQUIRE;
	if (strcmp(s, "verify-ca") == 0)
		return TLS_VERIFY_CA;
	if (strcmp(s, "verify-full") == 0)
		return TLS_VERIFY_FULL;
	return -1;
}

/* Map a syslog facility name. */
static int
config_facility(const char *s)
{
	static const struct {
		const char	*name;
		int		 code;
	} f[] = {
		{ "daemon", LOG_DAEMON }, { "user", LOG_USER },
		{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
		{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
		{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
		{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
	};
	size_t		 i;

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (strcmp(s, f[i].name) == 0)
			return f[i].code;
	return -1;
}

/*
 * Parse one listen entry: "HOST:PORT", "[V6]:PORT", "*:PORT",
 * "/socket/dir:PORT" or "/socket/dir" (port 6432).
 */
static int
config_parse_listen(const char *s, struct pgm_listen *l, const char **why)
{
	const char	*colon;
	char		*end;
	long		 port = 6432;
	size_t		 hlen;

	memset(l, 0, sizeof(*l));
	*why = "expected \"HOST:PORT\", \"[IPV6]:PORT\" or \"/DIR:PORT\"";
	if (s[0] == '/') {
		colon = strrchr(s, ':');
		hlen = colon ? (size_t)(colon - s) : strlen(s);
		if (hlen > 80) {
			*why = "Unix socket directory path is too long";
			return -1;
		}
	} else if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			return -1;
		colon = rb + 1;
		s++;
		hlen = rb - s;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hlen = colon - s;
	}
	if (colon != NULL) {
		errno = 0;
		port = strtol(colon + 1, &end, 10);
		if (colon[1] == '\0' || *end != '\0' || errno != 0 ||
		    port < 1 || port > 65535) {
			*why = "port must be a number from 1 to 65535";
			return -1;
		}
	}
	l->port = (int)port;
	if (hlen == 0)
		return -1;
	if ((l->host = strndup(s, hlen)) == NULL)
		return -1;
	if (l->host[0] == '/') {
		l->path = l->host;
		l->host = NULL;
	}
	return 0;
}

/* Load the top-level scalars and groups other than the lists. */
static void
config_load_globals(struct config_ctx *cx, const config_setting_t *root)
{
	static const char *const top[] = { "listen", "control_socket",
	    "admin", "auth_type", "workers", "pool", "shutdown_timeout",
	    "client", "server",
	    "mirror_queue", "mirror", "metrics", "log", "tls", "databases",
	    "users", "mirrors", "user", "group", NULL };
	static const char *const k_admin[] = { "database", "user",
	    "password", NULL };
	static const char *const k_workers[] = { "min_spare", "max_spare",
	    "max", "max_clients", NULL };
	static const char *const k_client[] = { "login_timeout",
	    "idle_timeout", "idle_transaction_timeout", "max_connections",
	    "max_message_size", NULL };
	static const char *const k_server[] = { "connect_timeout", "lifetime",
	    "idle_timeout", "allow_cleartext_password", NULL };
	static const char *const k_tls[] = { "cert_file", "key_file",
	    "client_mode", "server_mode", "ca_file", "client_ca_file",
	    "server_cert_file", "server_key_file", NULL };
	static const char *const k_pool[] = { "mode", "default_size",
	    "min_size", "wait_timeout", "reset_query", NULL };
	static const char *const k_metrics[] = { "listen", NULL };
	static const char *const k_mirror[] = { "workers", "retry_max",
	    "replay_timeout", NULL };
	static const char *const k_log[] = { "destination", "facility",
	    "stats_period", NULL };
	struct pgm_config *c = cx->conf;
	const config_setting_t *g, *s;
	char		*str = NULL;
	int		 i;

	config_check_keys(cx, root, "", top);

	if ((s = config_setting_get_member(root, "listen")) == NULL)
		config_err(cx, 0, "listen is not set");
	else if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(s) != CONFIG_TYPE_LIST)
		config_err(cx, config_line(s),
		    "listen must be a list of strings: [ \"HOST:PORT\" ]");
	else {
		int	 n = config_setting_length(s);

		c->listen = calloc(n ? n : 1, sizeof(*c->listen));
		for (i = 0; i < n && c->listen; i++) {
			const config_setting_t *e = config_setting_get_elem(s,
			    i);
			const char *why;

			if (config_setting_type(e) != CONFIG_TYPE_STRING) {
				config_err(cx, config_line(s),
				    "listen entries must be strings");
				continue;
			}
			if (config_parse_listen(config_setting_get_string(e),
			    &c->listen[c->nlisten], &why) == -1) {
				config_err(cx, config_line(s),
				    "listen \"%s\": %s",
				    config_setting_get_string(e), why);
				continue;
			}
			c->listen[c->nlisten++].line = config_line(s);
		}
		if (n == 0)
			config_err(cx, config_line(s), "listen is empty");
	}

	config_get_str(cx, root, "control_socket", "control_socket",
	    &c->control_socket);
	config_get_str(cx, root, "user", "user", &c->user);
	config_get_str(cx, root, "group", "group", &c->group);

	if ((g = config_get_group(cx, root, "admin")) != NULL) {
		config_check_keys(cx, g, "admin", k_admin);
		config_get_str(cx, g, "database", "admin.database",
		    &c->admin_database);
		config_get_str(cx, g, "user", "admin.user", &c->admin_user);
		config_get_str(cx, g, "password", "admin.password",
		    &c->admin_password);
	}

	if (config_get_str(cx, root, "auth_type", "auth_type", &str) == 1 &&
	    str != NULL) {
		if ((c->auth_type = config_auth_type(str)) == -2) {
			config_err(cx, config_line(config_setting_get_member(
			    root, "auth_type")), "auth_type must be "
			    "\"scram-sha-256\", \"md5\" or \"trust\"");
			c->auth_type = AUTH_SCRAM;
		}
	}
	free(str);
	str = NULL;

	if ((g = config_get_group(cx, root, "workers")) != NULL) {
		config_check_keys(cx, g, "workers", k_workers);
		config_get_int(cx, g, "min_spare", "workers.min_spare", 1,
		    10000, &c->workers_min_spare);
		config_get_int(cx, g, "max_spare", "workers.max_spare", 1,
		    10000, &c->workers_max_spare);
		config_get_int(cx, g, "max", "workers.max", 1, 100000,
		    &c->workers_max);
		config_get_int(cx, g, "max_clients", "workers.max_clients", 0,
		    INT_MAX, &c->workers_max_clients);
		if (c->workers_min_spare > c->workers_max_spare)
			config_err(cx, config_line(g), "workers.min_spare (%d)"
			    " is larger than workers.max_spare (%d)",
			    c->workers_min_spare, c->workers_max_spare);
		if (c->workers_min_spare > c->workers_max)
			config_err(cx, config_line(g), "workers.min_spare (%d)"
			    " is larger than workers.max (%d)",
			    c->workers_min_spare, c->workers_max);
	}

	if ((g = config_get_group(cx, root, "pool")) != NULL) {
		config_check_keys(cx, g, "pool", k_pool);
		if (config_get_str(cx, g, "mode", "pool.mode", &str) == 1 &&
		    str != NULL && strcmp(str, "session") != 0)
			config_err(cx, config_line(config_setting_get_member(g,
			    "mode")), "pool.mode \"%s\" is not supported: "
			    "pgmirror pools sessions (\"session\")", str);
		free(str);
		str = NULL;
		config_get_int(cx, g, "default_size", "pool.default_size", 1,
		    100000, &c->pool_default_size);
		config_get_int(cx, g, "min_size", "pool.min_size", 0,
		    100000, &c->pool_min_size);
		config_get_int(cx, g, "wait_timeout", "pool.wait_timeout", 0,
		    86400, &c->pool_wait_timeout);
		config_get_str(cx, g, "reset_query", "pool.reset_query",
		    &c->pool_reset_query);
		if (c->pool_min_size > c->pool_default_size)
			config_err(cx, config_line(g), "pool.min_size (%d) is "
			    "larger than pool.default_size (%d)",
			    c->pool_min_size, c->pool_default_size);
	}

	config_get_int(cx, root, "shutdown_timeout", "shutdown_timeout", 0,
	    86400, &c->shutdown_timeout);

	if ((g = config_get_group(cx, root, "client")) != NULL) {
		config_check_keys(cx, g, "client", k_client);
		config_get_int(cx, g, "login_timeout", "client.login_timeout",
		    1, 86400, &c->client_login_timeout);
		config_get_int(cx, g, "idle_timeout", "client.idle_timeout",
		    0, 31 * 86400, &c->client_idle_timeout);
		config_get_int(cx, g, "idle_transaction_timeout",
		    "client.idle_transaction_timeout", 0, 31 * 86400,
		    &c->client_idle_transaction_timeout);
		config_get_int(cx, g, "max_connections",
		    "client.max_connections", 0, 1000000,
		    &c->client_max_connections);
		config_get_int(cx, g, "max_message_size",
		    "client.max_message_size", 8192, PGM_MESSAGE_MAX,
		    &c->client_max_message_size);
	}

	if ((g = config_get_group(cx, root, "server")) != NULL) {
		config_check_keys(cx, g, "server", k_server);
		config_get_int(cx, g, "connect_timeout",
		    "server.connect_timeout", 1, 3600,
		    &c->server_connect_timeout);
		config_get_int(cx, g, "lifetime", "server.lifetime", 0,
		    31 * 86400, &c->server_lifetime);
		config_get_int(cx, g, "idle_timeout", "server.idle_timeout", 0,
		    31 * 86400, &c->server_idle_timeout);
		config_get_bool(cx, g, "allow_cleartext_password",
		    "server.allow_cleartext_password",
		    &c->server_allow_cleartext);
	}
	config_get_int(cx, root, "mirror_queue", "mirror_queue", 1,
	    10000000, &c->mirror_queue);
	if ((g = config_get_group(cx, root, "mirror")) != NULL) {
		config_check_keys(cx, g, "mirror", k_mirror);
		config_get_int(cx, g, "workers", "mirror.workers", 1, 64,
		    &c->mirror_workers);
		config_get_int(cx, g, "retry_max", "mirror.retry_max", 1,
		    3600, &c->mirror_retry_max);
		config_get_int(cx, g, "replay_timeout",
		    "mirror.replay_timeout", 0, 86400,
		    &c->mirror_replay_timeout);
	}

	if ((g = config_get_group(cx, root, "tls")) != NULL) {
		config_check_keys(cx, g, "tls", k_tls);
		c->tls_line = config_line(g);
		config_get_str(cx, g, "cert_file", "tls.cert_file",
		    &c->tls_cert_file);
		config_get_str(cx, g, "key_file", "tls.key_file",
		    &c->tls_key_file);
		config_get_str(cx, g, "ca_file", "tls.ca_file", &c->tls_ca_file);
		config_get_str(cx, g, "client_ca_file", "tls.client_ca_file",
		    &c->tls_client_ca_file);
		if (config_get_str(cx, g, "client_mode", "tls.client_mode",
		    &str) == 1 && str != NULL &&
		    ((c->tls_client_mode = config_tls_mode(str)) == -1 ||
		    c->tls_client_mode > TLS_REQUIRE)) {
			config_err(cx, config_line(config_setting_get_member(g,
			    "client_mode")), "tls.client_mode must be "
			    "\"disable\", \"allow\", \"prefer\" or \"require\"");
			c->tls_client_mode = TLS_DISABLE;
		}
		free(str);
		str = NULL;
		if (config_get_str(cx, g, "server_mode", "tls.server_mode",
		    &str) == 1 && str != NULL &&
		    (c->tls_server_mode = config_tls_mode(str)) == -1) {
			config_err(cx, config_line(config_setting_get_member(g,
			    "server_mode")), "tls.server_mode must be "
			    "\"disable\", \"allow\", \"prefer\", \"require\", "
			    "\"verify-ca\" or \"verify-full\"");
			c->tls_server_mode = TLS_DISABLE;
		}
		free(str);
		str = NULL;
		config_get_str(cx, g, "server_cert_file", "tls.server_cert_file",
		    &c->tls_server_cert_file);
		config_get_str(cx, g, "server_key_file", "tls.server_key_file",
		    &c->tls_server_key_file);
		if ((c->tls_server_cert_file == NULL) !=
		    (c->tls_server_key_file == NULL))
			config_err(cx, c->tls_line, "tls.server_cert_file and "
			    "tls.server_key_file go together");
		/* With a certificate, TLS is offered unless told otherwise. */
		if (c->tls_client_mode == -1)
			c->tls_client_mode = c->tls_cert_file != NULL &&
			    c->tls_key_file != NULL ? TLS_PREFER : TLS_DISABLE;
		if (c->tls_client_mode != TLS_DISABLE &&
		    (c->tls_cert_file == NULL || c->tls_key_file == NULL))
			config_err(cx, c->tls_line, "tls.client_mode needs "
			    "tls.cert_file and tls.key_file");
	}

	if (c->tls_client_mode == -1)
		c->tls_client_mode = TLS_DISABLE;

	if ((g = config_get_group(cx, root, "metrics")) != NULL) {
		config_check_keys(cx, g, "metrics", k_metrics);
		config_get_str(cx, g, "listen", "metrics.listen",
		    &c->metrics_listen);
	}

	if ((g = config_get_group(cx, root, "log")) != NULL) {
		config_check_keys(cx, g, "log", k_log);
		if (config_get_str(cx, g, "destination", "log.destination",
		    &str) == 1 && str != NULL) {
			if (strcmp(str, "stderr") == 0)
				c->log_stderr = 1;
			else if (strcmp(str, "syslog") == 0)
				c->log_stderr = 0;
			else
				config_err(cx, config_line(
				    config_setting_get_member(g, "destination")),
				    "log.destination must be \"syslog\" or "
				    "\"stderr\"");
		}
		free(str);
		str = NULL;
		if (config_get_str(cx, g, "facility", "log.facility",
		    &str) == 1 && str != NULL) {
			if ((c->log_facility = config_facility(str)) == -1) {
				config_err(cx, config_line(
				    config_setting_get_member(g, "facility")),
				    "log.facility \"%s\" is not a syslog "
				    "facility (daemon, user, local0..local7)",
				    str);
				c->log_facility = LOG_DAEMON;
			}
		}
		free(str);
		str = NULL;
		config_get_int(cx, g, "stats_period", "log.stats_period", 0,
		    86400, &c->stats_period);
	}
}

/* Load the databases list. */
static void
config_load_databases(struct config_ctx *cx, const config_setting_t *root)
{
	static const char *const keys[] = { "name", "host", "port",
	    "database", "pool_size", "tls_mode", "allow_cleartext_password",
	    NULL };
	struct pgm_config *c = cx->conf;
	const config_setting_t *list, *e;
	char		*mode = NULL;
	int		 i, j, n;

	if ((list = config_setting_get_member(root, "databases")) == NULL) {
		config_err(cx, 0, "databases is not set: no database to "
		    "route clients to");
		return;
	}
	if (config_setting_type(list) != CONFIG_TYPE_LIST) {
		config_err(cx, config_line(list),
		    "databases must be a list: databases = ( { ... } );");
		return;
	}
	n = config_setting_length(list);
	if ((c->databases = calloc(n ? n : 1, sizeof(*c->databases))) == NULL)
		return;
	for (i = 0; i < n; i++) {
		struct pgm_database *d = &c->databases[c->ndatabases];

		e = config_setting_get_elem(list, i);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			config_err(cx, config_line(e),
			    "databases entries must be groups { ... }");
			continue;
		}
		config_check_keys(cx, e, "databases", keys);
		d->line = config_line(e);
		d->port = 5432;
		d->pool_size = -1;
		config_get_str(cx, e, "name", "databases.name", &d->name);
		config_get_str(cx, e, "host", "databases.host", &d->host);
		config_get_int(cx, e, "port", "databases.port", 1, 65535,
		    &d->port);
		config_get_str(cx, e, "database", "databases.database",
		    &d->dbname);
		config_get_int(cx, e, "pool_size", "databases.pool_size", 1,
		    100000, &d->pool_size);
		d->tls_mode = -1;
		if (config_get_str(cx, e, "tls_mode", "databases.tls_mode",
		    &mode) == 1 && mode != NULL &&
		    (d->tls_mode = config_tls_mode(mode)) == -1)
			config_err(cx, d->line, "databases.tls_mode must be "
			    "\"disable\", \"allow\", \"prefer\", \"require\", "
			    "\"verify-ca\" or \"verify-full\"");
		free(mode);
		mode = NULL;
		d->allow_cleartext = -1;
		config_get_bool(cx, e, "allow_cleartext_password",
		    "databases.allow_cleartext_password", &d->allow_cleartext);
		if (d->name == NULL || *d->name == '\0' || d->host == NULL ||
		    *d->host == '\0') {
			if (d->name == NULL || *d->name == '\0')
				config_err(cx, d->line,
				    "database entry has no name");
			else
				config_err(cx, d->line,
				    "database \"%s\" has no host", d->name);
			free(d->name);
			free(d->host);
			free(d->dbname);
			memset(d, 0, sizeof(*d));
			continue;
		}
		if (d->dbname == NULL)
			d->dbname = config_strdup(cx, d->name);
		for (j = 0; j < c->ndatabases; j++)
			if (strcmp(c->databases[j].name, d->name) == 0)
				config_err(cx, d->line, "database \"%s\" is "
				    "already defined at line %d", d->name,
				    c->databases[j].line);
		c->ndatabases++;
	}
}

/* Is s "md5" followed by 32 lowercase hex digits? */
static int
config_is_md5(const char *s)
{
	int		 i;

	if (strncmp(s, "md5", 3) != 0 || strlen(s) != 35)
		return 0;
	for (i = 3; i < 35; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/* Prepare what we need of a user's password. */
static void
config_user_password(struct config_ctx *cx, struct pgm_user *u,
    const char *pw)
{
	if (strncmp(pw, "SCRAM-SHA-256$", 14) == 0) {
		if (scram_secret_parse(pw, &u->scram) == -1)
			config_err(cx, u->line, "user \"%s\": malformed "
			    "SCRAM-SHA-256 verifier", u->name);
		else
			u->has_scram = 1;
	} else if (config_is_md5(pw)) {
		int	 i;

		/* scram.c's md5 helpers want the hex digits in lower case. */
		for (i = 0; i < 36; i++)
			u->md5[i] = tolower((unsigned char)pw[i]);
		u->has_md5 = 1;
	} else {
		u->plain = config_strdup(cx, pw);
		md5_password_hash(u->name, pw, u->md5);
		u->has_md5 = 1;
		if (scram_secret_from_password(pw, &u->scram) == -1)
			config_err(cx, u->line, "user \"%s\": cannot derive "
			    "the SCRAM secret", u->name);
		else
			u->has_scram = 1;
	}
}

/* Load the users list. */
static void
config_load_users(struct config_ctx *cx, const config_setting_t *root)
{
	static const char *const keys[] = { "name", "password", "database",
	    "auth_type", "pool_size", NULL };
	struct pgm_config *c = cx->conf;
	const config_setting_t *list, *e;
	char		*pw, *at;
	int		 i, j, n, t;

	if ((list = config_setting_get_member(root, "users")) == NULL) {
		config_err(cx, 0, "users is not set: no client could log in");
		return;
	}
	if (config_setting_type(list) != CONFIG_TYPE_LIST) {
		config_err(cx, config_line(list),
		    "users must be a list: users = ( { ... } );");
		return;
	}
	n = config_setting_length(list);
	if ((c->users = calloc(n ? n : 1, sizeof(*c->users))) == NULL)
		return;
	for (i = 0; i < n; i++) {
		struct pgm_user *u = &c->users[c->nusers];

		e = config_setting_get_elem(list, i);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			config_err(cx, config_line(e),
			    "users entries must be groups { ... }");
			continue;
		}
		config_check_keys(cx, e, "users", keys);
		u->line = config_line(e);
		u->auth_type = AUTH_DEFAULT;
		u->pool_size = -1;
		pw = at = NULL;
		config_get_str(cx, e, "name", "users.name", &u->name);
		config_get_str(cx, e, "database", "users.database",
		    &u->database);
		config_get_str(cx, e, "password", "users.password", &pw);
		config_get_str(cx, e, "auth_type", "users.auth_type", &at);
		config_get_int(cx, e, "pool_size", "users.pool_size", 1,
		    100000, &u->pool_size);
		if (u->name == NULL || *u->name == '\0') {
			config_err(cx, u->line, "user entry has no name");
			free(u->name);
			free(u->database);
			memset(u, 0, sizeof(*u));
			goto next;
		}
		if (at != NULL) {
			if ((t = config_auth_type(at)) == -2)
				config_err(cx, u->line, "user \"%s\": auth_type"
				    " must be \"scram-sha-256\", \"md5\" or "
				    "\"trust\"", u->name);
			else
				u->auth_type = t;
		}
		if (u->database != NULL &&
		    config_find_database(c, u->database) == -1)
			config_err(cx, u->line, "user \"%s\" refers to "
			    "database \"%s\", which is not in databases",
			    u->name, u->database);
		for (j = 0; j < c->nusers; j++) {
			const struct pgm_user *o = &c->users[j];

			if (strcmp(o->name, u->name) == 0 &&
			    ((o->database == NULL && u->database == NULL) ||
			    (o->database && u->database &&
			    strcmp(o->database, u->database) == 0)))
				config_err(cx, u->line, "user \"%s\" for %s is"
				    " already defined at line %d", u->name,
				    u->database ? u->database : "all databases",
				    o->line);
		}
		if (pw != NULL)
			config_user_password(cx, u, pw);
		c->nusers++;
next:
		if (pw != NULL)
			explicit_bzero(pw, strlen(pw));
		free(pw);
		free(at);
	}
}

/* Load the mirrors list, once databases and users are known. */
static void
config_load_mirrors(struct config_ctx *cx, const config_setting_t *root)
{
	static const char *const keys[] = { "source", "destination", "queue",
	    "queue_bytes", "exposure", NULL };
	struct pgm_config *c = cx->conf;
	const config_setting_t *list, *e, *x;
	int		 i, j, n;

	if ((list = config_setting_get_member(root, "mirrors")) == NULL)
		return;
	if (config_setting_type(list) != CONFIG_TYPE_LIST) {
		config_err(cx, config_line(list),
		    "mirrors must be a list: mirrors = ( { ... } );");
		return;
	}
	n = config_setting_length(list);
	if ((c->mirrors = calloc(n ? n : 1, sizeof(*c->mirrors))) == NULL)
		return;
	for (i = 0; i < n; i++) {
		struct pgm_mirror *m = &c->mirrors[c->nmirrors];

		e = config_setting_get_elem(list, i);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			config_err(cx, config_line(e),
			    "mirrors entries must be groups { ... }");
			continue;
		}
		config_check_keys(cx, e, "mirrors", keys);
		m->line = config_line(e);
		m->queue = c->mirror_queue;
		m->queue_bytes = 64 * 1024 * 1024;
		m->exposure = 1.0;
		c->nmirrors++;
		config_get_str(cx, e, "source", "mirrors.source", &m->source);
		config_get_str(cx, e, "destination", "mirrors.destination",
		    &m->destination);
		config_get_int(cx, e, "queue", "mirrors.queue", 1, 10000000,
		    &m->queue);
		config_get_int(cx, e, "queue_bytes", "mirrors.queue_bytes",
		    65536, 1024 * 1024 * 1024, &m->queue_bytes);
		if ((x = config_setting_get_member(e, "exposure")) != NULL) {
			if (config_setting_type(x) == CONFIG_TYPE_FLOAT)
				m->exposure = config_setting_get_float(x);
			else if (config_setting_type(x) == CONFIG_TYPE_INT)
				m->exposure = config_setting_get_int(x);
			else
				m->exposure = -1;
			if (!(m->exposure >= 0 && m->exposure <= 1))
				config_err(cx, config_line(x), "mirrors."
				    "exposure must be a number from 0.0 to "
				    "1.0");
		}
		if (m->source == NULL || m->destination == NULL) {
			config_err(cx, m->line, "a mirror needs a source and "
			    "a destination");
			continue;
		}
		if ((m->src = config_find_database(c, m->source)) == -1)
			config_err(cx, m->line, "mirror source \"%s\" is not "
			    "in databases", m->source);
		if ((m->dst = config_find_database(c, m->destination)) == -1)
			config_err(cx, m->line, "mirror destination \"%s\" is "
			    "not in databases", m->destination);
		if (m->src == -1 || m->dst == -1)
			continue;
		if (m->src == m->dst)
			config_err(cx, m->line, "mirror source and destination"
			    " are both \"%s\"", m->source);
		for (j = 0; j < c->nmirrors - 1; j++)
			if (c->mirrors[j].src == m->src &&
			    c->mirrors[j].dst == m->dst)
				config_err(cx, m->line, "mirror %s -> %s is "
				    "already defined at line %d", m->source,
				    m->destination, c->mirrors[j].line);
		/* Every user who can reach the source needs a way in. */
		for (j = 0; j < c->nusers; j++) {
			const struct pgm_user *u = &c->users[j];

			if (config_find_user(c, u->name, m->src) != j)
				continue;
			if (config_find_user(c, u->name, m->dst) == -1)
				config_err(cx, m->line, "mirror %s -> %s: user "
				    "\"%s\" has no users entry for database "
				    "\"%s\"", m->source, m->destination,
				    u->name, m->destination);
		}
	}
}

/* The admin console's credentials, once databases are known. */
static void
config_load_admin(struct config_ctx *cx)
{
	struct pgm_config *c = cx->conf;

	if (c->admin_password == NULL)
		return;
	if (config_find_database(c, c->admin_database) != -1)
		config_err(cx, 0, "admin.database \"%s\" is also the name of "
		    "a databases entry; the console would hide it",
		    c->admin_database);
	c->admin.name = config_strdup(cx, c->admin_user);
	c->admin.auth_type = AUTH_SCRAM;
	c->admin.pool_size = -1;
	if (c->admin.name == NULL)
		return;
	config_user_password(cx, &c->admin, c->admin_password);
	if (!c->admin.has_scram)
		config_err(cx, 0, "admin.password must be a plain password or "
		    "a SCRAM-SHA-256 verifier: the console uses SCRAM");
	else
		c->has_admin = 1;
}

/* Check what needs the whole config at once. */
static void
config_check(struct config_ctx *cx)
{
	struct pgm_config *c = cx->conf;
	int		 i, t;

	for (i = 0; i < c->nusers; i++) {
		struct pgm_user *u = &c->users[i];

		t = u->auth_type == AUTH_DEFAULT ? c->auth_type : u->auth_type;
		if (t == AUTH_MD5 && !u->has_md5)
			config_err(cx, u->line, "user \"%s\": md5 "
			    "authentication needs a plain or md5 password, "
			    "not a SCRAM verifier", u->name);
		if (t == AUTH_SCRAM && !u->has_scram && u->has_md5)
			config_err(cx, u->line, "user \"%s\": scram-sha-256 "
			    "authentication needs a plain password or a SCRAM "
			    "verifier, not an md5 hash", u->name);
		if (t != AUTH_TRUST && !u->has_md5 && !u->has_scram)
			config_err(cx, u->line, "user \"%s\" has no password "
			    "but auth_type is %s", u->name,
			    config_auth_name(t));
	}
}

/* Read a whole config file into a NUL-terminated buffer.  NULL: errno. */
static char *
config_read_text(const char *path, size_t *lenp)
{
	FILE		*f;
	char		*buf = NULL, *nb;
	size_t		 len = 0, cap = 0, n;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			if (cap >= PGM_CONFIG_TEXT_MAX) {
				free(buf);
				fclose(f);
				errno = EFBIG;
				return NULL;
			}
			cap = cap ? cap * 2 : 16384;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

/*
 * Load and check a config file.  Returns the config, or NULL with the
 * errors (file, line and message each) in errs.  The config keeps the
 * file's text, so workers can load exactly what the supervisor did.
 */
struct pgm_config *
config_load(const char *path, struct pgm_config_errors *errs)
{
	struct pgm_config *c;
	char		*text;
	size_t		 len;

	memset(errs, 0, sizeof(*errs));
	errs->file = path;
	if ((text = config_read_text(path, &len)) == NULL) {
		errs->n = 1;
		errs->err[0].line = 0;
		snprintf(errs->err[0].msg, sizeof(errs->err[0].msg),
		    "cannot read: %s", strerror(errno));
		return NULL;
	}
	c = config_load_text(path, text, errs);
	if (c != NULL) {
		c->text = text;
		c->textlen = len;
	} else
		free(text);
	return c;
}

/* Load and check a config from its text; path is for messages. */
struct pgm_config *
config_load_text(const char *path, const char *text,
    struct pgm_config_errors *errs)
{
	struct config_ctx cx;
	struct pgm_config *c;
	config_t	 cf;

	memset(errs, 0, sizeof(*errs));
	errs->file = path;
	cx.errs = errs;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		cx.conf = NULL;
		config_err(&cx, 0, "out of memory");
		return NULL;
	}
	cx.conf = c;
	c->path = config_strdup(&cx, path);
	c->auth_type = AUTH_SCRAM;
	c->workers_min_spare = 4;
	c->workers_max_spare = 32;
	c->workers_max = 512;
	c->pool_default_size = 100;
	c->pool_min_size = 0;
	c->pool_wait_timeout = 30;
	c->pool_reset_query = config_strdup(&cx, "DISCARD ALL");
	c->shutdown_timeout = 30;
	c->client_login_timeout = 60;
	c->client_max_message_size = PGM_MESSAGE_MAX;
	c->server_connect_timeout = 15;
	c->server_lifetime = 3600;
	c->server_idle_timeout = 600;
	c->server_allow_cleartext = 0;	/* refused without TLS */
	c->tls_client_mode = -1;	/* resolved once the tls group is read */
	c->mirror_queue = 20000;
	c->mirror_workers = 2;
	c->mirror_retry_max = 30;
	c->mirror_replay_timeout = 300;
	c->control_socket = config_strdup(&cx, PGM_CONTROL_SOCKET);
	c->admin_database = config_strdup(&cx, "pgmirror");
	c->admin_user = config_strdup(&cx, "admin");
	c->metrics_listen = config_strdup(&cx, "127.0.0.1:9930");
	c->log_facility = LOG_DAEMON;
	c->stats_period = 60;

	config_init(&cf);
	if (config_read_string(&cf, text) == CONFIG_FALSE) {
		config_err(&cx, config_error_line(&cf), "%s",
		    config_error_text(&cf));
		config_destroy(&cf);
		config_free(c);
		return NULL;
	}
	config_load_globals(&cx, config_root_setting(&cf));
	config_load_databases(&cx, config_root_setting(&cf));
	config_load_users(&cx, config_root_setting(&cf));
	config_load_mirrors(&cx, config_root_setting(&cf));
	config_load_admin(&cx);
	config_check(&cx);
	config_destroy(&cf);
	if (errs->n > 0) {
		config_free(c);
		return NULL;
	}
	return c;
}

/* Free a config and wipe its secrets. */
void
config_free(struct pgm_config *c)
{
	int		 i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nlisten; i++) {
		free(c->listen[i].host);
		free(c->listen[i].path);
	}
	free(c->listen);
	for (i = 0; i < c->ndatabases; i++) {
		free(c->databases[i].name);
		free(c->databases[i].host);
		free(c->databases[i].dbname);
	}
	free(c->databases);
	for (i = 0; i < c->nusers; i++) {
		struct pgm_user *u = &c->users[i];

		free(u->name);
		free(u->database);
		if (u->plain != NULL)
			explicit_bzero(u->plain, strlen(u->plain));
		free(u->plain);
		explicit_bzero(u, sizeof(*u));
	}
	free(c->users);
	for (i = 0; i < c->nmirrors; i++) {
		free(c->mirrors[i].source);
		free(c->mirrors[i].destination);
	}
	free(c->mirrors);
	free(c->admin.name);
	if (c->admin.plain != NULL)
		explicit_bzero(c->admin.plain, strlen(c->admin.plain));
	free(c->admin.plain);
	explicit_bzero(&c->admin.scram, sizeof(c->admin.scram));
	explicit_bzero(c->admin.md5, sizeof(c->admin.md5));
	free(c->user);
	free(c->group);
	if (c->admin_password != NULL)
		explicit_bzero(c->admin_password, strlen(c->admin_password));
	free(c->admin_password);
	free(c->admin_database);
	free(c->admin_user);
	free(c->control_socket);
	free(c->metrics_listen);
	free(c->pool_reset_query);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	free(c->tls_ca_file);
	free(c->tls_client_ca_file);
	free(c->tls_server_cert_file);
	free(c->tls_server_key_file);
	free(c->path);
	free(c->text);
	free(c);
}

/* Index of the database entry a client asks for, or -1. */
int
config_find_database(const struct pgm_config *c, const char *name)
{
	int		 i;

	for (i = 0; i < c->ndatabases; i++)
		if (strcmp(c->databases[i].name, name) == 0)
			return i;
	return -1;
}

/*
 * Index of the users entry for a user in a database: an entry naming
 * that database wins over one for all databases.  -1 if none.
 */
int
config_find_user(const struct pgm_config *c, const char *name, int db)
{
	int		 i, any = -1;

	for (i = 0; i < c->nusers; i++) {
		const struct pgm_user *u = &c->users[i];

		if (strcmp(u->name, name) != 0)
			continue;
		if (u->database == NULL)
			any = i;
		else if (db >= 0 &&
		    strcmp(u->database, c->databases[db].name) == 0)
			return i;
	}
	return any;
}

/* The server connection cap for the pool of users[user] in databases[db]. */
int
config_pool_size(const struct pgm_config *c, int pool)
{
	int		 user = pool / (c->ndatabases ? c->ndatabases : 1);
	int		 db = pool % (c->ndatabases ? c->ndatabases : 1);

	if (c->users[user].pool_size > 0)
		return c->users[user].pool_size;
	if (c->databases[db].pool_size > 0)
		return c->databases[db].pool_size;
	return c->pool_default_size;
}

/* The pool index of a (users entry, databases entry) pair. */
int
config_pool_index(const struct pgm_config *c, int user, int db)
{
	return user * c->ndatabases + db;
}

/*
 * May the server of database entry d have the password in clear text
 * over a connection without TLS?  Its allow_cleartext_password, else
 * server.allow_cleartext_password.
 */
int
config_allow_cleartext(const struct pgm_config *c,
    const struct pgm_database *d)
{
	return d->allow_cleartext >= 0 ? d->allow_cleartext :
	    c->server_allow_cleartext;
}

/*
 * Do two databases entries (of two configs) lead to the same database
 * on the same server?  Then its data is there under both.
 */
int
config_same_server(const struct pgm_database *a, const struct pgm_database *b)
{
	return strcmp(a->host, b->host) == 0 && a->port == b->port &&
	    strcmp(a->dbname, b->dbname) == 0;
}

/*
 * ... and are they reached the same way (TLS mode too)?  Then a
 * connection opened under one serves the other.
 */
int
config_same_connection(const struct pgm_database *a,
    const struct pgm_database *b)
{
	return config_same_server(a, b) && a->tls_mode == b->tls_mode;
}

/* Does a pool index name a (user, database) pair a client can reach? */
int
config_pool_valid(const struct pgm_config *c, int pool)
{
	const struct pgm_user *u;

	if (c->ndatabases == 0 || pool < 0 ||
	    pool >= c->nusers * c->ndatabases)
		return 0;
	u = &c->users[pool / c->ndatabases];
	return config_find_user(c, u->name, pool % c->ndatabases) ==
	    pool / c->ndatabases;
}
