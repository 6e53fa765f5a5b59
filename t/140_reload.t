# 140_reload: SIGHUP reloads the configuration.
#
# Two clusters, pg1 and pg2, each with role app/secret owning appdb and
# a table rl_t.  Two throwaway CAs, each signing a server certificate
# for DNS:localhost and IP:127.0.0.1 (A: CN=a.test, B: CN=b.test), are
# made with the openssl CLI.  One daemon, tls.client_mode "prefer",
# databases entry on pg1, log.stats_period = 1; the test rewrites its
# config file and sends SIGHUP, then waits for the line that ends the
# reload ("configuration reloaded (generation N)", "reload failed",
# "reload refused").  A DBD::Pg TLS session opened at the start lives
# through every reload and must keep its backend.
#
#  1. Certificate rotation: the cert/key files are rewritten with B:
#     new TLS clients see CN=b.test (openssl s_client -starttls
#     postgres), verify-full against B's CA works and against A's CA
#     fails.  The open TLS session goes on.  The counters in shared
#     memory survive (the stats line's "clients served" does not go back).
#  2. A bad certificate (garbage; then B's certificate with A's key):
#     "reload failed" naming tls.cert_file / tls.key_file; no worker is
#     retired; new clients still get B, even from freshly forked workers.
#  3. A syntax error, and an unknown setting: "reload: FILE:LINE: ..."
#     with the right line, "reload failed"; the file also points the
#     database at pg2, which must not happen.
#  4. Refused: a users entry added, workers.max changed, a databases
#     entry renamed: "reload refused ... restart pgmirror"; the old
#     config runs (new user unknown, still pg1), no worker retired.
#  5. listen changed: logged as needing a restart, the new address is
#     not listened on, the old ones are, and the rest of the file applies.
#     Judged against the addresses listened on: the same changed file
#     again is still logged, the original addresses back are not.
#  6. Switchover by hand: the databases entry moves to pg2: new sessions
#     reach pg2 (SHOW port) at once; a session opened before stays on
#     pg1 with its backend until it ends, then its worker leaves and pg1
#     keeps no connection of ours but the long session's worker's.  Then
#     20 reloads back and forth, a raw session opened as soon as each
#     reload line is logged reaching that generation's server.
#  6b. The same, deterministically, for an old idle worker that is slow
#     to run after its SIGTERM (pinned under a SCHED_FIFO busy loop):
#     it must not serve a client that came after the reload line with
#     its old config (skipped without two CPUs or chrt -f).
#  7. Workers: after a reload the idle workers of the old generation
#     exit within a second or two and are replaced (min_spare again),
#     busy ones stay until their client leaves.
#  8. client.idle_timeout 0 -> 2: a session started after the reload gets
#     FATAL 57P05 after ~2 s; one started before is not cut after 3.5 s.
#  9. SIGHUP three times during pgbench -c 4 -T 4, and twice during a
#     pgbench -C run (a connection per transaction): zero failed
#     transactions.
#
# No worker dies along the way, and the daemon stays up.

use strict;
use warnings;

use IO::Socket::INET;
use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $T0 = time;
my $pg1 = pg_start();
$pg1->setup_app;
my $pg2 = pg_start();
$pg2->setup_app;
for my $pg ($pg1, $pg2) {
	$pg->psql('CREATE TABLE rl_t (k int)', db => 'appdb', user => 'app');
}

my $dir = cert_dir('reload');

# --- certificates ------------------------------------------------------------

make_cert($dir, 'caA', 'reload test CA A', undef, undef, key => 'ec');
make_cert($dir, 'caB', 'reload test CA B', undef, undef, key => 'ec');
make_cert($dir, 'certA', 'a.test', 'caA', 'v3_server', key => 'ec');
make_cert($dir, 'certB', 'b.test', 'caB', 'v3_server', key => 'ec');

# The files the config names; rewritten in place to rotate.
my $CRT = "$dir/server.crt";
my $KEY = "$dir/server.key";
sub install_cert {
	my ($crt, $key) = @_;
	write_file($CRT, slurp($crt));
	write_file($KEY, slurp($key));
	chmod 0600, $KEY;
}
install_cert("$dir/certA.crt", "$dir/certA.key");

# --- the config ----------------------------------------------------------------

# The config file without its listen line (pgm_start puts that first).
# %s: pg (the databases entry's server), idle (client.idle_timeout),
# users (extra users entries), max (workers.max), dbname (the entry's
# name), bad_line (replaces the client line), reset (pool.reset_query).
my $VERSION = 0;
sub body {
	my (%s) = @_;
	my $pg = $s{pg} // $pg1;
	my @users = ({ name => 'app', password => 'secret' }, @{ $s{users} || [] });
	my @l = (
		'# 140_reload, version ' . ++$VERSION,
		'shutdown_timeout = 5;',
		'workers = { min_spare = 2; max_spare = 4; max = ' . ($s{max} // 16) . '; };',
		'pool = { mode = "session"; default_size = 50; wait_timeout = 10; reset_query = "'
		  . ($s{reset} // 'DISCARD ALL') . '"; };',
		'log = { destination = "stderr"; stats_period = 1; };',
		$s{bad_line} // ('client = { login_timeout = 5; idle_timeout = ' . ($s{idle} // 0) . '; };'),
		qq{tls = { cert_file = "$CRT"; key_file = "$KEY"; client_mode = "prefer"; };},
		'databases = (',
		'  { name = "' . ($s{dbname} // 'appdb') . '"; host = "' . $pg->host . '"; port = '
		  . $pg->port . '; database = "appdb"; }',
		');',
		'users = (',
		join(",\n", map { qq{  { name = "$_->{name}"; password = "$_->{password}"; }} } @users),
		');',
	);
	return join("\n", @l) . "\n";
}

my $pgm = pgm_start($pg1, config => body());
my $port = $pgm->port;
my $CONF = $pgm->conffile;
my ($LISTEN) = slurp($CONF) =~ /^(listen = [^\n]*\n)/;
ok($LISTEN, "the listen line: $LISTEN");

my $END = qr/(?:configuration reloaded \(generation \d+\)|reload failed|reload refused)[^\n]*\n/;
my $GEN = 0;

# Writes the config file (listen line + $body), sends SIGHUP and waits
# for the line that ends the reload.  Returns the log written meanwhile.
sub reload {
	my ($body, %o) = @_;    # %o: listen (the listen line)
	write_file($CONF, ($o{listen} // $LISTEN) . $body);
	my $from = length $pgm->log;
	$pgm->kill('HUP');
	my $new = '';
	wait_until(sub { $new = substr($pgm->log, $from); $new =~ $END }, 10, 0.02);
	return $new;
}

# A reload that must apply: generation + 1.
sub reload_ok {
	my ($body, $what, %o) = @_;
	my $log = reload($body, %o);
	my ($g) = $log =~ /configuration reloaded \(generation (\d+)\)/;
	ok(defined $g && $g == $GEN + 1, "$what: configuration reloaded (generation "
	  . ($GEN + 1) . ')') or diag($log);
	$GEN = $g if defined $g;
	unlike($log, qr/reload (?:failed|refused)/, "$what: nothing failed or refused")
	  or diag($log);
	return $log;
}

# A reload that must not apply.
sub reload_not {
	my ($body, $what, $re, %o) = @_;
	my $log = reload($body, %o);
	like($log, $re, "$what: the log matches $re") or diag($log);
	unlike($log, qr/configuration reloaded/, "$what: the configuration is not reloaded")
	  or diag($log);
	return $log;
}

# The subject CN of the certificate a new TLS client is shown.
sub server_cn {
	my ($rc, $out, $err) = run_cmd([ 'openssl', 's_client', '-connect', "127.0.0.1:$port",
		'-starttls', 'postgres', '-servername', 'localhost' ], timeout => 15);
	my ($cn) = "$out$err" =~ /^subject=.*?CN\s*=\s*([^,\/\s]+)/m;
	return $cn // "none (rc $rc: $err)";
}

# psql over TLS with verify-full against $ca; returns ($out, $err, $rc).
sub psql_verify {
	my ($ca, $sql) = @_;
	return $pgm->psql($sql // 'SELECT current_user', timeout => 20,
		env => { PGSSLMODE => 'verify-full', PGSSLROOTCERT => $ca });
}

# The port of the server a new session through pgmirror reaches.
sub new_port {
	my (%o) = @_;
	my ($out, $err, $rc) = $pgm->psql('SHOW port', timeout => 20, %o);
	return $rc == 0 ? $out : "failed: $err";
}

# The last "clients served" of the stats line written after log offset $from.
sub served_after {
	my ($from, $min) = @_;
	my $v;
	wait_until(sub {
		my @all = substr($pgm->log, $from) =~ /clients served (\d+)/g;
		$v = $all[-1];
		defined $v && (!defined $min || $v >= $min);
	}, 5, 0.1);
	return $v;
}

# Workers that are not serving any of the given DBI handles.
sub idle_workers {
	my (@busy) = grep { defined } map { $pgm->worker_for($_) } @_;
	my %b = map { $_ => 1 } @busy;
	return grep { !$b{$_} } $pgm->workers;
}

# Waits until every pid in @old is gone and at least $n workers not in
# @old run; returns (seconds, number of new workers).
sub replaced {
	my ($n, @old) = @_;
	my %old = map { $_ => 1 } @old;
	my $t0 = time;
	my $new = 0;
	wait_until(sub {
		$new = grep { !$old{$_} } $pgm->workers;
		!grep({ pid_alive($_) } @old) && $new >= $n;
	}, 10, 0.05);
	return (time - $t0, $new);
}

require DBI;
sub tls_dbh {
	return DBI->connect("dbi:Pg:host=127.0.0.1;port=$port;dbname=appdb;sslmode=require",
		'app', 'secret', { RaiseError => 1, PrintError => 0, AutoCommit => 1 });
}

# --- the long TLS session ----------------------------------------------------------

is(server_cn(), 'a.test', 'start: a new TLS client is shown certificate A');
{
	my ($out, $err, $rc) = psql_verify("$dir/caA.crt");
	is($rc, 0, 'start: verify-full against CA A works') or diag($err);
}
my $long = tls_dbh();
my $lpid = $long->selectrow_array('SELECT pg_backend_pid()');
ok($lpid, "long TLS session open, backend $lpid");
my $lworker = $pgm->worker_for($long);
ok($lworker, "long session's worker: $lworker");
my $lround = 0;
sub long_ok {
	my ($what) = @_;
	$lround++;
	my ($pid, $v) = eval { $long->selectrow_array('SELECT pg_backend_pid(), ?::int * 7', undef, $lround) };
	ok(defined $v && $v == 7 * $lround && $pid == $lpid,
		"$what: the long TLS session works, same backend $lpid") or diag($@ || $DBI::errstr);
}

# --- 1. certificate rotation, 7. workers replaced ------------------------------------

{
	# Counters: the stats line after some clients, before the reload.
	$pgm->psql('SELECT 1') for 1 .. 3;
	my $from = length $pgm->log;
	my $before = served_after($from);
	ok(defined $before && $before >= 5, 'stats line before the reload: clients served '
	  . ($before // 'none'));

	wait_until(sub { idle_workers($long) >= 2 }, 5);
	my @old = idle_workers($long);
	cmp_ok(scalar @old, '>=', 2, "idle workers before the reload: @old");
	install_cert("$dir/certB.crt", "$dir/certB.key");
	my $t0 = time;
	reload_ok(body(), '1: rotation to certificate B');
	my ($secs, $n) = replaced(2, @old);
	ok(!grep({ pid_alive($_) } @old),
		sprintf('7: the idle workers of the old generation are gone (%.2f s)', $secs));
	cmp_ok($secs, '<', 3, '7: ... at once (under 3 s)');
	cmp_ok($n, '>=', 2, "7: ... and replaced: $n new workers");
	ok(pid_alive($lworker), '7: the busy worker of the old generation stays');
	is($pgm->worker_for($long), $lworker, '7: ... still serving the long session');

	long_ok('1: after the rotation');
	is(server_cn(), 'b.test', '1: a new TLS client is shown certificate B');
	my ($out, $err, $rc) = psql_verify("$dir/caB.crt");
	is($rc, 0, '1: verify-full against CA B works') or diag($err);
	is($out, 'app', '1: ... and is answered');
	($out, $err, $rc) = psql_verify("$dir/caA.crt");
	isnt($rc, 0, '1: verify-full against CA A fails');
	like($err, qr/certificate verify failed/, '1: ... certificate verify failed') or diag($err);
	long_ok('1: after the new TLS clients');

	$pgm->psql('SELECT 1') for 1 .. 3;
	$from = length $pgm->log;
	my $after = served_after($from, ($before // 0) + 3);
	ok(defined $after && $after >= ($before // 0) + 3,
		"1: the counters survive: clients served $before before, " . ($after // 'none') . ' after');
}

# --- 2. a bad certificate ------------------------------------------------------------

{
	my @w = $pgm->workers;
	write_file($CRT, "this is not a certificate\n" x 5);
	my $log = reload_not(body(), '2: a garbage certificate', qr/reload failed: .*tls\.cert_file/);
	like($log, qr/\Q$CRT\E/, '2: ... the file is named');
	sleep 0.5;
	ok(!grep({ !pid_alive($_) } @w), '2: no worker was retired');
	is(server_cn(), 'b.test', '2: new TLS clients still get certificate B');
	long_ok('2: after the failed reload');

	# B's certificate with A's key.
	install_cert("$dir/certB.crt", "$dir/certA.key");
	reload_not(body(), '2: a key that does not match the certificate',
		qr/reload failed: .*tls\.(?:key|cert)_file/);
	is(server_cn(), 'b.test', '2: after the mismatched key, new TLS clients still get B');

	# Fresh workers fork from the supervisor's memory, not the files.
	my @idle = idle_workers($long);
	kill 'TERM', @idle;
	my ($secs, $n) = replaced(2, @idle);
	cmp_ok($n, '>=', 2, "2: idle workers @idle stopped by hand and replaced ($n new)");
	my @cns = map { server_cn() } 1 .. 4;
	is_deeply(\@cns, [ ('b.test') x 4 ], '2: new workers show certificate B too');
	my ($out, $err, $rc) = psql_verify("$dir/caB.crt");
	is($rc, 0, '2: verify-full against CA B works') or diag($err);
	ok($pgm->alive, '2: the daemon is up');
	install_cert("$dir/certB.crt", "$dir/certB.key");
}

# --- 3. syntax errors --------------------------------------------------------------

{
	my @w = $pgm->workers;
	my $bad = body(pg => $pg2, bad_line => 'client = { login_timeout = 5; idle_timeout = = 2; };');
	my @lines = split /\n/, $LISTEN . $bad;
	my ($lineno) = grep { $lines[$_ - 1] =~ /= = 2/ } 1 .. @lines;
	my $log = reload_not($bad, '3: a syntax error', qr/reload failed/);
	like($log, qr/^.*reload: \Q$CONF\E:$lineno: /m, "3: the log names $CONF:$lineno")
	  or diag($log);
	is(new_port(), $pg1->port, '3: new sessions still reach pg1 (old config)');

	$bad = body(pg => $pg2, bad_line => 'client = { login_timeout = 5; idle_timeut = 2; };');
	$log = reload_not($bad, '3: an unknown setting', qr/reload failed/);
	like($log, qr/reload: \Q$CONF\E:$lineno: .*idle_timeut/, "3: the log names $CONF:$lineno and the setting")
	  or diag($log);
	is(new_port(), $pg1->port, '3: new sessions still reach pg1');
	sleep 0.3;
	ok(!grep({ !pid_alive($_) } @w), '3: no worker was retired');
	long_ok('3: after the failed reloads');
}

# --- 4. refused ----------------------------------------------------------------------

{
	my @w = $pgm->workers;
	reload_not(body(pg => $pg2, users => [ { name => 'app2', password => 'pw2' } ]),
		'4: a users entry added', qr/reload refused: .*restart pgmirror/);
	my ($out, $err, $rc) = $pgm->psql('SELECT 1', user => 'app2', password => 'pw2');
	isnt($rc, 0, '4: the new user cannot log in (old config)');
	is(new_port(), $pg1->port, '4: new sessions still reach pg1');
	reload_not(body(pg => $pg2, max => 17), '4: workers.max changed',
		qr/reload refused: .*restart pgmirror/);
	reload_not(body(pg => $pg2, dbname => 'appdb2'), '4: the databases entry renamed',
		qr/reload refused: .*restart pgmirror/);
	is(new_port(), $pg1->port, '4: new sessions still reach pg1');
	sleep 0.3;
	ok(!grep({ !pid_alive($_) } @w), '4: no worker was retired');
	long_ok('4: after the refused reloads');
}

# --- 5. listen changed ------------------------------------------------------------------

{
	my $p2 = free_port();
	(my $listen2 = $LISTEN) =~ s/ \];/, "127.0.0.1:$p2" ];/;
	my $log = reload_ok(body(reset => 'RESET ALL'), '5: listen changed', listen => $listen2);
	like($log, qr/listen changed.*restart/, '5: the log says listen needs a restart');
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p2, Proto => 'tcp',
		Timeout => 2);
	ok(!$s, "5: nothing listens on the new address 127.0.0.1:$p2");
	is(new_port(), $pg1->port, '5: the old TCP address serves');
	is(new_port(unix => 1), $pg1->port, '5: the old Unix socket serves');
	# The daemon still listens where it did: the same file again is
	# still a change of listen, and the original addresses are none.
	$log = reload_ok(body(), '5: the same changed listen again', listen => $listen2);
	like($log, qr/listen changed.*restart/,
		'5: ... is still logged as needing a restart (127.0.0.1:' . $p2 . ' is not listened on)')
	  or diag($log);
	$log = reload_ok(body(), '5: listen back as it was');
	unlike($log, qr/listen changed/,
		'5: ... is not logged as a change of listen (these are the addresses listened on)')
	  or diag($log);
}

# --- 6. switchover by hand, 7. busy workers -------------------------------------------

{
	my $old = $pgm->dbh;
	my ($oport, $opid) = $old->selectrow_array('SELECT current_setting(\'port\'), pg_backend_pid()');
	is($oport, $pg1->port, '6: the session opened before the switch is on pg1');
	my $oworker = $pgm->worker_for($old);
	reload_ok(body(pg => $pg2), '6: the databases entry on pg2');
	my @ports = map { new_port() } 1 .. 5;
	is_deeply(\@ports, [ ($pg2->port) x 5 ], '6: five new sessions right after the reload reach pg2');
	is(new_port(unix => 1), $pg2->port, '6: ... over the Unix socket too');
	my $tls = tls_dbh();
	is($tls->selectrow_array('SHOW port'), $pg2->port, '6: ... and over TLS');
	$tls->disconnect;
	my ($p, $pid) = $old->selectrow_array('SELECT current_setting(\'port\'), pg_backend_pid()');
	is($p, $pg2->port, '6: the old session moves to pg2 at its next statement');
	isnt($pid, $opid, '6: ... on a new backend');
	$old->do('INSERT INTO rl_t VALUES (-6)');
	is($pg2->psql('SELECT count(*) FROM rl_t WHERE k = -6', db => 'appdb'), 1,
		'6: ... and writes there');
	ok(pid_alive($oworker), '7: its worker (old generation, busy) is alive');
	{
		my ($lp, $np) = eval { $long->selectrow_array('SELECT current_setting(\'port\'), '
		  . 'pg_backend_pid()') };
		is($lp, $pg2->port, '6: after the switch: the long TLS session moved to pg2')
		  or diag($@ || $DBI::errstr);
		$lpid = $np if defined $np;
	}
	long_ok('6: after the switch');
	$old->disconnect;
	ok(wait_until(sub { !pid_alive($oworker) }, 5),
		'7: once its client left, the busy worker of the old generation exits');
	# What pgmirror still holds on pg1 belongs to the long session's
	# worker (its session, and maybe a connection it parked before).
	my @owners;
	ok(wait_until(sub {
		my @ports = split /\n/, $pg1->psql("SELECT client_port FROM pg_stat_activity"
		  . " WHERE usename = 'app' AND backend_type = 'client backend'");
		@owners = map { socket_owner($_, $pg1->port, $pgm->workers) // "none($_)" } @ports;
		!grep { $_ ne $lworker } @owners;
	}, 5), "6: pg1 keeps no connection of ours but the long session's worker's (@owners)")
	  or diag($pg1->psql("SELECT pid, client_port, state, query FROM pg_stat_activity WHERE usename = 'app'"));
	is(new_port(), $pg2->port, '6: new sessions still reach pg2');

	# Back and forth: a session whose connection is made as soon as
	# the reload line is logged belongs to the new generation.
	my (@wrong, $gens);
	for my $i (1 .. 20) {
		my $to = $i % 2 ? $pg1 : $pg2;
		my $log = reload(body(pg => $to));
		my ($g) = $log =~ /configuration reloaded \(generation (\d+)\)/;
		$gens++ if defined $g && $g == $GEN + 1;
		$GEN = $g if defined $g;
		my ($c, $r) = $pgm->raw_login(timeout => 10);
		my $q = $r->{ok} ? $c->query('SHOW port', timeout => 10) : {};
		my $got = $q->{rows} && $q->{rows}[0][0] // 'failed';
		push @wrong, "reload $i (generation " . ($g // '?') . "): port $got, not " . $to->port
		  if $got ne $to->port;
		$c->close;
	}
	is($gens, 20, '6: 20 reloads back and forth between pg1 and pg2, each a new generation');
	is(scalar @wrong, 0, '6: ... a session opened right after each reload line reaches that '
	  . 'generation\'s server (' . scalar(@wrong) . ' of 20 did not)') or diag(join("\n", @wrong));
	is(new_port(), $pg2->port, '6: new sessions reach pg2');
}

# --- 6b. a worker told to leave that wakes late ---------------------------------------
#
# The idle workers are pinned to one CPU, where a real-time busy loop
# keeps them from running for half a second.  Meanwhile the database is
# pointed at pg1 again, the reload line is logged and three clients
# connect.  When the old workers run again they have SIGTERM pending
# and a client waiting: they must leave, not serve it with the config
# of their generation.  Needs two CPUs and the right to use SCHED_FIFO.

SKIP: {
	my (undef, $aff) = run_cmd([ 'taskset', '-cp', $$ ]);
	my @cpus = map { /^(\d+)-(\d+)$/ ? ($1 .. $2) : $_ }
	  split /,/, ($aff // '') =~ /list:\s*(\S+)/ ? $1 : '';
	my ($rt) = run_cmd([ 'chrt', '-f', '1', 'true' ]);
	skip 'needs two CPUs, taskset and chrt -f', 3 unless @cpus >= 2 && $rt == 0;
	my ($cpu_us, $cpu_hog) = @cpus[ 0, 1 ];
	my @idle = idle_workers($long);
	run_cmd([ 'taskset', '-cp', $cpu_us, $_ ]) for $$, $pgm->pid;
	run_cmd([ 'taskset', '-cp', $cpu_hog, $_ ]) for @idle;
	my $hog = start_cmd([ 'chrt', '-f', '50', 'taskset', '-c', $cpu_hog, $^X,
		'-MTime::HiRes=time', '-e', 'my $t = time + 0.6; 1 while time < $t' ]);
	sleep 0.1;
	my $log = reload(body(pg => $pg1));
	my ($g) = $log =~ /configuration reloaded \(generation (\d+)\)/;
	$GEN = $g if defined $g;
	my @c = map {
		my $c = $pgm->raw;
		$c->startup(undef, user => 'app', database => 'appdb');
		$c
	} 1 .. 3;
	$hog->finish;
	run_cmd([ 'taskset', '-cp', join(',', @cpus), $_ ]) for $$, $pgm->pid;
	my @got = map {
		my $r = $_->authenticate(user => 'app', password => 'secret', timeout => 10);
		my $q = $r->{ok} ? $_->query('SHOW port', timeout => 10) : {};
		$_->close;
		$q->{rows} && $q->{rows}[0][0] // 'failed';
	} @c;
	ok(defined $g, "6b: the reload to pg1 was done while old workers @idle could not run");
	is_deeply(\@got, [ ($pg1->port) x 3 ], '6b: the three clients that connected after the '
	  . 'reload line reach pg1 (' . $pg1->port . '), none pg2 (' . $pg2->port . ')')
	  or diag(substr($pgm->log, length($pgm->log) - 3000));
	ok(wait_until(sub { !grep { pid_alive($_) } @idle }, 5), '6b: the old workers are gone');
	reload_ok(body(pg => $pg2), '6b: back to pg2');
}

# --- 8. client.idle_timeout --------------------------------------------------------------

{
	my $before = $pgm->dbh;
	my $bpid = $before->selectrow_array('SELECT pg_backend_pid()');
	reload_ok(body(pg => $pg2, idle => 2), '8: client.idle_timeout 0 -> 2');
	my $t0 = time;
	my ($c, $r) = $pgm->raw_login;
	ok($r->{ok}, '8: a session started after the reload') or diag(explain($r));
	my $q = $c->query('SELECT 1');
	is($q->{rows}[0][0], 1, '8: ... is served');
	my $t1 = time;
	my ($t, $p) = $c->read_msg(6);
	my $el = time - $t1;
	my $f = defined $t && $t eq 'E' ? PgMirrorTest::Raw::parse_fields($p) : {};
	is($f->{C}, '57P05', sprintf('8: ... gets FATAL 57P05 when idle (after %.2f s)', $el))
	  or diag(explain([ $t, $f ]));
	cmp_ok($el, '>=', 1.7, '8: ... not before 2 s');
	cmp_ok($el, '<', 4, '8: ... within ~2 s');
	sleep(3.5 - (time - $t0)) if time - $t0 < 3.5;
	my ($v, $pid) = eval { $before->selectrow_array('SELECT 8, pg_backend_pid()') };
	ok(defined $v && $pid == $bpid,
		sprintf('8: the session opened before the reload is not cut after %.1f s idle', time - $t0))
	  or diag($@);
	long_ok('8: after 3.5 s idle');
	$before->disconnect;
}

# --- 9. SIGHUP during pgbench --------------------------------------------------------

{
	my $script = "$dir/bench.sql";
	write_file($script, "\\set k random(1, 100000)\nINSERT INTO rl_t VALUES (:k);\n"
	  . "SELECT count(*) FROM rl_t WHERE k = :k;\n");
	my $bench = sub {
		my ($what, $T, @extra) = @_;
		my $b = start_cmd([ PgMirrorTest::_bin('pgbench'), '-n', '-h', '127.0.0.1', '-p', $port,
			'-U', 'app', '-c', '4', '-j', '2', '-T', $T, @extra, '-f', $script, 'appdb' ],
			env => { PGPASSWORD => 'secret' }, timeout => 60);
		for my $i (1 .. $T - 1) {
			my $t = time;
			while (time - $t < 1) { $b->running; sleep 0.1 }
			reload_ok(body(pg => $pg2, idle => 2, reset => $i % 2 ? 'RESET ALL' : 'DISCARD ALL'),
				"9: $what, SIGHUP $i");
		}
		my ($rc, $out, $err) = $b->finish;
		is($rc, 0, "9: $what exits 0") or diag("$out\n$err");
		my ($processed, $failed) = pgbench_counts($out);
		cmp_ok($processed // 0, '>', 0, "9: $what: " . ($processed // 0) . ' transactions');
		is($failed, 0, "9: $what: number of failed transactions: 0") or diag($out);
		unlike($err, qr/error|FATAL|abort/i, "9: $what: no errors") or diag($err);
	};
	$bench->('pgbench -c 4 -T 4', 4);
	$bench->('pgbench -C -c 4 -T 3', 3, '-C');
	long_ok('9: after pgbench');
	is(new_port(), $pg2->port, '9: new sessions reach pg2');
}

# --- the end --------------------------------------------------------------------------------

is(server_cn(), 'b.test', 'end: new TLS clients get certificate B');
long_ok('end');
is($pgm->worker_for($long), $lworker, 'end: the long session is still in its first worker');
$long->disconnect;
ok(wait_until(sub { !pid_alive($lworker) }, 5), 'end: which leaves once the session ends');
ok($pgm->alive, 'end: the daemon is up');
unlike($pgm->log, $DEATH, 'end: no worker died');
note(sprintf('140_reload took %.1f s', time - $T0));
done_testing();
