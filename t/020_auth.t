# 020_auth: authentication on both sides.  Towards the client, each
# auth_type (scram-sha-256, md5, trust; global default and per-user
# override) accepts the right password and rejects a wrong one with 28P01,
# whether the users entry holds the password in plain text, as an md5
# verifier or as a SCRAM verifier.  Towards the server, pgmirror logs in
# whatever the server asks: SCRAM, md5, cleartext password, trust.  The
# cleartext password goes over a connection without TLS here, so database
# bdb allows it (allow_cleartext_password = true; 135_server_auth tests
# the refusal without it).
# Unknown users get 28000, unknown databases 3D000.

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use PgMirrorTest;
use Test::More;

# Cluster A asks for SCRAM on TCP.
my $pga = pg_start(auth_host => 'scram-sha-256');
$pga->setup_app;
$pga->create_role('u_scram_plain', 'pw1');
$pga->create_role('u_md5_plain', 'pw2');
$pga->create_role('u_trust', 'pw3');
$pga->create_role('u_scram_verifier', 'pw4');
$pga->create_role('u_badsrv', 'the-real-one');
my $scram_verifier = $pga->password_of('u_scram_verifier');
like($scram_verifier, qr/^SCRAM-SHA-256\$4096:/, 'got a SCRAM verifier from pg_authid');

# Cluster B asks for md5 (roles stored as md5), cleartext for one role and
# trusts another.
my $pgb = pg_start(auth_host => 'md5', password_encryption => 'md5',
	hba => "host all u_cleartext 127.0.0.1/32 password\n"
	  . "host all u_trustsrv 127.0.0.1/32 trust");
$pgb->create_role('app', 'secret', encryption => 'md5');
$pgb->create_db('appdb', 'app');
$pgb->create_role('u_md5_verifier', 'pw5', encryption => 'md5');
$pgb->create_role('u_plain_md5srv', 'pw6', encryption => 'md5');
$pgb->create_role('u_cleartext', 'pw7', encryption => 'md5');
$pgb->create_role('u_trustsrv', undef);
like($pgb->password_of('u_md5_verifier'), qr/^md5[0-9a-f]{32}$/, 'cluster B stores md5');

my $md5_verifier = 'md5' . md5_hex('pw5' . 'u_md5_verifier');
is($pgb->password_of('u_md5_verifier'), $md5_verifier, 'md5 verifier computed as PostgreSQL does');

my $pgm = pgm_start($pga,
	databases => [
		{ name => 'appdb', database => 'appdb' },
		{ name => 'bdb', database => 'appdb', pg => $pgb, allow_cleartext_password => 'true' },
	],
	users => [
		{ name => 'u_scram_plain', password => 'pw1' },
		{ name => 'u_md5_plain', password => 'pw2', auth_type => 'md5' },
		{ name => 'u_trust', password => 'pw3', auth_type => 'trust' },
		{ name => 'u_scram_verifier', password => $scram_verifier, database => 'appdb' },
		{ name => 'u_badsrv', password => 'not-the-server-one' },
		{ name => 'u_md5_verifier', password => $md5_verifier, auth_type => 'md5',
		  database => 'bdb' },
		{ name => 'u_plain_md5srv', password => 'pw6', database => 'bdb' },
		{ name => 'u_cleartext', password => 'pw7', database => 'bdb' },
		{ name => 'u_trustsrv', password => 'pw8', database => 'bdb' },
	]);

# name, database, right password, expected first auth request code,
# what the server asks (for the test name)
my @cases = (
	[ 'u_scram_plain',    'appdb', 'pw1', 10, 'client scram, plain, server scram' ],
	[ 'u_md5_plain',      'appdb', 'pw2', 5,  'client md5, plain, server scram' ],
	[ 'u_trust',          'appdb', 'pw3', 0,  'client trust, plain, server scram' ],
	[ 'u_scram_verifier', 'appdb', 'pw4', 10, 'client scram, SCRAM verifier, server scram' ],
	[ 'u_md5_verifier',   'bdb',   'pw5', 5,  'client md5, md5 verifier, server md5' ],
	[ 'u_plain_md5srv',   'bdb',   'pw6', 10, 'client scram, plain, server md5' ],
	[ 'u_cleartext',      'bdb',   'pw7', 10, 'client scram, plain, server cleartext password' ],
	[ 'u_trustsrv',       'bdb',   'pw8', 10, 'client scram, plain, server trust' ],
);

for my $c (@cases) {
	my ($user, $db, $pw, $code, $what) = @$c;

	# A real client with the right password.
	my ($out, $err, $rc) = $pgm->psql('SELECT current_user, current_database()',
		user => $user, db => $db, password => $pw);
	is($rc, 0, "$what: psql with the right password succeeds") or diag($err);
	is($out, "$user|appdb", "$what: session runs as $user on the server");

	# The protocol-level view: which request, and the outcome.
	my ($conn, $r) = $pgm->raw_login(user => $user, database => $db, password => $pw);
	is($r->{auth}[0], $code, "$what: first authentication request is $code");
	ok($r->{ok}, "$what: raw login succeeds") or diag(explain($r));
	if ($code == 10) {
		ok((grep { $_ eq 'SCRAM-SHA-256' } @{ $r->{mechanisms} || [] }),
			"$what: SCRAM-SHA-256 offered");
		is($r->{server_signature_ok}, 1, "$what: server signature verifies");
	}
	$conn->close;

	# A wrong password.
	($conn, $r) = $pgm->raw_login(user => $user, database => $db, password => "bad-$pw");
	if ($code == 0) {
		ok($r->{ok}, "$what: trust lets any password in");
	} else {
		ok(!$r->{ok}, "$what: wrong password rejected");
		is($r->{error}{C}, '28P01', "$what: wrong password gives 28P01");
		is($r->{error}{S}, 'FATAL', "$what: as FATAL");
		is($r->{error}{M}, qq{password authentication failed for user "$user"},
			"$what: message worded like PostgreSQL");
		($out, $err, $rc) = $pgm->psql('SELECT 1', user => $user, db => $db,
			password => "bad-$pw");
		isnt($rc, 0, "$what: psql with a wrong password fails");
		like($err, qr/password authentication failed for user "$user"/,
			"$what: psql shows the reason");
	}
	$conn->close;
}

# No password at all, when one is required.
{
	my ($out, $err, $rc) = $pgm->psql('SELECT 1', user => 'u_scram_plain',
		env => { PGPASSWORD => undef });
	isnt($rc, 0, 'no password: psql fails');
	like($err, qr/password/i, 'no password: psql says a password is needed');
	ok($pgm->alive, 'pgmirror alive after a client gave up during authentication');
}

# Unknown user and unknown database.
{
	my ($c, $r) = $pgm->raw_login(user => 'nosuch', database => 'appdb', password => 'x');
	ok(!$r->{ok}, 'unknown user rejected');
	is($r->{error}{C}, '28000', 'unknown user: 28000');
	is($r->{error}{M}, 'role "nosuch" does not exist', 'unknown user: PostgreSQL wording');
	$c->close;

	($c, $r) = $pgm->raw_login(user => 'u_scram_plain', database => 'nosuch', password => 'pw1');
	ok(!$r->{ok}, 'unknown database rejected');
	is($r->{error}{C}, '3D000', 'unknown database: 3D000');
	is($r->{error}{M}, 'database "nosuch" does not exist', 'unknown database: PostgreSQL wording');
	$c->close;

	my ($out, $err, $rc) = $pgm->psql('SELECT 1', db => 'nosuch', user => 'u_scram_plain',
		password => 'pw1');
	like($err, qr/database "nosuch" does not exist/, 'psql shows the unknown database');

	# A users entry bound to one database does not apply to another.
	($c, $r) = $pgm->raw_login(user => 'u_md5_verifier', database => 'appdb', password => 'pw5');
	ok(!$r->{ok}, 'user bound to database bdb cannot log in to appdb');
	like($r->{error}{C} // '', qr/^28(000|P01)$/, '... with an authentication error')
	  or diag(explain($r));
	$c->close;
}

# The server refuses the configured password: the client gets an error,
# and pgmirror carries on.
{
	my ($c, $r) = $pgm->raw_login(user => 'u_badsrv', database => 'appdb',
		password => 'not-the-server-one');
	ok(!$r->{ok}, 'server rejects the configured password: client login fails');
	ok($r->{error}, '... with an ErrorResponse') or diag(explain($r));
	$c->close;
	is($pgm->psql('SELECT 1', user => 'u_scram_plain', password => 'pw1'), '1',
		'pgmirror still serves other users');
}

# Global auth_type, with per-user overrides.
{
	my $pgm2 = pgm_start($pga, auth_type => 'md5',
		users => [
			{ name => 'u_scram_plain', password => 'pw1' },
			{ name => 'u_md5_plain', password => 'pw2', auth_type => 'scram-sha-256' },
			{ name => 'u_trust', password => 'pw3', auth_type => 'trust' },
		]);
	my ($c, $r) = $pgm2->raw_login(user => 'u_scram_plain', password => 'pw1');
	is($r->{auth}[0], 5, 'global auth_type md5 applies to a user without override');
	ok($r->{ok}, '... and the login works');
	$c->close;
	($c, $r) = $pgm2->raw_login(user => 'u_md5_plain', password => 'pw2');
	is($r->{auth}[0], 10, 'per-user scram-sha-256 overrides the global md5');
	ok($r->{ok}, '... and the login works');
	$c->close;
	($c, $r) = $pgm2->raw_login(user => 'u_trust', password => 'whatever');
	is($r->{auth}[0], 0, 'per-user trust: AuthenticationOk at once');
	ok($r->{ok}, '... and the session is usable');
	$c->close;
	$pgm2->stop;

	my $pgm3 = pgm_start($pga, auth_type => 'trust',
		users => [ { name => 'u_scram_plain', password => 'pw1' } ]);
	my ($out, $err, $rc) = $pgm3->psql('SELECT current_user', user => 'u_scram_plain',
		env => { PGPASSWORD => undef });
	is($rc, 0, 'global trust: psql without a password works') or diag($err);
	is($out, 'u_scram_plain', '... logged in to the server with the configured password');
	$pgm3->stop;
}

ok($pgm->alive, 'pgmirror still running');
done_testing();
