# 130_tls_server: TLS between pgmirror and PostgreSQL servers
# (tls.server_mode, databases.tls_mode, tls.ca_file, tls.server_cert_file
# and tls.server_key_file).
#
# A throwaway CA, a server certificate for DNS:localhost and IP:127.0.0.1,
# one for DNS:localhost only, a client certificate (CN=certuser) and a
# second CA are made with the openssl CLI.  Three clusters: A with
# ssl = on (the full certificate, ssl_ca_file = the CA, and
# `hostssl all certuser 127.0.0.1/32 cert`), B with ssl = on (the
# certificate without the IP) whose pg_hba takes TCP clients over TLS
# only, C with ssl = off.  Whether a session's server leg is TLS is read
# from pg_stat_ssl on the server: it describes the connection pgmirror
# made.
#
#  1. `pgmirror -n`: a missing tls.ca_file fails naming it when a
#     database uses verify-ca (through tls.server_mode or tls_mode);
#     a missing server certificate, and server_cert_file without
#     server_key_file, fail naming the setting.
#  2. tls.server_mode against A: disable and allow plain; prefer,
#     require, verify-ca and verify-full (host 127.0.0.1 by its IP SAN,
#     host "localhost" by its DNS SAN) over TLS 1.2+.
#  3. One daemon, databases.tls_mode per entry: an entry without
#     tls_mode follows tls.server_mode; verify-full to 127.0.0.1 against
#     B's certificate (no IP SAN) fails with 08006 naming TLS, while
#     verify-full with host "localhost" and verify-ca to B work and the
#     tls_mode = "disable" entry keeps working; require against C fails
#     with 08006 "does not support SSL", prefer against C works in plain;
#     B (hostssl only): prefer works, disable gets B's own FATAL 28000;
#     an entry on a Unix socket directory is plain even with
#     verify-full; certuser without a client certificate gets A's FATAL.
#  4. tls.ca_file = another CA: verify-ca and verify-full fail with
#     08006 and a certificate verification reason, require (which does
#     not verify) works, a disable entry keeps working.  Without
#     tls.ca_file (system CAs), verify-ca to the test CA fails.
#  5. tls.server_cert_file/server_key_file: A's cert method logs
#     certuser in (pg_stat_ssl.client_dn = /CN=certuser), and SCRAM users
#     keep working on the same daemon.
#     A host name not in the certificate (another name of 127.0.0.1 in
#     /etc/hosts, when there is one) fails verify-full, passes verify-ca.
#  6. TLS on both legs (client sslmode=require, server_mode require): a
#     20 MB value round trip with identical md5; parked TLS server
#     connections are reused; a cancel reaches a query on a TLS server
#     connection; pgbench -S -c 4 -T 3 with zero failed transactions,
#     every pgbench backend over TLS.
#  7. Fake servers: one that answers the SSLRequest 'S' and then stalls
#     is given up after server.connect_timeout while other clients are
#     served; 'S' then non-TLS bytes, a hang-up, an answer other than
#     S/N: each refused at once with 08006.  The server_name (SNI) of the
#     ClientHello, read by a fake server: the host name in every mode, no
#     IP address (as libpq).
#
# After 'N' in require mode pgmirror just closes: the server never sees
# a message it would read as a startup packet.
#
# No worker dies along the way.

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time);

my $T0 = time;
my $dir = cert_dir('tls');

# --- certificates ------------------------------------------------------------

make_cert($dir, 'ca', 'pgmirror test CA');
make_cert($dir, 'server', 'localhost', 'ca', 'v3_server');
make_cert($dir, 'servernoip', 'localhost', 'ca', 'v3_server_noip');
make_cert($dir, 'certuser', 'certuser', 'ca', 'v3_client');
make_cert($dir, 'otherca', 'untrusted test CA');
{
	my $t = openssl_run($dir, 'x509', '-in', "$dir/server.crt", '-noout', '-text');
	like($t, qr/DNS:localhost, IP Address:127\.0\.0\.1/,
		'server certificate has DNS:localhost and IP:127.0.0.1');
	$t = openssl_run($dir, 'x509', '-in', "$dir/servernoip.crt", '-noout', '-text');
	ok($t =~ /DNS:localhost/ && $t !~ /IP Address/,
		'second server certificate has DNS:localhost and no IP');
	my ($rc) = run_cmd([ 'openssl', 'verify', '-CAfile', "$dir/ca.crt", "$dir/server.crt",
		"$dir/servernoip.crt", "$dir/certuser.crt" ]);
	is($rc, 0, 'the certificates verify against the CA');
}
my %F = map { $_ => "$dir/$_" } qw(ca.crt server.crt server.key servernoip.crt
  servernoip.key certuser.crt certuser.key otherca.crt);

# --- 1. pgmirror -n -------------------------------------------------------------

{
	my $bin = pgmirror_bin();
	my $n = 0;
	# Runs pgmirror -n; the tls group is line 2, the databases line 3.
	my $check = sub {
		my ($tls, $dbextra) = @_;
		my $f = "$dir/check" . (++$n) . '.conf';
		write_file($f, join("\n",
			'listen = [ "127.0.0.1:16432" ];',
			tls_group(%$tls),
			'databases = ( { name = "appdb"; host = "127.0.0.1"; port = 5432; '
			  . 'database = "appdb";' . ($dbextra // '') . ' } );',
			'users = ( { name = "app"; password = "secret"; } );') . "\n");
		my ($rc, $out, $err) = run_cmd([ $bin, '-n', '-c', $f ], timeout => 20);
		return ($rc, $out . $err, $f);
	};
	my $fails = sub {
		my ($what, $re, $tls, $dbextra) = @_;
		my ($rc, $out, $f) = $check->($tls, $dbextra);
		isnt($rc, 0, "-n, $what: fails") or diag($out);
		like($out, qr/^\Q$f\E:\d+: .*$re/m, "-n, $what: a FILE:LINE line matching $re")
		  or diag($out);
		unlike($out, qr/configuration OK/, "-n, $what: no 'configuration OK'");
		return $out;
	};
	my $missing = "$dir/nosuch-ca.crt";

	my ($rc, $out) = $check->({ server_mode => 'verify-ca', ca_file => $F{'ca.crt'} });
	is($rc, 0, '-n, server_mode verify-ca with an existing ca_file: exit 0') or diag($out);
	$out = $fails->('server_mode verify-ca, missing ca_file', qr/tls\.ca_file/,
		{ server_mode => 'verify-ca', ca_file => $missing });
	like($out, qr/\Q$missing\E/, '-n, missing ca_file: the path is named');
	$fails->('tls_mode = "verify-ca" in a database entry, missing ca_file', qr/tls\.ca_file/,
		{ ca_file => $missing }, ' tls_mode = "verify-ca";');
	$fails->('server_mode verify-full, missing ca_file', qr/tls\.ca_file/,
		{ server_mode => 'verify-full', ca_file => $missing });
	$fails->('missing server_cert_file', qr/tls\.server_cert_file/,
		{ server_mode => 'require', server_cert_file => "$dir/nosuch.crt",
		  server_key_file => $F{'certuser.key'} });
	$fails->('server_cert_file without server_key_file', qr/tls\.server_(?:cert|key)_file/,
		{ server_mode => 'require', server_cert_file => $F{'certuser.crt'} });
	$fails->('server_key_file does not match server_cert_file', qr/tls\.server_key_file/,
		{ server_mode => 'require', server_cert_file => $F{'certuser.crt'},
		  server_key_file => $F{'server.key'} });
	$fails->('databases.tls_mode "bogus"', qr/tls_mode/, {}, ' tls_mode = "bogus";');
}

# --- clusters -----------------------------------------------------------------------

my $pgA = pg_start(ssl => { cert => $F{'server.crt'}, key => $F{'server.key'},
	ca => $F{'ca.crt'} }, hba => 'hostssl all certuser 127.0.0.1/32 cert');
$pgA->setup_app;
$pgA->create_role('certuser', undef);
$pgA->psql('GRANT CONNECT ON DATABASE appdb TO certuser');
my $pgB = pg_start(ssl => { cert => $F{'servernoip.crt'}, key => $F{'servernoip.key'} },
	hba_hostssl => 1);
$pgB->setup_app;
my $pgC = pg_start();
$pgC->setup_app;
is($pgA->psql('SHOW ssl'), 'on', 'cluster A: ssl = on');
is($pgB->psql('SHOW ssl'), 'on', 'cluster B: ssl = on');
is($pgC->psql('SHOW ssl'), 'off', 'cluster C: ssl = off');
like(PgMirrorTest::slurp("$pgB->{data}/pg_hba.conf"), qr/^hostssl\s+all\s+all\s+127\.0\.0\.1\/32/m,
	'cluster B: pg_hba takes TCP clients over TLS only');
unlike(PgMirrorTest::slurp("$pgB->{data}/pg_hba.conf"), qr/^host\s/m,
	'cluster B: no plain host line left');

# --- helpers --------------------------------------------------------------------

my $SSLQ = 'SELECT ssl, coalesce(version, \'\') FROM pg_stat_ssl WHERE pid = pg_backend_pid()';

# Asks, through $m, how the server sees the connection: returns 't|TLSv1.3'
# style text, or 'ERROR: ...' on failure.
sub server_leg {
	my ($m, %o) = @_;
	my ($out, $err, $rc) = $m->psql($o{sql} // $SSLQ, %o, timeout => 30);
	return $rc == 0 ? $out : "ERROR(rc=$rc): $err";
}

sub leg_tls {
	my ($m, $what, %o) = @_;
	like(server_leg($m, %o), qr/^t\|TLSv1\.[23]$/, "$what: the server leg is TLS 1.2+");
}

sub leg_plain {
	my ($m, $what, %o) = @_;
	is(server_leg($m, %o), 'f|', "$what: the server leg is plain");
}

sub tls_refused {
	my ($m, $db, $what, $re) = @_;
	return $m->login_refused($db, $what, '08006',
		qr/^pgmirror: TLS to the server of database "\Q$db\E" failed: .*$re/);
}

sub no_death {
	my ($m, $what) = @_;
	ok($m->alive, "$what: daemon alive");
	unlike($m->log, $DEATH, "$what: no worker died") or diag($m->log);
}

# --- 2. tls.server_mode against cluster A ----------------------------------------------

for my $mode (qw(disable allow prefer require verify-ca verify-full)) {
	my $m = pgm_start($pgA, extra => tls_group(server_mode => $mode, ca_file => $F{'ca.crt'}));
	if ($mode eq 'disable' || $mode eq 'allow') {
		leg_plain($m, "server_mode $mode");
	} else {
		leg_tls($m, "server_mode $mode" . ($mode eq 'verify-full' ? ', host 127.0.0.1' : ''));
	}
	is($m->psql('SELECT current_user'), 'app', "server_mode $mode: queries answered");
	no_death($m, "server_mode $mode");
	$m->stop;
}
{
	my $m = pgm_start($pgA, extra => tls_group(server_mode => 'verify-full', ca_file => $F{'ca.crt'}),
		databases => [ { name => 'appdb', database => 'appdb', host => 'localhost' } ]);
	leg_tls($m, 'server_mode verify-full, host "localhost"');
	no_death($m, 'server_mode verify-full, host "localhost"');
	$m->stop;
}

# --- 3. databases.tls_mode, one daemon ---------------------------------------------

my $mixed = pgm_start($pgA,
	extra => tls_group(server_mode => 'require', ca_file => $F{'ca.crt'}),
	databases => [
		{ name => 'appdb', database => 'appdb', tls_mode => 'disable' },
		{ name => 'inherit', database => 'appdb' },
		{ name => 'b_vfull_ip', database => 'appdb', pg => $pgB, tls_mode => 'verify-full' },
		{ name => 'b_vfull_name', database => 'appdb', pg => $pgB, host => 'localhost',
		  tls_mode => 'verify-full' },
		{ name => 'b_vca', database => 'appdb', pg => $pgB, tls_mode => 'verify-ca' },
		{ name => 'b_prefer', database => 'appdb', pg => $pgB, tls_mode => 'prefer' },
		{ name => 'b_disable', database => 'appdb', pg => $pgB, tls_mode => 'disable' },
		{ name => 'c_require', database => 'appdb', pg => $pgC, tls_mode => 'require' },
		{ name => 'c_prefer', database => 'appdb', pg => $pgC, tls_mode => 'prefer' },
		{ name => 'c_inherit', database => 'appdb', pg => $pgC },
		{ name => 'a_unix', database => 'appdb', host => $pgA->sockdir,
		  tls_mode => 'verify-full' },
	],
	users => [ { name => 'app', password => 'secret' },
		{ name => 'certuser', auth_type => 'trust' } ]);

leg_plain($mixed, 'tls_mode disable (tls.server_mode require)');
leg_tls($mixed, 'no tls_mode: tls.server_mode require applies', db => 'inherit');

tls_refused($mixed, 'b_vfull_ip', 'verify-full, host 127.0.0.1, certificate without the IP',
	qr/mismatch/i);
like($mixed->log, qr/TLS to server 127\.0\.0\.1:\Q$pgB->{port}\E failed \(tls mode verify-full\): \S/,
	'verify-full IP mismatch: logged with host, port and mode');
is($mixed->psql('SELECT 41 + 1'), '42', 'after the verify-full failure: the disable entry works');
leg_plain($mixed, 'after the verify-full failure, disable entry');
leg_tls($mixed, 'verify-full, host "localhost", same certificate (DNS SAN)', db => 'b_vfull_name');
leg_tls($mixed, 'verify-ca to B (chain only, no name check)', db => 'b_vca');
tls_refused($mixed, 'b_vfull_ip', 'verify-full IP mismatch, second attempt', qr/\S/);

# A host name that is not in the certificate, when one resolves here to
# 127.0.0.1 (from /etc/hosts); verify-ca to it works.
my ($alias) = grep { $_ ne 'localhost' && $_ !~ /^localhost\./ }
  map { /^\s*127\.0\.0\.1\s+(.*)$/ ? split(' ', $1) : () }
  split /\n/, PgMirrorTest::slurp('/etc/hosts');
SKIP: {
	skip 'no other name for 127.0.0.1 in /etc/hosts', 5 unless $alias;
	my $m = pgm_start($pgA, extra => tls_group(ca_file => $F{'ca.crt'}),
		databases => [
			{ name => 'appdb', database => 'appdb', host => $alias, tls_mode => 'verify-full' },
			{ name => 'vca', database => 'appdb', host => $alias, tls_mode => 'verify-ca' },
		]);
	tls_refused($m, 'appdb', "verify-full, host \"$alias\" (not in the certificate)",
		qr/mismatch/i);
	leg_tls($m, "verify-ca, host \"$alias\"", db => 'vca');
	$m->stop;
}

tls_refused($mixed, 'c_require', 'require against a server without SSL',
	qr/does not support SSL/);
leg_plain($mixed, 'prefer against a server without SSL', db => 'c_prefer');
tls_refused($mixed, 'c_inherit', 'tls.server_mode require against a server without SSL',
	qr/does not support SSL/);
is($mixed->psql('SELECT 6 * 7'), '42', 'after the require failure: the disable entry works');
# After 'N', the server still waits for a startup packet: pgmirror should
# just close (as libpq does), not send protocol messages it would read as
# a startup packet.
{
	my @bad = grep { /invalid length of startup packet/ }
	  split /\n/, PgMirrorTest::slurp("$pgC->{dir}/postgres.log");
	is(scalar(@bad), 0, 'require against a server without SSL: no garbage startup packet '
		. 'in the server log') or diag(join("\n", @bad));
}

leg_tls($mixed, 'prefer against a hostssl-only server', db => 'b_prefer');
{
	my $e = $mixed->login_refused('b_disable', 'disable against a hostssl-only server', '28000',
		qr/pg_hba\.conf/);
	unlike($e->{M} // '', qr/^pgmirror:/, 'hostssl-only: the server\'s own message is forwarded');
	like($e->{M} // '', qr/no encryption|SSL off/, 'hostssl-only: ... saying the connection is plain');
}

leg_plain($mixed, 'Unix socket directory, tls_mode verify-full', db => 'a_unix');

{
	my $e = $mixed->login_refused('inherit', 'certuser (cert auth on the server) over TLS without a '
		. 'client certificate', '28000', qr/certificate/i, user => 'certuser', password => '');
	unlike($e->{M} // '', qr/^pgmirror:/, 'certuser without certificate: the server\'s message');
}

is($mixed->psql('SELECT current_user'), 'app', 'the disable entry still works at the end');
no_death($mixed, 'tls_mode daemon');
$mixed->stop;

# --- 4. the wrong CA, the system CAs --------------------------------------------------

{
	my $m = pgm_start($pgA, extra => tls_group(ca_file => $F{'otherca.crt'}),
		databases => [
			{ name => 'appdb', database => 'appdb', tls_mode => 'disable' },
			{ name => 'vca', database => 'appdb', tls_mode => 'verify-ca' },
			{ name => 'vfull', database => 'appdb', tls_mode => 'verify-full' },
			{ name => 'req', database => 'appdb', tls_mode => 'require' },
		]);
	tls_refused($m, 'vca', 'verify-ca, tls.ca_file is another CA', qr/certificate/i);
	is($m->psql('SELECT 42'), '42', 'after the verify-ca failure: the disable entry works');
	tls_refused($m, 'vfull', 'verify-full, tls.ca_file is another CA', qr/certificate/i);
	like($m->log, qr/TLS to server 127\.0\.0\.1:\Q$pgA->{port}\E failed \(tls mode verify-ca\): \S/,
		'wrong CA: logged with host, port and mode');
	leg_tls($m, 'require does not check the certificate (tls.ca_file another CA)', db => 'req');
	leg_plain($m, 'wrong CA daemon, disable entry');
	no_death($m, 'wrong CA daemon');
	$m->stop;

	$m = pgm_start($pgA, extra => tls_group(server_mode => 'verify-ca'),
		databases => [
			{ name => 'appdb', database => 'appdb', tls_mode => 'disable' },
			{ name => 'vca', database => 'appdb' },
		]);
	tls_refused($m, 'vca', 'verify-ca without tls.ca_file (system CAs)',
		qr/certificate/i);
	leg_plain($m, 'system CA daemon, disable entry');
	no_death($m, 'system CA daemon');
	$m->stop;
}

# --- 5. a client certificate towards the server ---------------------------------------

{
	my $m = pgm_start($pgA, extra => tls_group(server_mode => 'verify-full',
		ca_file => $F{'ca.crt'}, server_cert_file => $F{'certuser.crt'},
		server_key_file => $F{'certuser.key'}),
		users => [ { name => 'certuser', auth_type => 'trust' },
			{ name => 'app', password => 'secret' } ]);
	my $r = server_leg($m, user => 'certuser', password => '',
		sql => "SELECT current_user, ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
	is($r, 'certuser|t|/CN=certuser',
		'server_cert_file: certuser logs in by cert (pg_stat_ssl.client_dn)');
	$r = server_leg($m, user => 'app', password => 'secret',
		sql => "SELECT current_user, ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
	is($r, 'app|t|/CN=certuser', 'server_cert_file: a SCRAM user on the same daemon works too');
	no_death($m, 'client certificate daemon');
	$m->stop;
}

# --- 6. TLS on both legs: volume and pgbench -------------------------------------------

{
	my $m = pgm_start($pgA, extra => tls_group(server_mode => 'require',
		cert_file => $F{'server.crt'}, key_file => $F{'server.key'}));
	my %ssl = (env => { PGSSLMODE => 'require' });

	my $v = join('', map { md5_hex($_) . ($_ % 7 ? '' : "-$_ ") } 1 .. 650_000);
	$v = substr($v, 0, 20 * 1024 * 1024);
	my ($out, $err, $rc) = $m->psql(undef, %ssl, args => [ '-c', '\conninfo', '-f', '-' ],
		stdin => "$SSLQ;\nSELECT md5(v), length(v), v FROM (SELECT '$v'::text AS v) s;\n",
		timeout => 120);
	is($rc, 0, '20 MB value: psql exits 0') or diag($err);
	my @lines = split /\n/, $out, 4;
	like($lines[1] // '', qr/^SSL connection \(protocol: TLSv1\.[23],/,
		'20 MB value: client leg over TLS (\conninfo)') or diag(substr($out, 0, 300));
	like($lines[2] // '', qr/^t\|TLSv1\.[23]$/, '20 MB value: server leg over TLS (pg_stat_ssl)');
	my ($md5, $len, $back) = split /\|/, $lines[3] // '', 3;
	is($md5, md5_hex($v), '20 MB value: the server got it intact (md5)');
	is($len, length $v, '20 MB value: length ' . length $v);
	ok(defined $back && $back eq $v, '20 MB value: it came back intact')
	  or diag('md5 back: ' . md5_hex($back // ''));

	# Parked TLS server connections serve later clients (the pools are
	# per worker, so some of six sequential clients share a backend).
	my $q = "SELECT pg_backend_pid(), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
	my @legs = map { server_leg($m, sql => $q) } 1 .. 6;
	is(scalar(grep { /^\d+\|t$/ } @legs), 6, 'pool: six sessions, each on a TLS server connection')
	  or diag("@legs");
	my %pids = map { (split /\|/)[0] => 1 } @legs;
	cmp_ok(scalar(keys %pids), '<', 6, 'pool: parked TLS server connections are reused ('
		. scalar(keys %pids) . ' backends for 6 sessions)');

	# A cancel reaches a query running on a TLS server connection.
	{
		my ($c, $r) = $m->raw_login(timeout => 20);
		ok($r->{ok} && $r->{key}, 'cancel: raw session with BackendKeyData') or diag(explain($r));
		my $t = time;
		$c->send_msg('Q', "SELECT pg_sleep(20)\0");
		# A cancel that reaches the backend before the query is lost,
		# as it is with PostgreSQL itself: wait until it runs.
		wait_until(sub { $pgA->psql("SELECT count(*) FROM pg_stat_activity"
			. " WHERE query = 'SELECT pg_sleep(20)' AND state = 'active'") == 1 }, 10, 0.05);
		my $k = $m->raw;
		$k->send_cancel($r->{key});
		$k->hang_up;
		my $res = $c->collect(timeout => 15);
		is($res->{error}{C}, '57014', 'cancel: the query is canceled (57014)')
		  or diag(explain($res));
		cmp_ok(time - $t, '<', 10, 'cancel: well before pg_sleep(20) ends');
		is($c->query('SELECT 5')->{rows}[0][0], 5, 'cancel: the session goes on');
		$c->close;
	}

	($rc, $out, $err) = $m->pgbench([ '-i', '-q', '-s', '1' ], %ssl);
	is($rc, 0, 'pgbench -i over TLS') or diag($err);
	($rc, $out, $err) = $m->pgbench([ '-n', '-S', '-c', '4', '-j', '2', '-T', '3' ], %ssl);
	is($rc, 0, 'pgbench -S -c 4 -T 3, server_mode require: exits 0') or diag("$out\n$err");
	my ($processed, $failed) = pgbench_counts($out);
	cmp_ok($processed // 0, '>', 0, 'pgbench: ' . ($processed // 0) . ' transactions');
	is($failed, 0, 'pgbench: number of failed transactions: 0');
	unlike($err, qr/(?:error|FATAL|aborted)/i, 'pgbench: no errors') or diag($err);
	my $s = $pgA->psql(q{SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_ssl s
		JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'app' AND a.datname = 'appdb'
		AND a.application_name = 'pgbench'});
	my ($all, $tls) = split /\|/, $s;
	cmp_ok($all, '>=', 4, "pgbench: $all server connections kept");
	is($tls, $all, 'pgbench: every one of them is TLS');
	no_death($m, 'both legs daemon');
	$m->stop;
}

# --- 7. servers that misbehave after an SSLRequest --------------------------------------

# A fake server on 127.0.0.1 that reads the SSLRequest and then:
# stall ('S', then nothing), garbage ('S', then non-TLS bytes), close
# (hangs up), other (answers 'X'), sni ('S', then reads the ClientHello
# and appends the server_name it carries, or "-" for none, as a line to
# $file, and hangs up).  Returns its port.
sub fake_server {
	my ($how, $file) = @_;
	my @keep;
	return fork_server(sub {
		my ($c) = @_;
		sysread($c, my $req, 8);
		if ($how eq 'stall') {
			syswrite($c, 'S');
			push @keep, $c;
		} elsif ($how eq 'garbage') {
			syswrite($c, "SHTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
			push @keep, $c;
		} elsif ($how eq 'sni') {
			syswrite($c, 'S');
			my $sni = client_hello_sni($c) // '-';
			open(my $fh, '>>', $file) or die;
			print $fh "$sni\n";
			close $fh;
			close $c;
		} elsif ($how eq 'other') {
			syswrite($c, 'X');
			push @keep, $c;
		} else {
			close $c;
		}
	}, alarm => 60);
}

# Reads one TLS record holding a ClientHello from $c; returns the
# host_name of its server_name extension, or undef.
sub client_hello_sni {
	my ($c) = @_;
	my $read = sub {
		my ($n) = @_;
		my $b = '';
		while (length $b < $n) {
			my $r = sysread($c, $b, $n - length $b, length $b);
			return undef unless $r;
		}
		return $b;
	};
	my $hdr = $read->(5) // return undef;
	my ($type, undef, $len) = unpack('C n n', $hdr);
	return undef unless $type == 22;
	my $rec = $read->($len) // return undef;
	my $off = 4 + 2 + 32;				# handshake header, version, random
	$off += 1 + unpack('C', substr($rec, $off, 1));	# session id
	$off += 2 + unpack('n', substr($rec, $off, 2));	# cipher suites
	$off += 1 + unpack('C', substr($rec, $off, 1));	# compression methods
	my $end = $off + 2 + unpack('n', substr($rec, $off, 2));
	$off += 2;
	while ($off + 4 <= $end) {
		my ($et, $el) = unpack('n n', substr($rec, $off, 4));
		if ($et == 0) {
			my ($nt, $nl) = unpack('C n', substr($rec, $off + 6, 3));
			return $nt == 0 ? substr($rec, $off + 9, $nl) : undef;
		}
		$off += 4 + $el;
	}
	return undef;
}

{
	my %port = map { $_ => fake_server($_) } qw(stall garbage close other);
	my $m = pgm_start($pgA, extra => tls_group(server_mode => 'require')
		  . "\nserver = { connect_timeout = 2; };",
		databases => [ { name => 'appdb', database => 'appdb' },
			map { { name => "fake_$_", database => 'appdb', port => $port{$_} } } sort keys %port ]);
	for my $how (qw(garbage close other)) {
		my $t = time;
		tls_refused($m, "fake_$how", "a server that answers the SSLRequest with $how",
			$how eq 'other' ? qr/unexpected answer/ : qr/\S/);
		cmp_ok(time - $t, '<', 1.9, "$how: refused at once, not at server.connect_timeout");
	}
	my $bg = $m->psql_bg('SELECT 1', db => 'fake_stall', timeout => 30);
	my $t = time;
	is($m->psql('SELECT 42'), '42', 'during a stalled server handshake: other clients are served');
	cmp_ok(time - $t, '<', 1.5, 'during a stalled server handshake: ... at once');
	my ($rc, $out, $err) = $bg->finish;
	my $secs = time - $t;
	isnt($rc, 0, 'a server stalling in the TLS handshake: the client is refused');
	like($err, qr/pgmirror: TLS to the server of database "fake_stall" failed/,
		'a server stalling in the TLS handshake: FATAL naming TLS') or diag($err);
	cmp_ok($secs, '<', 6, sprintf('a server stalling in the TLS handshake: given up after %.1f s '
		. '(server.connect_timeout 2 s)', $secs));
	tls_refused($m, 'fake_stall', 'a server stalling in the TLS handshake (raw)', qr/\S/);
	leg_tls($m, 'after the misbehaving servers');
	no_death($m, 'misbehaving servers daemon');
	$m->stop;
}

# SNI, as libpq sends it (sslsni=1): the host name in every mode that
# uses TLS, verify-full included; never an IP address (RFC 6066 3).
{
	my $file = "$dir/sni.txt";
	my $port = fake_server('sni', $file);
	my @cases = (
		[ 'require', 'localhost', 'localhost' ],
		[ 'verify-ca', 'localhost', 'localhost' ],
		[ 'verify-full', 'localhost', 'localhost' ],
		[ 'require', '127.0.0.1', '-' ],
		[ 'verify-full', '127.0.0.1', '-' ],
	);
	my $n = 0;
	my $m = pgm_start($pgA, extra => tls_group(ca_file => $F{'ca.crt'}),
		databases => [ { name => 'appdb', database => 'appdb' },
			map { { name => 'sni' . $n++, database => 'appdb', host => $_->[1], port => $port,
				tls_mode => $_->[0] } } @cases ]);
	for my $i (0 .. $#cases) {
		my ($c, $r) = $m->raw_login(database => "sni$i", timeout => 20);
		is($r->{error}{C}, '08006', "SNI probe $cases[$i][0] $cases[$i][1]: refused (the probe hangs up)");
		$c->hang_up;
	}
	my @got = split /\n/, PgMirrorTest::slurp($file);
	for my $i (0 .. $#cases) {
		my ($mode, $host, $want) = @{ $cases[$i] };
		my $what = "SNI, tls_mode $mode, host $host: " . ($want eq '-' ? 'none' : "\"$want\"");
		is($got[$i] // 'no ClientHello', $want, $what);
	}
	no_death($m, 'SNI daemon');
	$m->stop;
}

note(sprintf('130_tls_server took %.1f s', time - $T0));
done_testing();
