# 135_server_auth: pgmirror's own login to servers protects the password
# and authenticates the server.
#
# One cluster with ssl = on (a throwaway CA and a server certificate for
# 127.0.0.1); its pg_hba asks app for a clear-text password (`password`)
# over TCP for database dstdb, and for SCRAM for appdb.
#
#  1. Clear-text password without TLS is refused by default: the client
#     gets FATAL 28000 "pgmirror: login to server failed: server asks for
#     the password in clear text over a connection without TLS ...", psql
#     shows it, and the log names the server, the databases entry and
#     the setting to change.  The same databases entry with
#     allow_cleartext_password = true logs in; so does one with
#     tls_mode = "verify-full" and no setting (pg_stat_ssl: the leg is
#     TLS).  A second daemon with server.allow_cleartext_password = true
#     logs in to an entry without its own setting and refuses one with
#     allow_cleartext_password = false.
#  2. Mirror workers: a mirror appdb -> mdst whose destination asks for
#     a clear-text password: the mirror worker refuses it and logs that
#     the destination refused the session with that reason, and the row
#     does not reach dstdb.  After a reload that sets
#     allow_cleartext_password = true on mdst, the mirror workers restart
#     and a new session's row reaches dstdb.
#  3. Fake servers (Perl, on loopback ports) that speak just enough of
#     the protocol:
#     - clear: asks for a clear-text password and writes down what it
#       got: pgmirror hangs up without sending the password.
#     - good: a correct SCRAM-SHA-256 exchange (4096 iterations, the
#       client's proof checked, the right server signature), then
#       answers every query with one row "fake": the login works and a
#       query through pgmirror returns "fake".  This shows that the
#       fakes below fail for the reason they are built for.
#     - badsig: a SASLFinal with a wrong v= signature, then
#       AuthenticationOk and ReadyForQuery; okonly: AuthenticationOk and
#       ReadyForQuery without any SASLFinal; skipok: ParameterStatus,
#       BackendKeyData and ReadyForQuery with neither; eerr: SASLFinal
#       "e=..." then AuthenticationOk.  Each is refused with FATAL 28000,
#       the log says why (wrong signature, AuthenticationOk without a
#       valid signature, session messages before AuthenticationOk, the
#       server rejected SCRAM), and the fake saw the client-final message
#       first (so the refusal came where it should).
#     - iter_over (100001 iterations, otherwise correct) and iter_huge
#       (2147483647): refused at once, naming the iteration bound, and
#       another client is served meanwhile.
# No worker dies along the way.  The fakes are killed at the end, also
# when the test fails.

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256 sha256);
use IO::Select;
use MIME::Base64 qw(encode_base64 decode_base64);
use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $CLEAR = qr/server asks for the password in clear text over a connection without TLS/;

# --- the cluster -------------------------------------------------------------

my $dir = cert_dir('tls');
make_cert($dir, 'ca', 'pgmirror test CA');
make_cert($dir, 'server', 'localhost', 'ca', 'v3_server');

my $pg = pg_start(ssl => { cert => "$dir/server.crt", key => "$dir/server.key" },
	hba => "host dstdb app 127.0.0.1/32 password");
$pg->setup_app;
$pg->create_db('dstdb', 'app');
$pg->psql('CREATE TABLE t (id int)', db => 'appdb');
$pg->psql('CREATE TABLE t (id int)', db => 'dstdb');
$pg->psql('ALTER TABLE t OWNER TO app', db => $_) for qw(appdb dstdb);
is($pg->psql('SHOW ssl'), 'on', 'cluster: ssl = on');
{
	my ($c, $r) = PgMirrorTest::Raw->login(host => $pg->host, port => $pg->port,
		user => 'app', database => 'dstdb', password => 'secret');
	is($r->{auth}[0], 3, 'cluster: app on dstdb over TCP is asked for a clear-text password');
	ok($r->{ok}, 'cluster: ... and logs in with it directly') or diag(explain($r));
	$c->close;
}

sub no_death {
	my ($m, $what) = @_;
	unlike($m->log, $DEATH, "$what: no worker died") or diag($m->log);
	ok($m->alive, "$what: pgmirror alive");
}

# --- 1. clear-text password towards a real server -----------------------------

my $pgm = pgm_start($pg,
	databases => [
		{ name => 'appdb', database => 'appdb' },
		{ name => 'clear', database => 'dstdb' },
		{ name => 'clear_on', database => 'dstdb', allow_cleartext_password => 'true' },
		{ name => 'clear_tls', database => 'dstdb', tls_mode => 'verify-full' },
		{ name => 'mdst', database => 'dstdb', allow_cleartext_password => 'false' },
	],
	extra => tls_group(ca_file => "$dir/ca.crt") . "\n"
	  . "mirrors = ( { source = \"appdb\"; destination = \"mdst\"; } );");

{
	my $from = length $pgm->log;
	$pgm->login_refused('clear', 'clear-text password without TLS, default', '28000',
		qr/^pgmirror: login to server failed: $CLEAR: refused; set allow_cleartext_password = true in databases entry "clear"/);
	my $port = $pg->port;
	my $log = substr($pgm->log, $from);
	like($log, qr/login to server 127\.0\.0\.1:$port failed: $CLEAR: refused; set allow_cleartext_password = true in databases entry "clear" \(or server\.allow_cleartext_password = true\), or use TLS/,
		'clear-text refused: the log names the server, the databases entry and the settings');
	unlike($log, qr/secret/, 'clear-text refused: the password is not in the log');

	my ($out, $err, $rc) = $pgm->psql('SELECT 1', db => 'clear');
	isnt($rc, 0, 'clear-text refused: psql fails');
	like($err, qr/FATAL:\s+pgmirror: login to server failed: $CLEAR/, 'clear-text refused: psql shows why')
	  or diag($err);

	is($pgm->psql('SELECT current_database(), current_user', db => 'clear_on'), 'dstdb|app',
		'allow_cleartext_password = true in the databases entry: the login works');
	my $ssl = q{SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()};
	is($pgm->psql($ssl, db => 'clear_on'), 'f', '... over a plain connection');
	is($pgm->psql($ssl, db => 'clear_tls'), 't',
		'tls_mode verify-full, no setting: the clear-text login works over TLS');
	is($pgm->psql('SELECT 1', db => 'appdb'), '1', 'a SCRAM database of the same daemon works');
}

{
	my $pgm2 = pgm_start($pg,
		databases => [
			{ name => 'clear', database => 'dstdb' },
			{ name => 'clear_off', database => 'dstdb', allow_cleartext_password => 'false' },
		],
		extra => 'server = { allow_cleartext_password = true; };');
	is($pgm2->psql('SELECT current_database()', db => 'clear'), 'dstdb',
		'server.allow_cleartext_password = true: an entry without its own setting logs in');
	$pgm2->login_refused('clear_off', 'server.allow_cleartext_password = true, entry false',
		'28000', qr/$CLEAR: refused; set allow_cleartext_password = true in databases entry "clear_off"/);
	no_death($pgm2, 'global setting daemon');
	$pgm2->stop;
}

# --- 2. mirror workers ------------------------------------------------------------

{
	my $from = length $pgm->log;
	is($pgm->psql('INSERT INTO t VALUES (1)', db => 'appdb'), '', 'mirror: a row inserted on the source');
	my $log = '';
	ok(wait_until(sub { $log = substr($pgm->log, $from);
		$log =~ /mirror appdb -> mdst: the destination refused session/ }, 15, 0.1),
		'mirror: the mirror worker logs that the destination refused the session');
	like($log, qr/mirror appdb -> mdst: the destination refused session \d+: pgmirror: login to server failed: $CLEAR: refused; set allow_cleartext_password = true in databases entry "mdst".* \(28000\); its transactions are dropped/,
		'mirror: ... because it asks for a clear-text password without TLS') or diag($log);
	sleep 0.5;
	is($pg->psql('SELECT count(*) FROM t', db => 'dstdb'), '0', 'mirror: the row did not reach dstdb');

	my $conf = slurp($pgm->conffile);
	ok($conf =~ s/(name = "mdst";[^\n]*allow_cleartext_password = )false/${1}true/,
		'mirror: config rewritten with allow_cleartext_password = true on mdst');
	write_file($pgm->conffile, $conf);
	$from = length $pgm->log;
	$pgm->kill('HUP');
	ok(wait_until(sub { $log = substr($pgm->log, $from);
		$log =~ /configuration reloaded|reload failed|reload refused/ }, 10, 0.05), 'mirror: reloaded');
	like($log, qr/configuration reloaded/, 'mirror: the new config is taken') or diag($log);
	like($log, qr/what mirror workers connect with changed; they finish what they hold and restart/,
		'mirror: the mirror workers restart for the new setting');
	my $got;
	ok(wait_until(sub {
		$pgm->psql('INSERT INTO t VALUES (2)', db => 'appdb');
		$got = $pg->psql('SELECT count(*) FROM t WHERE id = 2', db => 'dstdb');
		$got ne '0' }, 20, 0.5),
		'mirror: after the reload a new session\'s row reaches dstdb');
	is($pg->psql('SELECT count(*) FROM t WHERE id = 1', db => 'dstdb'), '0',
		'mirror: the refused session\'s row never did');
}
no_death($pgm, 'first daemon');
$pgm->stop;

# --- 3. fake servers --------------------------------------------------------------

my $PASSWORD = 'secret';
my $FAKELOG = "$dir/fake.log";

# Appends a line to the fakes' log.
sub fake_note {
	open(my $fh, '>>', $FAKELOG) or die "$FAKELOG: $!";
	print $fh "@_\n";
	close $fh;
}

# Reads exactly $n bytes from $c (undef on EOF or after 10 s).
sub fake_read {
	my ($c, $n) = @_;
	my $b = '';
	my $sel = IO::Select->new($c);
	while (length $b < $n) {
		return undef unless $sel->can_read(10);
		my $r = sysread($c, $b, $n - length $b, length $b);
		return undef unless $r;
	}
	return $b;
}

# Reads one typed message: ($type, $body), or () on EOF.
sub fake_msg {
	my ($c) = @_;
	my $h = fake_read($c, 5) // return ();
	my ($t, $len) = unpack('a N', $h);
	my $body = $len > 4 ? fake_read($c, $len - 4) : '';
	return defined $body ? ($t, $body) : ();
}

sub fake_send {
	my ($c, $t, $body) = @_;
	syswrite($c, $t . pack('N', 4 + length $body) . $body);
}

sub fake_auth { fake_send($_[0], 'R', pack('N', $_[1]) . ($_[2] // '')) }

# AuthenticationOk (unless $no_ok), a few ParameterStatus,
# BackendKeyData, ReadyForQuery.
sub fake_ready {
	my ($c, $no_ok) = @_;
	fake_auth($c, 0) unless $no_ok;
	for my $p ([ server_version => '16.0' ], [ server_encoding => 'UTF8' ],
		[ client_encoding => 'UTF8' ], [ DateStyle => 'ISO, MDY' ],
		[ integer_datetimes => 'on' ], [ standard_conforming_strings => 'on' ]) {
		fake_send($c, 'S', "$p->[0]\0$p->[1]\0");
	}
	fake_send($c, 'K', pack('N N', 4242, 1234));
	fake_send($c, 'Z', 'I');
}

# One connection of fake server $how (see the header).
sub fake_session {
	my ($c, $how) = @_;
	my $len = unpack('N', fake_read($c, 4) // return);
	my $startup = fake_read($c, $len - 4) // return;
	if (unpack('N', $startup) == 80877103) {	# SSLRequest
		syswrite($c, 'N');
		$len = unpack('N', fake_read($c, 4) // return);
		$startup = fake_read($c, $len - 4) // return;
	}
	if ($how eq 'clear') {
		fake_auth($c, 3);
		my ($t, $body) = fake_msg($c);
		fake_note($how, defined $t ? "got a password message: $body" : 'got no password');
		return;
	}
	my $iter = { iter_over => 100001, iter_huge => 2147483647 }->{$how} // 4096;
	fake_auth($c, 10, "SCRAM-SHA-256\0\0");
	my ($t, $body) = fake_msg($c);
	return unless defined $t && $t eq 'p';
	my ($mech, $rest) = split /\0/, $body, 2;
	my $cf = substr($rest, 4);
	my ($cfb) = $cf =~ /^[^,]*,[^,]*,(.*)$/s;
	my ($cnonce) = $cfb =~ /r=([^,]+)/;
	my $salt = 'fake-salt-16byte';
	my $sf = "r=${cnonce}FakeServerNonce,s=" . encode_base64($salt, '') . ",i=$iter";
	fake_auth($c, 11, $sf);
	($t, $body) = fake_msg($c);
	if (!defined $t) {
		fake_note($how, 'no client-final');
		return;
	}
	fake_note($how, 'client-final');
	my ($cfwop, $proof) = $body =~ /^(.*),p=([^,]+)$/s;
	my $am = "$cfb,$sf,$cfwop";
	my $salted = PgMirrorTest::Raw::_hi($PASSWORD, $salt, $iter);
	my $client_key = hmac_sha256('Client Key', $salted);
	my $server_key = hmac_sha256('Server Key', $salted);
	my $proof_ok = (decode_base64($proof // '') ^ hmac_sha256($am, sha256($client_key))) eq $client_key;
	fake_note($how, $proof_ok ? 'proof ok' : 'proof wrong');
	if ($how eq 'badsig') {
		fake_auth($c, 12, 'v=' . encode_base64(hmac_sha256($am, 'not the server key'), ''));
	} elsif ($how eq 'eerr') {
		fake_auth($c, 12, 'e=invalid-proof');
	} elsif ($how ne 'okonly' && $how ne 'skipok') {
		fake_auth($c, 12, 'v=' . encode_base64(hmac_sha256($am, $server_key), ''));
	}
	fake_ready($c, $how eq 'skipok');
	while (my ($qt, $q) = fake_msg($c)) {
		last if $qt eq 'X';
		next unless $qt eq 'Q';
		fake_note($how, "query $q");
		fake_send($c, 'T', pack('n', 1) . "fake\0" . pack('N n N n N n', 0, 0, 25, -1, -1, 0));
		fake_send($c, 'D', pack('n N', 1, 4) . 'fake');
		fake_send($c, 'C', "SELECT 1\0");
		fake_send($c, 'Z', 'I');
	}
	fake_note($how, 'closed');
}

# Starts fake server $how on a free loopback port (a child per
# connection); returns the port.
sub fake_server {
	my ($how) = @_;
	return fork_server(sub { fake_session($_[0], $how) }, fork_each => 1);
}

{
	my @hows = qw(clear good badsig okonly skipok eerr iter_over iter_huge);
	my %port = map { $_ => fake_server($_) } @hows;
	my $m = pgm_start($pg,
		databases => [ { name => 'appdb', database => 'appdb' },
			map { { name => "fake_$_", database => 'appdb', host => '127.0.0.1',
				port => $port{$_} } } @hows ]);
	my $notes = sub { my ($how) = @_; join(',', map { /^\Q$how\E (.*)$/ ? $1 : () }
		split /\n/, slurp($FAKELOG)) };

	# clear: no password for a fake server.
	$m->login_refused('fake_clear', 'fake server asking for a clear-text password', '28000',
		qr/$CLEAR/);
	ok(wait_until(sub { $notes->('clear') ne '' }, 5, 0.05), 'fake clear: the fake is done');
	is($notes->('clear'), 'got no password', 'fake clear: it never got the password');

	# good: the fakes speak SCRAM correctly.
	{
		my ($c, $r) = $m->raw_login(database => 'fake_good', timeout => 20);
		ok($r->{ok}, 'fake good: the login through pgmirror works') or diag(explain($r));
		my $q = $c->query('SELECT 1');
		is($q->{rows}[0][0], 'fake', 'fake good: the query reached the fake');
		$c->close;
		like($notes->('good'), qr/^client-final,proof ok,query SELECT 1/,
			'fake good: pgmirror\'s proof was right');
	}

	my %case = (
		badsig => [ 'a wrong server signature',
			qr/wrong SCRAM server signature: the server did not prove that it knows the password/ ],
		okonly => [ 'AuthenticationOk without a SASLFinal',
			qr/server sent AuthenticationOk without a valid SCRAM server signature/ ],
		skipok => [ 'ReadyForQuery without SASLFinal or AuthenticationOk',
			qr/server sent session messages before AuthenticationOk/ ],
		eerr => [ 'a SASLFinal with e=', qr/server rejected SCRAM authentication/ ],
	);
	for my $how (qw(badsig okonly skipok eerr)) {
		my ($what, $re) = @{ $case{$how} };
		my $from = length $m->log;
		$m->login_refused("fake_$how", "fake $how: $what", '28000',
			qr/^pgmirror: login to server failed: $re/);
		like(substr($m->log, $from), qr/login to server 127\.0\.0\.1:$port{$how} failed: $re/,
			"fake $how: the log says why");
		ok(wait_until(sub { $notes->($how) =~ /closed/ }, 5, 0.05),
			"fake $how: pgmirror hung up on it");
		is($notes->($how), 'client-final,proof ok,closed',
			"fake $how: refused after the client-final, no query sent");
	}

	for my $how (qw(iter_over iter_huge)) {
		my $from = length $m->log;
		my $bg = $m->psql_bg('SELECT 1', db => "fake_$how", timeout => 30);
		my $t = time;
		is($m->psql('SELECT 42', db => 'appdb'), '42', "fake $how: another client is served meanwhile");
		my ($rc, $out, $err) = $bg->finish;
		my $secs = time - $t;
		isnt($rc, 0, "fake $how: refused");
		like($err, qr/pgmirror: login to server failed: server asks for more SCRAM iterations than pgmirror runs \(100000\)/,
			"fake $how: the client is told of the iteration bound") or diag($err);
		cmp_ok($secs, '<', 3, sprintf("fake $how: at once (%.1f s)", $secs));
		like(substr($m->log, $from), qr/login to server 127\.0\.0\.1:$port{$how} failed: server asks for more SCRAM iterations/,
			"fake $how: logged");
		ok(wait_until(sub { $notes->($how) ne '' }, 5, 0.05), "fake $how: the fake is done");
		is($notes->($how), 'no client-final', "fake $how: no client-final was sent");
	}
	no_death($m, 'fake servers daemon');
	$m->stop;
}

done_testing();
