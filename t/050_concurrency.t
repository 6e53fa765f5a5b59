# 050_concurrency: pgbench through pgmirror.  pgbench -i, then the TPC-B
# like workload with 20 clients in each protocol mode (simple, extended,
# prepared) with zero failed transactions and consistent balances; then
# 200 clients connected at the same time, all served.

use strict;
use warnings;

use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $pg = pg_start(max_connections => 300);
$pg->setup_app;
my $pgm = pgm_start($pg,
	pool => { default_size => 250 },
	workers => { min_spare => 4, max_spare => 32, max => 256 });

my ($rc, $out, $err) = $pgm->pgbench([ '-i', '-q', '-s', '2' ]);
is($rc, 0, 'pgbench -i through pgmirror succeeds') or diag($err);
is($pg->psql('SELECT count(*) FROM pgbench_accounts', db => 'appdb'), 200_000,
	'pgbench_accounts loaded (checked directly)');

for my $mode (qw(simple extended prepared)) {
	($rc, $out, $err) = $pgm->pgbench([ '-n', '-M', $mode, '-c', '20', '-j', '2', '-T', '5' ]);
	is($rc, 0, "pgbench -M $mode -c 20 exits 0") or diag("$out\n$err");
	my ($processed, $failed) = pgbench_counts($out);
	cmp_ok($processed // 0, '>', 0, "pgbench -M $mode: " . ($processed // 0) . ' transactions');
	is($failed, 0, "pgbench -M $mode: number of failed transactions: 0");
	unlike($err, qr/(?:error|FATAL|aborted)/i, "pgbench -M $mode: no errors reported")
	  or diag($err);
	my ($clients) = $out =~ /number of clients: (\d+)/;
	is($clients, 20, "pgbench -M $mode: 20 clients");
}

# Every transaction changed accounts, tellers and branches by the same
# delta it logged in history.
my $consistent = $pg->psql(q{SELECT (SELECT sum(abalance) FROM pgbench_accounts)
	= (SELECT sum(delta) FROM pgbench_history)
	AND (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT sum(delta) FROM pgbench_history)
	AND (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT sum(delta) FROM pgbench_history)},
	db => 'appdb');
is($consistent, 't', 'balances agree with pgbench_history');
cmp_ok($pg->backends('app'), '<=', 250, 'server connections within the pool size');

# 200 clients connected together, each sleeping in a few transactions.
my $script = PgMirrorTest::tmp_base() . '/sleep.sql';
write_file($script, "SELECT pg_sleep(0.3);\n");
my $max = 0;
my $bg = PgMirrorTest::start_cmd([ PgMirrorTest::_bin('pgbench'), '-n', '-h', $pgm->host,
	'-p', $pgm->port, '-U', 'app', '-c', '200', '-j', '4', '-t', '5', '-f', $script, 'appdb' ],
	env => { PGPASSWORD => 'secret' }, timeout => 180);
my $t0 = time;
while ($bg->running) {
	my $n = $pg->backends('app');
	$max = $n if $n > $max;
	sleep 0.2;
}
my $elapsed = time - $t0;
($rc, $out, $err) = $bg->finish;
is($rc, 0, 'pgbench with 200 clients exits 0') or diag("$out\n$err");
like($out, qr/number of clients: 200\b/, '200 clients');
like($out, qr/number of transactions actually processed: 1000\/1000/,
	'all 1000 transactions of the 200 clients processed');
like($out, qr/number of failed transactions: 0\b/, 'no failed transaction');
cmp_ok($max, '>=', 150, "the clients ran concurrently ($max server sessions at once)");
cmp_ok($max, '<=', 250, 'pool cap respected');
cmp_ok($elapsed, '<', 60, sprintf('200 clients done in %.1f s', $elapsed));
note("pgmirror workers now: " . scalar($pgm->workers));
cmp_ok(scalar($pgm->workers), '<=', 256, 'workers within workers.max');

# And pgmirror still serves a plain client afterwards.
is($pgm->psql('SELECT 1'), '1', 'pgmirror serves clients after the load');
ok($pgm->alive, 'pgmirror still running');
done_testing();
