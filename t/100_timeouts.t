# 100_timeouts: the timeouts and limits of the client, server and workers
# groups, each set to a small value and watched at work:
#
#  1. client.login_timeout: a client that sends nothing, half a startup
#     packet, or stops in the middle of SCRAM is dropped after ~2 s;
#  2. client.idle_timeout: an idle session gets FATAL 57P05 (raw client,
#     DBD::Pg, psql), while a busy one, a long query and a long busy
#     transaction are left alone;
#  3. client.idle_transaction_timeout: an idle open transaction gets
#     FATAL 25P03, its work is rolled back on the server and no backend
#     is left idle in transaction;
#  4. server.connect_timeout: a server that accepts but never answers
#     fails the client with 08006 after ~2 s, other databases keep working
#     meanwhile, and the pool count is given back;
#  5. server.idle_timeout: a parked server connection is closed after ~2 s;
#  6. server.lifetime: a connection older than that is not reused, and is
#     closed when its session ends (a session is never cut by it);
#  7. workers.max_clients: a worker exits after serving 3 clients and is
#     replaced;
#  8. client.max_connections: the client beyond it gets 53300 at once,
#     and psql shows the message whatever its sslmode;
#  9. workers.max: with every worker busy, a new client gets 53300 within
#     a few seconds instead of hanging in the backlog, and once a worker
#     is free again new clients are served.
#
# After each check a fresh client must still be served.

use strict;
use warnings;

use IO::Socket::INET;
use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $pg = pg_start();
$pg->setup_app;
$pg->psql('CREATE TABLE tx_t (x int)', db => 'appdb', user => 'app');

# --- helpers ------------------------------------------------------------------

# Waits up to $timeout s for the next message of $c, expected to be a
# FATAL ErrorResponse followed by the close.  Returns (fields or undef,
# seconds until it came, closed afterwards, message type seen).
sub wait_fatal {
	my ($c, $timeout) = @_;
	my $t0 = time;
	my ($t, $p) = $c->read_msg($timeout);
	my $el = time - $t0;
	my $f = defined $t && $t eq 'E' ? PgMirrorTest::Raw::parse_fields($p) : undef;
	my $closed = 0;
	if (defined $t) {
		my @more = $c->read_msg(3);
		$closed = !@more && $c->{eof} ? 1 : 0;
	}
	return ($f, $el, $closed, $t);
}

# Is there a backend with this pid on the server?
sub backend_exists {
	my ($pid) = @_;
	return $pg->psql("SELECT count(*) FROM pg_stat_activity WHERE pid = " . ($pid // 0)) + 0;
}

# A fresh psql client through $pgm is served.
sub fresh_ok {
	my ($pgm, $what) = @_;
	my ($out, $err, $rc) = $pgm->psql('SELECT 6 * 7', timeout => 20);
	is($out, '42', "$what: a fresh client is served") or diag($err);
}

# --- 1..3. client timeouts ------------------------------------------------------

my $pgm = pgm_start($pg,
	extra => 'client = { login_timeout = 2; idle_timeout = 2; idle_transaction_timeout = 2; };');

# 1. login_timeout: three clients stall in three places, side by side.
{
	my $t0 = time;
	my $silent = $pgm->raw;
	my $half = $pgm->raw;
	my $body = pack('N', 196608) . "user\0app\0database\0appdb\0\0";
	$half->send_bytes(substr(pack('N', 4 + length $body) . $body, 0, 12));
	my $sasl = $pgm->raw;
	$sasl->startup(undef, user => 'app', database => 'appdb');
	my $ar = $sasl->authenticate(user => 'app', password => 'secret', no_answer => 1);
	is_deeply($ar->{auth}, [10], '1: the third client got AuthenticationSASL and stops answering');

	# Meanwhile the proxy serves others.
	my ($out, $err, $rc) = $pgm->psql('SELECT 1', timeout => 10);
	is($out, '1', '1: while three clients stall in login, another one is served') or diag($err);
	cmp_ok(time - $t0, '<', 1.8, '1: ... before their login timeout');

	for my $case ([ 'sends nothing', $silent ], [ 'sends half a startup packet', $half ],
		[ 'stops in the middle of SCRAM', $sasl ]) {
		my ($name, $c) = @$case;
		my ($closed, $got) = @{ $c->read_until_close(6, $t0) }{qw(closed got)};
		my $el = time - $t0;
		ok($closed, "1: a client that $name is disconnected");
		cmp_ok($el, '>=', 1.7, sprintf("1: ... not before login_timeout (%.2f s)", $el));
		cmp_ok($el, '<', 4, '1: ... within ~2 s');
		is(length($got), 0, '1: ... without an answer') if $c != $sasl;
	}
	like($pgm->log, qr/startup timed out/, '1: the log says a startup timed out');
	like($pgm->log, qr/authentication timed out/, '1: the log says an authentication timed out');
	fresh_ok($pgm, '1');
}

# 2. idle_timeout.
{
	# A raw client: the exact message.
	my ($c, $r) = $pgm->raw_login;
	ok($r->{ok}, '2: raw client logged in') or diag(explain($r));
	is($c->backend_pid ? 1 : 0, 1, '2: ... and ran a query');
	my ($f, $el, $closed, $t) = wait_fatal($c, 6);
	is($t, 'E', '2: the idle raw client gets an ErrorResponse');
	is($f->{S}, 'FATAL', '2: ... FATAL');
	is($f->{C}, '57P05', '2: ... SQLSTATE 57P05');
	like($f->{M} // '', qr/idle-session timeout/, '2: ... "idle-session timeout"');
	cmp_ok($el, '>=', 1.7, sprintf('2: ... not before idle_timeout (%.2f s)', $el));
	cmp_ok($el, '<', 4, '2: ... within ~2 s');
	ok($closed, '2: ... and the connection is closed');

	# psql: idles 3 s between two statements.
	my @cmd = (PgMirrorTest::_bin('psql'), '-X', '-A', '-t', '-q', '-w', '-v', 'ON_ERROR_STOP=1',
		'-h', $pgm->host, '-p', $pgm->port, '-U', 'app', '-d', 'appdb');
	my $psql = start_cmd(\@cmd, stdin => "SELECT 'first';\n\\! sleep 3\nSELECT 'second';\n",
		env => { PGPASSWORD => 'secret' }, timeout => 30);
	$psql->running;    # IPC::Run feeds stdin only while pumped

	# DBD::Pg: an idle handle, a busy handle, a busy transaction, a long query.
	my $idle = $pgm->dbh;
	is($idle->selectrow_array('SELECT 1'), 1, '2: DBD::Pg session works');
	my $busy = $pgm->dbh;
	my $txn = $pgm->dbh;
	my $long = $pgm->psql_bg('SELECT pg_sleep(3.5), 1', timeout => 30);
	$txn->begin_work;
	my ($ok, $n, $t0) = (0, 0, time);
	while (time - $t0 < 4.5) {
		$psql->running;
		$n++;
		$ok++ if eval { $busy->selectrow_array('SELECT 1') } && eval { $txn->selectrow_array('SELECT 1') };
		sleep 0.5;
	}
	is($ok, $n, "2: sessions that query every 0.5 s, one in a transaction, survive 4.5 s ($ok/$n)");
	ok(eval { $txn->commit; 1 }, '2: ... and the transaction commits') or diag($@);
	my ($lrc, $lout, $lerr) = $long->finish;
	is($lout, "|1\n", '2: a query running 3.5 s is not cut by idle_timeout') or diag($lerr);

	my $v = eval { $idle->selectrow_array('SELECT 2') };
	ok(!defined $v, '2: the DBD::Pg session idle for 4.5 s is gone');
	my $state = $idle->state // '';
	my $errstr = $idle->errstr // '';
	ok($state eq '57P05' || $errstr =~ /idle-session timeout/,
		"2: ... DBD::Pg reports 57P05 / idle-session timeout (state '$state', errstr '$errstr')");
	eval { $idle->disconnect };
	$busy->disconnect;
	$txn->disconnect;

	my ($prc, $pout, $perr) = $psql->finish;
	like($pout, qr/first/, '2: psql ran its first statement');
	unlike($pout, qr/second/, '2: ... but not the one after 3 s idle');
	like($perr, qr/idle-session timeout/, '2: psql reports the idle-session timeout') or diag($perr);
	isnt($prc, 0, '2: ... and fails');
	fresh_ok($pgm, '2');
}

# 3. idle_transaction_timeout: in a transaction, and in a failed one.
{
	my ($c, $r) = $pgm->raw_login;
	ok($r->{ok}, '3: raw client logged in');
	is($c->query('BEGIN')->{status}, 'T', '3: BEGIN');
	my $ins = $c->query('INSERT INTO tx_t VALUES (1)');
	is_deeply($ins->{tags}, ['INSERT 0 1'], '3: INSERT in the transaction');
	my $pid = $c->backend_pid;
	my ($e, $er) = $pgm->raw_login;
	$e->query('BEGIN');
	is($e->query('SELECT 1/0')->{status}, 'E', '3: a second client is in a failed transaction');

	my ($f, $el, $closed, $t) = wait_fatal($c, 6);
	is($t, 'E', '3: the idle transaction gets an ErrorResponse');
	is($f->{S}, 'FATAL', '3: ... FATAL');
	is($f->{C}, '25P03', '3: ... SQLSTATE 25P03');
	like($f->{M} // '', qr/idle-in-transaction timeout/, '3: ... "idle-in-transaction timeout"');
	cmp_ok($el, '>=', 1.5, sprintf('3: ... not before the timeout (%.2f s)', $el));
	cmp_ok($el, '<', 4, '3: ... within ~2 s');
	ok($closed, '3: ... and the connection is closed');
	my ($f2, undef, $closed2) = wait_fatal($e, 3);
	is($f2->{C}, '25P03', '3: the failed transaction gets 25P03 too');
	ok($closed2, '3: ... and is closed');

	is($pg->psql('SELECT count(*) FROM tx_t', db => 'appdb'), '0',
		'3: the INSERT was rolled back on the server');
	ok(wait_until(sub { $pg->psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"
		. " AND state LIKE 'idle in transaction%'") == 0 }, 5),
		'3: no server backend is left idle in transaction');
	my $st = $pg->psql("SELECT coalesce(max(state), 'gone') FROM pg_stat_activity WHERE pid = $pid");
	ok($st eq 'idle' || $st eq 'gone', "3: its server connection was reset or closed ($st)");

	my $d = $pgm->dbh;
	$d->do('INSERT INTO tx_t VALUES (2)');
	is($d->selectrow_array('SELECT string_agg(x::text, \',\') FROM tx_t'), '2',
		'3: the next client works and sees only its own row');
	$d->do('DELETE FROM tx_t');
	$d->disconnect;
	fresh_ok($pgm, '3');
	$pgm->stop;
}

# --- 4. server.connect_timeout ----------------------------------------------------

{
	# Listens, never accepts: the kernel completes the handshake, nothing
	# ever answers the startup packet.
	my $hole = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
		Proto => 'tcp', Listen => 16, ReuseAddr => 1) or die "blackhole: $!";
	my $hport = $hole->sockport;
	my $pgm = pgm_start($pg,
		databases => [ { name => 'appdb', database => 'appdb' },
			{ name => 'black', database => 'appdb', host => '127.0.0.1', port => $hport,
				pool_size => 1 } ],
		pool => { wait_timeout => 10 },
		extra => 'server = { connect_timeout = 2; };');

	my $t0 = time;
	my $stuck = $pgm->psql_bg('SELECT 1', db => 'black', timeout => 20);
	sleep 0.3;
	my $n = 0;
	for (1 .. 3) {
		my ($out) = $pgm->psql('SELECT 1', timeout => 10);
		$n++ if $out eq '1';
	}
	is($n, 3, '4: while a client waits for the silent server, appdb clients are served');
	cmp_ok(time - $t0, '<', 1.9, '4: ... at once');
	my ($rc, $out, $err) = $stuck->finish;
	my $el = time - $t0;
	isnt($rc, 0, '4: the client of the silent server fails');
	like($err, qr/login to server failed/, '4: ... with pgmirror\'s message') or diag($err);
	cmp_ok($el, '>=', 1.7, sprintf('4: ... after connect_timeout (%.2f s)', $el));
	cmp_ok($el, '<', 4, '4: ... within ~2 s');

	# Again with a raw client (pool_size 1: the count was given back).
	$t0 = time;
	my ($c, $r) = $pgm->raw_login(database => 'black', timeout => 10);
	$el = time - $t0;
	ok(!$r->{ok}, '4: a raw client of the silent server gets no session');
	is($r->{error}{C}, '08006', '4: ... SQLSTATE 08006 (not 53300: the pool slot came back)')
	  or diag(explain($r));
	is($r->{error}{S}, 'FATAL', '4: ... FATAL');
	cmp_ok($el, '<', 4, sprintf('4: ... within ~2 s (%.2f s)', $el));
	like($pgm->log, qr/login to server 127\.0\.0\.1:$hport failed/, '4: the log names the server');
	fresh_ok($pgm, '4');
	$pgm->stop;
	close $hole;
}

# --- 5. server.idle_timeout ---------------------------------------------------------

{
	# One worker only, so the parked connection is where the next client goes.
	my $pgm = pgm_start($pg, workers => { min_spare => 1, max_spare => 1, max => 1 },
		extra => 'server = { idle_timeout = 2; };');
	my ($c, $r) = $pgm->raw_login;
	my $pid = $c->backend_pid;
	$c->close;
	ok($pid && backend_exists($pid), "5: the server connection ($pid) is parked after the client left");
	($c, $r) = $pgm->raw_login;
	is($c->backend_pid, $pid, '5: and reused by the next client within idle_timeout');
	$c->close;
	my $t0 = time;
	ok(wait_until(sub { !backend_exists($pid) }, 7, 0.1),
		'5: the parked connection disappears from pg_stat_activity');
	my $el = time - $t0;
	cmp_ok($el, '>=', 1.5, sprintf('5: ... not before server.idle_timeout (%.2f s)', $el));
	cmp_ok($el, '<', 5, '5: ... within ~5 s');
	($c, $r) = $pgm->raw_login;
	my $pid2 = $c->backend_pid;
	ok($pid2 && $pid2 != $pid, "5: the next client gets a new server connection ($pid2)");
	$c->close;
	fresh_ok($pgm, '5');
	$pgm->stop;
}

# --- 6. server.lifetime -----------------------------------------------------------

{
	my $pgm = pgm_start($pg, workers => { min_spare => 1, max_spare => 1, max => 1 },
		extra => 'server = { lifetime = 2; };');
	my $t0 = time;
	my ($c, $r) = $pgm->raw_login;
	my $pid = $c->backend_pid;
	$c->close;
	($c, $r) = $pgm->raw_login;
	is($c->backend_pid, $pid, "6: a young connection ($pid) is reused");
	$c->close;
	sleep 3 - (time - $t0);
	($c, $r) = $pgm->raw_login;
	my $pid2 = $c->backend_pid;
	ok($pid2 && $pid2 != $pid, "6: used again after 3 s, it is a new backend ($pid2)");
	ok(!backend_exists($pid), '6: the old backend is gone');

	# A session outliving server.lifetime is not cut; its connection is
	# closed when it ends.
	my $t1 = time;
	my $same = 0;
	while (time - $t1 < 2.5) {
		$same++ if ($c->backend_pid // 0) == $pid2;
		sleep 0.25;
	}
	ok($same >= 8, "6: a session running past server.lifetime keeps its backend ($same checks)");
	$c->close;
	ok(wait_until(sub { !backend_exists($pid2) }, 1.5, 0.05),
		'6: its connection is closed as the session ends, not parked');
	# The only worker was busy for over a second: give the supervisor
	# time to notice it is free again (its refusals are checked in 9).
	sleep 0.5;
	fresh_ok($pgm, '6');
	$pgm->stop;
}

# --- 7. workers.max_clients -------------------------------------------------------

{
	# One worker at a time makes the hand-over visible.
	my $pgm = pgm_start($pg, workers => { min_spare => 1, max_spare => 1, max => 1, max_clients => 3 });
	my @served;
	for my $i (1 .. 7) {
		my ($c, $r) = $pgm->raw_login(timeout => 10);
		my $w = $r->{ok} ? $pgm->worker_for($c) : undef;
		my $q = $r->{ok} ? $c->query("SELECT $i") : {};
		push @served, ($q->{rows} && @{ $q->{rows} } && $q->{rows}[0][0] == $i) ? $w // 'unknown' : 'failed';
		$c->close;
		sleep 0.1;
	}
	is(scalar(grep { $_ eq 'failed' } @served), 0, "7: 7 sequential clients all served (@served)");
	is(scalar(grep { $_ eq 'unknown' } @served), 0, '7: ... each by a known worker');
	# Runs of clients served by the same worker.  The first worker also
	# served the harness's readiness probe (a TCP connect), so it takes
	# 2 of ours, or 3 if the probe hit nothing.
	my @runs;
	for my $w (@served) {
		if (@runs && $runs[-1][0] eq $w) { $runs[-1][1]++ } else { push @runs, [ $w, 1 ] }
	}
	my $shape = join(' ', map { $_->[1] } @runs);
	ok(@runs >= 3, "7: the clients were served by successive workers (runs: $shape)");
	ok($runs[0][1] == 2 || $runs[0][1] == 3, '7: the first worker served 3 clients (with the probe)');
	is($runs[1][1], 3, '7: the second worker served exactly 3');
	my %seen;
	is(scalar(grep { $seen{ $_->[0] }++ } @runs), 0, '7: a worker never comes back after its run');
	my @gone = map { $_->[0] } @runs[0, 1];
	ok(wait_until(sub { !grep { pid_alive($_) } @gone }, 5),
		"7: the workers that served 3 clients exited (@gone)");
	ok(wait_until(sub { $pgm->workers >= 1 }, 5), '7: a worker is running');
	fresh_ok($pgm, '7');
	unlike($pgm->log, qr/killed by signal|exited with status/, '7: workers exited cleanly');
	$pgm->stop;
}

# --- 8. client.max_connections ----------------------------------------------------

{
	my $pgm = pgm_start($pg, extra => 'client = { max_connections = 2; };');
	my $a = $pgm->dbh;
	my $b = $pgm->dbh;
	is($a->selectrow_array('SELECT 1') + $b->selectrow_array('SELECT 1'), 2, '8: two sessions open');
	my $t0 = time;
	my ($c, $r) = $pgm->raw_login(timeout => 5);
	my $el = time - $t0;
	ok(!$r->{ok}, '8: a third client gets no session');
	is($r->{error}{C}, '53300', '8: ... SQLSTATE 53300') or diag(explain($r));
	is($r->{error}{S}, 'FATAL', '8: ... FATAL');
	is($r->{error}{M}, 'sorry, too many clients already', '8: ... "sorry, too many clients already"');
	cmp_ok($el, '<', 1, sprintf('8: ... at once (%.2f s)', $el));
	my ($out, $err, $rc) = $pgm->psql('SELECT 1', timeout => 10, env => { PGSSLMODE => 'disable' });
	isnt($rc, 0, '8: psql (sslmode=disable) is refused too');
	like($err, qr/sorry, too many clients already/, '8: ... with the message') or diag($err);
	# libpq's default sslmode=prefer starts with an SSLRequest: the refusal
	# must still reach the user, as PostgreSQL's does.
	($out, $err, $rc) = $pgm->psql('SELECT 1', timeout => 10);
	isnt($rc, 0, '8: psql (default sslmode=prefer) is refused');
	like($err, qr/sorry, too many clients already/, '8: ... with the message') or diag($err);
	is($a->selectrow_array('SELECT 2') + $b->selectrow_array('SELECT 2'), 4,
		'8: the two open sessions are untouched');
	$b->disconnect;
	ok(wait_until(sub { my ($o) = $pgm->psql('SELECT 3', timeout => 10, allow_fail => 1); $o eq '3' }, 5),
		'8: after one leaves, a fresh client is served');
	is($a->selectrow_array('SELECT 4'), 4, '8: the remaining session still works');
	$a->disconnect;
	fresh_ok($pgm, '8');
	$pgm->stop;
}

# --- 9. workers.max: refused, not left hanging ----------------------------------

{
	my $pgm = pgm_start($pg, workers => { min_spare => 1, max_spare => 2, max => 2 });
	my $a = $pgm->dbh;
	my $b = $pgm->dbh;
	is($a->selectrow_array('SELECT 1') + $b->selectrow_array('SELECT 1'), 2,
		'9: two long sessions hold both workers');
	my $t0 = time;
	my ($c, $r) = $pgm->raw_login(timeout => 5);
	my $el = time - $t0;
	ok(!$r->{ok}, '9: a third client gets no session');
	is($r->{error}{C}, '53300', '9: ... SQLSTATE 53300') or diag(explain($r));
	like($r->{error}{M} // '', qr/too many clients/, '9: ... "too many clients"');
	cmp_ok($el, '<', 3, sprintf('9: ... within ~3 s (%.2f s), not hanging', $el));
	like($pgm->log, qr/all 2 workers are busy/, '9: the log says why');
	is($a->selectrow_array('SELECT 2') + $b->selectrow_array('SELECT 2'), 4,
		'9: the two sessions are untouched');
	# A client that comes once a worker is free again is served.  The
	# worker is idle within milliseconds of the Terminate; give it 0.1 s.
	# Three rounds, each after all workers were busy for over a second.
	my @fails;
	for my $i (1 .. 3) {
		$a->disconnect;
		sleep 0.1;
		my ($c, $r) = $pgm->raw_login(timeout => 5);
		push @fails, "round $i: " . ($r->{error}{C} // 'none') . ' ' . ($r->{error}{M} // '')
		  unless $r->{ok};
		$c->close if $c->{sock};
		$a = wait_until(sub { eval { $pgm->dbh } }, 5) or die "cannot reopen session A";
		sleep 1.2;
	}
	is(scalar(@fails), 0, '9: 0.1 s after a session left, a new client is served (3 rounds)')
	  or diag(join("\n", @fails));
	is($a->selectrow_array('SELECT 3') + $b->selectrow_array('SELECT 3'), 6,
		'9: the sessions still work');
	$a->disconnect;
	sleep 0.5;
	$b->disconnect;
	fresh_ok($pgm, '9');
	$pgm->stop;
}

done_testing();
