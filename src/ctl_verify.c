/*
 * ctl_verify.c: pgmirrorctl verify, two databases compared.
 *
 * No daemon at all: two databases entries of the config file, each
 * connected to directly as pgmirror would (host, port, database, TLS
 * mode and files; the user and its password picked with config.c's
 * look-ups), their tables listed and compared by row count and, with
 * --checksum, by an md5 of their rows that neither the physical order
 * nor the collation nor the servers' settings change.
 */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pgmirror.h"
#include "pgmirrorctl.h"

/* One side of verify: a databases entry and a connection to it. */
struct pgmctl_side {
	const char	*label;		/* "source", "destination" */
	const char	*entry;		/* databases entry name */
	PGconn		*conn;
	char		**tables;	/* quoted schema.table, sorted */
	size_t		 ntables;
};

/* Sessions settings that make the text of a row the same everywhere. */
static const char pgmctl_verify_setup[] =
    "SET search_path = pg_catalog; "
    "SET default_transaction_read_only = on; "
    "SET DateStyle = 'ISO, MDY'; "
    "SET IntervalStyle = 'postgres'; "
    "SET TimeZone = 'UTC'; "
    "SET extra_float_digits = 3; "
    "SET bytea_output = 'hex'; "
    "SET lc_monetary = 'C';";

/* The user tables, schema-qualified and quoted. */
static const char pgmctl_verify_tables[] =
    "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) "
    "FROM pg_catalog.pg_tables "
    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
    "AND schemaname !~ '^pg_(toast_)?temp_'";

/* Compare two strings through pointers to them, for qsort. */
static int
pgmctl_strpcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * libpq's sslmode for a databases entry: its tls_mode, else
 * tls.server_mode; NULL (libpq's default) when neither says more than
 * "disable", which is also what pgmirror does without either.
 */
static const char *
pgmctl_verify_sslmode(const struct pgm_database *d)
{
	static const char *const modes[] = { "disable", "allow", "prefer",
	    "require", "verify-ca", "verify-full" };
	int		 m;

	if (d->tls_mode >= 0)
		m = d->tls_mode;
	else if ((m = pgmctl_conf->tls_server_mode) == TLS_DISABLE)
		return NULL;
	return m >= 0 && (size_t)m < nitems(modes) ? modes[m] : NULL;
}

/*
 * Connect one side of verify as user, with its users entry's plain
 * password if it has one, and list its tables.  -1 after saying why.
 */
static int
pgmctl_verify_open(struct pgmctl_side *s, const char *user)
{
	const struct pgm_config *cf = pgmctl_conf;
	const struct pgm_database *d;
	const char	*keys[14], *vals[14], *mode;
	char		 port[16];
	PGresult	*res;
	int		 k = 0, i, db, u;

	db = config_find_database(cf, s->entry);
	d = &cf->databases[db];
	u = config_find_user(cf, user, db);
	snprintf(port, sizeof(port), "%d", d->port);
	keys[k] = "host";
	vals[k++] = d->host;
	keys[k] = "port";
	vals[k++] = port;
	keys[k] = "dbname";
	vals[k++] = d->dbname;
	keys[k] = "user";
	vals[k++] = user;
	if (u >= 0 && cf->users[u].plain != NULL) {
		keys[k] = "password";
		vals[k++] = cf->users[u].plain;
	}
	if ((mode = pgmctl_verify_sslmode(d)) != NULL) {
		keys[k] = "sslmode";
		vals[k++] = mode;
	}
	if ((vals[k] = cf->tls_ca_file) != NULL)
		keys[k++] = "sslrootcert";
	if ((vals[k] = cf->tls_server_cert_file) != NULL)
		keys[k++] = "sslcert";
	if ((vals[k] = cf->tls_server_key_file) != NULL)
		keys[k++] = "sslkey";
	keys[k] = "fallback_application_name";
	vals[k++] = "pgmirrorctl verify";
	keys[k] = "client_encoding";
	vals[k++] = "UTF8";
	if (getenv("PGCONNECT_TIMEOUT") == NULL) {
		keys[k] = "connect_timeout";
		vals[k++] = PGMCTL_CONNECT_TIMEOUT;
	}
	keys[k] = NULL;
	vals[k] = NULL;
	if ((s->conn = PQconnectdbParams(keys, vals, 0)) == NULL)
		err(1, NULL);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		warnx("cannot connect to %s \"%s\" (%s port %s, database %s, "
		    "user %s): %s", s->label, s->entry, d->host, port,
		    d->dbname, user, pgmctl_oneline(PQerrorMessage(s->conn)));
		return -1;
	}
	res = PQexec(s->conn, pgmctl_verify_setup);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		warnx("%s: %s", s->label,
		    pgmctl_oneline(PQresultErrorMessage(res)));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	res = PQexec(s->conn, pgmctl_verify_tables);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		warnx("%s: cannot list the tables: %s", s->label,
		    pgmctl_oneline(PQresultErrorMessage(res)));
		PQclear(res);
		return -1;
	}
	s->ntables = PQntuples(res);
	s->tables = pgmctl_realloc(NULL, s->ntables, sizeof(char *));
	for (i = 0; i < (int)s->ntables; i++)
		s->tables[i] = pgmctl_strdup(PQgetvalue(res, i, 0));
	PQclear(res);
	qsort(s->tables, s->ntables, sizeof(char *), pgmctl_strpcmp);
	return 0;
}

/*
 * Count the rows of a table on one side and, with checksum, the md5 of
 * its rows: the md5 of the concatenated md5s of the rows' text, in
 * byte order, so that neither the physical order nor the collation
 * matters.  0, or -1 after saying why.
 */
static int
pgmctl_verify_table(struct pgmctl_side *s, const char *table, int checksum,
    char **rows, char **md5)
{
	PGresult	*res;
	char		*sql;
	int		 rc = -1;

	if (checksum)
		sql = pgmctl_printf("SELECT count(*), md5(coalesce("
		    "string_agg(h, '' ORDER BY h COLLATE \"C\"), '')) FROM "
		    "(SELECT md5(ROW(r.*)::text) AS h FROM %s AS r) AS s",
		    table);
	else
		sql = pgmctl_printf("SELECT count(*) FROM %s", table);
	res = PQexec(s->conn, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		*rows = pgmctl_strdup(PQgetvalue(res, 0, 0));
		if (checksum)
			*md5 = pgmctl_strdup(PQgetvalue(res, 0, 1));
		rc = 0;
	} else
		warnx("%s: %s: %s", s->label, table,
		    pgmctl_oneline(PQresultErrorMessage(res)));
	PQclear(res);
	free(sql);
	return rc;
}

/*
 * The user name verify logs in with: the first one with users entries
 * usable for both databases, else the first one usable for the source.
 */
static const char *
pgmctl_verify_user(int src, int dst)
{
	const struct pgm_config *cf = pgmctl_conf;
	const char	*name, *first = NULL;
	int		 i;

	for (i = 0; i < cf->nusers; i++) {
		name = cf->users[i].name;
		if (config_find_user(cf, name, src) == -1)
			continue;
		if (config_find_user(cf, name, dst) != -1)
			return name;
		if (first == NULL)
			first = name;
	}
	return first;
}

/* Compare the tables of two databases of the config; the exit status. */
int
pgmctl_verify(const struct ctlcmd_req *r)
{
	struct pgmctl_side	 side[2];
	struct pgmctl_table *t;
	const char	*user, *row[6], *name, *status;
	char		*rows[2], *md5[2];
	size_t		 i[2], k, nc;
	int		 checksum = (r->opts & CTLCMD_OPT_CHECKSUM) != 0;
	int		 c, have[2], db[2], bad = 0, rc = 1;

	if (pgmctl_conf_load(0) == -1)
		return 1;
	memset(side, 0, sizeof(side));
	side[0].label = "source";
	side[0].entry = r->arg[0];
	side[1].label = "destination";
	side[1].entry = r->arg[1];
	for (k = 0; k < 2; k++)
		if ((db[k] = config_find_database(pgmctl_conf,
		    side[k].entry)) == -1) {
			warnx("%s: no databases entry \"%s\" with a host",
			    pgmctl_conf_path(), side[k].entry);
			return 1;
		}
	if ((user = pgmctl_verify_user(db[0], db[1])) == NULL) {
		warnx("%s: no users entry for database \"%s\"",
		    pgmctl_conf_path(), r->arg[0]);
		return 1;
	}
	for (k = 0; k < 2; k++)
		if (pgmctl_verify_open(&side[k], user) == -1)
			goto out;

	nc = 0;
	row[nc++] = "table";
	row[nc++] = "source_rows";
	row[nc++] = "destination_rows";
	if (checksum) {
		row[nc++] = "source_md5";
		row[nc++] = "destination_md5";
	}
	row[nc++] = "status";
	t = pgmctl_table_new(nc, row);
	i[0] = i[1] = 0;
	while (i[0] < side[0].ntables || i[1] < side[1].ntables) {
		/* Walk both sorted lists: the smaller name, or both. */
		if (i[1] >= side[1].ntables)
			c = -1;
		else if (i[0] >= side[0].ntables)
			c = 1;
		else
			c = strcmp(side[0].tables[i[0]],
			    side[1].tables[i[1]]);
		have[0] = c <= 0;
		have[1] = c >= 0;
		name = have[0] ? side[0].tables[i[0]] : side[1].tables[i[1]];
		status = NULL;
		for (k = 0; k < 2; k++) {
			rows[k] = md5[k] = NULL;
			if (have[k] && pgmctl_verify_table(&side[k], name,
			    checksum, &rows[k], &md5[k]) == -1)
				status = "error";
			if (have[k])
				i[k]++;
		}
		if (status == NULL) {
			if (!have[0] || !have[1])
				status = "missing";
			else if (strcmp(rows[0], rows[1]) != 0 || (checksum &&
			    strcmp(md5[0], md5[1]) != 0))
				status = "DIFFERENT";
			else
				status = "same";
		}
		bad += strcmp(status, "same") != 0;
		nc = 0;
		row[nc++] = name;
		row[nc++] = rows[0] ? rows[0] : "";
		row[nc++] = rows[1] ? rows[1] : "";
		if (checksum) {
			row[nc++] = md5[0] ? md5[0] : "";
			row[nc++] = md5[1] ? md5[1] : "";
		}
		row[nc++] = status;
		pgmctl_table_add(t, row);
		for (k = 0; k < 2; k++) {
			free(rows[k]);
			free(md5[k]);
		}
	}
	pgmctl_print(t);
	pgmctl_table_free(t);
	rc = bad ? 1 : 0;
out:
	for (k = 0; k < 2; k++) {
		if (side[k].conn != NULL)
			PQfinish(side[k].conn);
		for (i[0] = 0; i[0] < side[k].ntables; i[0]++)
			free(side[k].tables[i[0]]);
		free(side[k].tables);
	}
	return rc;
}
