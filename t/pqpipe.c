/*
 * pqpipe: a libpq client for the pgmirror integration tests.
 *
 * It drives protocol paths that psql does not reach, and prints results in
 * a form a test can compare between a direct connection and one through
 * pgmirror:
 *
 *   pqpipe pipeline CONNINFO [N]   N queries (default 50) and a prepared
 *                                  statement in pipeline mode, one Sync;
 *                                  then a pipeline with an error in it
 *   pqpipe fn CONNINFO             FunctionCall (PQfn): int4pl and md5
 *   pqpipe params CONNINFO [SQL..] runs each SQL, prints ParameterStatus
 *   pqpipe cancel CONNINFO         cancels a pg_sleep with PQcancel
 *
 * Exit status 0 on success, 1 on any unexpected result (the reason is on
 * stderr).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static PGconn	*conn;

/* Prints a message and the connection's error, then exits 1. */
static void
die(const char *what)
{
	fprintf(stderr, "pqpipe: %s: %s\n", what, conn ? PQerrorMessage(conn) : "");
	if (conn)
		PQfinish(conn);
	exit(1);
}

/* FNV-1a over a string, folded into *h. */
static void
fnv(uint64_t *h, const char *s)
{
	for (; *s; s++) {
		*h ^= (unsigned char)*s;
		*h *= 1099511628211ULL;
	}
	*h ^= 0xff;
	*h *= 1099511628211ULL;
}

static const char *
status_name(PGresult *res)
{
	if (res == NULL)
		return "NULL";
	return PQresStatus(PQresultStatus(res));
}

/* Reads one query's result in pipeline mode: the result, then NULL. */
static PGresult *
pipeline_result(void)
{
	PGresult	*res, *end;

	res = PQgetResult(conn);
	if (res == NULL)
		die("unexpected end of results");
	if (PQresultStatus(res) == PGRES_PIPELINE_SYNC)
		return res;
	end = PQgetResult(conn);
	if (end != NULL) {
		fprintf(stderr, "pqpipe: expected end of query, got %s\n",
		    status_name(end));
		exit(1);
	}
	return res;
}

static int
do_pipeline(int n)
{
	char		 buf[32];
	const char	*values[1];
	PGresult	*res;
	uint64_t	 h = 1469598103934665603ULL;
	long		 sum = 0;
	int		 i, rows = 0;

	if (PQenterPipelineMode(conn) != 1)
		die("PQenterPipelineMode");
	if (PQsendPrepare(conn, "pqpipe_s1",
	    "SELECT $1::int + 1000, repeat('z', $1::int % 7)", 1, NULL) != 1)
		die("PQsendPrepare");
	for (i = 1; i <= n; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		values[0] = buf;
		if (PQsendQueryParams(conn,
		    "SELECT $1::int * 2 AS x, md5($1::text) AS m", 1, NULL,
		    values, NULL, NULL, 0) != 1)
			die("PQsendQueryParams");
		if (i % 10 == 0 && PQsendQueryPrepared(conn, "pqpipe_s1", 1,
		    values, NULL, NULL, 0) != 1)
			die("PQsendQueryPrepared");
	}
	if (PQpipelineSync(conn) != 1)
		die("PQpipelineSync");

	res = pipeline_result();
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die("prepare result");
	PQclear(res);
	for (i = 1; i <= n; i++) {
		res = pipeline_result();
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
			fprintf(stderr, "pqpipe: query %d: %s %s\n", i,
			    status_name(res), PQresultErrorMessage(res));
			exit(1);
		}
		sum += atol(PQgetvalue(res, 0, 0));
		fnv(&h, PQgetvalue(res, 0, 0));
		fnv(&h, PQgetvalue(res, 0, 1));
		rows++;
		PQclear(res);
		if (i % 10 == 0) {
			res = pipeline_result();
			if (PQresultStatus(res) != PGRES_TUPLES_OK)
				die("prepared query");
			sum += atol(PQgetvalue(res, 0, 0));
			fnv(&h, PQgetvalue(res, 0, 1));
			rows++;
			PQclear(res);
		}
	}
	res = pipeline_result();
	if (PQresultStatus(res) != PGRES_PIPELINE_SYNC)
		die("expected PIPELINE_SYNC");
	PQclear(res);
	printf("pipeline1 rows=%d sum=%ld fnv=%016llx\n", rows, sum,
	    (unsigned long long)h);

	/* A pipeline with an error: the rest up to Sync is aborted. */
	if (PQsendQueryParams(conn, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQsendQueryParams(conn, "SELECT 1/0", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQsendQueryParams(conn, "SELECT 3", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(conn) != 1 ||
	    PQsendQueryParams(conn, "SELECT 4", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(conn) != 1)
		die("sending pipeline 2");
	printf("pipeline2");
	for (i = 0; i < 6; i++) {
		const char *state;

		res = pipeline_result();
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		printf(" %s%s%s", status_name(res), state ? ":" : "",
		    state ? state : "");
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			printf("=%s", PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	printf("\n");
	if (PQexitPipelineMode(conn) != 1)
		die("PQexitPipelineMode");
	res = PQexec(conn, "SELECT 'after'");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die("query after pipeline");
	printf("after %s\n", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/* Looks up a function's oid. */
static Oid
func_oid(const char *sig)
{
	const char	*values[1] = { sig };
	PGresult	*res;
	Oid		 oid;

	res = PQexecParams(conn, "SELECT $1::regprocedure::oid", 1, NULL,
	    values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die("function lookup");
	oid = (Oid)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return oid;
}

static int
do_fn(void)
{
	PQArgBlock	 args[2];
	PGresult	*res;
	char		 text[64];
	const char	*in = "pgmirror";
	int		 result = 0, len = 0, i;

	args[0].isint = 1;
	args[0].len = 4;
	args[0].u.integer = 40;
	args[1].isint = 1;
	args[1].len = 4;
	args[1].u.integer = 2;
	res = PQfn(conn, func_oid("int4pl(int4,int4)"), &result, &len, 1,
	    args, 2);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die("PQfn int4pl");
	PQclear(res);
	printf("int4pl=%d\n", result);

	for (i = 0; i < 3; i++) {
		memset(text, 0, sizeof(text));
		args[0].isint = 0;
		args[0].len = (int)strlen(in);
		args[0].u.ptr = (int *)(uintptr_t)in;	/* PQfn does not write it */
		res = PQfn(conn, func_oid("md5(text)"), (int *)(void *)text, &len,
		    0, args, 1);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die("PQfn md5");
		PQclear(res);
		printf("md5=%.*s\n", len, text);
	}

	/* A failing function call keeps the session usable. */
	args[0].isint = 1;
	args[0].len = 4;
	args[0].u.integer = 2147483647;
	args[1].isint = 1;
	args[1].len = 4;
	args[1].u.integer = 1;
	res = PQfn(conn, func_oid("int4pl(int4,int4)"), &result, &len, 1,
	    args, 2);
	printf("overflow=%s:%s\n", status_name(res),
	    PQresultErrorField(res, PG_DIAG_SQLSTATE) ?
	    PQresultErrorField(res, PG_DIAG_SQLSTATE) : "");
	PQclear(res);
	res = PQexec(conn, "SELECT 'after'");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die("query after PQfn");
	printf("after %s\n", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

static const char *reported[] = {
	"application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
	"in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser",
	"server_encoding", "server_version", "session_authorization",
	"standard_conforming_strings", "TimeZone", NULL
};

static int
do_params(int argc, char **argv)
{
	PGresult	*res;
	int		 i;

	for (i = 0; i < argc; i++) {
		res = PQexec(conn, argv[i]);
		if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		    PQresultStatus(res) != PGRES_TUPLES_OK)
			die(argv[i]);
		PQclear(res);
	}
	for (i = 0; reported[i]; i++) {
		const char *v = PQparameterStatus(conn, reported[i]);

		printf("%s=%s\n", reported[i], v ? v : "(unset)");
	}
	return 0;
}

static double
now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
do_cancel(void)
{
	PGcancel	*cancel;
	PGresult	*res;
	char		 err[256];
	const char	*state = NULL;
	double		 t0;
	int		 got = 0;

	if (PQsendQuery(conn, "SELECT pg_sleep(30)") != 1)
		die("PQsendQuery");
	sleep(1);
	t0 = now();
	cancel = PQgetCancel(conn);
	if (cancel == NULL)
		die("PQgetCancel");
	if (PQcancel(cancel, err, sizeof(err)) != 1) {
		fprintf(stderr, "pqpipe: PQcancel: %s\n", err);
		return 1;
	}
	PQfreeCancel(cancel);
	while ((res = PQgetResult(conn)) != NULL) {
		if (!got) {
			state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			printf("cancel %s %s\n", status_name(res), state ? state : "-");
			got = 1;
		}
		PQclear(res);
	}
	printf("cancel_seconds %.1f\n", now() - t0);
	res = PQexec(conn, "SELECT 'after'");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die("query after cancel");
	printf("after %s\n", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

int
main(int argc, char **argv)
{
	int	 rc;

	if (argc < 3) {
		fprintf(stderr, "usage: pqpipe pipeline|fn|params|cancel CONNINFO [ARGS]\n");
		return 1;
	}
	conn = PQconnectdb(argv[2]);
	if (PQstatus(conn) != CONNECTION_OK)
		die("connect");
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "pipeline") == 0)
		rc = do_pipeline(argc > 3 ? atoi(argv[3]) : 50);
	else if (strcmp(argv[1], "fn") == 0)
		rc = do_fn();
	else if (strcmp(argv[1], "params") == 0)
		rc = do_params(argc - 3, argv + 3);
	else if (strcmp(argv[1], "cancel") == 0)
		rc = do_cancel();
	else {
		fprintf(stderr, "pqpipe: unknown mode %s\n", argv[1]);
		rc = 1;
	}
	PQfinish(conn);
	return rc;
}
