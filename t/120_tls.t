# 120_tls: TLS between clients and pgmirror (the tls group).
#
# A throwaway CA, a server certificate for DNS:localhost and IP:127.0.0.1,
# a client certificate signed by the CA, and a second CA that pgmirror
# does not trust (with its own client certificate) are made with the
# openssl CLI in the test's temp dir (key files mode 0600).  Then:
#
#  1. `pgmirror -n`: a valid tls group is OK; a missing cert, key or
#     client CA file, a key that does not match the certificate, an
#     unknown client_mode, client_mode without a certificate fail with a
#     FILE:LINE line naming the setting, as do an unknown server_mode
#     and a server-side mode given as client_mode; every server_mode
#     from "disable" to "verify-full" passes.
#  2. client_mode "prefer" with client_ca_file: SSLRequest gets 'S';
#     psql sslmode=require runs over TLSv1.2+ (psql's \conninfo);
#     verify-full against the CA works for host=localhost and for
#     127.0.0.1, and fails for another host name; verify-ca with the
#     other CA fails; sslmode=disable and the Unix socket work in plain;
#     psql's default channel_binding=prefer logs in over TLS (SCRAM with
#     the "y" gs2 flag), channel_binding=require logs in with
#     SCRAM-SHA-256-PLUS and fails cleanly in plain; channel_binding=disable
#     works; a plain client is offered only SCRAM-SHA-256; a client
#     certificate from the CA is accepted, one from the other CA refused.
#  3. Volume over TLS: a 20 MB value in and out, a 50 MB COPY out and the
#     same 50 MB COPY in, with the md5 of a direct run; pgbench -c 4 -j 2
#     -T 3 with PGSSLMODE=require and zero failed transactions.
#  4. Bad TLS clients: after 'S', a plain startup packet, random bytes,
#     an HTTP request, a bogus handshake record, a hang-up; an SSLRequest
#     with a plain startup packet in the same write (buffered plaintext
#     must not be taken as coming from inside TLS): each is closed within
#     a few seconds, never answered in plain PostgreSQL protocol, while a
#     concurrent DBD::Pg session over TLS is untouched and new TLS clients
#     are served.  A client stalling in the handshake is dropped after
#     client.login_timeout.
#  5. client_mode "require": a plain client gets FATAL 28000 mentioning
#     SSL; TLS clients work.  client_mode "disable" (certificate given):
#     SSLRequest gets 'N' and the same connection goes on in plain;
#     psql sslmode=require fails, sslmode=prefer works in plain.
#     client_mode "allow" (with server_mode "prefer", plain to this
#     server, which has no SSL) and the default (certificate only: 'S') take TLS
#     and plain clients.
#
# No worker dies along the way.

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use PgMirrorTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $T0 = time;
my $pg = pg_start();
$pg->setup_app;

my $dir = cert_dir('tls');

# --- certificates ------------------------------------------------------------

make_cert($dir, 'ca', 'pgmirror test CA');
make_cert($dir, 'server', 'localhost', 'ca', 'v3_server');
make_cert($dir, 'client', 'app', 'ca', 'v3_client');
make_cert($dir, 'otherca', 'untrusted test CA');
make_cert($dir, 'otherclient', 'app', 'otherca', 'v3_client');
{
	my ($rc, $out) = run_cmd([ 'openssl', 'x509', '-in', "$dir/server.crt", '-noout', '-text' ]);
	like($out, qr/DNS:localhost, IP Address:127\.0\.0\.1/,
		'server certificate has DNS:localhost and IP:127.0.0.1');
	($rc) = run_cmd([ 'openssl', 'verify', '-CAfile', "$dir/ca.crt", "$dir/server.crt",
		"$dir/client.crt" ]);
	is($rc, 0, 'server and client certificates verify against the CA');
}
my %F = map { $_ => "$dir/$_" } qw(ca.crt server.crt server.key client.crt client.key
  otherca.crt otherclient.crt otherclient.key);

my %CERT = (cert_file => $F{'server.crt'}, key_file => $F{'server.key'});

# --- 1. pgmirror -n -------------------------------------------------------------

{
	my $bin = pgmirror_bin();
	my $n = 0;
	my @base = (
		'listen = [ "127.0.0.1:16432" ];',
		'databases = ( { name = "appdb"; host = "127.0.0.1"; port = 5432; database = "appdb"; } );',
		'users = ( { name = "app"; password = "secret"; } );',
	);
	# Runs pgmirror -n on the base config plus a tls group line (line 4);
	# returns ($rc, $output, $file).
	my $check = sub {
		my (%t) = @_;
		my $f = "$dir/check" . (++$n) . '.conf';
		write_file($f, join("\n", @base, tls_group(%t)) . "\n");
		my ($rc, $out, $err) = run_cmd([ $bin, '-n', '-c', $f ], timeout => 20);
		return ($rc, $out . $err, $f);
	};
	my $fails = sub {
		my ($what, $re, %t) = @_;
		my ($rc, $out, $f) = $check->(%t);
		isnt($rc, 0, "-n, $what: fails") or diag($out);
		like($out, qr/^\Q$f\E:\d+: .*$re/m, "-n, $what: a FILE:LINE line matching $re")
		  or diag($out);
		return $out;
	};

	my ($rc, $out) = $check->(%CERT, client_mode => 'prefer', client_ca_file => $F{'ca.crt'});
	is($rc, 0, '-n, valid tls group: exit 0') or diag($out);
	like($out, qr/configuration OK/, '-n, valid tls group: configuration OK');

	$out = $fails->('missing cert file', qr/tls\.cert_file/,
		%CERT, cert_file => "$dir/nosuch.crt");
	like($out, qr/\Q$dir\E\/nosuch\.crt/, '-n, missing cert file: the path is named');
	$out = $fails->('missing key file', qr/tls\.key_file/,
		%CERT, key_file => "$dir/nosuch.key");
	like($out, qr/\Q$dir\E\/nosuch\.key/, '-n, missing key file: the path is named');
	$fails->('a key that does not match the certificate', qr/tls\.(?:key|cert)_file/,
		%CERT, key_file => $F{'client.key'});
	$fails->('missing client CA file', qr/tls\.client_ca_file/,
		%CERT, client_ca_file => "$dir/nosuch-ca.crt");
	$fails->('client_mode "bogus"', qr/tls\.client_mode/, %CERT, client_mode => 'bogus');
	$fails->('client_mode "require" without a certificate', qr/tls\.(?:client_mode|cert_file)/,
		client_mode => 'require');

	$fails->('server_mode "bogus"', qr/tls\.server_mode must be/, %CERT,
		server_mode => 'bogus');
	$fails->('client_mode "verify-full" (a server-side mode)', qr/tls\.client_mode/,
		%CERT, client_mode => 'verify-full');
	for my $m (qw(disable allow prefer require verify-ca verify-full)) {
		($rc, $out) = $check->(%CERT, server_mode => $m);
		is($rc, 0, "-n, server_mode \"$m\": accepted") or diag($out);
	}
}

# --- helpers --------------------------------------------------------------------

# Runs psql through $m with \conninfo first.  Options: sql (default
# current_user), env, host, args, stdin, timeout.  Returns { rc, out, err,
# tls => protocol or undef, rows => output without the \conninfo lines }.
sub tpsql {
	my ($m, %o) = @_;
	my ($out, $err, $rc) = $m->psql(exists $o{sql} ? $o{sql} : 'SELECT current_user',
		args => [ '-c', '\conninfo', @{ $o{args} || [] } ], env => $o{env} || {},
		host => $o{host}, unix => $o{unix}, stdin => $o{stdin},
		timeout => $o{timeout} // 60);
	my ($proto) = $out =~ /^SSL connection \(protocol: ([^,]+),/m;
	my $rows = join "\n", grep { !/^(?:You are connected|SSL connection)/ } split /\n/, $out;
	return { rc => $rc, out => $out, err => $err, tls => $proto, rows => $rows };
}

# Checks a psql result that must have worked over TLS 1.2 or later.
sub over_tls {
	my ($r, $what) = @_;
	is($r->{rc}, 0, "$what: psql exits 0") or diag($r->{err});
	like($r->{tls} // 'no SSL line', qr/^TLSv1\.[23]$/, "$what: over TLS 1.2+ (\\conninfo)")
	  or diag($r->{out});
	is($r->{rows}, 'app', "$what: the query is answered");
}

# Checks a psql result that must have worked in plain.
sub in_plain {
	my ($r, $what) = @_;
	is($r->{rc}, 0, "$what: psql exits 0") or diag($r->{err});
	ok(!defined $r->{tls} && $r->{out} =~ /^You are connected/m, "$what: in plain (\\conninfo)")
	  or diag($r->{out});
	is($r->{rows}, 'app', "$what: the query is answered");
}

# Checks a psql result that must have failed with stderr matching $re.
sub refused {
	my ($r, $what, $re) = @_;
	isnt($r->{rc}, 0, "$what: psql fails");
	like($r->{err}, $re, "$what: error matches $re");
	unlike($r->{out}, qr/^app$/m, "$what: no query answered");
}

sub hexdump { my $s = substr($_[0], 0, 48); $s =~ s/(.)/sprintf('%02x', ord $1)/ges; $s }

# --- 2. client_mode "prefer" with client_ca_file --------------------------------------

my $pgm = pgm_start($pg,
	extra => tls_group(%CERT, client_mode => 'prefer', client_ca_file => $F{'ca.crt'})
	  . "\nclient = { login_timeout = 3; };");

{
	my $c = $pgm->raw;
	is($c->ssl_request, 'S', 'prefer: SSLRequest is answered S');
	$c->hang_up;
}

over_tls(tpsql($pgm, env => { PGSSLMODE => 'require' }), 'sslmode=require');
over_tls(tpsql($pgm, host => 'localhost', env => { PGSSLMODE => 'verify-full',
	PGSSLROOTCERT => $F{'ca.crt'}, PGHOSTADDR => '127.0.0.1' }),
	'sslmode=verify-full, host=localhost');
over_tls(tpsql($pgm, env => { PGSSLMODE => 'verify-full', PGSSLROOTCERT => $F{'ca.crt'} }),
	'sslmode=verify-full, host=127.0.0.1 (IP SAN)');
refused(tpsql($pgm, host => 'wrong.invalid', env => { PGSSLMODE => 'verify-full',
	PGSSLROOTCERT => $F{'ca.crt'}, PGHOSTADDR => '127.0.0.1' }),
	'sslmode=verify-full, host=wrong.invalid', qr/does not match host name "wrong\.invalid"/);
refused(tpsql($pgm, env => { PGSSLMODE => 'verify-ca', PGSSLROOTCERT => $F{'otherca.crt'} }),
	'sslmode=verify-ca against another CA', qr/certificate verify failed/);
in_plain(tpsql($pgm, env => { PGSSLMODE => 'disable' }), 'prefer, sslmode=disable');
in_plain(tpsql($pgm, unix => 1), 'prefer, Unix socket');

# libpq's defaults (sslmode=prefer, channel_binding=prefer): over TLS,
# SCRAM without channel binding, the client sending the gs2 flag "y".
over_tls(tpsql($pgm, env => { PGCHANNELBINDING => 'prefer' }),
	'default sslmode, channel_binding=prefer');

# SCRAM-SHA-256-PLUS: over TLS a client that requires channel binding
# gets it (tls-server-end-point); in plain it must fail cleanly.
over_tls(tpsql($pgm, env => { PGSSLMODE => 'require', PGCHANNELBINDING => 'require' }),
	'channel_binding=require over TLS (SCRAM-SHA-256-PLUS)');
refused(tpsql($pgm, env => { PGSSLMODE => 'disable', PGCHANNELBINDING => 'require' }),
	'channel_binding=require in plain', qr/channel binding/);
unlike($pgm->log, qr/killed by signal|exited with status|died before serving/,
	'channel_binding=require: no worker died');
# Whatever is offered over TLS, channel_binding=disable (gs2 flag "n")
# logs in, and a plain client is never offered SCRAM-SHA-256-PLUS.
over_tls(tpsql($pgm, env => { PGSSLMODE => 'require', PGCHANNELBINDING => 'disable' }),
	'channel_binding=disable');
{
	my ($c, $r) = $pgm->raw_login(no_answer => 1, timeout => 10);
	is_deeply($r->{mechanisms}, [ 'SCRAM-SHA-256' ],
		'plain TCP: the SASL mechanisms offered are exactly SCRAM-SHA-256')
	  or diag(explain($r));
	$c->hang_up;
}

# Client certificates: verified against client_ca_file when presented.
over_tls(tpsql($pgm, env => { PGSSLMODE => 'require', PGSSLCERT => $F{'client.crt'},
	PGSSLKEY => $F{'client.key'} }), 'a client certificate signed by client_ca_file');
refused(tpsql($pgm, env => { PGSSLMODE => 'require', PGSSLCERT => $F{'otherclient.crt'},
	PGSSLKEY => $F{'otherclient.key'} }), 'a client certificate from an untrusted CA',
	qr/SSL|certificate|alert/i);
over_tls(tpsql($pgm, env => { PGSSLMODE => 'require' }), 'after the refused certificate');

# --- 3. volume over TLS -------------------------------------------------------------

{
	my $v = join('', map { md5_hex($_) . ($_ % 7 ? '' : "-$_ ") } 1 .. 600_000);
	$v = substr($v, 0, 20 * 1024 * 1024);
	my $r = tpsql($pgm, sql => undef, args => [ '-f', '-' ], env => { PGSSLMODE => 'require' },
		stdin => "SELECT md5(v), length(v), v FROM (SELECT '$v'::text AS v) s;\n",
		timeout => 120);
	is($r->{rc}, 0, '20 MB value: psql exits 0') or diag($r->{err});
	like($r->{tls} // '', qr/^TLSv1\.[23]$/, '20 MB value: over TLS');
	my ($md5, $len, $back) = split /\|/, $r->{rows}, 3;
	is($md5, md5_hex($v), '20 MB value: the server got it intact (md5)');
	is($len, length $v, '20 MB value: length ' . length $v);
	ok(defined $back && $back eq $v, '20 MB value: it came back intact');
}

{
	my $q = q{COPY (SELECT i, md5(i::text), repeat('x', 60) FROM generate_series(1, 500000) i) TO STDOUT};
	my ($out, $err, $rc) = $pg->psql($q, db => 'appdb', stdout_file => "$dir/direct.copy");
	is($rc, 0, 'direct COPY out') or diag($err);
	my $size = -s "$dir/direct.copy";
	cmp_ok($size, '>=', 50_000_000, "COPY out is $size bytes");
	my $t = time;
	($out, $err, $rc) = $pgm->psql($q, env => { PGSSLMODE => 'require' },
		stdout_file => "$dir/tls.copy", timeout => 120);
	is($rc, 0, 'COPY out of 50 MB over TLS succeeds') or diag($err);
	note(sprintf('COPY out over TLS: %.1f s', time - $t));
	is(md5_hex(slurp("$dir/tls.copy")), md5_hex(slurp("$dir/direct.copy")),
		'COPY out over TLS: same md5 as direct');

	$pg->psql('CREATE TABLE tls_in (i int, h text, pad text)', db => 'appdb', user => 'app',
		password => 'secret');
	$t = time;
	($out, $err, $rc) = $pgm->psql('COPY tls_in FROM STDIN', env => { PGSSLMODE => 'require' },
		stdin_file => "$dir/direct.copy", timeout => 120);
	is($rc, 0, 'COPY in of 50 MB over TLS succeeds') or diag($err);
	note(sprintf('COPY in over TLS: %.1f s', time - $t));
	$pg->psql('COPY (SELECT * FROM tls_in ORDER BY i) TO STDOUT', db => 'appdb',
		stdout_file => "$dir/back.copy");
	is(md5_hex(slurp("$dir/back.copy")), md5_hex(slurp("$dir/direct.copy")),
		'COPY in over TLS: the table holds exactly the data sent (md5, read directly)');
	unlink "$dir/direct.copy", "$dir/tls.copy", "$dir/back.copy";
}

{
	my %ssl = (env => { PGSSLMODE => 'require' });
	my ($rc, $out, $err) = $pgm->pgbench([ '-i', '-q', '-s', '1' ], %ssl);
	is($rc, 0, 'pgbench -i over TLS') or diag($err);
	($rc, $out, $err) = $pgm->pgbench([ '-n', '-c', '4', '-j', '2', '-T', '3' ], %ssl);
	is($rc, 0, 'pgbench -c 4 -j 2 -T 3 over TLS exits 0') or diag("$out\n$err");
	my ($processed, $failed) = pgbench_counts($out);
	cmp_ok($processed // 0, '>', 0, 'pgbench over TLS: ' . ($processed // 0) . ' transactions');
	is($failed, 0, 'pgbench over TLS: number of failed transactions: 0');
	unlike($err, qr/(?:error|FATAL|aborted)/i, 'pgbench over TLS: no errors') or diag($err);
}

# --- 4. bad TLS clients ---------------------------------------------------------------

require DBI;
my $healthy = DBI->connect('dbi:Pg:host=127.0.0.1;port=' . $pgm->port . ';dbname=appdb;sslmode=require',
	'app', 'secret', { RaiseError => 1, PrintError => 0, AutoCommit => 1 });
my $hpid = $healthy->selectrow_array('SELECT pg_backend_pid()');
ok($hpid, "healthy DBD::Pg session over TLS (sslmode=require) open, backend $hpid");
my $round = 0;

sub others_fine {
	my ($what) = @_;
	$round++;
	my ($pid, $v) = eval { $healthy->selectrow_array('SELECT pg_backend_pid(), ?::int * 3', undef, $round) };
	ok(defined $v && $v == 3 * $round && $pid == $hpid,
		"$what: the concurrent TLS session is untouched (same backend, right answer)")
	  or diag($@ || $DBI::errstr);
	my $r = tpsql($pgm, env => { PGSSLMODE => 'require' });
	ok($r->{rc} == 0 && $r->{tls} && $r->{rows} eq 'app', "$what: a new TLS client is served")
	  or diag($r->{err});
}

# The answer to a client that broke the handshake: a close within a few
# seconds, with at most a TLS alert record (0x15) before it, never a
# PostgreSQL message in plain.
sub closed_cleanly {
	my ($a, $what) = @_;
	ok($a->{closed}, sprintf("$what: the connection is closed (%.2f s)", $a->{secs}));
	ok($a->{got} eq '' || substr($a->{got}, 0, 1) eq "\x15",
		"$what: nothing but a TLS alert before the close")
	  or diag('got: ' . hexdump($a->{got}));
}

my $startup = do {
	my $b = pack('N', 196608) . "user\0app\0database\0appdb\0\0";
	pack('N', 4 + length $b) . $b;
};
srand(120);
my $random = join '', map { chr(int(rand(256))) } 1 .. 2000;
my @garbage = (
	[ 'a plain startup packet after S', $startup ],
	[ '2000 random bytes after S', $random ],
	[ 'an HTTP request after S', "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" ],
	[ 'a handshake record of garbage after S', "\x16\x03\x01\x40\x00" . substr($random x 9, 0, 16384) ],
	[ 'a second SSLRequest after S', pack('N N', 8, 80877103) ],
	[ 'a hang-up after S', undef ],
);
for my $g (@garbage) {
	my ($what, $bytes) = @$g;
	my $c = $pgm->raw;
	my $s = $c->ssl_request;
	is($s, 'S', "$what: SSLRequest answered S");
	if (defined $bytes) {
		$c->send_bytes($bytes);
		closed_cleanly($c->read_until_close(5), $what);
	} else {
		$c->hang_up;
	}
	others_fine($what);
}

# Plaintext pipelined behind the SSLRequest must not be read as if it
# had come through TLS (cf. PostgreSQL CVE-2021-23214): the client may
# get 'S' and a close, or an error, but never an authentication request.
{
	my $what = 'SSLRequest and a plain startup packet in one write';
	my $c = $pgm->raw;
	$c->send_bytes(pack('N N', 8, 80877103) . $startup);
	my $a = $c->read_until_close(5);
	ok($a->{closed}, sprintf("$what: the connection is closed (%.2f s)", $a->{secs}));
	my $rest = $a->{got};
	$rest =~ s/^S//;
	ok($rest eq '' || $rest =~ /^[\x15E]/,
		"$what: no plain session (nothing, a TLS alert or an ErrorResponse)")
	  or diag('got: ' . hexdump($a->{got}));
	unlike($a->{got}, qr/R\0\0\0.\0\0\0[\x03\x05\x0a]/s,
		"$what: no AuthenticationRequest in plain");
	others_fine($what);
}

# Stalling in the handshake: client.login_timeout (3 s) covers it.  One
# client sends nothing after 'S', one half a ClientHello record.
{
	my $t0 = time;
	my $c1 = $pgm->raw;
	is($c1->ssl_request, 'S', 'stalled handshake: S');
	my $c2 = $pgm->raw;
	is($c2->ssl_request, 'S', 'half a ClientHello: S');
	$c2->send_bytes("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
	for my $x ([ 'nothing after S', $c1 ], [ 'half a ClientHello', $c2 ]) {
		my $a = $x->[1]->read_until_close(10, $t0);
		ok($a->{closed}, sprintf("$x->[0]: dropped (%.2f s)", $a->{secs}));
		cmp_ok($a->{secs}, '>=', 2.5, "$x->[0]: not before client.login_timeout");
		cmp_ok($a->{secs}, '<', 7, "$x->[0]: soon after client.login_timeout");
	}
	others_fine('stalled handshakes');
}

is($healthy->selectrow_array('SELECT pg_backend_pid()'), $hpid,
	'the concurrent TLS session kept its backend through every case');
$healthy->disconnect;
ok($pgm->alive, 'prefer daemon alive');
unlike($pgm->log, $DEATH, 'prefer daemon: no worker died');

# --- 5. the other client modes ------------------------------------------------------

{
	my $req = pgm_start($pg, extra => tls_group(%CERT, client_mode => 'require'));
	my ($c, $r) = $req->raw_login(timeout => 10);
	ok(!$r->{ok}, 'require: a plain raw client gets no session');
	is($r->{error}{S}, 'FATAL', 'require: FATAL');
	is($r->{error}{C}, '28000', 'require: SQLSTATE 28000') or diag(explain($r));
	like($r->{error}{M} // '', qr/SSL/, 'require: the message mentions SSL');
	my @more = $c->read_msg(3);
	ok(!@more && $c->{eof}, 'require: then the connection is closed');
	$c = $req->raw;
	is($c->ssl_request, 'S', 'require: SSLRequest is answered S');
	$c->hang_up;
	refused(tpsql($req, env => { PGSSLMODE => 'disable' }), 'require, sslmode=disable',
		qr/FATAL:.*SSL/);
	over_tls(tpsql($req, env => { PGSSLMODE => 'require' }), 'require, sslmode=require');
	over_tls(tpsql($req), 'require, default sslmode');
	# Like PostgreSQL's hostssl, require is for TCP: libpq never uses TLS
	# on a Unix socket, and local clients are let in.
	my $u = tpsql($req, unix => 1);
	is($u->{rc}, 0, 'require: a Unix-socket client is let in') or diag($u->{err});
	is($u->{rows}, 'app', 'require: ... and answered');
	ok($req->alive, 'require daemon alive');
	unlike($req->log, $DEATH, 'require daemon: no worker died');
	$req->stop;
}

{
	my $dis = pgm_start($pg, extra => tls_group(%CERT, client_mode => 'disable'));
	my ($c, $r) = $dis->raw_login(ssl => 1, timeout => 10);
	is($c->{ssl_answer}, 'N', 'disable: SSLRequest is answered N');
	ok($r->{ok}, 'disable: the same connection logs in in plain') or diag(explain($r));
	my $q = $r->{ok} ? $c->query('SELECT 7') : {};
	is($q->{rows} && $q->{rows}[0][0], 7, 'disable: and is served');
	$c->close if $c->{sock};
	refused(tpsql($dis, env => { PGSSLMODE => 'require' }), 'disable, sslmode=require',
		qr/server does not support SSL/);
	in_plain(tpsql($dis, env => { PGSSLMODE => 'prefer' }), 'disable, sslmode=prefer');
	unlike($dis->log, $DEATH, 'disable daemon: no worker died');
	$dis->stop;
}

{
	my $allow = pgm_start($pg, extra => tls_group(%CERT, client_mode => 'allow',
		server_mode => 'prefer'));
	my $c = $allow->raw;
	is($c->ssl_request, 'S', 'allow: SSLRequest is answered S');
	$c->hang_up;
	over_tls(tpsql($allow, env => { PGSSLMODE => 'require' }), 'allow, sslmode=require');
	in_plain(tpsql($allow, env => { PGSSLMODE => 'disable' }), 'allow, sslmode=disable');
	unlike($allow->log, $DEATH, 'allow daemon: no worker died');
	$allow->stop;

	my $dflt = pgm_start($pg, extra => tls_group(%CERT));
	$c = $dflt->raw;
	is($c->ssl_request, 'S', 'certificate only: SSLRequest is answered S');
	$c->hang_up;
	over_tls(tpsql($dflt), 'certificate only, default sslmode');
	in_plain(tpsql($dflt, env => { PGSSLMODE => 'disable' }), 'certificate only, sslmode=disable');
	unlike($dflt->log, $DEATH, 'certificate-only daemon: no worker died');
	$dflt->stop;
}

note(sprintf('120_tls took %.1f s', time - $T0));
done_testing();
