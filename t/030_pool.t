# 030_pool: session pooling.  The number of server connections per
# database and user never exceeds the pool size, counted in
# pg_stat_activity while more clients than that want one; a client that
# cannot get one within pool.wait_timeout gets 53300; a server connection
# is reused by the next client after a reset (no SET, temporary table,
# prepared statement or open transaction leaks into it); pool.min_size
# connections are kept open.  A startup parameter cannot pose as others:
# a client whose application_name is "x\x01options=-c search_path=evil"
# never shares a server connection with one that sent application_name x
# and options "-c search_path=evil" (either coming first), and the
# connections pool.min_size opens in its shape carry that one
# application_name, not extra options.

use strict;
use warnings;

use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $pg = pg_start();
$pg->setup_app;
$pg->psql('CREATE TABLE leak (x int)', db => 'appdb', user => 'app');

# --- the cap holds: 6 clients, pool_size 3 ------------------------------------

{
	my $pgm = pgm_start($pg,
		users => [ { name => 'app', password => 'secret', pool_size => 3 } ],
		workers => { min_spare => 2, max_spare => 8, max => 32 });
	my @bg = map { $pgm->psql_bg("SELECT $_, pg_sleep(1.5)") } 1 .. 6;
	my $max = 0;
	my $t0 = time;
	while (grep { $_->running } @bg) {
		my $n = $pg->backends('app');
		$max = $n if $n > $max;
		last if time - $t0 > 40;
		sleep 0.05;
	}
	my @res = map { [ $_->finish ] } @bg;
	is(scalar(grep { $_->[0] == 0 } @res), 6, 'all 6 clients finished successfully')
	  or diag(explain(\@res));
	is(join(',', sort map { (split /\|/, $_->[1])[0] } @res), '1,2,3,4,5,6',
		'each client got its own answer');
	cmp_ok($max, '<=', 3, "server connections for app never exceeded 3 (max seen $max)");
	is($max, 3, 'the pool was used to its size');
	cmp_ok(time - $t0, '>=', 2.9, 'the clients over the cap waited (two rounds of 1.5 s)');
	cmp_ok($pg->backends('app'), '<=', 3, 'at most 3 server connections remain pooled');
	$pgm->stop;
}

# --- database-level pool_size ----------------------------------------------------

{
	my $pgm = pgm_start($pg,
		databases => [ { name => 'appdb', database => 'appdb', pool_size => 2 } ]);
	my @bg = map { $pgm->psql_bg("SELECT pg_sleep(1)") } 1 .. 4;
	my $max = 0;
	while (grep { $_->running } @bg) {
		my $n = $pg->backends('app');
		$max = $n if $n > $max;
		sleep 0.05;
	}
	is(scalar(grep { ($_->finish)[0] == 0 } @bg), 4, 'databases.pool_size: all clients served');
	cmp_ok($max, '<=', 2, "databases.pool_size 2 holds (max seen $max)");
	$pgm->stop;
}

# --- wait_timeout: 53300 ----------------------------------------------------------

{
	my $pgm = pgm_start($pg,
		users => [ { name => 'app', password => 'secret', pool_size => 1 } ],
		pool => { wait_timeout => 2 });
	my $holder = $pgm->dbh;
	is($holder->selectrow_array('SELECT 1'), 1, 'first client holds the only server connection');
	my $t0 = time;
	my ($c, $r) = $pgm->raw_login(timeout => 20);
	my $elapsed = time - $t0;
	ok(!$r->{ok}, 'second client does not get a session');
	is($r->{error}{C}, '53300', 'second client gets 53300') or diag(explain($r));
	like($r->{error}{M} // '', qr/too many .*connections/, 'message says why');
	cmp_ok($elapsed, '>=', 1.5, sprintf('it waited about wait_timeout (%.1f s)', $elapsed));
	cmp_ok($elapsed, '<', 8, 'but not much longer');
	$c->close;

	my ($out, $err, $rc) = $pgm->psql('SELECT 1');
	isnt($rc, 0, 'psql over the cap fails');
	like($err, qr/too many/, 'psql shows the pool error');

	# When the holder leaves, the next client gets the connection.
	$holder->disconnect;
	is($pgm->psql('SELECT 2'), '2', 'after the holder left, a new client is served');
	is($pg->backends('app'), 1, 'still one server connection');

	# A waiting client is served as soon as the connection frees up.
	$holder = $pgm->dbh;
	my $bg = $pgm->psql_bg('SELECT 3');
	sleep 0.7;
	ok($bg->running, 'client over the cap waits');
	$holder->disconnect;
	my ($brc, $bout, $berr) = $bg->finish;
	is($brc, 0, 'waiting client served once the holder left') or diag($berr);
	is($bout, "3\n", '... with its answer');
	$pgm->stop;
}

# --- reuse and reset ----------------------------------------------------------------

{
	# One worker: every client lands on it and meets its pooled connection.
	my $pgm = pgm_start($pg, workers => { min_spare => 1, max_spare => 1, max => 1 });
	my @seen;
	my $first = $pgm->psql("SET work_mem = '77MB'; CREATE TEMP TABLE tmp_reset (x int);"
		. " PREPARE stmt_reset AS SELECT 1; LISTEN chan_reset;"
		. " SELECT set_config('myapp.var', 'leaked', false); SELECT pg_backend_pid()");
	my ($pid1) = $first =~ /(\d+)$/;
	ok($pid1, "first client's backend pid $pid1");
	my $default_wm = $pg->psql('SHOW work_mem');
	my $check = q{SELECT pg_backend_pid(), current_setting('work_mem'),
		(SELECT count(*) FROM pg_class WHERE relname = 'tmp_reset'),
		(SELECT count(*) FROM pg_prepared_statements),
		(SELECT count(*) FROM pg_listening_channels()),
		coalesce(current_setting('myapp.var', true), '')};
	my ($reused, $clean) = (0, 0);
	for (1 .. 6) {
		my $o = $pgm->psql($check);
		my ($pid, $wm, $tmp, $prep, $listen, $var) = split /\|/, $o;
		push @seen, $pid;
		next unless $pid == $pid1;
		$reused++;
		$clean++ if $wm eq $default_wm && $tmp == 0 && $prep == 0 && $listen == 0 && $var eq '';
		is($wm, $default_wm, 'SET of the previous client is gone');
		is($tmp, 0, 'temporary table of the previous client is gone');
		is($prep, 0, 'prepared statement of the previous client is gone');
		is($listen, 0, 'LISTEN of the previous client is gone');
		is($var, '', 'custom setting of the previous client is gone');
	}
	cmp_ok($reused, '>=', 1, "backend $pid1 was reused by a later client (seen: @seen)");

	# A client that leaves inside a transaction: rolled back before reuse.
	my ($o, $e, $rc) = $pgm->psql("BEGIN; INSERT INTO leak VALUES (1); SELECT pg_backend_pid()");
	is($rc, 0, 'client ends its session inside a transaction');
	my ($txpid) = $o =~ /(\d+)$/;
	my $after = $pgm->psql(q{SELECT pg_backend_pid(), (SELECT count(*) FROM leak),
		now() = statement_timestamp()});
	my ($pid2, $count) = split /\|/, $after;
	is($count, 0, 'its uncommitted insert was rolled back');
	is($pg->psql('SELECT count(*) FROM leak', db => 'appdb'), 0, '... as seen directly');
	is($pg->psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"
		. " AND state LIKE 'idle in transaction%'"), 0,
		'no server connection left idle in transaction');
	note("transaction client pid $txpid, next client pid $pid2");

	# The reused connection carries the new client's startup parameters.
	$o = $pgm->psql('SELECT current_setting(\'application_name\'), current_setting(\'search_path\')',
		env => { PGAPPNAME => 'second-app', PGOPTIONS => '-c search_path=pg_catalog' });
	is($o, 'second-app|pg_catalog', 'a client with other startup parameters gets them');
	$o = $pgm->psql('SELECT current_setting(\'application_name\'), current_setting(\'search_path\')');
	is($o, 'psql|"$user", public', 'and the next plain client does not inherit them');
	cmp_ok($pg->backends('app'), '<=', 2, 'one worker keeps few server connections');
	$pgm->stop;
}

# --- sequential clients over several workers reuse connections ---------------

{
	my $pgm = pgm_start($pg, workers => { min_spare => 1, max_spare => 2, max => 4 });
	my %count;
	$count{ $pgm->psql('SELECT pg_backend_pid()') }++ for 1 .. 8;
	my ($top) = sort { $b <=> $a } values %count;
	cmp_ok($top, '>=', 2, 'with a few workers, 8 sequential clients reuse a backend');
	cmp_ok(scalar(keys %count), '<=', 4, 'no more backends than workers');
	$pgm->stop;
}

# --- a startup parameter cannot pose as others ----------------------------------

{
	my $INJ = "x\x01options=-c search_path=evil";
	my %who = (
		inject => [ application_name => $INJ ],
		real => [ application_name => 'x', options => '-c search_path=evil' ],
	);
	my %path = (inject => '"$user", public', real => 'evil');
	my $q = q{SELECT pg_backend_pid(), current_setting('search_path'),
		current_setting('application_name')};
	# One session of kind $k through $pgm: [ pid, search_path, application_name ].
	my $session = sub {
		my ($pgm, $k) = @_;
		my ($c, $r) = $pgm->raw_login(params => $who{$k});
		return [ "login failed: " . ($r->{error}{M} // '?') ] unless $r->{ok};
		my $a = $c->query($q);
		$c->close;
		return $a->{rows}[0] // [ 'no row: ' . ($a->{error}{M} // '?') ];
	};
	for my $order ([ 'inject', 'real' ], [ 'real', 'inject' ]) {
		my ($first, $second) = @$order;
		my $what = "$first, then $second";
		# One worker: the second client meets the first one's parked connection.
		my $pgm = pgm_start($pg, workers => { min_spare => 1, max_spare => 1, max => 1 });
		my $a = $session->($pgm, $first);
		my $b = $session->($pgm, $second);
		is($a->[1], $path{$first}, "$what: the $first client's search_path is $path{$first}");
		isnt($b->[0], $a->[0], "$what: the $second client does not get the $first"
			. " client's server connection");
		is($b->[1], $path{$second}, "$what: the $second client's search_path is $path{$second}");
		my $c = $session->($pgm, $first);
		is($c->[0], $a->[0], "$what: a second $first client reuses the first one's connection");
		$pgm->stop;
	}

	# pool.min_size refills in the shape of the last client; server.lifetime
	# makes the worker drop and refill.
	my $what = 'pool.min_size after an application_name with \x01';
	my $pgm = pgm_start($pg, pool => { min_size => 1 },
		workers => { min_spare => 1, max_spare => 1, max => 1 },
		extra => 'server = { lifetime = 2; };');
	my $a = $session->($pgm, 'inject');
	like($a->[0], qr/^\d+$/, "$what: the client ran (backend $a->[0])");
	my $apps = '';
	my $ok = wait_until(sub {
		$apps = $pg->psql("SELECT string_agg(pid || '=' || application_name, ',')"
			. " FROM pg_stat_activity WHERE usename = 'app' AND pid <> $a->[0]");
		return grep { /^\d+=(.*)$/s && $1 eq $a->[2] } split /,/, $apps;
	}, 15, 0.2);
	ok($ok, "$what: a connection opened for min_size carries the client's"
		. " application_name ($a->[2])") or diag("backends: $apps");
	unlike($apps, qr/(^|,)\d+=x(,|$)/, "$what: none was opened with application_name x"
		. " (and the rest as options)");
	$pgm->stop;
}

# --- min_size ------------------------------------------------------------------------

{
	my $pgm = pgm_start($pg, pool => { min_size => 2 },
		workers => { min_spare => 2, max_spare => 4, max => 8 });
	$pgm->psql('SELECT 1');
	my $n = wait_until(sub { $pg->backends('app', 'appdb') >= 2 }, 10, 0.2);
	ok($n, 'pool.min_size = 2: at least 2 server connections kept open')
	  or diag('backends: ' . $pg->backends('app', 'appdb'));
	$pgm->stop;
	ok(wait_until(sub { $pg->backends('app') == 0 }, 10, 0.2),
		'server connections closed when pgmirror stops');
}

done_testing();
