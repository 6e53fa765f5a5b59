# 180_switchover: moving live sessions to another server, with
# pgmirrorctl switchover, the admin console and a plain reload.
#
# Two clusters, OLD and NEW, each with role app/secret owning appdb.  A
# daemon (A) with the databases entries "original" (appdb on OLD) and
# "new" (appdb on NEW), the users entry app (no database: usable for
# both), the mirror original -> new, log.stats_period 1 and an admin
# console (admin/adminpw).  "Swapping" rewrites the config file with
# the servers of original and new exchanged; the mirror entry stays
# original -> new, so after a swap it copies back to the other cluster.
# Where sessions run is judged twice: from "show clients" (the server
# and backend pid of each session) and from pg_stat_activity of both
# clusters, keeping only the backends whose client socket is held by a
# worker that serves one of those sessions (the mirror's destination
# sessions carry pgbench's application_name too).  "Drained" is: show
# mirrors says queue_length 0 twice in a row, replayed unchanged
# (Pgm::shown_drained_ok).
#
#  1. Setup: pgbench -i -s 1 through A on original, mirrored to NEW;
#     once drained the pgbench tables are identical on both clusters.
#  2. Switchover under load: pgbench -c 8 -j 2 -T 15 -n on original;
#     after 4 s the config is swapped and "pgmirrorctl switchover
#     --timeout 20" succeeds, answering the new generation.  Right after
#     it, every pgbench session runs on NEW and none of them on OLD, and
#     the backends they had on OLD are gone; pgbench_history on NEW keeps
#     growing; pgbench exits 0 with 0 failed transactions and no aborted
#     client.  Once drained (the mirror now runs NEW -> OLD) accounts,
#     tellers and branches are identical on both (md5 of the rows in key
#     order) and pgbench_history has as many rows; the mirror counted no
#     error and dropped nothing.
#  3. The same through the admin console: swapped back, "SWITCHOVER
#     TIMEOUT 20;" in psql -U admin -d pgmirror during pgbench -c 4 -T 8:
#     psql and pgbench exit 0, the sessions end on OLD.
#  4. A plain reload (control socket "reload") that swaps the servers:
#     a DBD::Pg session that changed work_mem and application_name,
#     prepared a statement through the protocol and one with PREPARE,
#     runs its next statement on the new server with all of them intact.
#     Sessions holding a temporary table, an advisory lock, a LISTEN
#     end with a FATAL naming that.  A session inside a transaction stays
#     on the old server until its COMMIT, then moves.
#  5. Timeout rollback: a session keeps a transaction open (an UPDATE,
#     uncommitted); with the config swapped, "switchover --timeout 2"
#     fails (exit 1) after 2 to 5 s saying it timed out and listing that
#     session's address; maintenance is off, the generation unchanged,
#     that session and new ones still run on the running server, and the
#     transaction commits.
#  6. --sync-sequences: a sequence advanced directly on the server in
#     use (bypassing pgmirror and so the mirror) lags on the other one;
#     after "switchover --sync-sequences" it is at least as far on the
#     new server, and nextval through A goes on from there.
#  7. Fleet: a second daemon (B) of the same shape; pgbench -c 4 through
#     each; both files swapped; "pgmirrorctl -H A,B switchover" succeeds,
#     both pgbench runs exit 0, both daemons' sessions end on the new
#     server.  Then B's file broken and A's swapped: the fleet switchover
#     fails (exit 1), both daemons keep their running configuration
#     (generation, where sessions go) and neither is left in maintenance.
#  8. A broken file on reload (control socket and SIGHUP): ERROR naming
#     the file and line, and A goes on as before (140_reload.t covers the
#     rest).
#  9. The worker takes the configuration the supervisor applied, not the
#     file: a DBD::Pg session idle on NEW; the file swapped (original on
#     OLD) and reloaded, then at once swapped back on disk without a
#     reload.  Generation + 1, show config has original on OLD, and the
#     session's next statement runs on OLD (the applied config), as does
#     a new session.  The file is then made to match what runs.
# 10. Moving with a full pool: a daemon of its own (original with
#     pool_size 3 on OLD, new on NEW, pool.wait_timeout 5, no mirror)
#     with 3 DBD::Pg sessions open and idle (show pools: size 3, open 3);
#     swapped and reloaded, each session's next statement runs on NEW,
#     none gets a "too many" error, and show pools / show servers then
#     count 3 connections of original, all on NEW.
# 11. A session whose prepared statement pp was made by "PREPARE pp AS
#     SELECT 1; SELECT 2" (one simple Query through DBD::Pg's do) ends,
#     when a reload moves its database, with a FATAL naming "pp"
#     and saying its query string "did more than PREPARE" it (a PREPARE
#     alone moves: 4); a raw client that ran the same string gets that
#     FATAL with SQLSTATE 57P01 and the connection closed.  New sessions
#     reach the new server.
# 12. Encodings and protocol statements (raw clients, original on NEW,
#     then swapped and reloaded): a session with client_encoding SJIS
#     that set search_path to "表'\ソx", public (表 and ソ end with the
#     byte 0x5C in SJIS; a search_path is free text, a custom setting
#     such as myapp.name would not do: PostgreSQL lists no placeholder
#     settings, so none moves), PREPAREd pj AS SELECT '表' and Parsed pq
#     as SELECT $1::text || 'ソ' moves to OLD with no error, and there
#     SHOW client_encoding is SJIS, SHOW search_path gives the same
#     bytes, pj gives 表 and pq bound to 表 gives 表ソ.  The same
#     search_path moves with a session that asked for SJIS in its
#     startup packet (the new connection is in SJIS from the start: a
#     backslash-doubling quote would end early there, the rest read as
#     SQL).  A session with named
#     protocol statements of the utility statements "SET search_path =
#     public, pg_catalog" and "BEGIN" moves to OLD and Binds and Executes
#     both there (SET, then the search_path it set; BEGIN, then in a
#     transaction).
# No worker dies along the way.

use strict;
use warnings;

use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $OLD = pg_start();
$OLD->setup_app;
my $NEW = pg_start();
$NEW->setup_app;
my %NAME = ($OLD->port => 'OLD', $NEW->port => 'NEW');

my $CTL = pgmirrorctl_bin();
my $ADMIN = 'admin = { user = "admin"; password = "adminpw"; };';
my $MIRROR = <<'EOC';
mirror = { workers = 2; retry_max = 2; };
mirrors = ( { source = "original"; destination = "new"; queue = 100000; } );
EOC

# A daemon of the shape above, original on $pg.
sub start_daemon {
	my ($pg, $other) = @_;
	return pgm_start($pg,
		databases => [
			{ name => 'original', database => 'appdb' },
			{ name => 'new', database => 'appdb', pg => $other },
		],
		users => [ { name => 'app', password => 'secret' } ],
		log => { stats_period => 1 },
		extra => "$ADMIN\n$MIRROR");
}

my $pgm = start_daemon($OLD, $NEW);
$pgm->{default_db} = 'original';

# --- helpers ---------------------------------------------------------------------

# Rewrites the config file of $inst so that original is on $orig and
# new on $other.
sub point {
	my ($inst, $orig, $other) = @_;
	my $c = slurp($inst->conffile);
	my $n = 0;
	for ([ 'original', $orig ], [ 'new', $other ]) {
		my ($name, $pg) = @$_;
		$n += $c =~ s/(name = "\Q$name\E"; host = )"[^"]*"; port = \d+;/$1"$pg->{host}"; port = $pg->{port};/;
	}
	die "point: databases entries not found in " . $inst->conffile unless $n == 2;
	write_file($inst->conffile, $c);
}

sub same_tables {
	my ($what) = @_;
	for ([ 'pgbench_accounts', 'aid' ], [ 'pgbench_tellers', 'tid' ],
		[ 'pgbench_branches', 'bid' ])
	{
		my ($t, $k) = @$_;
		my $o = $OLD->table_sig($t, $k);
		is($NEW->table_sig($t, $k), $o, "$what: $t identical on OLD and NEW ($o)");
	}
}

sub history_count {
	my ($pg) = @_;
	return $pg->psql('SELECT count(*) FROM pgbench_history', db => 'appdb') + 0;
}

# pgbench through daemon $inst in the background, on original.
sub bench_bg {
	my ($inst, @args) = @_;
	return start_cmd([ PgMirrorTest::_bin('pgbench'), '-h', '127.0.0.1', '-p', $inst->port,
		'-U', 'app', '-n', @args, 'original' ], env => { PGPASSWORD => 'secret' },
		timeout => 120);
}

# The sessions of database original as show clients lists them.
sub clients {
	my ($inst) = @_;
	return grep { $_->{database} eq 'original' } $inst->clients;
}

# Backend pids on $pg of the pgbench sessions served by $inst's client
# workers (the backend's client socket is held by a worker of a session
# of original).
sub bench_backends {
	my ($inst, $pg) = @_;
	my @workers = map { $_->{pid} } clients($inst);
	return () unless @workers;
	my @b;
	for my $l (split /\n/, $pg->psql("SELECT pid, client_port FROM pg_stat_activity"
		. " WHERE backend_type = 'client backend' AND usename = 'app'"
		. " AND application_name = 'pgbench' AND client_port > 0"))
	{
		my ($pid, $cport) = split /\|/, $l;
		push @b, $pid if socket_owner($cport, $pg->port, @workers);
	}
	return @b;
}

# Waits until $n pgbench sessions of $inst run on $on (show clients and
# pg_stat_activity agree) and none on $off.
sub sessions_on {
	my ($what, $inst, $n, $on, $off) = @_;
	my $srv = "127.0.0.1:" . $on->port;
	my ($cl, @b_on, @b_off);
	my $ok = wait_until(sub {
		my @c = clients($inst);
		$cl = join(', ', map { "$_->{server}/$_->{backend_pid}/$_->{state}" } @c);
		return 0 unless @c == $n && !grep { $_->{server} ne $srv } @c;
		@b_on = bench_backends($inst, $on);
		@b_off = bench_backends($inst, $off);
		my %want = map { $_->{backend_pid} => 1 } @c;
		return @b_on == $n && !@b_off && !grep { !$want{$_} } @b_on;
	}, 10, 0.2);
	ok($ok, "$what: the $n sessions run on $NAME{$on->port} (show clients and"
	  . " pg_stat_activity), none on $NAME{$off->port}")
	  or diag("show clients: $cl; on: @b_on; off: @b_off");
}

# Runs pgmirrorctl (the control socket of $inst) or, without it, the raw
# request.  Returns ($rc, $stdout, $stderr) as pgmirrorctl would.
sub ctl_cmd {
	my ($inst, @args) = @_;
	return $inst->ctl({ timeout => 90 }, '-t', @args) if $CTL;
	my $a = $inst->ctl_raw(join(' ', @args), timeout => 90) // '';
	my ($first, $rest) = split /\n/, $a, 2;
	return ($first eq 'OK' ? 0 : 1, $rest // '', $first =~ /^ERROR (.*)/ ? "$1\n" : '');
}

# The server port a new session to original reaches through $inst.
sub port_via {
	my ($inst) = @_;
	my ($o, $e, $rc) = $inst->psql('SELECT inet_server_port()', db => 'original',
		allow_fail => 1);
	return $rc == 0 ? $o : "error: $e";
}

# Log lines saying a worker died: this test has always used a narrower
# pattern than PgMirrorTest's $CRASH (no exit status 0, no "died before
# serving").
my $CRASH = qr/killed by signal|exited with status [1-9]|AddressSanitizer|runtime error/;

# --- 1. setup --------------------------------------------------------------------

ok(wait_until(sub { defined $pgm->shown_mirror('original')->{queue_length} }, 10),
	'show mirrors lists the mirror original -> new');
my ($rc, $out, $err) = $pgm->pgbench([ '-i', '-q', '-s', '1' ], db => 'original');
is($rc, 0, 'pgbench -i -s 1 through pgmirror on original') or diag("$out\n$err");
$pgm->shown_drained_ok('pgbench -i', 'original');
same_tables('after pgbench -i');
$pgm->psql('CREATE TABLE sw_t (id int PRIMARY KEY, v int); INSERT INTO sw_t VALUES (1, 0);'
	. ' CREATE SEQUENCE sw_seq; SELECT nextval(\'sw_seq\');');
my $st0 = $pgm->shown_drained_ok('setup', 'original');

# --- 2. switchover under load ------------------------------------------------------

{
	my $what = 'switchover under load';
	my $g0 = $pgm->status->{generation};
	my $bench = bench_bg($pgm, '-c', '8', '-j', '2', '-T', '15');
	my @before;
	ok(wait_until(sub { @before = bench_backends($pgm, $OLD); @before == 8 }, 10),
		"$what: pgbench's 8 sessions run on OLD") or diag("backends: @before");
	sleep 4;
	ok($bench->running, "$what: pgbench still runs");
	point($pgm, $NEW, $OLD);
	my $t = time;
	($rc, $out, $err) = ctl_cmd($pgm, 'switchover', '--timeout', '20');
	my $took = time - $t;
	is($rc, 0, sprintf("$what: switchover --timeout 20 succeeds (%.1f s)", $took))
	  or diag("$out\n$err");
	like($out, qr/^generation\t(\d+)$/m, "$what: the answer names the generation");
	my ($g1) = $out =~ /^generation\t(\d+)$/m;
	is($g1, $g0 + 1, "$what: generation $g0 -> " . ($g0 + 1));
	is($pgm->status->{maintenance}, 'off', "$what: maintenance is off afterwards");
	sessions_on($what, $pgm, 8, $NEW, $OLD);
	my $left = $OLD->psql('SELECT string_agg(pid::text, \',\') FROM pg_stat_activity'
		. ' WHERE pid IN (' . join(',', @before) . ')');
	is($left, '', "$what: the 8 backends pgbench had on OLD are gone");
	my $h0 = history_count($NEW);
	ok(wait_until(sub { history_count($NEW) > $h0 + 8 }, 10, 0.2),
		"$what: pgbench_history on NEW grows after the switchover ($h0 ...)");
	ok($bench->running, "$what: pgbench still ran then");
	bench_check($what, $bench->finish, no_abort => 1);
	my $st = $pgm->shown_drained_ok($what, 'original');
	same_tables($what);
	is(history_count($OLD), history_count($NEW),
		"$what: pgbench_history has as many rows on both");
	is($st->{errors} - $st0->{errors}, 0, "$what: no replay error");
	is($st->{dropped} - $st0->{dropped}, 0, "$what: nothing dropped");
	is(port_via($pgm), $NEW->port, "$what: a new session to original reaches NEW");
}

# --- 3. through the admin console ------------------------------------------------

{
	my $what = 'SWITCHOVER in the admin console';
	my $bench = bench_bg($pgm, '-c', '4', '-j', '2', '-T', '8');
	ok(wait_until(sub { (() = bench_backends($pgm, $NEW)) == 4 }, 10),
		"$what: pgbench's 4 sessions run on NEW");
	sleep 2;
	point($pgm, $OLD, $NEW);
	my ($o, $e, $prc) = $pgm->psql('SWITCHOVER TIMEOUT 20;', user => 'admin',
		db => 'pgmirror', password => 'adminpw', allow_fail => 1, timeout => 60);
	is($prc, 0, "$what: psql exits 0") or diag("$o\n$e");
	like($o, qr/^generation\|\d+$/m, "$what: it answers the generation") or diag($o);
	sessions_on($what, $pgm, 4, $OLD, $NEW);
	bench_check($what, $bench->finish, no_abort => 1);
	$pgm->shown_drained_ok($what, 'original');
	same_tables($what);
}

# --- 4. session state across a reload ------------------------------------------------

{
	my $what = 'reload';
	my $s1 = $pgm->dbh(db => 'original');
	$s1->do("SET work_mem = '7MB'");
	$s1->do("SET application_name = 'movetest'");
	my $sth = $s1->prepare('SELECT $1::int + 1', { pg_server_prepare => 1 });
	$sth->execute(1);
	is(($sth->fetchrow_array)[0], 2, "$what: protocol-prepared statement before");
	$sth->finish;
	$s1->do('PREPARE p(int) AS SELECT $1 * 10');
	is($s1->selectrow_array('SELECT inet_server_port()'), $OLD->port, "$what: session 1 on OLD");

	my $s2 = $pgm->dbh(db => 'original');
	$s2->do('CREATE TEMP TABLE tmp_t (x int)');
	my $s3 = $pgm->dbh(db => 'original');
	is($s3->selectrow_array('SELECT pg_advisory_lock(1)::text'), '', "$what: advisory lock taken");
	my $s4 = $pgm->dbh(db => 'original');
	$s4->do('LISTEN sw_chan');
	my $s5 = $pgm->dbh(db => 'original', attr => { AutoCommit => 0 });
	is($s5->selectrow_array('SELECT inet_server_port()'), $OLD->port,
		"$what: session 5 in a transaction on OLD");

	point($pgm, $NEW, $OLD);
	my $a = $pgm->ctl_raw('reload');
	is($a, "OK\n", "$what: control socket reload answers OK");

	is($s1->selectrow_array('SELECT inet_server_port()'), $NEW->port,
		"$what: session 1's next statement runs on NEW");
	is($s1->selectrow_array('SHOW work_mem'), '7MB', "$what: work_mem still 7MB");
	is($s1->selectrow_array("SELECT current_setting('application_name')"), 'movetest',
		"$what: application_name still movetest");
	$sth->execute(41);
	is(($sth->fetchrow_array)[0], 42, "$what: the protocol-prepared statement still runs");
	$sth->finish;
	is($s1->selectrow_array('EXECUTE p(5)'), 50, "$what: the PREPAREd statement still runs");
	is($s1->selectrow_array('SELECT pg_backend_pid() IN (SELECT pid FROM pg_stat_activity'
		. " WHERE application_name = 'movetest')::int"), 1, "$what: NEW sees it as movetest");

	for ([ $s2, 'temporary tables' ], [ $s3, 'advisory locks' ], [ $s4, 'LISTEN' ]) {
		my ($h, $holds) = @$_;
		my $ok = eval { $h->do('SELECT 1'); 1 };
		my $msg = $h->errstr // $@;
		ok(!$ok, "$what: a session holding $holds fails at its next statement");
		like($msg, qr/FATAL.*moved to another server.*\Q$holds\E/s,
			"$what: its FATAL names $holds") or diag($msg);
	}
	is($s5->selectrow_array('SELECT inet_server_port()'), $OLD->port,
		"$what: session 5 stays on OLD inside its transaction");
	$s5->commit;
	is($s5->selectrow_array('SELECT inet_server_port()'), $NEW->port,
		"$what: after COMMIT its next statement runs on NEW");
	$s5->rollback;
	$_->disconnect for $s1, $s5;
	is(port_via($pgm), $NEW->port, "$what: new sessions reach NEW");
}

# --- 5. timeout rollback ---------------------------------------------------------

{
	my $what = 'switchover timeout';
	$pgm->shown_drained_ok("$what: before", 'original');
	my $g0 = $pgm->status->{generation};
	my $tx = $pgm->dbh(db => 'original', attr => { AutoCommit => 0 });
	$tx->do('UPDATE sw_t SET v = 5 WHERE id = 1');
	my $lport = dbh_port($tx);
	point($pgm, $OLD, $NEW);
	my $t = time;
	($rc, $out, $err) = ctl_cmd($pgm, 'switchover', '--timeout', '2');
	my $took = time - $t;
	is($rc, 1, "$what: switchover --timeout 2 fails (exit 1)") or diag("$out\n$err");
	ok($took >= 1.9 && $took < 5, sprintf("$what: after %.1f s", $took));
	like($err, qr/timed out/, "$what: the reason says it timed out") or diag($err);
	like($out, qr/^\d+\tapp\toriginal\t127\.0\.0\.1:$lport\tin transaction\t/m,
		"$what: the answer names the session 127.0.0.1:$lport in a transaction")
	  or diag($out);
	my $s = $pgm->status;
	is($s->{maintenance}, 'off', "$what: maintenance is off");
	is($s->{generation}, $g0, "$what: generation unchanged ($g0)");
	is($tx->selectrow_array('SELECT inet_server_port()'), $NEW->port,
		"$what: the session is still on NEW");
	is(port_via($pgm), $NEW->port, "$what: a new session still reaches NEW");
	ok(eval { $tx->commit; 1 }, "$what: the open transaction commits") or diag($@);
	is($tx->selectrow_array('SELECT v FROM sw_t WHERE id = 1'), 5, "$what: its UPDATE is there");
	is($tx->selectrow_array('SELECT inet_server_port()'), $NEW->port,
		"$what: after COMMIT the session stays on NEW (nothing was applied)");
	$tx->rollback;
	$tx->disconnect;
	point($pgm, $NEW, $OLD);    # the file as it runs
}

# --- 6. --sync-sequences ---------------------------------------------------------

{
	my $what = 'sync-sequences';
	is($pgm->psql("SELECT nextval('sw_seq') > 0"), 't', "$what: nextval through pgmirror");
	$pgm->shown_drained_ok("$what: before", 'original');
	# Straight to the server in use (NEW), bypassing pgmirror and its mirror.
	my $adv = $NEW->psql("SELECT max(nextval('sw_seq')) FROM generate_series(1, 100)",
		db => 'appdb');
	my $seq = "SELECT last_value FROM pg_sequences WHERE sequencename = 'sw_seq'";
	my $lag = $OLD->psql($seq, db => 'appdb');
	cmp_ok($lag, '<', $adv, "$what: OLD lags ($lag < $adv)");
	point($pgm, $OLD, $NEW);
	($rc, $out, $err) = ctl_cmd($pgm, 'switchover', '--sync-sequences', '--timeout', '20');
	is($rc, 0, "$what: switchover --sync-sequences succeeds") or diag("$out\n$err");
	my $now = $OLD->psql($seq, db => 'appdb');
	cmp_ok($now, '>=', $adv, "$what: last_value on the new server (OLD) $now >= $adv");
	cmp_ok($pgm->psql("SELECT nextval('sw_seq')"), '>', $adv,
		"$what: nextval through pgmirror goes on past $adv");
	is(port_via($pgm), $OLD->port, "$what: new sessions reach OLD");
	like($pgm->log, qr/sync-sequences: database "original": \d+ of \d+ sequences raised/,
		"$what: the copy is logged");
}

# --- 7. fleet switchover -------------------------------------------------------------

SKIP: {
	skip 'pgmirrorctl not built', 1 unless $CTL;
	my $what = 'fleet switchover';
	my $pgmB = start_daemon($OLD, $NEW);
	$pgmB->{default_db} = 'original';
	my @fleet = ($pgm, $pgmB);
	my $H = join(',', map { '127.0.0.1:' . $_->port } @fleet);
	my @g0 = map { $_->status->{generation} } @fleet;
	my @bench = map { bench_bg($_, '-c', '4', '-j', '2', '-T', '8') } @fleet;
	ok(wait_until(sub { !grep { (() = bench_backends($_, $OLD)) != 4 } @fleet }, 10),
		"$what: 4 sessions on OLD through each daemon");
	sleep 2;
	point($_, $NEW, $OLD) for @fleet;
	($rc, $out, $err) = run_cmd([ $CTL, '-H', $H, 'switchover', '--timeout', '20' ],
		env => { PGPASSWORD => 'adminpw' }, timeout => 90);
	is($rc, 0, "$what: pgmirrorctl -H A,B switchover succeeds") or diag("$out\n$err");
	like($err, qr/^reload: 2 instances/m, "$what: both instances reloaded") or diag($err);
	for my $i (0, 1) {
		my $n = $i ? 'B' : 'A';
		sessions_on("$what ($n)", $fleet[$i], 4, $NEW, $OLD);
		is($fleet[$i]->status->{generation}, $g0[$i] + 1, "$what: $n generation + 1");
	}
	bench_check("$what (A)", $bench[0]->finish, no_abort => 1);
	bench_check("$what (B)", $bench[1]->finish, no_abort => 1);
	$pgm->shown_drained_ok("$what (A)", 'original');
	$pgmB->shown_drained_ok("$what (B)", 'original');
	same_tables($what);

	$what = 'fleet switchover, B broken';
	@g0 = map { $_->status->{generation} } @fleet;
	point($pgm, $OLD, $NEW);
	write_file($pgmB->conffile, slurp($pgmB->conffile) . "this is { not a config\n");
	($rc, $out, $err) = run_cmd([ $CTL, '-H', $H, 'switchover', '--timeout', '20' ],
		env => { PGPASSWORD => 'adminpw' }, timeout => 90);
	is($rc, 1, "$what: exits 1") or diag("$out\n$err");
	like($err, qr/127\.0\.0\.1:${\ $pgmB->port}/, "$what: the failure names B") or diag($err);
	for my $i (0, 1) {
		my $n = $i ? 'B' : 'A';
		my $s = $fleet[$i]->status;
		is($s->{maintenance}, 'off', "$what: $n not in maintenance");
		is($s->{generation}, $g0[$i], "$what: $n generation unchanged");
		is(port_via($fleet[$i]), $NEW->port, "$what: $n still sends sessions to NEW");
	}
	point($pgm, $NEW, $OLD);
	$pgmB->stop;
}

# --- 8. a broken file on reload ----------------------------------------------------

{
	my $what = 'broken file';
	my $good = slurp($pgm->conffile);
	my $g0 = $pgm->status->{generation};
	write_file($pgm->conffile, $good . "this is { not a setting\n");
	my $a = $pgm->ctl_raw('reload') // '';
	my $line = ($good =~ tr/\n//) + 1;
	like($a, qr/^ERROR .*\Q${\ $pgm->conffile}\E:$line:/, "$what: reload answers ERROR FILE:$line")
	  or diag($a);
	my $from = length $pgm->log;
	$pgm->kill('HUP');
	ok(wait_until(sub { substr($pgm->log, $from) =~ /reload failed/ }, 10),
		"$what: SIGHUP: reload failed logged");
	is($pgm->status->{generation}, $g0, "$what: generation unchanged");
	is(port_via($pgm), $NEW->port, "$what: sessions still reach NEW");
	write_file($pgm->conffile, $good);
}

# --- 9. the worker takes the applied config, not the file ------------------------------

{
	my $what = 'applied config';
	my $g0 = $pgm->status->{generation};
	my $s = $pgm->dbh(db => 'original');
	is($s->selectrow_array('SELECT inet_server_port()'), $NEW->port, "$what: an idle session on NEW");
	point($pgm, $OLD, $NEW);
	my $a = $pgm->ctl_raw('reload');
	is($a, "OK\n", "$what: the file swapped (original on OLD), reload answers OK");
	# At once, the file swapped back, not reloaded.
	point($pgm, $NEW, $OLD);
	my $st = $pgm->status;
	is($st->{generation}, $g0 + 1, "$what: generation $g0 -> " . ($g0 + 1));
	my ($o) = grep { $_->{name} eq 'databases.original' } $pgm->rows('show config');
	is($o && $o->{value}, "$OLD->{host}:$OLD->{port}/appdb",
		"$what: show config: databases.original on OLD (as applied)");
	is($s->selectrow_array('SELECT inet_server_port()'), $OLD->port,
		"$what: the idle session's next statement runs on OLD, the applied config,"
		. " not NEW, the file's content");
	is(port_via($pgm), $OLD->port, "$what: a new session reaches OLD too");
	$s->disconnect;
	point($pgm, $OLD, $NEW);    # the file as it runs
	is($pgm->status->{generation}, $g0 + 1, "$what: nothing else was applied");
}

# --- 10. moving with a full pool ---------------------------------------------------------

{
	my $what = 'full pool';
	# A daemon of its own: original with pool_size 3, no mirror.
	my $pgmE = pgm_start($OLD,
		databases => [
			{ name => 'original', database => 'appdb', pool_size => 3 },
			{ name => 'new', database => 'appdb', pg => $NEW },
		],
		users => [ { name => 'app', password => 'secret' } ],
		pool => { wait_timeout => 5 });
	my @s = map { $pgmE->dbh(db => 'original') } 1 .. 3;
	is_deeply([ map { $_->selectrow_array('SELECT inet_server_port()') } @s ],
		[ ($OLD->port) x 3 ], "$what: 3 DBD::Pg sessions on OLD");
	my @pools = $pgmE->rows('show pools');
	my ($p) = grep { $_->{database} eq 'original' } @pools;
	ok($p && $p->{size} == 3 && $p->{open} == 3, "$what: show pools: original size 3, open 3 (full)")
	  or diag(explain(\@pools));
	point($pgmE, $NEW, $OLD);
	is($pgmE->ctl_raw('reload'), "OK\n", "$what: swapped, reload answers OK");
	for my $i (0 .. 2) {
		my $t = time;
		my $port = eval { $s[$i]->selectrow_array('SELECT inet_server_port()') };
		my $e = $@;
		is($port, $NEW->port, sprintf("$what: session %d's next statement runs on NEW (%.1f s)",
			$i + 1, time - $t)) or diag($e);
		unlike($e // '', qr/too many/, "$what: ... no \"too many\" error");
	}
	($p) = grep { $_->{database} eq 'original' } $pgmE->rows('show pools');
	is($p && $p->{open}, 3, "$what: show pools: original open 3 (the old ones given back)");
	my @orig = grep { $_->{database} eq 'original' } $pgmE->rows('show servers');
	is(scalar(grep { $_->{server} eq "127.0.0.1:" . $NEW->port } @orig), 3,
		"$what: show servers: 3 connections of original, on NEW")
	  or diag(join(', ', map { "$_->{server}/$_->{state}" } @orig));
	$_->disconnect for @s;
	unlike($pgmE->log, $CRASH, "$what: no worker died");
	$pgmE->stop;
}

# --- 11. PREPARE in a query string that did more -------------------------------------------

{
	my $what = 'PREPARE with more';
	my $s = $pgm->dbh(db => 'original');
	# do() without placeholders is one simple Query: both statements.
	$s->do('PREPARE pp AS SELECT 1; SELECT 2');
	is($s->selectrow_array('EXECUTE pp'), 1, "$what: pp prepared by 'PREPARE pp AS SELECT 1; SELECT 2'");
	is($s->selectrow_array('SELECT inet_server_port()'), $OLD->port, "$what: the session is on OLD");
	# The same through the raw client, which sees the SQLSTATE (DBD::Pg
	# says 08000 for any FATAL that closes the connection).
	my ($raw, $r) = $pgm->raw_login;
	ok($r->{ok}, "$what: a raw client logs in");
	my $q = $raw->query('PREPARE pp AS SELECT 1; SELECT 2');
	is_deeply($q->{tags}, [ 'PREPARE', 'SELECT 1' ], "$what: ... and runs the same query string")
	  or diag(explain($q));
	point($pgm, $NEW, $OLD);
	is($pgm->ctl_raw('reload'), "OK\n", "$what: swapped, reload answers OK");
	my $ok = eval { $s->do('SELECT 1'); 1 };
	my $msg = $s->errstr // $@;
	ok(!$ok, "$what: the session fails at its next statement");
	like($msg, qr/FATAL.*prepared statement "pp".*did more than PREPARE/s,
		"$what: with a FATAL naming pp and saying its query string did more than PREPARE")
	  or diag($msg);
	$q = $raw->query('SELECT 1', timeout => 10);
	is($q->{error}{S}, 'FATAL', "$what: the raw client's next query gets a FATAL")
	  or diag(explain($q));
	is($q->{error}{C}, '57P01', "$what: ... SQLSTATE 57P01");
	like($q->{error}{M} // '', qr/prepared statement "pp".*did more than PREPARE/,
		"$what: ... naming pp") or diag($q->{error}{M});
	ok($q->{eof} && !@{ $q->{rows} }, "$what: ... no rows, and the connection closed");
	delete $raw->{sock};
	is(port_via($pgm), $NEW->port, "$what: new sessions reach NEW");
}

# --- 12. encodings and protocol statements ----------------------------------------

{
	my $what = 'SJIS and protocol statements';
	# Raw protocol helpers: Parse + Sync, and Bind + Execute + Sync.
	my $parse = sub {
		my ($c, $name, $sql, @oids) = @_;
		$c->send_msg('P', "$name\0$sql\0" . pack('n N*', scalar(@oids), @oids));
		$c->send_msg('S', '');
		return $c->collect;
	};
	my $exec = sub {
		my ($c, $name, @params) = @_;
		$c->send_msg('B', "\0$name\0" . pack('n n', 0, scalar @params)
			. join('', map { pack('N', length $_) . $_ } @params) . pack('n', 0));
		$c->send_msg('E', "\0" . pack('N', 0));
		$c->send_msg('S', '');
		return $c->collect;
	};
	my $hex = sub { join ' ', map { sprintf '%02x', ord } split //, $_[0] // '' };
	my $HYO = "\x95\x5c";    # 表 in SJIS
	my $SO = "\x83\x5c";     # ソ in SJIS
	my $V = "$HYO'\\${SO}x";

	my ($a, $r) = $pgm->raw_login;
	ok($r->{ok}, "$what: session A logs in");
	my $q = $a->query("SET client_encoding = 'SJIS'");
	ok(!$q->{error}, "$what: A sets client_encoding SJIS") or diag(explain($q->{error}));
	my $PATH = qq{"$V", public};
	$q = $a->query("SET search_path = $PATH");
	ok(!$q->{error}, "$what: A sets search_path to \"表'\\ソx\", public in SJIS")
	  or diag(explain($q->{error}));
	is($hex->($a->query('SHOW search_path')->{rows}[0][0]), $hex->($PATH),
		"$what: SHOW search_path gives those bytes");
	$q = $a->query("PREPARE pj AS SELECT '$HYO'::text");
	is_deeply($q->{tags}, [ 'PREPARE' ], "$what: A prepares pj AS SELECT '表'")
	  or diag(explain($q->{error}));
	$q = $parse->($a, 'pq', "SELECT \$1::text || '$SO'", 25);
	ok(!$q->{error} && grep({ $_ eq '1' } @{ $q->{messages} }),
		"$what: A parses pq AS SELECT \$1::text || 'ソ'") or diag(explain($q));
	is($a->query('SELECT inet_server_port()')->{rows}[0][0], $NEW->port, "$what: A is on NEW");

	my ($c, $rc) = $pgm->raw_login(params => [ client_encoding => 'SJIS' ]);
	ok($rc->{ok}, "$what: session C logs in with client_encoding SJIS");
	$q = $c->query("SET search_path = $PATH");
	ok(!$q->{error}, "$what: C sets the same search_path") or diag(explain($q->{error}));

	my ($b, $rb) = $pgm->raw_login;
	ok($rb->{ok}, "$what: session B logs in");
	$q = $parse->($b, 'pset', 'SET search_path = public, pg_catalog');
	ok(!$q->{error}, "$what: B parses pset: SET search_path = public, pg_catalog")
	  or diag(explain($q->{error}));
	$q = $parse->($b, 'pbegin', 'BEGIN');
	ok(!$q->{error}, "$what: B parses pbegin: BEGIN") or diag(explain($q->{error}));
	is($b->query('SELECT inet_server_port()')->{rows}[0][0], $NEW->port, "$what: B is on NEW");

	point($pgm, $OLD, $NEW);
	is($pgm->ctl_raw('reload'), "OK\n", "$what: swapped, reload answers OK");

	$q = $a->query('SELECT inet_server_port()', timeout => 20);
	ok(!$q->{error} && !$q->{eof}, "$what: A's next statement runs without error")
	  or diag(explain($q->{error}));
	is($q->{rows}[0][0], $OLD->port, "$what: A now runs on OLD");
	is($a->query('SHOW client_encoding')->{rows}[0][0], 'SJIS',
		"$what: A's client_encoding is still SJIS");
	is($hex->($a->query('SHOW search_path')->{rows}[0][0]), $hex->($PATH),
		"$what: SHOW search_path gives the same SJIS bytes");
	is($hex->($a->query('EXECUTE pj')->{rows}[0][0]), $hex->($HYO),
		"$what: EXECUTE pj gives 表");
	$q = $exec->($a, 'pq', $HYO);
	is($hex->($q->{rows}[0][0]), $hex->($HYO . $SO), "$what: pq bound to 表 gives 表ソ")
	  or diag(explain($q));

	$q = $c->query('SHOW search_path', timeout => 20);
	ok(!$q->{error} && !$q->{eof}, "$what: C's next statement runs without error")
	  or diag(explain($q->{error}));
	is($hex->($q->{rows}[0][0]), $hex->($PATH), "$what: C's search_path has the same bytes");
	is($c->query('SELECT inet_server_port()')->{rows}[0][0], $OLD->port,
		"$what: C now runs on OLD");

	$q = $exec->($b, 'pset');
	ok(!$q->{error} && !$q->{eof}, "$what: B Binds and Executes pset after the move")
	  or diag(explain($q->{error}));
	is_deeply($q->{tags}, [ 'SET' ], "$what: ... SET");
	is($b->query('SHOW search_path')->{rows}[0][0], 'public, pg_catalog',
		"$what: ... and the search_path is what it set");
	is($b->query('SELECT inet_server_port()')->{rows}[0][0], $OLD->port,
		"$what: B now runs on OLD");
	$q = $exec->($b, 'pbegin');
	is_deeply($q->{tags}, [ 'BEGIN' ], "$what: B executes pbegin: BEGIN")
	  or diag(explain($q));
	is($q->{status}, 'T', "$what: ... and is in a transaction");
	is_deeply($b->query('ROLLBACK')->{tags}, [ 'ROLLBACK' ], "$what: B rolls back");
	$_->close for $a, $b, $c;
	point($pgm, $NEW, $OLD);    # the file as it runs... after the next reload
	is($pgm->ctl_raw('reload'), "OK\n", "$what: swapped back, reload answers OK");
	is(port_via($pgm), $NEW->port, "$what: new sessions reach NEW");
}

unlike($pgm->log, $CRASH, 'no worker died');
ok($pgm->alive, 'the daemon is alive');

done_testing();
