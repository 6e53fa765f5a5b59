/*
 * config.c: loading and checking pgmirror.conf (libconfig syntax).
 *
 * config_load reads a file into a fresh struct pgm_config and checks
 * every setting, collecting all errors with their line numbers instead
 * of stopping at the first, so `pgmirror -n` can show them together.
 * A config is immutable once loaded; a reload builds a new one.  The
 * password of each user is prepared here (md5 hash, SCRAM secret) so
 * no PBKDF2 runs per connection.
 *
 * Every scalar setting is one row of config_settings[]: its key, type,
 * field, default, bounds, and what a reload does with it.  Loading, the
 * defaults, config_free, SHOW CONFIG (control.c) and the reload's
 * restart checks (supervisor.c) all walk that table; only the lists
 * (listen, databases, users, mirrors) and the checks that tie several
 * settings together are written by hand.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
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

/* The names of the values of the settings that take one of a few. */
static const struct pgm_set_name config_auth_names[] = {
	{ "scram-sha-256", AUTH_SCRAM }, { "md5", AUTH_MD5 },
	{ "trust", AUTH_TRUST }, { NULL, 0 }
};
static const struct pgm_set_name config_pool_names[] = {
	{ "session", POOL_SESSION }, { NULL, 0 }
};
/* Toward clients: we have no use for their certificates (no verify-*). */
static const struct pgm_set_name config_client_tls_names[] = {
	{ "disable", TLS_DISABLE }, { "allow", TLS_ALLOW },
	{ "prefer", TLS_PREFER }, { "require", TLS_REQUIRE }, { NULL, 0 }
};
static const struct pgm_set_name config_tls_names[] = {
	{ "disable", TLS_DISABLE }, { "allow", TLS_ALLOW },
	{ "prefer", TLS_PREFER }, { "require", TLS_REQUIRE },
	{ "verify-ca", TLS_VERIFY_CA }, { "verify-full", TLS_VERIFY_FULL },
	{ NULL, 0 }
};
static const struct pgm_set_name config_log_names[] = {
	{ "syslog", 0 }, { "stderr", 1 }, { NULL, 0 }
};
static const struct pgm_set_name config_facility_names[] = {
	{ "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
	{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
	{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 }, { NULL, 0 }
};

#define CF_OFF(f)	offsetof(struct pgm_config, f)
#define CF_INT(k, f, def, min, max, fl) \
	{ k, SET_INT, CF_OFF(f), def, NULL, min, max, NULL, NULL, fl }
#define CF_BOOL(k, f, def, fl) \
	{ k, SET_BOOL, CF_OFF(f), def, NULL, 0, 1, NULL, NULL, fl }
#define CF_STR(k, f, def, fl) \
	{ k, SET_STR, CF_OFF(f), 0, def, 0, 0, NULL, NULL, fl }
#define CF_ENUM(k, f, names, def, bad, fl) \
	{ k, SET_ENUM, CF_OFF(f), def, NULL, 0, 0, names, bad, fl }

/*
 * Every scalar setting: its key, type, field, default, bounds and how
 * a reload treats it.  Loaded in this order (so errors come in it) and
 * shown in it by SHOW CONFIG.  The rows of a group stay together.
 */
const struct pgm_setting config_settings[] = {
	CF_STR("control_socket", control_socket, PGM_CONTROL_SOCKET,
	    SET_RESTART),
	CF_STR("user", user, NULL, 0),
	CF_STR("group", group, NULL, 0),
	CF_STR("admin.database", admin_database, "pgmirror", 0),
	CF_STR("admin.user", admin_user, "admin", 0),
	CF_STR("admin.password", admin_password, NULL, SET_SECRET),
	CF_ENUM("auth_type", auth_type, config_auth_names, AUTH_SCRAM, NULL, 0),
	CF_INT("workers.min_spare", workers_min_spare, 4, 1, 10000, 0),
	CF_INT("workers.max_spare", workers_max_spare, 32, 1, 10000, 0),
	CF_INT("workers.max", workers_max, 512, 1, 100000, SET_SHM),
	CF_INT("workers.max_clients", workers_max_clients, 0, 0, INT_MAX, 0),
	CF_ENUM("pool.mode", pool_mode, config_pool_names, POOL_SESSION,
	    "is not supported: pgmirror pools sessions (\"session\")", 0),
	CF_INT("pool.default_size", pool_default_size, 100, 1, 100000, 0),
	CF_INT("pool.min_size", pool_min_size, 0, 0, 100000, 0),
	CF_INT("pool.wait_timeout", pool_wait_timeout, 30, 0, 86400, 0),
	CF_STR("pool.reset_query", pool_reset_query, "DISCARD ALL", 0),
	CF_INT("shutdown_timeout", shutdown_timeout, 30, 0, 86400, 0),
	CF_INT("client.login_timeout", client_login_timeout, 60, 1, 86400, 0),
	CF_INT("client.idle_timeout", client_idle_timeout, 0, 0, 31 * 86400,
	    0),
	CF_INT("client.idle_transaction_timeout",
	    client_idle_transaction_timeout, 0, 0, 31 * 86400, 0),
	CF_INT("client.max_connections", client_max_connections, 0, 0,
	    1000000, 0),
	CF_INT("client.max_message_size", client_max_message_size,
	    PGM_MESSAGE_MAX, 8192, PGM_MESSAGE_MAX, 0),
	CF_INT("server.connect_timeout", server_connect_timeout, 15, 1, 3600,
	    0),
	CF_INT("server.lifetime", server_lifetime, 3600, 0, 31 * 86400, 0),
	CF_INT("server.idle_timeout", server_idle_timeout, 600, 0, 31 * 86400,
	    0),
	/* Refused without TLS unless allowed. */
	CF_BOOL("server.allow_cleartext_password", server_allow_cleartext, 0,
	    0),
	CF_INT("mirror_queue", mirror_queue, 20000, 1, 10000000, 0),
	CF_INT("mirror.workers", mirror_workers, 2, 1, 64, SET_SHM_MIRRORS),
	CF_INT("mirror.retry_max", mirror_retry_max, 30, 1, 3600, 0),
	CF_INT("mirror.replay_timeout", mirror_replay_timeout, 300, 0, 86400,
	    0),
	CF_STR("tls.cert_file", tls_cert_file, NULL, 0),
	CF_STR("tls.key_file", tls_key_file, NULL, 0),
	CF_STR("tls.ca_file", tls_ca_file, NULL, 0),
	CF_STR("tls.client_ca_file", tls_client_ca_file, NULL, 0),
	/* -1 until config_check_tls: "prefer" with a certificate. */
	CF_ENUM("tls.client_mode", tls_client_mode, config_client_tls_names, -1,
	    NULL, 0),
	CF_ENUM("tls.server_mode", tls_server_mode, config_tls_names,
	    TLS_DISABLE, NULL, 0),
	CF_STR("tls.server_cert_file", tls_server_cert_file, NULL, 0),
	CF_STR("tls.server_key_file", tls_server_key_file, NULL, 0),
	CF_STR("metrics.listen", metrics_listen, "127.0.0.1:9930", 0),
	CF_ENUM("log.destination", log_stderr, config_log_names, 0, NULL,
	    SET_RESTART),
	CF_ENUM("log.facility", log_facility, config_facility_names, LOG_DAEMON,
	    "is not a syslog facility (daemon, user, local0..local7)",
	    SET_RESTART),
	CF_INT("log.stats_period", stats_period, 60, 0, 86400, 0),
	{ NULL, SET_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0 }
};

/* The int a setting of the table is stored in. */
static int *
config_intp(struct pgm_config *c, const struct pgm_setting *s)
{
	return (int *)(void *)((char *)c + s->off);
}

/* The value of an int setting of the table. */
static int
config_intv(const struct pgm_config *c, const struct pgm_setting *s)
{
	return *(const int *)(const void *)((const char *)c + s->off);
}

/* The string a setting of the table is stored in. */
static char **
config_strp(struct pgm_config *c, const struct pgm_setting *s)
{
	return (char **)(void *)((char *)c + s->off);
}

/* The value of a string setting of the table. */
static const char *
config_strv(const struct pgm_config *c, const struct pgm_setting *s)
{
	return *(char *const *)(const void *)((const char *)c + s->off);
}

/* Length of the group part of a key ("client" of "client.x"); 0: none. */
static size_t
config_group_len(const char *key)
{
	const char	*dot = strchr(key, '.');

	return dot ? (size_t)(dot - key) : 0;
}

/* Are two keys in the same group (or both at the top)? */
static int
config_same_group(const char *a, const char *b)
{
	size_t		 n = config_group_len(a);

	return n == config_group_len(b) && strncmp(a, b, n) == 0;
}

/*
 * Is name a setting of the table in group where ("": the top level)?
 * At the top, the name of one of the table's groups is one too.
 */
static int
config_in_table(const char *where, const char *name)
{
	const struct pgm_setting *s;
	size_t		 wl = strlen(where), gl;

	for (s = config_settings; s->key != NULL; s++) {
		gl = config_group_len(s->key);
		if (wl == 0 && gl == 0 && strcmp(s->key, name) == 0)
			return 1;
		if (wl == 0 && gl > 0 && strlen(name) == gl &&
		    strncmp(s->key, name, gl) == 0)
			return 1;
		if (wl > 0 && gl == wl && strncmp(s->key, where, wl) == 0 &&
		    strcmp(s->key + gl + 1, name) == 0)
			return 1;
	}
	return 0;
}

/* Find the value of name in a NULL-terminated list: 0, or -1 if absent. */
static int
config_name_find(const struct pgm_set_name *n, const char *name, int *value)
{
	for (; n->name != NULL; n++)
		if (strcmp(n->name, name) == 0) {
			*value = n->value;
			return 0;
		}
	return -1;
}

/* The name of a value in a list of names, or NULL. */
static const char *
config_name_of(const struct pgm_set_name *n, int value)
{
	for (; n->name != NULL; n++)
		if (n->value == value)
			return n->name;
	return NULL;
}

/* Map an auth_type name, or -2. */
static int
config_auth_type(const char *s)
{
	int		 t;

	return config_name_find(config_auth_names, s, &t) == 0 ? t : -2;
}

/* The config name of an auth type. */
const char *
config_auth_name(int t)
{
	const char	*name = config_name_of(config_auth_names, t);

	return name ? name : "default";
}

/* Map a TLS mode name (toward a server), or -1. */
static int
config_tls_mode(const char *s)
{
	int		 m;

	return config_name_find(config_tls_names, s, &m) == 0 ? m : -1;
}

/* Is name one of the NULL-terminated list (or NULL: none)? */
static int
config_known(const char *name, const char *const *known)
{
	for (; known && *known; known++)
		if (strcmp(name, *known) == 0)
			return 1;
	return 0;
}

/*
 * Report the members of a group that are neither in the known list nor
 * settings of the table in the group where ("": the top level).
 */
static void
config_check_keys(struct config_ctx *cx, const config_setting_t *group,
    const char *where, const char *const *known)
{
	const config_setting_t *m;
	int		 i;

	for (i = 0; (m = config_setting_get_elem(group, i)) != NULL; i++) {
		const char	*name = config_setting_name(m);

		if (name != NULL && !config_known(name, known) &&
		    !config_in_table(where, name))
			config_err(cx, config_line(m),
			    "unknown setting \"%s%s%s\"", where,
			    *where ? "." : "", name);
	}
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

/* Refuse the value of an enum setting: name the ones it may take. */
static void
config_err_names(struct config_ctx *cx, int line, const struct pgm_setting *s,
    const char *value)
{
	char		 msg[256];
	size_t		 n;
	int		 i, r;

	if (s->bad != NULL) {
		config_err(cx, line, "%s \"%s\" %s", s->key, value, s->bad);
		return;
	}
	n = snprintf(msg, sizeof(msg), "%s must be ", s->key);
	for (i = 0; s->names[i].name != NULL && n < sizeof(msg); i++) {
		r = snprintf(msg + n, sizeof(msg) - n, "%s\"%s\"",
		    i == 0 ? "" : s->names[i + 1].name == NULL ? " or " : ", ",
		    s->names[i].name);
		if (r < 0)
			break;
		n += r;
	}
	config_err(cx, line, "%s", msg);
}

/* Load one setting of the table from its group g (NULL: not there). */
static void
config_load_setting(struct config_ctx *cx, const config_setting_t *g,
    const struct pgm_setting *s)
{
	const char	*name = s->key + config_group_len(s->key);
	char		*str = NULL;
	int		 v;

	if (*name == '.')
		name++;
	switch (s->type) {
	case SET_INT:
		config_get_int(cx, g, name, s->key, s->min, s->max,
		    config_intp(cx->conf, s));
		break;
	case SET_BOOL:
		config_get_bool(cx, g, name, s->key, config_intp(cx->conf, s));
		break;
	case SET_STR:
		config_get_str(cx, g, name, s->key, config_strp(cx->conf, s));
		break;
	case SET_ENUM:
		if (config_get_str(cx, g, name, s->key, &str) != 1 ||
		    str == NULL)
			break;
		if (config_name_find(s->names, str, &v) == 0)
			*config_intp(cx->conf, s) = v;
		else
			config_err_names(cx, config_line(
			    config_setting_get_member(g, name)), s, str);
		break;
	}
	free(str);
}

/* The workers group's values together. */
static void
config_check_workers(struct config_ctx *cx, const config_setting_t *g)
{
	struct pgm_config *c = cx->conf;

	if (c->workers_min_spare > c->workers_max_spare)
		config_err(cx, config_line(g), "workers.min_spare (%d)"
		    " is larger than workers.max_spare (%d)",
		    c->workers_min_spare, c->workers_max_spare);
	if (c->workers_min_spare > c->workers_max)
		config_err(cx, config_line(g), "workers.min_spare (%d)"
		    " is larger than workers.max (%d)",
		    c->workers_min_spare, c->workers_max);
}

/* The pool group's values together. */
static void
config_check_pool(struct config_ctx *cx, const config_setting_t *g)
{
	struct pgm_config *c = cx->conf;

	if (c->pool_min_size > c->pool_default_size)
		config_err(cx, config_line(g), "pool.min_size (%d) is "
		    "larger than pool.default_size (%d)",
		    c->pool_min_size, c->pool_default_size);
}

/* The tls group's values together; resolve tls.client_mode. */
static void
config_check_tls(struct config_ctx *cx, const config_setting_t *g)
{
	struct pgm_config *c = cx->conf;

	c->tls_line = config_line(g);
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

/*
 * What a group's settings must satisfy together, checked once the
 * group is loaded, whether or not the file has it (g NULL).
 */
static const struct {
	const char	*group;
	void		(*check)(struct config_ctx *, const config_setting_t *);
} config_group_checks[] = {
	{ "workers", config_check_workers },
	{ "pool", config_check_pool },
	{ "tls", config_check_tls },
};

/* Run the checks of the group of key, if it has any. */
static void
config_check_group(struct config_ctx *cx, const char *key,
    const config_setting_t *g)
{
	size_t		 i, n = config_group_len(key);

	for (i = 0; i < sizeof(config_group_checks) /
	    sizeof(config_group_checks[0]); i++)
		if (n > 0 && strlen(config_group_checks[i].group) == n &&
		    strncmp(config_group_checks[i].group, key, n) == 0)
			config_group_checks[i].check(cx, g);
}

/* Load listen, then the settings of the table, group by group. */
static void
config_load_globals(struct config_ctx *cx, const config_setting_t *root)
{
	static const char *const lists[] = { "listen", "databases", "users",
	    "mirrors", NULL };
	struct pgm_config *c = cx->conf;
	const struct pgm_setting *set, *first;
	const config_setting_t *g, *s;
	char		 group[64];
	size_t		 glen;
	int		 i;

	config_check_keys(cx, root, "", lists);

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

	for (set = config_settings; set->key != NULL;) {
		first = set;
		g = root;
		if ((glen = config_group_len(set->key)) > 0) {
			snprintf(group, sizeof(group), "%.*s", (int)glen,
			    set->key);
			if ((g = config_get_group(cx, root, group)) != NULL)
				config_check_keys(cx, g, group, NULL);
		}
		for (; set->key != NULL && config_same_group(set->key,
		    first->key); set++)
			config_load_setting(cx, g, set);
		config_check_group(cx, first->key, g);
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

/* Give every setting of the table its default. */
static void
config_defaults(struct config_ctx *cx)
{
	const struct pgm_setting *s;

	for (s = config_settings; s->key != NULL; s++)
		if (s->type == SET_STR)
			*config_strp(cx->conf, s) = config_strdup(cx, s->defstr);
		else
			*config_intp(cx->conf, s) = s->def;
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
	config_defaults(&cx);

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
	const struct pgm_setting *st;
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
	for (st = config_settings; st->key != NULL; st++) {
		char	*v;

		if (st->type != SET_STR || (v = *config_strp(c, st)) == NULL)
			continue;
		if (st->flags & SET_SECRET)
			explicit_bzero(v, strlen(v));
		free(v);
	}
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

/* Do two configs have the same value of setting s? */
int
config_setting_same(const struct pgm_setting *s, const struct pgm_config *a,
    const struct pgm_config *b)
{
	const char	*x, *y;

	if (s->type != SET_STR)
		return config_intv(a, s) == config_intv(b, s);
	x = config_strv(a, s);
	y = config_strv(b, s);
	return (x == NULL && y == NULL) || (x && y && strcmp(x, y) == 0);
}

/*
 * Give config to the value of setting s in config from (a reload
 * keeping the running value); a string moves, from keeps NULL.
 */
void
config_setting_take(const struct pgm_setting *s, struct pgm_config *to,
    struct pgm_config *from)
{
	if (s->type != SET_STR) {
		*config_intp(to, s) = config_intv(from, s);
		return;
	}
	free(*config_strp(to, s));
	*config_strp(to, s) = *config_strp(from, s);
	*config_strp(from, s) = NULL;
}

/*
 * The value of setting s in c as SHOW CONFIG shows it: as it would be
 * written in the file, "" when unset, and never a secret.  Returns buf
 * or a string of c.
 */
const char *
config_setting_text(const struct pgm_setting *s, const struct pgm_config *c,
    char *buf, size_t len)
{
	const char	*v;

	if (s->type == SET_STR) {
		v = config_strv(c, s);
		if (v == NULL)
			return "";
		return s->flags & SET_SECRET ? "********" : v;
	}
	if (s->flags & SET_SECRET)
		return "********";
	if (s->type == SET_BOOL)
		return config_intv(c, s) ? "true" : "false";
	if (s->type == SET_ENUM &&
	    (v = config_name_of(s->names, config_intv(c, s))) != NULL)
		return v;
	snprintf(buf, len, "%d", config_intv(c, s));
	return buf;
}
