# 090_regressions: defects that were fixed and must stay fixed.  Each
# check also makes sure a fresh client is served afterwards and, where a
# defect could spill over, that a concurrent healthy session is untouched.
#
#  1. a client that sends a partial message header and hangs up (TCP and
#     Unix socket) frees its worker and server connection, no busy loop;
#  2. a Terminate split across two writes sends nothing bogus to the
#     server: the connection is parked and reused by the next client;
#  3. COPY FROM STDIN started by the extended protocol leaves no
#     ReadyForQuery owed: later queries are not slowed down;
#  4. a Query followed at once by Terminate runs to completion on the
#     server (it is not cancelled), as with a direct connection;
#  5. a connection parked in a worker that now serves a busy session of
#     another user is released to a client waiting for its pool;
#  6. a worker SIGKILLed while waiting for a full pool leaves no phantom
#     waiter behind: pooling (reuse) still works for that pool;
#  7. pool.min_size never opens more than the pool's size;
#  8. after SIGTERM, new connections are refused at once, not left
#     hanging in a backlog nobody serves;
#  9. a startup packet without a user gets 28000; non-UTF-8 parameter
#     values are accepted as PostgreSQL does;
# 10. SIGINT cancels a query the server is still running.

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use PgMirrorTest;
use POSIX qw(WIFEXITED WEXITSTATUS);
use Test::More;
use Time::HiRes qw(time sleep);

my $pg = pg_start();
$pg->setup_app;
$pg->create_role('app2', 'secret2');
$pg->psql('CREATE TABLE t (x int); CREATE TABLE ff (x int)', db => 'appdb', user => 'app');

my @USERS_POOL1 = (
	{ name => 'app', password => 'secret', pool_size => 1 },
	{ name => 'app2', password => 'secret2' },
);
my %APP2 = (user => 'app2', password => 'secret2');

my $TCK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

# utime + stime of a process, in clock ticks (undef if it is gone).
sub cpu_ticks {
	my ($pid) = @_;
	my $st = slurp("/proc/$pid/stat");
	return undef unless $st;
	my @f = split ' ', substr($st, rindex($st, ')') + 2);
	return $f[11] + $f[12];
}

# CPU seconds each pgmirror process (supervisor and workers) used during
# $secs seconds: { pid => seconds }.
sub cpu_sample {
	my ($pgm, $secs) = @_;
	my @pids = ($pgm->pid, $pgm->workers);
	my %before = map { $_ => cpu_ticks($_) } @pids;
	sleep $secs;
	my %used;
	for my $p (@pids) {
		my $after = cpu_ticks($p);
		next unless defined $after && defined $before{$p};
		$used{$p} = ($after - $before{$p}) / $TCK;
	}
	return \%used;
}

# Lines of $text (a log) matching trouble.
sub trouble {
	my ($text) = @_;
	return grep { /warn|error|invalid|fatal|lost|cannot|unexpected|refused|killed/i }
	  split /\n/, $text;
}

# psql through $pgm, timed: ($out, $err, $rc, $seconds).
sub timed_psql {
	my ($pgm, $sql, %o) = @_;
	my $t0 = time;
	my ($out, $err, $rc) = $pgm->psql($sql, timeout => 30, %o);
	return ($out, $err, $rc, time - $t0);
}

# --- 1. partial header, then hang-up: worker and server connection freed -------

# One daemon per transport, so a leak over TCP cannot mask the Unix case.
for my $via ('tcp', 'unix') {
	my $unix = $via eq 'unix' ? 1 : 0;
	my $pgm = pgm_start($pg, users => \@USERS_POOL1, pool => { wait_timeout => 10 },
		workers => { min_spare => 1, max_spare => 4, max => 8 });
	my $healthy = $pgm->dbh(%APP2, unix => $unix);
	is($healthy->selectrow_array('SELECT 1'), 1, "1/$via: concurrent app2 session works");

	my ($c, $r) = $pgm->raw_login(unix => $unix);
	ok($r->{ok}, "1/$via: client logged in") or diag(explain($r));
	is($c->value('SELECT 1'), 1, "1/$via: it holds the only server connection of app");
	$c->send_bytes('Q');
	sleep 0.1;
	$c->hang_up;

	my ($out, $err, $rc, $el) = timed_psql($pgm, 'SELECT 1', unix => $unix);
	is($rc, 0, "1/$via: the next client is served") or diag($err);
	is($out, '1', "1/$via: ... with its answer");
	cmp_ok($el, '<', 5, sprintf("1/$via: within 5 s (%.2f s), not after wait_timeout", $el));

	my $used = cpu_sample($pgm, 2);
	my ($top) = sort { $used->{$b} <=> $used->{$a} } keys %$used;
	cmp_ok($top ? $used->{$top} : 0, '<', 0.5,
		"1/$via: no pgmirror process busy-loops (most CPU in 2 s: "
		. sprintf('%.2f s by %s', $top ? $used->{$top} : 0, $top // '-') . ')')
	  or diag(explain($used));
	cmp_ok($pg->backends('app'), '<=', 1, "1/$via: app has at most 1 server connection");
	is($healthy->selectrow_array('SELECT 2'), 2, "1/$via: concurrent app2 session untouched");
	$healthy->disconnect;
	$pgm->stop;
}

# --- 2. Terminate split across two writes ----------------------------------------

{
	my $pgm = pgm_start($pg, users => \@USERS_POOL1,
		workers => { min_spare => 1, max_spare => 2, max => 2 });
	# The app2 session occupies one worker, so with workers.max = 2 every
	# app client below lands on the other one and meets its parked
	# connection.
	ok(wait_until(sub { $pgm->workers >= 1 }, 10), '2: a worker is ready');
	my ($sb, $br) = $pgm->raw_login(%APP2);
	ok($br->{ok}, '2: concurrent app2 session logged in');
	ok(wait_until(sub { $pgm->workers == 2 }, 10), '2: a second worker is ready');
	my ($c, $r) = $pgm->raw_login;
	ok($r->{ok}, '2: app client logged in');
	my $pid = $c->backend_pid;
	ok($pid, "2: its backend pid is $pid");
	isnt($pgm->worker_for($c), $pgm->worker_for($sb), '2: on the other worker');

	my $logpos = length $pgm->log;
	my $pglogpos = length slurp($pg->{logfile});
	ok($c->send_bytes('X'), '2: first byte of Terminate sent');
	sleep 0.2;
	ok($c->send_bytes("\0\0\0\4"), '2: rest of Terminate sent');
	sleep 0.1;
	$c->hang_up;

	# Raw clients with the same startup parameters, so the parked
	# connection matches them.
	for my $i (1 .. 2) {
		my ($n, $nr) = $pgm->raw_login(timeout => 10);
		ok($nr->{ok}, "2: next client $i is served") or diag(explain($nr));
		is($nr->{ok} ? $n->backend_pid : undef, $pid,
			"2: next client $i reuses the same server connection (backend $pid)");
		$n->close;
	}
	my ($out, $err, $rc) = timed_psql($pgm, 'SELECT 1');
	is($out, '1', '2: a fresh psql client is served') or diag($err);
	my @bad = trouble(substr($pgm->log, $logpos));
	is(scalar(@bad), 0, '2: the pgmirror log shows no error') or diag(join("\n", @bad));
	my @pgbad = grep { /app\@appdb/ } trouble(substr(slurp($pg->{logfile}), $pglogpos));
	is(scalar(@pgbad), 0, '2: the PostgreSQL log shows no error for app')
	  or diag(join("\n", @pgbad));
	is($sb->value('SELECT 3'), 3, '2: concurrent app2 session untouched');
	$sb->close;
	$pgm->stop;
}

# --- 3. COPY FROM STDIN by the extended protocol --------------------------------

# Parse/Bind/Execute/Sync of COPY t FROM STDIN, three rows, CopyDone,
# Sync.  Returns the message types seen after each step and whether a
# stray message followed.
sub ext_copy {
	my ($c) = @_;
	my %r;
	$c->send_bytes(join '',
		'P' . pack('N', 4 + length("\0COPY t FROM STDIN\0") + 2) . "\0COPY t FROM STDIN\0"
		  . pack('n', 0),
		'B' . pack('N', 4 + 2 + 2 + 2 + 2) . "\0\0" . pack('n n n', 0, 0, 0),
		'E' . pack('N', 4 + 1 + 4) . "\0" . pack('N', 0),
		'S' . pack('N', 4));
	my @first;
	while (my ($t) = $c->read_msg(10)) {
		push @first, $t;
		last if $t eq 'G' || $t eq 'E' || $t eq 'Z';
	}
	$r{first} = join '', @first;
	$c->send_msg('d', "101\n102\n103\n");
	$c->send_msg('c', '');
	$c->send_msg('S', '');
	my $res = $c->collect(timeout => 10);
	$r{second} = join '', @{ $res->{messages} };
	$r{tags} = $res->{tags};
	my @stray = $c->read_msg(0.5);
	$r{stray} = @stray ? $stray[0] : '';
	return \%r;
}

{
	my $pgm = pgm_start($pg);
	my ($d, $dr) = $pg->raw_login;
	my $direct = ext_copy($d);
	$d->close;
	$pg->psql('TRUNCATE t', db => 'appdb');

	my ($c, $r) = $pgm->raw_login;
	ok($r->{ok}, '3: client logged in');
	my $via = ext_copy($c);
	is($via->{first}, '12G', '3: ParseComplete, BindComplete, CopyInResponse');
	is($via->{second}, 'CZ', '3: then CommandComplete and one ReadyForQuery');
	is_deeply($via, $direct, '3: the same messages as a direct connection');
	is_deeply($via->{tags}, ['COPY 3'], '3: COPY 3');
	my $t0 = time;
	my @vals = map { $c->value("SELECT $_") } 1 .. 5;
	my $el = time - $t0;
	is_deeply(\@vals, [1 .. 5], '3: 5 simple queries after it answer');
	cmp_ok($el, '<', 2, sprintf('3: and take well under a second each (%.3f s in all)', $el));
	is($c->value('SELECT count(*) FROM t'), 3, '3: the rows arrived (same session)');
	$c->close;
	is($pg->psql('SELECT string_agg(x::text, \',\' ORDER BY x) FROM t', db => 'appdb'),
		'101,102,103', '3: the rows arrived (checked directly)');
	my ($out, $err, $rc, $sec) = timed_psql($pgm, 'SELECT 1');
	is($out, '1', '3: a fresh client is served') or diag($err);
	$pgm->stop;
}

# --- 4. Query immediately followed by Terminate ----------------------------------

{
	my $pgm = pgm_start($pg);
	my $q = sub { my $s = "INSERT INTO ff SELECT $_[0] FROM pg_sleep(1)\0";
		'Q' . pack('N', 4 + length $s) . $s . 'X' . pack('N', 4) };
	my ($c, $r) = $pgm->raw_login;
	ok($r->{ok}, '4: client logged in through pgmirror');
	my ($d, $dr) = $pg->raw_login;
	ok($dr->{ok}, '4: client logged in directly');
	ok($c->send_bytes($q->(1)), '4: Query + Terminate sent through pgmirror');
	ok($d->send_bytes($q->(2)), '4: Query + Terminate sent directly');
	$c->hang_up;
	$d->hang_up;
	sleep 3;
	is($pg->psql('SELECT count(*) FROM ff WHERE x = 2', db => 'appdb'), 1,
		'4: direct: the row exists');
	is($pg->psql('SELECT count(*) FROM ff WHERE x = 1', db => 'appdb'), 1,
		'4: through pgmirror: the row exists too (the query was not cancelled)');
	my ($out, $err, $rc) = timed_psql($pgm, 'SELECT 1');
	is($out, '1', '4: a fresh client is served') or diag($err);
	$pgm->stop;
}

# --- 5. parked connection in a worker busy with another user ---------------------

# A busy app2 session in a child process: a loop of short queries until
# $stop exists (at most $secs seconds); exits 0 if every query answered,
# after writing the count to $stop.count.
sub busy_session {
	my ($pgm, $stop, $secs) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	return $pid if $pid;
	my $ok = 0;
	my $bad = 0;
	eval {
		my ($c, $r) = $pgm->raw_login(%APP2);
		if (!$r->{ok}) { $bad++; die "login\n" }
		my $end = time + $secs;
		while (!-e $stop && time < $end) {
			my $i = $ok % 1000;
			my $q = $c->query("SELECT $i", timeout => 10);
			if (!$q->{error} && @{ $q->{rows} } && $q->{rows}[0][0] == $i) { $ok++ }
			else { $bad++; last }
		}
		$c->close;
		1;
	} or $bad++;
	write_file("$stop.count", "$ok $bad");
	POSIX::_exit($bad ? 1 : 0);
}

{
	my $pgm = pgm_start($pg, users => \@USERS_POOL1, pool => { wait_timeout => 8 },
		workers => { min_spare => 1, max_spare => 1, max => 2 });
	ok(wait_until(sub { $pgm->workers >= 1 }, 10), '5: a worker is ready');
	my ($sa, $ar) = $pgm->raw_login;
	ok($ar->{ok}, '5: client A (app) logged in');
	is($sa->value('SELECT 1'), 1, '5: A holds the only app server connection');
	my $wa = $pgm->worker_for($sa);
	ok(wait_until(sub { $pgm->workers == 2 }, 10), '5: a spare worker is ready');
	# An app2 session on the spare: when A leaves, A's worker is the only
	# one accepting, so app2's long session lands there.
	my ($sb, $br) = $pgm->raw_login(%APP2);
	ok($br->{ok}, '5: app2 session B occupies the other worker');
	note('A on worker ' . ($wa // '?') . ', B on ' . ($pgm->worker_for($sb) // '?'));

	my $stop = PgMirrorTest::tmp_base() . '/stop5';
	$sa->close;
	my $kid = busy_session($pgm, $stop, 15);
	ok(wait_until(sub { $pg->backends('app2') >= 2 }, 5), '5: app2 long session is running');
	$sb->close;
	sleep 0.3;
	my ($out, $err, $rc, $el) = timed_psql($pgm, 'SELECT 1');
	is($rc, 0, '5: a new app client gets a connection') or diag($err);
	is($out, '1', '5: ... and its answer');
	cmp_ok($el, '<', 5, sprintf('5: within 5 s (%.2f s), not 53300 after wait_timeout', $el));
	ok(waitpid($kid, POSIX::WNOHANG()) == 0, '5: the app2 session is still running meanwhile');
	write_file($stop, '');
	waitpid($kid, 0);
	my $kst = $?;
	my ($nok, $nbad) = split ' ', slurp("$stop.count");
	is($kst, 0, '5: the app2 long session finished cleanly');
	cmp_ok($nok // 0, '>', 100, '5: ... having run its queries (' . ($nok // 0) . ')');
	is($nbad // -1, 0, '5: ... none failed');
	cmp_ok($pg->backends('app'), '<=', 1, '5: app never has more than 1 server connection');
	($out, $err, $rc) = timed_psql($pgm, 'SELECT 2');
	is($out, '2', '5: another fresh client is served') or diag($err);
	$pgm->stop;
}

# --- 6. a worker killed while waiting for a full pool ---------------------------

{
	my $pgm = pgm_start($pg, users => \@USERS_POOL1, pool => { wait_timeout => 20 },
		workers => { min_spare => 1, max_spare => 3, max => 3 });
	ok(wait_until(sub { $pgm->workers >= 1 }, 10), '6: a worker is ready');
	my ($h, $hr) = $pgm->raw_login;
	ok($hr->{ok}, '6: holder logged in');
	my $hpid = $h->backend_pid;
	my $wh = $pgm->worker_for($h);
	ok(wait_until(sub { $pgm->workers == 2 }, 10), '6: a spare worker is ready');

	my $w = $pgm->raw;
	$w->startup(undef, user => 'app', database => 'appdb');
	my $wr = $w->authenticate(user => 'app', password => 'secret', timeout => 1.5);
	ok(!$wr->{ok} && $wr->{timeout}, '6: second client waits for the full pool')
	  or diag(explain($wr));
	my $ww = $pgm->worker_for($w);
	ok($ww && $ww != ($wh // 0), "6: it waits in worker " . ($ww // '?'));
	ok(kill('KILL', $ww), "6: SIGKILL the waiting worker $ww");
	ok(wait_until(sub { $pgm->log =~ /\(pid $ww\) killed by signal 9/ }, 5),
		'6: the supervisor saw it die');
	$w->hang_up;
	ok(wait_until(sub { $pgm->workers == 2 }, 10), '6: one idle worker left beside the holder');

	# Occupy every other worker with app2 sessions (workers.max = 3), so
	# the sequential clients below all land on the holder's worker.
	my ($b1, $b1r) = $pgm->raw_login(%APP2);
	ok($b1r->{ok}, '6: app2 session B1 logged in');
	ok(wait_until(sub { $pgm->workers == 3 }, 10), '6: third worker forked');
	my ($b2, $b2r) = $pgm->raw_login(%APP2);
	ok($b2r->{ok}, '6: app2 session B2 logged in');
	my @bw = ($pgm->worker_for($b1), $pgm->worker_for($b2));
	ok(!grep({ !$_ || $_ == ($wh // 0) } @bw) && $bw[0] != $bw[1],
		"6: B1 and B2 occupy the other workers (@{[ map { $_ // '?' } @bw ]})");

	$h->close;
	# Raw clients like the holder: same startup parameters, so the
	# holder's parked connection is theirs to reuse.
	my @pids;
	for my $i (1 .. 3) {
		my $t0 = time;
		my ($n, $nr) = $pgm->raw_login(timeout => 10);
		my $el = time - $t0;
		ok($nr->{ok}, "6: sequential client $i served") or diag(explain($nr));
		cmp_ok($el, '<', 5, "6: sequential client $i did not wait for the pool");
		push @pids, $nr->{ok} ? $n->backend_pid : 'none';
		$n->close;
	}
	is_deeply(\@pids, [ ($pids[0]) x 3 ], "6: three sequential clients see the same backend (@pids)");
	is($pids[0], $hpid, '6: the holder\'s connection was parked and reused');
	is($pg->backends('app'), 1, '6: one server connection for app');
	my ($out, $err, $rc) = timed_psql($pgm, 'SELECT 1');
	is($out, '1', '6: a fresh psql client is served') or diag($err);
	is($b1->value('SELECT 1'), 1, '6: app2 session B1 untouched');
	is($b2->value('SELECT 2'), 2, '6: app2 session B2 untouched');
	$b1->close;
	$b2->close;
	$pgm->stop;
}

# --- 7. pool.min_size above the pool's size ---------------------------------------

{
	my $pgm = pgm_start($pg,
		databases => [ { name => 'appdb', database => 'appdb', pool_size => 1 } ],
		pool => { min_size => 2 },
		workers => { min_spare => 2, max_spare => 4, max => 8 });
	my $max = 0;
	my $t0 = time;
	while (time - $t0 < 3) {
		my $n = $pg->backends('app', 'appdb');
		$max = $n if $n > $max;
		sleep 0.05;
	}
	cmp_ok($max, '<=', 1, "7: never more than 1 server connection in 3 s (max seen $max)");
	my $bg = $pgm->psql_bg('SELECT 7', timeout => 30);
	$t0 = time;
	while ($bg->running) {
		my $n = $pg->backends('app', 'appdb');
		$max = $n if $n > $max;
		sleep 0.05;
	}
	my ($rc, $out, $err) = $bg->finish;
	is($rc, 0, '7: a fresh client is served') or diag($err);
	is($out, "7\n", '7: ... with its answer');
	cmp_ok(time - $t0, '<', 5, '7: ... promptly');
	for (1 .. 10) {
		my $n = $pg->backends('app', 'appdb');
		$max = $n if $n > $max;
		sleep 0.1;
	}
	cmp_ok($max, '<=', 1, "7: still never more than 1 (max seen $max)");
	$pgm->stop;
}

# --- 8. smart shutdown refuses new connections at once ---------------------------

# Tries a connection and an SSLRequest; returns 'refused', 'closed',
# 'answered X' or 'hung'.
sub try_connect {
	my (%o) = @_;
	my $s = $o{path}
	  ? IO::Socket::UNIX->new(Peer => $o{path}, Type => Socket::SOCK_STREAM())
	  : IO::Socket::INET->new(PeerAddr => $o{host}, PeerPort => $o{port}, Proto => 'tcp',
		Timeout => 3);
	return 'refused' unless $s;
	binmode $s;
	my $n = syswrite($s, pack('N N', 8, 80877103));
	return 'closed' unless $n;
	my $sel = IO::Select->new($s);
	return 'hung' unless $sel->can_read(3);
	my $got = sysread($s, my $byte, 1);
	return 'closed' unless $got;
	return "answered $byte";
}

{
	my $pgm = pgm_start($pg, shutdown_timeout => 20);
	my ($c, $r) = $pgm->raw_login;
	ok($r->{ok}, '8: long session logged in');
	is($c->value('SELECT 1'), 1, '8: and works');
	my @w = $pgm->workers;
	$pgm->kill('TERM');
	sleep 0.5;
	ok($pgm->alive, '8: SIGTERM with a client connected: still running');
	my $t0 = time;
	my $tcp = try_connect(host => $pgm->host, port => $pgm->port);
	my $el = time - $t0;
	like($tcp, qr/^(refused|closed)$/, "8: a new TCP connection is refused or closed ($tcp)");
	cmp_ok($el, '<', 3.5, sprintf('8: within 3 s (%.2f s)', $el));
	$t0 = time;
	my $unix = try_connect(path => $pgm->sockdir . '/.s.PGSQL.' . $pgm->port);
	$el = time - $t0;
	like($unix, qr/^(refused|closed)$/, "8: a new Unix socket connection is refused or closed ($unix)");
	cmp_ok($el, '<', 3.5, sprintf('8: within 3 s (%.2f s)', $el));
	is($c->value('SELECT 2'), 2, '8: the long session is untouched');
	$c->close;
	my $st = $pgm->wait_exit(10);
	ok(defined $st && WIFEXITED($st) && WEXITSTATUS($st) == 0,
		'8: pgmirror exits with status 0 once the session left')
	  or diag('wait status ' . ($st // 'undef'));
	ok(wait_until(sub { !grep { pid_alive($_) } @w }, 5), '8: all workers exited');
	$pgm->start;
	my ($out, $err, $rc) = timed_psql($pgm, 'SELECT 1');
	is($out, '1', '8: restarted, a fresh client is served') or diag($err);
	$pgm->stop;
}

# --- 9. startup packets: no user; non-UTF-8 values -------------------------------

{
	my $pgm = pgm_start($pg);
	my %err;
	for my $to ([ 'pgmirror', $pgm ], [ 'direct', $pg ]) {
		my $c = raw_connect(host => $to->[1]->host, port => $to->[1]->port);
		$c->startup(undef, database => 'appdb');
		my ($t, $p) = $c->read_msg(5);
		$err{ $to->[0] } = $t && $t eq 'E' ? PgMirrorTest::Raw::parse_fields($p) : { type => $t };
		$c->hang_up;
	}
	is($err{pgmirror}{S}, 'FATAL', '9: no user: FATAL');
	is($err{pgmirror}{C}, '28000', '9: no user: SQLSTATE 28000');
	is($err{pgmirror}{C}, $err{direct}{C}, '9: no user: same SQLSTATE as PostgreSQL');

	my $name = "M\xfcller";
	my ($c, $r) = $pgm->raw_login(params => [ application_name => $name ]);
	ok($r->{ok}, '9: application_name with a non-UTF-8 byte: login succeeds')
	  or diag(explain($r));
	my ($d, $dr) = $pg->raw_login(params => [ application_name => $name ]);
	ok($dr->{ok}, '9: ... as it does directly');
	my $sql = "SELECT current_setting('application_name')";
	is($c->value($sql), $d->value($sql), '9: and the server sees the same value');
	$c->close;
	$d->close;
	my ($out, $err, $rc) = timed_psql($pgm, 'SELECT 1');
	is($out, '1', '9: a fresh client is served') or diag($err);
	$pgm->stop;
}

# --- 10. fast shutdown cancels the running query ----------------------------------

{
	my $pgm = pgm_start($pg);
	my $sleeper = $pgm->psql_bg('SELECT pg_sleep(30)', timeout => 40);
	ok(wait_until(sub { $pg->psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"
		. " AND query = 'SELECT pg_sleep(30)' AND state = 'active'") == 1 }, 10),
		'10: a client runs SELECT pg_sleep(30)');
	my $t0 = time;
	$pgm->kill('INT');
	ok(wait_until(sub { $pg->backends('app') == 0 }, 5, 0.1),
		sprintf('10: the query is cancelled, no backend left for app (%.2f s)', time - $t0));
	my ($src, $sout, $serr) = $sleeper->finish;
	isnt($src, 0, '10: the client sees its session end');
	cmp_ok(time - $t0, '<', 10, '10: at once, not after 30 s');
	ok(defined $pgm->wait_exit(10), '10: pgmirror exits');
	$pgm->start;
	my ($out, $err, $rc) = timed_psql($pgm, 'SELECT 1');
	is($out, '1', '10: restarted, a fresh client is served') or diag($err);
	$pgm->stop;
}

done_testing();
