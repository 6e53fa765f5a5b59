# 060_workers: the process model.  A worker killed with SIGKILL (idle or
# serving a client) is replaced, other sessions carry on undisturbed and
# its pool slot is given back; SIGTERM waits for clients (bounded by
# shutdown_timeout), SIGINT ends sessions at once with 57P01, SIGQUIT exits
# at once, workers that die before serving anyone are re-forked at a
# throttled rate, and workers exit when the supervisor dies.

use strict;
use warnings;

use IO::Socket::INET;
use PgMirrorTest;
use POSIX qw(WIFEXITED WEXITSTATUS WIFSIGNALED WTERMSIG);
use Test::More;
use Time::HiRes qw(time sleep);

my $pg = pg_start();
$pg->setup_app;

# Runs $n queries on $dbh; returns how many gave the right answer.
sub run_queries {
	my ($dbh, $n) = @_;
	my $ok = 0;
	for my $i (1 .. $n) {
		my $v = eval { $dbh->selectrow_array('SELECT ?::int * 2', undef, $i) };
		$ok++ if defined $v && $v == 2 * $i;
	}
	return $ok;
}

# --- a killed worker is replaced ----------------------------------------------

{
	my $pgm = pgm_start($pg,
		users => [ { name => 'app', password => 'secret', pool_size => 2 } ],
		pool => { wait_timeout => 5 },
		workers => { min_spare => 2, max_spare => 4, max => 16 });
	ok(wait_until(sub { $pgm->workers >= 2 }, 10), 'min_spare workers started');

	my $sa = $pgm->dbh;
	my $sb = $pgm->dbh;
	is(run_queries($sa, 10), 10, 'session A works');
	is(run_queries($sb, 10), 10, 'session B works');
	my $wa = $pgm->worker_for($sa);
	my $wb = $pgm->worker_for($sb);
	ok($wa && $wb && $wa != $wb, 'A and B are served by two workers ('
		. ($wa // '?') . ', ' . ($wb // '?') . ')');
	ok(wait_until(sub { (grep { $_ != ($wa // 0) && $_ != ($wb // 0) } $pgm->workers) >= 2 }, 10),
		'idle workers spawned to keep min_spare while two are busy');
	my @before = $pgm->workers;
	my ($idle) = grep { $_ != ($wa // 0) && $_ != ($wb // 0) } @before;

	# Kill an idle worker.
	ok(kill('KILL', $idle), "SIGKILL idle worker $idle");
	is(run_queries($sa, 50), 50, 'session A keeps working while the idle worker dies');
	ok(wait_until(sub { !pid_alive($idle) }, 5), 'killed worker is gone');
	ok(wait_until(sub {
		my @w = $pgm->workers;
		!grep({ $_ == $idle } @w) && @w >= @before;
	}, 10), 'the number of workers recovers (' . scalar(@before) . ' before, '
		. scalar($pgm->workers) . ' now)');
	my @new = grep { my $p = $_; !grep { $_ == $p } @before } $pgm->workers;
	cmp_ok(scalar(@new), '>=', 1, "a new worker was forked (@new)");
	is(run_queries($sa, 20), 20, 'session A still works');
	is(run_queries($sb, 20), 20, 'session B still works');

	# Kill the worker serving B: A carries on, B is cut off.
	ok(kill('KILL', $wb), "SIGKILL worker $wb serving session B");
	is(run_queries($sa, 50), 50, 'session A undisturbed by the death of B\'s worker');
	ok(wait_until(sub { !pid_alive($wb) }, 5), 'B\'s worker is gone');
	is(run_queries($sb, 1), 0, 'session B lost its connection');

	# The server connection B's worker held is released: with pool_size 2
	# and A holding one, a new client must get the other.
	ok(wait_until(sub { $pg->backends('app') <= 1 }, 10),
		'the dead worker\'s server connection went away');
	my $t0 = time;
	my ($out, $err, $rc) = $pgm->psql('SELECT 42');
	is($rc, 0, 'a new client gets the pool slot of the dead worker') or diag($err);
	is($out, '42', '... and its answer');
	cmp_ok(time - $t0, '<', 4, 'without waiting for the pool');
	for my $i (1 .. 3) {
		is($pgm->psql("SELECT $i"), $i, "new client $i connects");
	}
	is(run_queries($sa, 10), 10, 'session A still fine at the end');
	$sa->disconnect;
	eval { $sb->disconnect };
	ok($pgm->alive, 'supervisor alive');
	like($pgm->log, qr/$wb/, 'the log names the dead worker');
	$pgm->stop;
}

# --- SIGTERM: smart shutdown, bounded by shutdown_timeout -------------------------

{
	my $pgm = pgm_start($pg, shutdown_timeout => 3);
	my $sa = $pgm->dbh;
	is(run_queries($sa, 5), 5, 'session open before SIGTERM');
	my @w = $pgm->workers;
	my $t0 = time;
	$pgm->kill('TERM');
	sleep 0.5;
	is(run_queries($sa, 5), 5, 'after SIGTERM the open session still works');
	my ($out, $err, $rc) = $pgm->psql('SELECT 1', timeout => 10);
	isnt($rc, 0, 'after SIGTERM a new connection is refused');
	my $st = $pgm->wait_exit(15);
	my $elapsed = time - $t0;
	ok(defined $st, 'supervisor exits while a client stays connected');
	cmp_ok($elapsed, '>=', 2.5, sprintf('after shutdown_timeout (%.1f s)', $elapsed));
	cmp_ok($elapsed, '<', 10, 'not much later');
	is(run_queries($sa, 1), 0, 'the lingering session was ended');
	ok(wait_until(sub { !grep { pid_alive($_) } @w }, 5), 'all workers exited');
	eval { $sa->disconnect };

	$pgm = pgm_start($pg, shutdown_timeout => 30);
	$sa = $pgm->dbh;
	run_queries($sa, 1);
	@w = $pgm->workers;
	$pgm->kill('TERM');
	sleep 0.5;
	ok($pgm->alive, 'SIGTERM with a client connected: still running');
	$t0 = time;
	$sa->disconnect;
	$st = $pgm->wait_exit(10);
	ok(defined $st, 'exits once the last client left');
	cmp_ok(time - $t0, '<', 5, 'promptly');
	ok(defined $st && WIFEXITED($st) && WEXITSTATUS($st) == 0, 'with exit status 0')
	  or diag("wait status " . ($st // 'undef'));
	ok(wait_until(sub { !grep { pid_alive($_) } @w }, 5), 'all workers exited');
	ok(wait_until(sub { $pg->backends('app') == 0 }, 10), 'server connections closed');
}

# --- SIGINT: fast shutdown with 57P01 ---------------------------------------------

{
	my $pgm = pgm_start($pg);
	my ($c, $r) = $pgm->raw_login;
	ok($r->{ok}, 'idle raw client connected');
	my $sleeper = $pgm->psql_bg('SELECT pg_sleep(20)');
	ok(wait_until(sub { $pg->psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE"
		. " 'SELECT pg_sleep(20)%' AND state = 'active'") == 1 }, 10),
		'a client is running a long query');
	my @w = $pgm->workers;
	my $t0 = time;
	$pgm->kill('INT');
	my ($t, $p) = $c->read_msg(5);
	is($t, 'E', 'idle client receives an ErrorResponse');
	my $f = $t && $t eq 'E' ? PgMirrorTest::Raw::parse_fields($p) : {};
	is($f->{C}, '57P01', 'with SQLSTATE 57P01');
	is($f->{S}, 'FATAL', 'as FATAL');
	my @more = $c->read_msg(5);
	ok(!@more && $c->{eof}, 'then the connection is closed');
	my ($src, $sout, $serr) = $sleeper->finish;
	isnt($src, 0, 'the long query fails');
	cmp_ok(time - $t0, '<', 10, 'at once, not after its 20 s');
	like($serr, qr/terminating connection|administrator|57P01|closed the connection/,
		'psql reports the termination') or diag($serr);
	ok(defined $pgm->wait_exit(10), 'supervisor exits after SIGINT');
	ok(wait_until(sub { !grep { pid_alive($_) } @w }, 5), 'all workers exited');
	# The long query is cancelled on the server, not left running, and
	# the idle session's backend goes too.
	ok(wait_until(sub { $pg->psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'") == 0 }, 10),
		'no server session left behind, the long query cancelled');
}

# --- SIGQUIT: immediate -----------------------------------------------------------

{
	my $pgm = pgm_start($pg);
	my $sa = $pgm->dbh;
	run_queries($sa, 1);
	my @w = $pgm->workers;
	$pgm->kill('QUIT');
	ok(defined $pgm->wait_exit(3), 'SIGQUIT: supervisor exits at once');
	ok(wait_until(sub { !grep { pid_alive($_) } @w }, 5), 'SIGQUIT: workers exit');
	is(run_queries($sa, 1), 0, 'SIGQUIT: the session is gone');
	eval { $sa->disconnect };
}

# --- re-forking is throttled when workers die before serving anyone -------------

{
	my $pgm = pgm_start($pg, workers => { min_spare => 2, max_spare => 4, max => 8 });
	ok(wait_until(sub { $pgm->workers >= 2 }, 10), 'workers running');
	my %killed;
	my $t0 = time;
	while (time - $t0 < 4) {
		for my $w ($pgm->workers) {
			next if $killed{$w}++;
			kill('KILL', $w);
		}
		sleep 0.01;
	}
	my $n = keys %killed;
	cmp_ok($n, '<', 40, "workers killed before serving anyone: $n forks in 4 s, throttled");
	ok($pgm->alive, 'the supervisor survives');
	ok(wait_until(sub { $pgm->workers >= 2 }, 35), 'workers come back once they stop dying');
	my ($out, $err, $rc) = $pgm->psql('SELECT 1', timeout => 40);
	is($out, '1', 'and serve clients again') or diag($err);
	$pgm->stop;
}

# --- supervisor death -------------------------------------------------------------

{
	my $pgm = pgm_start($pg, workers => { min_spare => 3, max_spare => 4, max => 8 });
	ok(wait_until(sub { $pgm->workers >= 3 }, 10), 'three workers running');
	my @w = $pgm->workers;
	$pgm->kill('KILL');
	ok(defined $pgm->wait_exit(3), 'supervisor killed');
	ok(wait_until(sub { !grep { pid_alive($_) } @w }, 5),
		'workers exit promptly when the supervisor dies');
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $pgm->port, Timeout => 2);
	ok(!$s, 'nothing listens on the port any more');
}

done_testing();
