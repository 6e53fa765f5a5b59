# 010_protocol: every protocol path is forwarded transparently: simple and
# multi-statement queries, the extended protocol and pipelines,
# FunctionCall, NoticeResponse, ParameterStatus, errors with their
# SQLSTATE, startup parameters, NOTIFY to an idle listener, CancelRequest,
# SSLRequest/GSSENCRequest and NegotiateProtocolVersion.  Wherever it can,
# the result through pgmirror is compared with the same thing done
# directly against PostgreSQL.

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use IO::Select;
use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $pg = pg_start();
$pg->setup_app;
$pg->psql('CREATE SCHEMA foo AUTHORIZATION app', db => 'appdb');
$pg->psql('CREATE TABLE uniq (id int PRIMARY KEY)', db => 'appdb', user => 'app');
my $pgm = pgm_start($pg);

my %direct = (db => 'appdb', user => 'app', password => 'secret');
my $direct_cs = $pg->connstr(%direct);
my $pgm_cs = $pgm->connstr;

# --- simple query and multi-statement query -------------------------------

is($pgm->psql('SELECT 1'), '1', 'simple query');

my $multi = q{SELECT 1 AS a; CREATE TEMP TABLE mt (x int); INSERT INTO mt VALUES (1), (2);
	SELECT count(*) FROM mt; SELECT 'a' AS x, 'b' AS y};
is($pgm->psql($multi), $pg->psql($multi, %direct),
	'multi-statement query: same output as direct');

my ($out, $err, $rc) = $pgm->psql('SELECT 1; SELECT 1/0; SELECT 3');
my ($dout, $derr, $drc) = $pg->psql('SELECT 1; SELECT 1/0; SELECT 3', %direct);
is($rc, $drc, 'multi-statement query with an error: same exit code as direct');
is($out, $dout, '... same output');
is($err, $derr, '... same error text');

# The raw message stream of a multi-statement query is the same.
{
	my ($c, $r) = $pgm->raw_login;
	ok($r->{ok}, 'raw client logged in through pgmirror') or diag(explain($r));
	my ($d, $dr) = $pg->raw_login;
	my $sql = "SELECT 1 AS one, 'x' AS two; SELECT generate_series(1, 3); "
	  . "SET application_name = 'rawapp'; SHOW application_name";
	my $via = $c->query($sql);
	my $dir = $d->query($sql);
	is_deeply($via->{messages}, $dir->{messages}, 'raw message types identical to direct');
	is_deeply($via->{rows}, $dir->{rows}, 'raw rows identical');
	is_deeply($via->{tags}, $dir->{tags}, 'raw command tags identical');
	is($via->{params}{application_name}, 'rawapp',
		'ParameterStatus application_name forwarded after SET');
	is($via->{status}, 'I', 'ReadyForQuery idle');

	# Transaction status in ReadyForQuery.
	is($c->query('BEGIN')->{status}, 'T', 'ReadyForQuery in transaction: T');
	is($c->query('SELECT 1/0')->{status}, 'E', 'ReadyForQuery in failed transaction: E');
	is($c->query('ROLLBACK')->{status}, 'I', 'ReadyForQuery after ROLLBACK: I');

	# Error fields are forwarded whole.
	my $e1 = $c->query('SELEC 1')->{error};
	my $e2 = $d->query('SELEC 1')->{error};
	is_deeply($e1, $e2, 'ErrorResponse fields identical to direct (syntax error)');
	$c->close;
	$d->close;
}

# --- extended protocol ------------------------------------------------------

{
	my $dbh = $pgm->dbh;
	my $ddb = $pg->dbh(%direct);
	my $sql = 'SELECT $1::int + 1, md5($2::text), $3::text IS NULL';
	my @via = map { [ $dbh->selectrow_array($sql, undef, $_, "v$_", undef) ] } 1 .. 20;
	my @dir = map { [ $ddb->selectrow_array($sql, undef, $_, "v$_", undef) ] } 1 .. 20;
	is_deeply(\@via, \@dir, 'DBD::Pg Parse/Bind/Execute: same results as direct');
	is($via[4][0], 6, '... and the values are right');

	# Unnamed statements (pg_server_prepare off uses Parse/Bind too, unnamed).
	my $sth = $dbh->prepare('SELECT $1::text || $2::text', { pg_server_prepare => 1 });
	$sth->execute('a', 'b');
	is(($sth->fetchrow_array)[0], 'ab', 'named prepared statement');
	$sth->execute('c', 'd');
	is(($sth->fetchrow_array)[0], 'cd', 'named prepared statement re-executed');
	$sth->finish;
	$dbh->disconnect;
	$ddb->disconnect;
}

# pgbench tables, created directly; then the builtin select-only script
# through pgmirror with the extended and the prepared protocol.
{
	my ($irc, undef, $ierr) = run_cmd([ PgMirrorTest::_bin('pgbench'), '-i', '-q', '-s', '1',
		'-h', $pg->host, '-p', $pg->port, '-U', 'app', 'appdb' ],
		env => { PGPASSWORD => 'secret' });
	is($irc, 0, 'pgbench -i directly') or diag($ierr);
}
for my $mode (qw(extended prepared)) {
	my ($prc, $pout, $perr) = $pgm->pgbench([ '-n', '-M', $mode, '-c', '2', '-t', '50',
		'-b', 'select-only' ]);
	is($prc, 0, "pgbench -M $mode select-only exits 0") or diag($perr);
	like($pout, qr/number of transactions actually processed: 100\/100/,
		"pgbench -M $mode: 100 transactions processed");
}

# --- pipelines ----------------------------------------------------------------

for my $n (50, 500) {
	my ($r1, $o1, $e1) = run_cmd([ pqpipe_bin(), 'pipeline', $pgm_cs, $n ]);
	my ($r2, $o2, $e2) = run_cmd([ pqpipe_bin(), 'pipeline', $direct_cs, $n ]);
	is($r1, 0, "pipeline of $n queries through pgmirror succeeds") or diag($e1);
	is($r2, 0, "pipeline of $n queries directly succeeds") or diag($e2);
	is($o1, $o2, "pipeline of $n queries: output identical to direct");
	like($o1, qr/pipeline2 PGRES_TUPLES_OK=1 PGRES_FATAL_ERROR:22012 PGRES_PIPELINE_ABORTED/,
		'error inside a pipeline aborts the rest up to Sync');
}

# --- FunctionCall -----------------------------------------------------------

{
	my ($r1, $o1, $e1) = run_cmd([ pqpipe_bin(), 'fn', $pgm_cs ]);
	my ($r2, $o2, $e2) = run_cmd([ pqpipe_bin(), 'fn', $direct_cs ]);
	is($r1, 0, 'PQfn (FunctionCall) through pgmirror succeeds') or diag($e1);
	is($o1, $o2, 'FunctionCall results identical to direct');
	like($o1, qr/^int4pl=42$/m, 'int4pl(40, 2) = 42 via FunctionCall');
	like($o1, qr/^overflow=PGRES_FATAL_ERROR:22003$/m, 'FunctionCall error keeps SQLSTATE');

	# psql's \lo_import / \lo_export use the fastpath FunctionCall protocol.
	my $dir = PgMirrorTest::tmp_base();
	my $data = join('', map { chr(($_ * 7919) % 256) } 1 .. 300_000);
	write_file("$dir/lo_in", $data);
	my ($o, $e, $r) = $pgm->psql(undef, args => [ '-c', "\\lo_import $dir/lo_in",
		'-c', '\echo :LASTOID' ]);
	is($r, 0, '\lo_import through pgmirror succeeds') or diag($e);
	my ($oid) = $o =~ /(\d+)\s*$/;
	ok($oid, "large object created (oid " . ($oid // 'none') . ')');
	is($pg->psql("SELECT md5(lo_get($oid))", db => 'appdb'), md5_hex($data),
		'large object content correct (checked directly)');
	($o, $e, $r) = $pgm->psql("\\lo_export $oid $dir/lo_out");
	is($r, 0, '\lo_export through pgmirror succeeds') or diag($e);
	is(md5_hex(slurp("$dir/lo_out")), md5_hex($data), '\lo_export wrote the same bytes');
}

# --- NoticeResponse -----------------------------------------------------------

{
	my $do = q{DO $$BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END$$};
	my ($o, $e, $r) = $pgm->psql($do);
	is($r, 0, 'DO block with notices succeeds');
	like($e, qr/NOTICE:  hello 42/, 'NoticeResponse reaches psql');
	like($e, qr/WARNING:  careful/, 'WARNING notice reaches psql');
	my ($c, $res) = $pgm->raw_login;
	my $q = $c->query($do);
	is(scalar @{ $q->{notices} }, 2, 'raw client sees two NoticeResponse messages');
	is($q->{notices}[0]{C}, '00000', 'notice SQLSTATE 00000');
	is($q->{notices}[1]{C}, '01000', 'warning SQLSTATE 01000');
	$c->close;
}

# --- ParameterStatus --------------------------------------------------------

{
	my @sets = ("SET application_name = 'pqpipe-app'", "SET TimeZone = 'Asia/Tokyo'",
		"SET DateStyle = 'SQL, DMY'", "SET IntervalStyle = 'iso_8601'");
	my ($r1, $o1, $e1) = run_cmd([ pqpipe_bin(), 'params', $pgm_cs, @sets ]);
	my ($r2, $o2, $e2) = run_cmd([ pqpipe_bin(), 'params', $direct_cs, @sets ]);
	is($r1, 0, 'pqpipe params through pgmirror') or diag($e1);
	is($o1, $o2, 'every reported ParameterStatus identical to direct');
	like($o1, qr/^application_name=pqpipe-app$/m, 'SET application_name reported');
	like($o1, qr/^TimeZone=Asia\/Tokyo$/m, 'SET TimeZone reported');
	like($o1, qr/^DateStyle=SQL, DMY$/m, 'SET DateStyle reported');

	($r1, $o1) = run_cmd([ pqpipe_bin(), 'params', $pgm_cs ]);
	($r2, $o2) = run_cmd([ pqpipe_bin(), 'params', $direct_cs ]);
	is($o1, $o2, 'initial ParameterStatus set identical to direct');
}

# --- errors keep their SQLSTATE ------------------------------------------------

{
	my $dbh = $pgm->dbh;
	my %cases = (
		'SELECT 1/0'                        => '22012',
		'INSERT INTO uniq VALUES (1), (1)'  => '23505',
		'SELEC 1'                           => '42601',
		'SELECT * FROM no_such_table'       => '42P01',
		"SELECT 'abc'::int"                 => '22P02',
		'SELECT no_such_column FROM uniq'   => '42703',
	);
	for my $sql (sort keys %cases) {
		my $ok = eval { $dbh->do($sql); 1 };
		ok(!$ok, "'$sql' fails");
		is($dbh->state, $cases{$sql}, "'$sql' has SQLSTATE $cases{$sql}");
	}
	$dbh->begin_work;
	eval { $dbh->do('SELECT 1/0') };
	eval { $dbh->do('SELECT 1') };
	is($dbh->state, '25P02', 'statement in a failed transaction: 25P02');
	$dbh->rollback;
	is($dbh->selectrow_array('SELECT 42'), 42, 'session usable after errors');
	$dbh->disconnect;
}

# --- startup parameters ----------------------------------------------------------

{
	my $o = $pgm->psql('SHOW search_path; SHOW work_mem; SHOW application_name',
		env => { PGOPTIONS => '-c search_path=foo -c work_mem=12345kB', PGAPPNAME => 'optapp' });
	is($o, "foo\n12345kB\noptapp", 'PGOPTIONS and PGAPPNAME honoured through pgmirror');
	is($pgm->psql('SHOW work_mem'), $pg->psql('SHOW work_mem'),
		'a client without options sees the default work_mem');

	my @params = (application_name => 'rawapp', DateStyle => 'SQL, DMY',
		TimeZone => 'Europe/Paris', search_path => 'foo, public', client_encoding => 'LATIN1',
		options => '-c work_mem=7777kB -c statement_timeout=12345');
	my $sql = join(', ', map { "current_setting('$_')" }
		qw(application_name DateStyle TimeZone search_path client_encoding work_mem
		  statement_timeout));
	my ($c, $r) = $pgm->raw_login(params => \@params);
	ok($r->{ok}, 'raw login with startup parameters') or diag(explain($r));
	my ($d, $dr) = $pg->raw_login(params => \@params);
	is_deeply($c->query("SELECT $sql")->{rows}, $d->query("SELECT $sql")->{rows},
		'startup parameters give the same settings as direct');
	is_deeply($r->{params}, $dr->{params}, 'startup ParameterStatus set identical to direct');
	is($r->{params}{client_encoding}, 'LATIN1', 'client_encoding from startup reported');
	$c->close;
	$d->close;
}

# --- NOTIFY to an idle listener --------------------------------------------------

{
	my $listener = $pgm->dbh;
	$listener->do('LISTEN chan_a');
	my $sender = $pgm->dbh;
	my $sender_pid = $sender->selectrow_array('SELECT pg_backend_pid()');
	$sender->do(q{NOTIFY chan_a, 'payload one'});
	my $sel = IO::Select->new($listener->{pg_socket});
	my $n;
	my $deadline = time + 5;
	while (!$n && time < $deadline) {
		$sel->can_read(0.2);
		$n = $listener->pg_notifies;
	}
	ok($n, 'idle listener through pgmirror received the notification');
	is($n->[0], 'chan_a', '... on the right channel') if $n;
	is($n->[2], 'payload one', '... with the payload') if $n;
	is($n->[1], $sender_pid, '... from the notifying backend') if $n;

	# A notification from a direct connection reaches it too.
	$pg->psql(q{NOTIFY chan_a, 'from direct'}, db => 'appdb');
	undef $n;
	$deadline = time + 5;
	while (!$n && time < $deadline) {
		$sel->can_read(0.2);
		$n = $listener->pg_notifies;
	}
	is($n && $n->[2], 'from direct', 'notification from a direct session delivered');
	$listener->disconnect;
	$sender->disconnect;

	# Raw: the listener sends nothing after LISTEN and still gets 'A'.
	my ($c) = $pgm->raw_login;
	$c->query('LISTEN chan_raw');
	$pg->psql(q{NOTIFY chan_raw, 'raw payload'}, db => 'appdb');
	my ($t, $p) = $c->read_msg(5);
	is($t, 'A', 'NotificationResponse arrives without the client sending anything');
	like($p // '', qr/chan_raw\0raw payload\0/, '... with channel and payload');
	$c->close;
}

# --- CancelRequest ----------------------------------------------------------------

{
	my ($r1, $o1, $e1) = run_cmd([ pqpipe_bin(), 'cancel', $pgm_cs ], timeout => 60);
	is($r1, 0, 'PQcancel through pgmirror: program succeeds') or diag($e1);
	like($o1, qr/^cancel PGRES_FATAL_ERROR 57014$/m, 'canceled query fails with 57014');
	my ($secs) = $o1 =~ /cancel_seconds ([\d.]+)/;
	ok(defined $secs && $secs < 5, 'cancel took effect quickly (' . ($secs // '?') . ' s)');
	like($o1, qr/^after after$/m, 'session usable after the cancel');
}

# --- SSLRequest, GSSENCRequest, NegotiateProtocolVersion -----------------------------

{
	my $c = $pgm->raw;
	is($c->ssl_request, 'N', 'SSLRequest answered N');
	$c->startup(undef, user => 'app', database => 'appdb');
	my $r = $c->authenticate(user => 'app', password => 'secret');
	ok($r->{ok}, 'startup on the same connection after SSLRequest works');
	$c->close;

	$c = $pgm->raw;
	is($c->ssl_request(gss => 1), 'N', 'GSSENCRequest answered N');
	is($c->ssl_request, 'N', 'then SSLRequest answered N');
	$c->startup(undef, user => 'app', database => 'appdb');
	$r = $c->authenticate(user => 'app', password => 'secret');
	ok($r->{ok}, 'startup after GSSENCRequest and SSLRequest works');
	$c->close;

	my ($v, $vr) = $pgm->raw_login(version => 196609, params => [ '_pq_.foo' => 'bar' ]);
	my ($d, $dr) = $pg->raw_login(version => 196609, params => [ '_pq_.foo' => 'bar' ]);
	ok($dr->{nego}, 'PostgreSQL itself answers 3.1 with NegotiateProtocolVersion');
	is_deeply($vr->{nego}, $dr->{nego},
		'NegotiateProtocolVersion for 3.1 + _pq_.foo identical to PostgreSQL')
	  or diag(explain($vr));
	is($vr->{messages}[0], 'v', "NegotiateProtocolVersion ('v') is the first message");
	is($vr->{messages}[1], 'R', 'followed by an authentication request');
	ok($vr->{ok}, 'login completes after NegotiateProtocolVersion');
	is_deeply($v->query('SELECT 7')->{rows}, [ [7] ], 'and queries work') if $vr->{ok};
	$v->close;
	$d->close;
}

# --- bad input does not hurt the daemon -----------------------------------------

{
	my $c = $pgm->raw;
	$c->send_bytes(pack('N', 3));
	my @m = $c->read_msg(5);
	ok($c->{eof} || (@m && $m[0] eq 'E'), 'startup packet with length 3: error or close');
	$c = $pgm->raw;
	$c->send_bytes(pack('N N', 200_000_000, 196608));
	@m = $c->read_msg(5);
	ok($c->{eof} || (@m && $m[0] eq 'E'), 'startup packet of 200 MB: error or close');
	$c = $pgm->raw;
	$c->send_bytes(pack('N N', 5000, 0x12345678) . join('', map { chr(($_ * 31) % 256) } 1 .. 4992));
	@m = $c->read_msg(5);
	ok($c->{eof} || (@m && $m[0] eq 'E'), 'startup packet with a bogus version: error or close');
	($c) = $pgm->raw_login;
	$c->send_bytes("Q" . pack('N', 2));    # message length below 4
	@m = $c->read_msg(5);
	ok($c->{eof} || (@m && $m[0] eq 'E'), 'message with a bad length after login: error or close');
	is($pgm->psql('SELECT 1'), '1', 'pgmirror still serves clients after bad input');
	ok($pgm->alive, 'pgmirror still running');
}

done_testing();
