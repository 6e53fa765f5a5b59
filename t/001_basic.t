# 001_basic: psql through pgmirror gives the same answers as PostgreSQL,
# over TCP (IPv4, IPv6 when the host has it) and over the Unix socket, and
# the client is routed by database name to the right databases entry (on
# TCP or on the server's Unix socket).

use strict;
use warnings;

use PgMirrorTest;
use Test::More;

my $pg = pg_start();
$pg->setup_app;
$pg->create_db('otherdb', 'app');
$pg->psql('CREATE TABLE t (id int PRIMARY KEY, v text);'
	. " INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 1000) i",
	db => 'appdb', user => 'app');
$pg->psql("CREATE TABLE marker AS SELECT 'other' AS which", db => 'otherdb', user => 'app');

# IPv6 only when the loopback has it.
my $v6 = eval {
	require IO::Socket::IP;
	my $s = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Listen => 1);
	$s ? 1 : 0;
};

my $pgm = pgm_start($pg,
	databases => [
		{ name => 'appdb', database => 'appdb' },
		{ name => 'alias', database => 'otherdb' },
		{ name => 'viasock', database => 'appdb', host => $pg->sockdir },
	],
	listen_v6 => $v6);

my $q = 'SELECT id, v FROM t ORDER BY id';
my $direct = $pg->psql($q, db => 'appdb', user => 'app', password => 'secret');
is(scalar(split /\n/, $direct), 1000, 'direct query returns 1000 rows');

my ($out, $err, $rc) = $pgm->psql($q);
is($rc, 0, 'psql over TCP through pgmirror exits 0') or diag($err);
ok($out eq $direct, 'TCP result identical to a direct connection');

($out, $err, $rc) = $pgm->psql($q, unix => 1);
is($rc, 0, 'psql over the Unix socket through pgmirror exits 0') or diag($err);
ok($out eq $direct, 'Unix-socket result identical to a direct connection');
ok(-S $pgm->sockdir . '/.s.PGSQL.' . $pgm->port, 'socket file DIR/.s.PGSQL.PORT exists');

SKIP: {
	skip 'no IPv6 loopback', 2 unless $v6;
	($out, $err, $rc) = $pgm->psql($q, host => '::1');
	is($rc, 0, 'psql over IPv6 through pgmirror exits 0') or diag($err);
	ok($out eq $direct, 'IPv6 result identical to a direct connection');
}

# The server version: as a query and as the ParameterStatus psql keeps.
my $ver_direct = $pg->psql('SHOW server_version');
is($pgm->psql('SHOW server_version'), $ver_direct, 'SHOW server_version matches');
my $name_direct = $pg->psql('\echo :SERVER_VERSION_NAME', user => 'app',
	password => 'secret', db => 'appdb');
is($pgm->psql('\echo :SERVER_VERSION_NAME'), $name_direct,
	'server_version ParameterStatus (psql SERVER_VERSION_NAME) matches');
is($pgm->psql('\echo :SERVER_VERSION_NUM'),
	$pg->psql('\echo :SERVER_VERSION_NUM'), 'SERVER_VERSION_NUM matches');

# Session identity on the server side.
is($pgm->psql('SELECT current_user, session_user, current_database()'),
	'app|app|appdb', 'server session runs as app in appdb');

# Routing by the databases entry name.
is($pgm->psql('SELECT current_database(), which FROM marker', db => 'alias'),
	'otherdb|other', 'database "alias" is routed to otherdb');

# A databases entry whose host is a Unix socket directory.
($out, $err, $rc) = $pgm->psql('SELECT current_database(), inet_server_addr() IS NULL',
	db => 'viasock');
is($rc, 0, 'databases entry with a Unix-socket host works') or diag($err);
is($out, 'appdb|t', '... and reaches the server over its Unix socket');

# Several result types come back as PostgreSQL prints them.
my $types = q{SELECT 1::int2, 2::int8, 1.5::numeric(10,3), 'x'::text, NULL::int,
	true, '2024-02-29 12:34:56+00'::timestamptz, '{1,2,3}'::int[],
	'{"a": [1, 2]}'::jsonb, '\x00ff'::bytea, 'infinity'::float8, E'tab\there'};
is($pgm->psql($types), $pg->psql($types), 'typed values identical');

# An empty query and a query returning no rows.
($out, $err, $rc) = $pgm->psql('SELECT 1 WHERE false');
is($rc, 0, 'query with no rows succeeds');
is($out, '', 'no rows printed');
($out, $err, $rc) = $pgm->psql(';');
is($rc, 0, 'empty query succeeds') or diag($err);

# Writes through pgmirror are visible directly.
$pgm->psql("INSERT INTO t VALUES (1001, 'via pgmirror')");
is($pg->psql('SELECT v FROM t WHERE id = 1001', db => 'appdb'), 'via pgmirror',
	'a write through pgmirror is visible to a direct connection');

# Many sequential short sessions all work.
my $fails = 0;
for my $i (1 .. 20) {
	my ($o, $e, $r) = $pgm->psql("SELECT $i");
	$fails++ unless $r == 0 && $o eq $i;
}
is($fails, 0, '20 sequential sessions all answered correctly');

ok($pgm->alive, 'pgmirror still running');
done_testing();
