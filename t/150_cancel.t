# 150_cancel: a CancelRequest reaches the right query whichever worker
# accepts it (the session's own worker is busy relaying it), psql's
# Ctrl-C works, other sessions are untouched, and forged keys cancel
# nothing.

use strict;
use warnings;

use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $pg = pg_start();
$pg->setup_app;
my $pgm = pgm_start($pg, workers => { min_spare => 4, max_spare => 8, max => 32 });

my $sleeping = sub {
	my ($sql) = @_;
	return $pg->psql("SELECT count(*) FROM pg_stat_activity WHERE query = '$sql'"
		. " AND state = 'active'");
};

# psql sends a CancelRequest when it gets SIGINT (Ctrl-C).
{
	my $other = $pgm->dbh;
	my $bg = $pgm->psql_bg('SELECT pg_sleep(30)');
	ok(wait_until(sub { $sleeping->('SELECT pg_sleep(30)') == 1 }, 10),
		'psql runs pg_sleep(30) through pgmirror');
	my $t = time;
	$bg->{h}->signal('INT');
	my ($rc, $out, $err) = $bg->finish;
	my $took = time - $t;
	isnt($rc, 0, 'psql: the query fails');
	like($err, qr/canceling statement due to user request/, 'psql: canceled by the user')
		or diag($err);
	cmp_ok($took, '<', 5, sprintf('psql: back %.2f s after Ctrl-C, not after 30 s', $took));
	is($other->selectrow_array('SELECT 41 + 1'), 42, 'another session keeps working');
	$other->disconnect;
}

# Forged keys: a wrong secret, a wrong pid, zeros.  The query runs on.
{
	my ($c, $r) = $pgm->raw_login(timeout => 20);
	ok($r->{ok} && $r->{key}, 'raw session with a BackendKeyData') or diag(explain($r));
	my ($pid, $key) = @{ $r->{key} || [ 0, 0 ] };
	isnt($pid, 0, 'the cancel pid is not 0');
	$c->send_msg('Q', "SELECT pg_sleep(2), 4242\0");
	ok(wait_until(sub { $sleeping->('SELECT pg_sleep(2), 4242') == 1 }, 10),
		'the raw session runs pg_sleep(2)');
	for my $forged ([ $pid, $key ^ 1 ], [ $pid ^ 1, $key ], [ 0, 0 ]) {
		my $k = $pgm->raw;
		$k->send_cancel($forged);
		$k->hang_up;
	}
	my $res = $c->collect(timeout => 15);
	ok(!$res->{error}, 'forged keys cancel nothing') or diag(explain($res));
	is($res->{rows}[0][1], 4242, 'the query completes');
	like($pgm->log, qr/cancel request with an unknown key ignored/,
		'the forged requests are logged as ignored');

	# The real key, from another connection, cancels at once.
	$c->send_msg('Q', "SELECT pg_sleep(30)\0");
	ok(wait_until(sub { $sleeping->('SELECT pg_sleep(30)') == 1 }, 10),
		'the raw session runs pg_sleep(30)');
	my $t = time;
	my $k = $pgm->raw;
	$k->send_cancel([ $pid, $key ]);
	$k->hang_up;
	$res = $c->collect(timeout => 15);
	is($res->{error}{C}, '57014', 'the real key cancels the query (57014)')
		or diag(explain($res));
	cmp_ok(time - $t, '<', 5, sprintf('canceled %.2f s after the request', time - $t));
	is($c->query('SELECT 7')->{rows}[0][0], 7, 'the session goes on after the cancel');
	$c->close;
}

# The backend pid a client is given is its server backend's: a client
# that waits on a lock finds itself in pg_blocking_pids(), and its pid in
# pg_stat_activity; a cancel through pgmirror still reaches it.
{
	require DBD::Pg;
	$pg->psql('CREATE TABLE lockme (i int)', db => 'appdb', user => 'app');
	my $holder = $pgm->dbh;
	my $waiter = $pgm->dbh;
	is($holder->{pg_pid}, $holder->selectrow_array('SELECT pg_backend_pid()'),
		'PQbackendPID() is the server backend pid');
	$holder->begin_work;
	$holder->do('LOCK TABLE lockme IN ACCESS EXCLUSIVE MODE');
	$waiter->do('SELECT count(*) FROM lockme', { pg_async => DBD::Pg::PG_ASYNC() });
	my $wpid = $waiter->{pg_pid};
	my $blocked;
	ok(wait_until(sub {
		$blocked = $pg->psql("SELECT array_to_string(pg_blocking_pids($wpid), ',')");
		length $blocked;
	}, 10, 0.1), 'the waiting client is blocked, found by its own PQbackendPID()');
	is($blocked, $holder->{pg_pid}, '... by the holder, under the holder\'s PQbackendPID()');
	is($pg->psql("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $wpid"), 'Lock',
		'pg_stat_activity shows the waiter under that pid, waiting on a lock');
	ok($waiter->pg_cancel, 'a cancel through pgmirror reaches the waiter');
	is($waiter->state, '57014', '... 57014');
	$holder->rollback;
	is($waiter->selectrow_array('SELECT pg_backend_pid()'), $wpid,
		'the waiter goes on, on the same backend');
	$holder->disconnect;
	$waiter->disconnect;
}

ok($pgm->alive, 'pgmirror still runs');
unlike($pgm->log, qr/killed by signal|exited with status/, 'no worker died');

done_testing();
