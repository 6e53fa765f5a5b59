# PgMirrorTest: harness for the pgmirror integration tests.
#
# Starts real PostgreSQL clusters (initdb/pg_ctl, as an unprivileged user
# when run as root) on free loopback ports and real pgmirror daemons in
# front of them, runs clients (psql, pgbench, DBD::Pg, a raw protocol
# client) and always cleans up: every process it started is stopped in an
# END block, even when a test dies.  Temporary files live under
# /tmp/pgmirror-test.XXXXXX; they are removed when the test passes, kept
# (and named in a diag) when it fails or when PGMIRROR_KEEP_TMP is set.
#
# Environment: PGMIRROR (the daemon), PGMIRRORCTL (its control program;
# default: the pgmirrorctl next to the daemon), PQPIPE (the t/pqpipe
# helper), PG_BINDIR (PostgreSQL binaries), top_builddir,
# PGMIRROR_KEEP_TMP.
#
#   use PgMirrorTest;
#   my $pg  = pg_start();                  # PostgreSQL, SCRAM on TCP
#   $pg->setup_app;                        # role app/secret, database appdb
#   my $pgm = pgm_start($pg, users => [ { name => 'app', password => 'secret' } ]);
#   is($pgm->psql('SELECT 1'), '1');       # psql through pgmirror
#   my $dbh = $pgm->dbh;                   # DBD::Pg through pgmirror
#   my ($conn, $r) = $pgm->raw_login;      # raw protocol: $r->{auth}, {error}{C}
#   my ($rc, $out, $err) = $pgm->ctl('-t', 'status');   # pgmirrorctl
#   my $answer = $pgm->ctl_raw('show pools');  # control protocol, by hand

package PgMirrorTest;

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter 'import';
use File::Basename qw(dirname);
use File::Copy ();
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IPC::Run ();
use Test::More;
use Time::HiRes qw(time sleep);

our @EXPORT = qw(pg_start pgm_start pgmirror_bin pgmirrorctl_bin pqpipe_bin pg_bindir
  run_cmd start_cmd free_port wait_until tmp_base write_file slurp
  raw_connect children_of pid_alive socket_owner
  cert_dir make_cert openssl_run tls_group);

our $TEST_USER = 'pgmirror-test';
our $SUPERUSER = 'postgres';
our $SUPERPASS = 'superpw';

my $MODDIR = dirname(abs_path(__FILE__));
my $MAINPID = $$;
our @PGMS_LIST;      # pgmirror instances started, stopped first at END
my @PGS;             # PostgreSQL clusters started
my $BASE;            # per-test temp dir
my $SEQ = 0;
my %PORTS_GIVEN;

# Clients must not pick up settings from the caller's environment.
delete @ENV{qw(PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD
  PGPASSFILE PGOPTIONS PGSERVICE PGSERVICEFILE PGSSLMODE PGAPPNAME
  PGREQUIRESSL PGCONNECT_TIMEOUT PGTARGETSESSIONATTRS PGCHANNELBINDING
  PGTZ PGDATESTYLE PGCLIENTENCODING PSQLRC)};
$ENV{PGCONNECT_TIMEOUT} = 20;
$ENV{PGPASSFILE} = '/nonexistent/pgpass';
$ENV{LC_ALL} = 'C';
delete $ENV{LANG};

$SIG{INT} = $SIG{TERM} = sub { die "killed by signal $_[0]\n" };
$SIG{PIPE} = 'IGNORE';

# --- small utilities -------------------------------------------------------

# Returns the per-test temporary directory, creating it (mode 0755).
sub tmp_base {
	return $BASE if $BASE;
	$BASE = tempdir('pgmirror-test.XXXXXX', TMPDIR => 1, CLEANUP => 0);
	chmod 0755, $BASE or die "chmod $BASE: $!";
	return $BASE;
}

# Returns a fresh subdirectory of the temp dir.
sub new_dir {
	my ($prefix) = @_;
	my $d = tmp_base() . '/' . $prefix . (++$SEQ);
	make_path($d);
	chmod 0755, $d;
	return $d;
}

sub write_file {
	my ($path, $content) = @_;
	open(my $fh, '>', $path) or die "open $path: $!";
	binmode $fh;
	print $fh $content;
	close($fh) or die "close $path: $!";
}

sub slurp {
	my ($path) = @_;
	open(my $fh, '<', $path) or return '';
	binmode $fh;
	local $/;
	my $c = <$fh>;
	return defined $c ? $c : '';
}

# Returns a TCP port on 127.0.0.1 that was free a moment ago and that this
# process has not handed out before.
sub free_port {
	my (%o) = @_;
	for (1 .. 100) {
		my $s = IO::Socket::INET->new(LocalAddr => $o{addr} // '127.0.0.1',
			LocalPort => 0, Proto => 'tcp', Listen => 1, ReuseAddr => 0)
		  or die "cannot bind a free port: $!";
		my $p = $s->sockport;
		close $s;
		next if $PORTS_GIVEN{$p}++;
		return $p;
	}
	die "no free port found";
}

# Polls $code every $interval seconds until it returns true or $timeout
# seconds passed; returns the last value.
sub wait_until {
	my ($code, $timeout, $interval) = @_;
	$timeout //= 10;
	$interval //= 0.1;
	my $deadline = time + $timeout;
	while (1) {
		my $v = $code->();
		return $v if $v;
		return $v if time > $deadline;
		sleep $interval;
	}
}

# Child set-up for IPC::Run: environment overrides and working directory.
sub _init_sub {
	my (%o) = @_;
	my $env = $o{env} || {};
	my $cwd = $o{cwd} // tmp_base();
	return sub {
		chdir $cwd;
		for my $k (keys %$env) {
			if (defined $env->{$k}) { $ENV{$k} = $env->{$k} }
			else { delete $ENV{$k} }
		}
	};
}

# Runs a command; returns ($rc, $stdout, $stderr) where $rc is the exit
# code (or 128+signal, or -1 on timeout).  Options: env, stdin (string or
# \*FH or file name via stdin_file), timeout (default 120), cwd.
sub run_cmd {
	my ($cmd, %o) = @_;
	my ($out, $err) = ('', '');
	my $in = $o{stdin} // '';
	my @io = defined $o{stdin_file} ? ('<', $o{stdin_file}) : ('<', \$in);
	my @outio = defined $o{stdout_file} ? ('>', $o{stdout_file}) : ('>', \$out);
	my $t = IPC::Run::timeout($o{timeout} // 120);
	my $h = IPC::Run::start($cmd, @io, @outio, '2>', \$err,
		init => _init_sub(%o), $t);
	my $rc;
	eval { $h->finish; 1 } or do {
		my $e = $@;
		eval { $h->kill_kill(grace => 2) };
		$err .= "\n[run_cmd: $e]";
		return (-1, $out, $err);
	};
	my $st = $h->full_result(0);
	$rc = ($st & 127) ? 128 + ($st & 127) : ($st >> 8);
	return ($rc, $out, $err);
}

# Starts a command in the background; returns a PgMirrorTest::Bg whose
# finish method returns ($rc, $stdout, $stderr).
sub start_cmd {
	my ($cmd, %o) = @_;
	my $self = bless { out => '', err => '', cmd => $cmd,
		deadline => time + ($o{timeout} // 120) }, 'PgMirrorTest::Bg';
	my $in = $o{stdin} // '';
	$self->{timer} = IPC::Run::timeout($o{timeout} // 120);
	$self->{h} = IPC::Run::start($cmd, '<', \$in, '>', \$self->{out},
		'2>', \$self->{err}, init => _init_sub(%o), $self->{timer});
	return $self;
}

# Lists the pids whose parent is $ppid (from /proc).
sub children_of {
	my ($ppid) = @_;
	my @kids;
	opendir(my $dh, '/proc') or return ();
	for my $p (grep { /^\d+$/ } readdir $dh) {
		my $st = slurp("/proc/$p/stat");
		next unless $st;
		my $r = rindex($st, ')');
		next if $r < 0;
		my @f = split ' ', substr($st, $r + 2);
		# f[0] = state, f[1] = ppid
		push @kids, $p + 0 if $f[1] == $ppid && $f[0] ne 'Z';
	}
	closedir $dh;
	my @sorted = sort { $a <=> $b } @kids;
	return @sorted;
}

# True if $pid exists and is not a zombie.
sub pid_alive {
	my ($pid) = @_;
	my $st = slurp("/proc/$pid/stat");
	return 0 unless $st;
	my $r = rindex($st, ')');
	return substr($st, $r + 2, 1) ne 'Z' ? 1 : 0;
}

# Returns the pid, among @pids, that holds the TCP connection whose local
# port is $lport and remote port $rport (from /proc/net/tcp{,6} and
# /proc/PID/fd), or undef.
sub socket_owner {
	my ($lport, $rport, @pids) = @_;
	my %inodes;
	for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
		for my $line (split /\n/, slurp($f)) {
			my @f = split ' ', $line;
			next unless @f > 9 && $f[1] =~ /:([0-9A-F]{4})$/;
			my $lp = hex($1);
			next unless $f[2] =~ /:([0-9A-F]{4})$/;
			my $rp = hex($1);
			$inodes{ $f[9] } = 1 if $lp == $lport && $rp == $rport && $f[9];
		}
	}
	return undef unless %inodes;
	for my $pid (@pids) {
		opendir(my $dh, "/proc/$pid/fd") or next;
		for my $fd (readdir $dh) {
			my $l = readlink("/proc/$pid/fd/$fd") // next;
			return $pid if $l =~ /^socket:\[(\d+)\]$/ && $inodes{$1};
		}
	}
	return undef;
}

# --- locating binaries ----------------------------------------------------

my $PGBIN;

# Returns the directory holding initdb/pg_ctl/postgres/psql, or undef.
sub pg_bindir {
	return $PGBIN if defined $PGBIN;
	my @cand;
	push @cand, $ENV{PG_BINDIR} if $ENV{PG_BINDIR};
	my $pgc = `pg_config --bindir 2>/dev/null`;
	chomp $pgc if defined $pgc;
	push @cand, $pgc if $pgc;
	push @cand, '/usr/lib/postgresql/15/bin';
	push @cand, sort { ($b =~ /(\d+)/)[0] <=> ($a =~ /(\d+)/)[0] }
	  glob('/usr/lib/postgresql/*/bin');
	for my $d (@cand) {
		if (-x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" && -x "$d/psql") {
			$PGBIN = $d;
			return $d;
		}
	}
	return undef;
}

sub _bin {
	my ($name) = @_;
	my $d = pg_bindir();
	return "$d/$name" if $d && -x "$d/$name";
	return $name;
}

# Returns the path of the pgmirror binary (dies if none).
sub pgmirror_bin {
	my @cand;
	push @cand, $ENV{PGMIRROR} if $ENV{PGMIRROR};
	push @cand, "$ENV{top_builddir}/src/pgmirror" if $ENV{top_builddir};
	push @cand, 'build/gcc/src/pgmirror', "$MODDIR/../build/gcc/src/pgmirror",
	  'src/pgmirror', "$MODDIR/../src/pgmirror";
	for my $c (@cand) {
		return abs_path($c) if -f $c && -x _;
	}
	BAIL_OUT("pgmirror binary not found (tried @cand); set PGMIRROR");
}

# Returns the path of the pgmirrorctl binary: $PGMIRRORCTL if set, else
# the pgmirrorctl in the directory of the pgmirror binary; undef if that
# file is not an executable.
sub pgmirrorctl_bin {
	my $c = $ENV{PGMIRRORCTL};
	if (!$c) {
		my $pgm = eval { pgmirror_bin() };
		return undef unless $pgm;
		$c = dirname($pgm) . '/pgmirrorctl';
	}
	return -f $c && -x _ ? abs_path($c) : undef;
}

my $PQPIPE;

# Returns the path of the t/pqpipe libpq helper; builds it into the temp
# dir from t/pqpipe.c if no built copy is found.
sub pqpipe_bin {
	return $PQPIPE if $PQPIPE;
	my @cand;
	push @cand, $ENV{PQPIPE} if $ENV{PQPIPE};
	push @cand, "$ENV{top_builddir}/t/pqpipe" if $ENV{top_builddir};
	my $pgm = eval { pgmirror_bin() };
	push @cand, dirname($pgm) . '/../t/pqpipe' if $pgm;
	push @cand, 'build/gcc/t/pqpipe', "$MODDIR/../build/gcc/t/pqpipe";
	for my $c (@cand) {
		return $PQPIPE = abs_path($c) if -f $c && -x _;
	}
	my $src = "$MODDIR/pqpipe.c";
	die "no pqpipe binary and no $src" unless -f $src;
	my $cflags = `pkg-config --cflags libpq 2>/dev/null` || '-I/usr/include/postgresql';
	my $libs = `pkg-config --libs libpq 2>/dev/null` || '-lpq';
	chomp($cflags, $libs);
	my $out = tmp_base() . '/pqpipe';
	my ($rc, undef, $err) = run_cmd(['sh', '-c',
		"cc -O1 -Wall -o '$out' $cflags '$src' $libs"]);
	die "building pqpipe failed: $err" if $rc != 0;
	note("built $out from $src");
	return $PQPIPE = $out;
}

# --- the unprivileged user -------------------------------------------------

my $user_ready;

# Returns the command prefix that runs a program as the test user.
sub _as_user {
	return () if $> != 0;
	unless ($user_ready) {
		if (!defined getpwnam($TEST_USER)) {
			my ($rc, $o, $e) = run_cmd(['useradd', '--system', '--no-create-home',
				'--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin',
				'--user-group', $TEST_USER]);
			die "useradd $TEST_USER failed: $e"
			  if $rc != 0 && !defined getpwnam($TEST_USER);
		}
		$user_ready = 1;
	}
	return ('runuser', '-u', $TEST_USER, '--');
}

sub _chown_user {
	my (@paths) = @_;
	return if $> != 0;
	my (undef, undef, $uid, $gid) = getpwnam($TEST_USER);
	chown $uid, $gid, @paths;
}

# --- PostgreSQL -----------------------------------------------------------

# --- certificates for the TLS tests ------------------------------------------

my $cert_serial = 1000;

# Makes and returns a fresh directory for certificates, with an
# openssl.cnf holding the extension sections the tests sign with
# (v3_ca, v3_server for DNS:localhost and IP:127.0.0.1, v3_server_noip
# for DNS:localhost alone, v3_client), and points libpq's certificate
# variables at files that do not exist, so no certificate of the user
# running the tests (~/.postgresql/) is picked up.
sub cert_dir {
	my ($name) = @_;
	my $dir = new_dir($name);
	$ENV{PGSSLCERT} = "$dir/none.crt";
	$ENV{PGSSLKEY} = "$dir/none.key";
	$ENV{PGSSLROOTCERT} = "$dir/none-root.crt";
	write_file("$dir/openssl.cnf", <<'EOC');
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_server_noip]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOC
	return $dir;
}

# Runs the openssl command in $dir; dies on failure, returns stdout.
sub openssl_run {
	my ($dir, @args) = @_;
	my ($rc, $out, $err) = run_cmd([ 'openssl', @args ], cwd => $dir, timeout => 60);
	die "openssl @args failed ($rc): $out$err" if $rc != 0;
	return $out;
}

# Makes $dir/NAME.key (mode 0600) and $dir/NAME.crt: a self-signed CA
# when $ca is undef, else signed by $ca with the extensions section
# $ext.  Keys are RSA 2048, or EC P-256 with key => 'ec'.
sub make_cert {
	my ($dir, $name, $cn, $ca, $ext, %o) = @_;
	my @key = ($o{key} // '') eq 'ec'
	  ? ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1')
	  : ('-newkey', 'rsa:2048');
	push @key, '-nodes', '-keyout', "$dir/$name.key";
	if (!$ca) {
		openssl_run($dir, 'req', '-x509', '-new', @key, '-out', "$dir/$name.crt",
			'-days', '2', '-subj', "/CN=$cn", '-config', "$dir/openssl.cnf",
			'-extensions', 'v3_ca');
	} else {
		openssl_run($dir, 'req', '-new', @key, '-out', "$dir/$name.csr",
			'-subj', "/CN=$cn", '-config', "$dir/openssl.cnf");
		openssl_run($dir, 'x509', '-req', '-in', "$dir/$name.csr", '-CA', "$dir/$ca.crt",
			'-CAkey', "$dir/$ca.key", '-set_serial', ++$cert_serial, '-days', '2',
			'-out', "$dir/$name.crt", '-extfile', "$dir/openssl.cnf",
			'-extensions', $ext);
	}
	chmod 0600, "$dir/$name.key" or die "chmod $name.key: $!";
}

# The tls group of a pgmirror config, as text.
sub tls_group {
	my (%t) = @_;
	return 'tls = { ' . join(' ', map { "$_ = \"$t{$_}\";" } sort keys %t) . ' };';
}

# Starts a PostgreSQL cluster.  Options: auth_host (default
# scram-sha-256), max_connections (300), conf (extra postgresql.conf
# text), hba (text inserted before the generated host lines),
# ssl => { cert => PATH, key => PATH, ca => PATH } (ssl = on: the files
# are copied into the data directory, owned by the server's user, the
# key mode 0600, and named by ssl_cert_file, ssl_key_file and, when ca
# is given, ssl_ca_file), hba_hostssl => 1 (the generated host lines
# become hostssl lines: TCP clients must use TLS).
sub pg_start {
	my (%o) = @_;
	my $bindir = pg_bindir();
	plan skip_all => 'PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; set PG_BINDIR'
	  unless $bindir;
	my @as = _as_user();
	my $dir = new_dir('pg');
	my $data = "$dir/data";
	my $self = bless {
		dir => $dir, data => $data, sockdir => $dir, host => '127.0.0.1',
		port => free_port(), logfile => "$dir/postgres.log", bindir => $bindir,
		as => \@as,
	}, 'PgMirrorTest::Pg';
	write_file("$dir/pwfile", "$SUPERPASS\n");
	_chown_user($dir, "$dir/pwfile");
	my $auth_host = $o{auth_host} // 'scram-sha-256';
	my ($rc, $out, $err) = run_cmd([@as, "$bindir/initdb", '-D', $data, '-U', $SUPERUSER,
		"--pwfile=$dir/pwfile", '--auth-local=trust', "--auth-host=$auth_host",
		'-E', 'UTF8', '--locale=C', '--no-sync'], cwd => $dir, timeout => 120);
	die "initdb failed ($rc): $out\n$err" if $rc != 0;
	my $maxc = $o{max_connections} // 300;
	my $conf = <<"EOC";
port = $self->{port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = $maxc
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 2GB
checkpoint_timeout = 30min
log_min_messages = warning
log_connections = off
log_line_prefix = '%m [%p] %u\@%d '
dynamic_shared_memory_type = posix
EOC
	$conf .= "password_encryption = '$o{password_encryption}'\n" if $o{password_encryption};
	if (my $ssl = $o{ssl}) {
		die "pg_start: ssl needs cert and key" unless $ssl->{cert} && $ssl->{key};
		my %file = (cert => 'server.crt', key => 'server.key', ca => 'root.crt');
		my %setting = (cert => 'ssl_cert_file', key => 'ssl_key_file', ca => 'ssl_ca_file');
		$conf .= "ssl = on\n";
		for my $k (qw(cert key ca)) {
			next unless defined $ssl->{$k};
			my $dst = "$data/$file{$k}";
			File::Copy::copy($ssl->{$k}, $dst) or die "copy $ssl->{$k} to $dst: $!";
			chmod($k eq 'key' ? 0600 : 0644, $dst) or die "chmod $dst: $!";
			_chown_user($dst);
			$conf .= "$setting{$k} = '$dst'\n";
		}
	}
	$conf .= $o{conf} . "\n" if $o{conf};
	open(my $fh, '>>', "$data/postgresql.conf") or die $!;
	print $fh $conf;
	close $fh;
	if ($o{hba_hostssl}) {
		my $hba = slurp("$data/pg_hba.conf");
		$hba =~ s/^host(?=\s)/hostssl/mg;
		write_file("$data/pg_hba.conf", $hba);
	}
	if ($o{hba}) {
		my $hba = slurp("$data/pg_hba.conf");
		write_file("$data/pg_hba.conf", "$o{hba}\n$hba");
	}
	push @PGS, $self;
	$self->start;
	return $self;
}

# --- pgmirror -------------------------------------------------------------

# Serialises a libconfig value.
sub _cfgval {
	my ($v) = @_;
	return $v if $v =~ /^-?\d+(\.\d+)?$/;
	return $v if $v eq 'true' || $v eq 'false';
	(my $s = $v) =~ s/(["\\])/\\$1/g;
	return qq{"$s"};
}

my @KEYORDER = qw(name host port database password auth_type pool_size);

sub _cfggroup {
	my ($h) = @_;
	my %rank;
	@rank{@KEYORDER} = (0 .. $#KEYORDER);
	my @keys = sort { ($rank{$a} // 99) <=> ($rank{$b} // 99) || $a cmp $b } keys %$h;
	return '{ ' . join(' ', map { "$_ = " . _cfgval($h->{$_}) . ';' } @keys) . ' }';
}

# Starts pgmirror in front of $pg.  Options:
#   databases  => [ { name =>, database =>, host =>, port =>, pool_size => } ]
#                 (default [ { name => 'appdb', database => 'appdb' } ];
#                 host/port default to $pg's TCP address; pg => $other
#                 selects another cluster)
#   users      => [ { name =>, password =>, database =>, auth_type =>, pool_size => } ]
#                 (default [ { name => 'app', password => 'secret' } ])
#   auth_type, shutdown_timeout, workers => {..}, pool => {..},
#   log => {..} (merged over destination = "stderr"),
#   control_socket => PATH (default DIR/pgmirror.sock),
#   listen_v6  => 1 (also listen on [::1]),
#   extra      => raw config text appended,
#   config     => full config text (overrides everything but listen),
#   wait       => 0 (do not wait for the port),
#   env        => { NAME => value } (the daemon's environment: set, or
#                 removed when the value is undef; also taken by start).
sub pgm_start {
	my ($pg, %o) = @_;
	my $bin = pgmirror_bin();
	my $dir = new_dir('pgm');
	my $port = free_port();
	my $self = bless {
		dir => $dir, port => $port, host => '127.0.0.1', sockdir => $dir,
		logfile => "$dir/pgmirror.log", conffile => "$dir/pgmirror.conf",
		ctlsock => $o{control_socket} // "$dir/pgmirror.sock",
		pg => $pg, bin => $bin,
	}, 'PgMirrorTest::Pgm';

	my @listen = ("127.0.0.1:$port", "$dir:$port");
	if ($o{listen_v6}) {
		$self->{port6} = $port;
		push @listen, "[::1]:$port";
	}
	my $listen = 'listen = [ ' . join(', ', map { _cfgval($_) } @listen) . " ];\n";
	my $conf;
	if (defined $o{config}) {
		$conf = $listen . $o{config};
		$conf .= "\ncontrol_socket = " . _cfgval($self->{ctlsock}) . ";\n"
			unless $o{config} =~ /^\s*control_socket\s*=/m;
	} else {
		my $dbs = $o{databases} // [ { name => 'appdb', database => 'appdb' } ];
		my $users = $o{users} // [ { name => 'app', password => 'secret' } ];
		my %workers = (min_spare => 2, max_spare => 8, max => 64, %{ $o{workers} || {} });
		my %pool = (mode => 'session', default_size => 100, wait_timeout => 30,
			%{ $o{pool} || {} });
		$conf = "# written by PgMirrorTest\n" . $listen;
		$conf .= 'auth_type = ' . _cfgval($o{auth_type}) . ";\n" if $o{auth_type};
		$conf .= "shutdown_timeout = " . ($o{shutdown_timeout} // 5) . ";\n";
		$conf .= 'control_socket = ' . _cfgval($o{control_socket} // "$dir/pgmirror.sock") . ";\n";
		$conf .= 'workers = ' . _cfggroup(\%workers) . ";\n";
		$conf .= 'pool = ' . _cfggroup(\%pool) . ";\n";
		my %log = (destination => 'stderr', %{ $o{log} || {} });
		$conf .= 'log = ' . _cfggroup(\%log) . ";\n";
		$conf .= "databases = (\n" . join(",\n", map {
			my %d = %$_;
			my $p = delete $d{pg} // $pg;
			$d{host} //= $p ? $p->{host} : '127.0.0.1';
			$d{port} //= $p ? $p->{port} : 5432;
			'  ' . _cfggroup(\%d)
		} @$dbs) . "\n);\n";
		$conf .= "users = (\n" . join(",\n", map { '  ' . _cfggroup($_) } @$users) . "\n);\n";
		$conf .= $o{extra} . "\n" if $o{extra};
	}
	write_file($self->{conffile}, $conf);
	chmod 0600, $self->{conffile};
	$self->{default_user} = $o{users} && @{ $o{users} } ? $o{users}[0]{name} : 'app';
	$self->{default_password} = $o{users} && @{ $o{users} } ? $o{users}[0]{password} : 'secret';
	$self->{default_db} = $o{databases} && @{ $o{databases} } ? $o{databases}[0]{name} : 'appdb';
	$self->start(%o);
	return $self;
}

# --- cleanup ----------------------------------------------------------------

sub _cleanup {
	my $failed = !Test::More->builder->is_passing || $? != 0;
	for my $m (reverse @PGMS_LIST) {
		eval { $m->_shutdown_for_cleanup };
	}
	if ($failed) {
		for my $m (@PGMS_LIST) {
			my $log = slurp($m->{logfile});
			my @l = split /\n/, $log;
			@l = @l[-40 .. -1] if @l > 40;
			diag("pgmirror log $m->{logfile} (last lines):\n" . join("\n", @l));
		}
	}
	for my $p (reverse @PGS) {
		eval { $p->stop(mode => 'immediate') };
	}
	return unless $BASE;
	if ($ENV{PGMIRROR_KEEP_TMP} || $failed) {
		diag("test files kept in $BASE");
	} else {
		remove_tree($BASE);
	}
}

END {
	if ($$ == $MAINPID) {
		local $? = $?;
		local ($@, $!);
		_cleanup();
	}
}

# ===========================================================================
package PgMirrorTest::Bg;

use strict;
use warnings;

# Waits for the background command; returns ($rc, $stdout, $stderr).
sub finish {
	my ($self) = @_;
	return @{ $self->{result} } if $self->{result};
	my $ok = eval { $self->{h}->finish; 1 };
	my $rc;
	if (!$ok) {
		$self->{err} .= "\n[timeout or error: $@]";
		eval { $self->{h}->kill_kill(grace => 2) };
		$rc = -1;
	} else {
		my $st = $self->{h}->full_result(0);
		$rc = ($st & 127) ? 128 + ($st & 127) : ($st >> 8);
	}
	$self->{result} = [ $rc, $self->{out}, $self->{err} ];
	return @{ $self->{result} };
}

# True while the command runs; past its timeout it is killed (finish
# then reports rc -1).
sub running {
	my ($self) = @_;
	return 0 if $self->{result};
	if (Time::HiRes::time() > $self->{deadline}) {
		$self->{err} .= "\n[timed out after its deadline]";
		eval { $self->{h}->kill_kill(grace => 2) };
		$self->{result} = [ -1, $self->{out}, $self->{err} ];
		return 0;
	}
	my $ok = eval { $self->{h}->pump_nb; 1 };
	return $ok && $self->{h}->pumpable ? 1 : 0;
}

# Sends a signal to the command.
sub signal {
	my ($self, $sig) = @_;
	$self->{h}->signal($sig);
}

# ===========================================================================
package PgMirrorTest::Pg;

use strict;
use warnings;

use Time::HiRes qw(sleep);

sub port    { $_[0]{port} }
sub host    { $_[0]{host} }
sub sockdir { $_[0]{sockdir} }

# Runs psql directly against the cluster.  In scalar context returns
# stdout (chomped) and dies on failure unless allow_fail; in list context
# returns ($stdout, $stderr, $rc).  Options: db, user, password (then TCP
# with that password, else the unix socket), tcp, env, stdin, timeout,
# args (extra psql arguments), allow_fail.
sub psql {
	my ($self, $sql, %o) = @_;
	my $user = $o{user} // $PgMirrorTest::SUPERUSER;
	my $tcp = $o{tcp} || defined $o{password};
	my @cmd = (PgMirrorTest::_bin('psql'), '-X', '-A', '-t', '-q', '-w',
		'-v', 'ON_ERROR_STOP=1',
		'-h', ($tcp ? $self->{host} : $self->{sockdir}), '-p', $self->{port},
		'-U', $user, '-d', $o{db} // 'postgres', @{ $o{args} || [] });
	push @cmd, '-c', $sql if defined $sql;
	my %env = %{ $o{env} || {} };
	$env{PGPASSWORD} = $o{password} // $PgMirrorTest::SUPERPASS if $tcp;
	return PgMirrorTest::_psql_result(\@cmd, \%env, %o);
}

# Returns a libpq conninfo string for a direct connection.
sub connstr {
	my ($self, %o) = @_;
	my $user = $o{user} // $PgMirrorTest::SUPERUSER;
	if (defined $o{password}) {
		return "host=$self->{host} port=$self->{port} dbname=" . ($o{db} // 'postgres')
		  . " user=$user password=$o{password}";
	}
	return "host=$self->{sockdir} port=$self->{port} dbname=" . ($o{db} // 'postgres')
	  . " user=$user";
}

# Returns a DBD::Pg handle on a direct connection (dies on failure).
sub dbh {
	my ($self, %o) = @_;
	require DBI;
	my $user = $o{user} // $PgMirrorTest::SUPERUSER;
	my $hostpart = defined $o{password} ? "host=$self->{host}" : "host=$self->{sockdir}";
	my $dsn = "dbi:Pg:$hostpart;port=$self->{port};dbname=" . ($o{db} // 'postgres');
	my $dbh = DBI->connect($dsn, $user, $o{password} // '',
		{ RaiseError => 1, PrintError => 0, AutoCommit => 1, %{ $o{attr} || {} } });
	die "connect $dsn: $DBI::errstr" unless $dbh;
	return $dbh;
}

# Creates a login role.  Options: encryption ('md5' or 'scram-sha-256'),
# superuser.
sub create_role {
	my ($self, $name, $password, %o) = @_;
	my $enc = $o{encryption} // 'scram-sha-256';
	my $sql = "SET password_encryption = '$enc'; CREATE ROLE \"$name\" LOGIN"
	  . ($o{superuser} ? ' SUPERUSER' : '')
	  . (defined $password ? " PASSWORD '$password'" : '') . ';';
	$self->psql($sql);
}

# Creates a database owned by $owner.
sub create_db {
	my ($self, $name, $owner) = @_;
	$self->psql(qq{CREATE DATABASE "$name"} . ($owner ? qq{ OWNER "$owner"} : ''));
}

# Returns the stored password (verifier) of a role from pg_authid.
sub password_of {
	my ($self, $role) = @_;
	return $self->psql("SELECT rolpassword FROM pg_authid WHERE rolname = '$role'");
}

# Number of client backends of $user (optionally in $db).
sub backends {
	my ($self, $user, $db) = @_;
	my $sql = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
	  . " AND usename = '$user'" . ($db ? " AND datname = '$db'" : '');
	return $self->psql($sql) + 0;
}

# Convenience: role app/secret (SCRAM) owning database appdb.
sub setup_app {
	my ($self, %o) = @_;
	$self->create_role($o{user} // 'app', $o{password} // 'secret',
		encryption => $o{encryption});
	$self->create_db($o{db} // 'appdb', $o{user} // 'app');
	return $self;
}

# Raw connection, startup and authentication straight to PostgreSQL over
# TCP; defaults to app/secret in appdb.  Returns ($conn, $result).
sub raw_login {
	my ($self, %o) = @_;
	return PgMirrorTest::Raw->login(host => $self->{host}, port => $self->{port},
		user => 'app', database => 'appdb', password => 'secret', %o);
}

# Reloads the server configuration (after editing pg_hba.conf).
sub reload {
	my ($self) = @_;
	$self->psql('SELECT pg_reload_conf()');
	sleep 0.3;
}

# Starts the cluster (again, after stop): same data directory, port and
# log file; waits until it accepts connections, dies if pg_ctl fails.
sub start {
	my ($self) = @_;
	return $self if $self->{running};
	my ($rc, $out, $err) = PgMirrorTest::run_cmd([ @{ $self->{as} },
		"$self->{bindir}/pg_ctl", '-w', '-t', '60', '-D', $self->{data},
		'-l', $self->{logfile}, 'start' ], cwd => $self->{dir}, timeout => 90);
	if ($rc != 0) {
		Test::More::diag("pg_ctl start failed: $out $err\n" . PgMirrorTest::slurp($self->{logfile}));
		die "pg_ctl start failed";
	}
	$self->{running} = 1;
	return $self;
}

# Stops the cluster (mode fast by default).
sub stop {
	my ($self, %o) = @_;
	return unless $self->{running};
	my $mode = $o{mode} // 'fast';
	my ($rc) = PgMirrorTest::run_cmd([ @{ $self->{as} }, "$self->{bindir}/pg_ctl",
		'-w', '-t', '30', '-D', $self->{data}, '-m', $mode, 'stop' ], cwd => $self->{dir},
		timeout => 40);
	if ($rc != 0) {
		PgMirrorTest::run_cmd([ @{ $self->{as} }, "$self->{bindir}/pg_ctl",
			'-D', $self->{data}, '-m', 'immediate', 'stop' ], cwd => $self->{dir},
			timeout => 40);
	}
	$self->{running} = 0;
}

# ===========================================================================
package PgMirrorTest::Pgm;

use strict;
use warnings;

use Socket ();

use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(time sleep);

sub port    { $_[0]{port} }
sub host    { $_[0]{host} }
sub sockdir { $_[0]{sockdir} }
sub pid     { $_[0]{pid} }
sub conffile { $_[0]{conffile} }

# The daemon's stderr so far.
sub log { PgMirrorTest::slurp($_[0]{logfile}) }

# (Re)starts the daemon with its config file and waits for the port.
# Options: args (more command-line arguments), env (as pgm_start),
# wait => 0, start_timeout.
sub start {
	my ($self, %o) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0) {
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $self->{logfile}) or POSIX::_exit(126);
		open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
		chdir $self->{dir};
		for my $k (keys %{ $o{env} || {} }) {
			if (defined $o{env}{$k}) { $ENV{$k} = $o{env}{$k} }
			else { delete $ENV{$k} }
		}
		exec($self->{bin}, '-d', '-c', $self->{conffile}, @{ $o{args} || [] })
		  or POSIX::_exit(127);
	}
	$self->{pid} = $pid;
	$self->{running} = 1;
	delete $self->{status};
	_register($self);
	return $self if defined $o{wait} && !$o{wait};
	my $ok = PgMirrorTest::wait_until(sub {
		return -1 unless $self->alive;
		return 0 unless -S "$self->{sockdir}/.s.PGSQL.$self->{port}";
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
			Proto => 'tcp', Timeout => 1);
		return 0 unless $s;
		close $s;
		return 1;
	}, $o{start_timeout} // 10, 0.05);
	if (!$ok || $ok < 0) {
		diag("pgmirror did not start listening on port $self->{port}; log:\n" . $self->log);
		die "pgmirror failed to start";
	}
	return $self;
}

sub _register {
	my ($self) = @_;
	push @PgMirrorTest::PGMS_LIST, $self
	  unless grep { $_ == $self } @PgMirrorTest::PGMS_LIST;
}

# True while the supervisor process exists (reaps it when it exited).
sub alive {
	my ($self) = @_;
	return 0 unless $self->{running};
	my $r = waitpid($self->{pid}, WNOHANG);
	if ($r == $self->{pid}) {
		$self->{status} = $?;
		$self->{running} = 0;
		return 0;
	}
	return 1;
}

# Waits up to $timeout seconds for the supervisor to exit; returns its
# wait status, or undef if it is still running.
sub wait_exit {
	my ($self, $timeout) = @_;
	PgMirrorTest::wait_until(sub { !$self->alive }, $timeout // 10, 0.05);
	return $self->{running} ? undef : $self->{status};
}

# Sends a signal to the supervisor.
sub kill {
	my ($self, $sig) = @_;
	return 0 unless $self->{running};
	return CORE::kill($sig, $self->{pid});
}

# Worker pids (children of the supervisor); their number in scalar
# context.
sub workers {
	my ($self) = @_;
	my @w = $self->{running} ? PgMirrorTest::children_of($self->{pid}) : ();
	return wantarray ? @w : scalar @w;
}

# The worker serving the client whose local TCP port is $client_port
# (a number, a DBI handle or a PgMirrorTest::Raw), or undef.
sub worker_for {
	my ($self, $client) = @_;
	my $port = $client;
	if (ref $client && ref($client) eq 'PgMirrorTest::Raw') {
		$port = $client->{sock}->sockport;
	} elsif (ref $client) {
		open(my $fh, '+<&', $client->{pg_socket}) or die "dup pg_socket: $!";
		my ($p) = Socket::sockaddr_in(getsockname($fh));
		close $fh;
		$port = $p;
	}
	return PgMirrorTest::socket_owner($self->{port}, $port, $self->workers);
}

# Stops the daemon: SIGTERM, wait, then SIGKILL; also kills leftover
# workers.  Returns the supervisor's wait status.
sub stop {
	my ($self, %o) = @_;
	return $self->{status} unless $self->{running};
	my @w = $self->workers;
	$self->kill('TERM');
	my $st = $self->wait_exit($o{timeout} // 15);
	if (!defined $st) {
		$self->kill('KILL');
		$st = $self->wait_exit(5);
	}
	# Workers should exit by themselves; give them a moment, then force.
	PgMirrorTest::wait_until(sub { !grep { PgMirrorTest::pid_alive($_) } @w }, 5, 0.05);
	CORE::kill('KILL', $_) for grep { PgMirrorTest::pid_alive($_) } @w;
	return $st;
}

sub _shutdown_for_cleanup {
	my ($self) = @_;
	$self->stop(timeout => 3) if $self->{running};
}

# Runs psql through pgmirror; same return convention as Pg::psql.
# Options: user, password, db, unix (use the unix socket), host, env,
# stdin, args, timeout, allow_fail.
sub psql {
	my ($self, $sql, %o) = @_;
	my $host = $o{host} // ($o{unix} ? $self->{sockdir} : $self->{host});
	my @cmd = (PgMirrorTest::_bin('psql'), '-X', '-A', '-t', '-q', '-w',
		'-v', 'ON_ERROR_STOP=1', '-h', $host, '-p', $self->{port},
		'-U', $o{user} // $self->{default_user}, '-d', $o{db} // $self->{default_db},
		@{ $o{args} || [] });
	push @cmd, '-c', $sql if defined $sql;
	my %env = %{ $o{env} || {} };
	$env{PGPASSWORD} = $o{password} // $self->{default_password}
	  unless exists $env{PGPASSWORD};
	return PgMirrorTest::_psql_result(\@cmd, \%env, %o);
}

# Starts psql through pgmirror in the background (PgMirrorTest::Bg).
sub psql_bg {
	my ($self, $sql, %o) = @_;
	my @cmd = (PgMirrorTest::_bin('psql'), '-X', '-A', '-t', '-q', '-w',
		'-v', 'ON_ERROR_STOP=1', '-h', $o{unix} ? $self->{sockdir} : $self->{host},
		'-p', $self->{port}, '-U', $o{user} // $self->{default_user},
		'-d', $o{db} // $self->{default_db}, '-c', $sql);
	my %env = %{ $o{env} || {} };
	$env{PGPASSWORD} = $o{password} // $self->{default_password};
	return PgMirrorTest::start_cmd(\@cmd, env => \%env, timeout => $o{timeout} // 120);
}

# Runs pgbench through pgmirror; returns ($rc, $stdout, $stderr).
sub pgbench {
	my ($self, $args, %o) = @_;
	my @cmd = (PgMirrorTest::_bin('pgbench'), '-h', $self->{host}, '-p', $self->{port},
		'-U', $o{user} // $self->{default_user}, @$args, $o{db} // $self->{default_db});
	my %env = %{ $o{env} || {} };
	$env{PGPASSWORD} = $o{password} // $self->{default_password};
	return PgMirrorTest::run_cmd(\@cmd, env => \%env, timeout => $o{timeout} // 180);
}

# DBI data source through pgmirror.
sub dsn {
	my ($self, %o) = @_;
	my $host = $o{unix} ? $self->{sockdir} : $self->{host};
	return "dbi:Pg:host=$host;port=$self->{port};dbname=" . ($o{db} // $self->{default_db});
}

# libpq conninfo through pgmirror.
sub connstr {
	my ($self, %o) = @_;
	my $host = $o{unix} ? $self->{sockdir} : $self->{host};
	return "host=$host port=$self->{port} dbname=" . ($o{db} // $self->{default_db})
	  . ' user=' . ($o{user} // $self->{default_user})
	  . ' password=' . ($o{password} // $self->{default_password})
	  . ($o{extra} ? " $o{extra}" : '');
}

# DBD::Pg handle through pgmirror (dies on failure unless allow_fail,
# then returns undef).
sub dbh {
	my ($self, %o) = @_;
	require DBI;
	my $dbh = DBI->connect($self->dsn(%o), $o{user} // $self->{default_user},
		$o{password} // $self->{default_password},
		{ RaiseError => 1, PrintError => 0, AutoCommit => 1, %{ $o{attr} || {} } });
	return $dbh if $dbh || $o{allow_fail};
	die "connect through pgmirror failed: $DBI::errstr";
}

# Raw protocol connection to pgmirror (PgMirrorTest::Raw).
sub raw {
	my ($self, %o) = @_;
	return PgMirrorTest::raw_connect(
		$o{unix} ? (path => "$self->{sockdir}/.s.PGSQL.$self->{port}")
		         : (host => $self->{host}, port => $self->{port}), %o);
}

# Raw connection, startup and authentication through pgmirror; returns
# ($conn, $result) as PgMirrorTest::Raw->login.
sub raw_login {
	my ($self, %o) = @_;
	return PgMirrorTest::Raw->login(
		$o{unix} ? (path => "$self->{sockdir}/.s.PGSQL.$self->{port}")
		         : (host => $self->{host}, port => $self->{port}),
		user => $self->{default_user}, database => $self->{default_db},
		password => $self->{default_password}, %o);
}

# Runs pgmirrorctl -s <this daemon's control socket> @args; returns
# ($rc, $stdout, $stderr) as run_cmd.  A hash reference as the first
# argument holds options: prefix => [ words run before pgmirrorctl, such
# as setpriv ... to run it as another user ], timeout (seconds, default
# 120), env.  Dies if there is no pgmirrorctl (see pgmirrorctl_bin).
sub ctl {
	my ($self, @args) = @_;
	my %o = ref $args[0] eq 'HASH' ? %{ shift @args } : ();
	my $bin = PgMirrorTest::pgmirrorctl_bin()
	  or die "pgmirrorctl not found; build it or set PGMIRRORCTL";
	return PgMirrorTest::run_cmd([ @{ $o{prefix} || [] }, $bin, '-s', $self->{ctlsock}, @args ],
		timeout => $o{timeout} // 120, env => $o{env});
}

# Speaks the control protocol directly: connects to the control socket
# (IO::Socket::UNIX), sends $line and a newline, and reads until the
# daemon closes.  Returns the whole answer text ("OK\n..." or "ERROR
# ...\n..."), '' if the daemon closed without a word, undef if the
# connection failed ($! says why).  Options: nonl => 1 (send $line
# exactly, no newline added), shut => 1 (shut down the write side once
# sent), timeout (seconds to wait for the end of the answer, default 15;
# past it, what came so far is returned and $self->{ctl_timed_out} is
# set), path (another socket).
sub ctl_raw {
	my ($self, $line, %o) = @_;
	require IO::Socket::UNIX;
	require IO::Select;
	$self->{ctl_timed_out} = 0;
	my $s = IO::Socket::UNIX->new(Peer => $o{path} // $self->{ctlsock},
		Type => Socket::SOCK_STREAM()) or return undef;
	binmode $s;
	my $msg = $line . ($o{nonl} ? '' : "\n");
	my $off = 0;
	while ($off < length $msg) {
		my $n = syswrite($s, $msg, length($msg) - $off, $off);
		last unless defined $n;    # refused or closed: read what it said
		$off += $n;
	}
	shutdown($s, 1) if $o{shut};
	my $ans = '';
	my $sel = IO::Select->new($s);
	my $deadline = time + ($o{timeout} // 15);
	while (1) {
		my $left = $deadline - time;
		if ($left <= 0) { $self->{ctl_timed_out} = 1; last }
		next unless $sel->can_read($left);
		my $r = sysread($s, my $chunk, 65536);
		last unless $r;    # EOF (or a reset after the answer)
		$ans .= $chunk;
	}
	CORE::close($s);
	return $ans;
}

# The answer of the control protocol to $line, parsed (see
# PgMirrorTest::parse_answer).
sub answer {
	my ($self, $line, %o) = @_;
	return PgMirrorTest::parse_answer($self->ctl_raw($line, %o));
}

# The rows of "show clients", as hashes keyed by column name.
sub clients {
	my ($self) = @_;
	return PgMirrorTest::row_hashes($self->answer('show clients'));
}

# Waits up to $o{timeout} (5) seconds for a client in state $state (and,
# with port => P, the one whose address ends in :P); returns its row or
# undef.
sub wait_client_state {
	my ($self, $state, %o) = @_;
	my $row;
	PgMirrorTest::wait_until(sub {
		($row) = grep {
			$_->{state} eq $state
			  && (!defined $o{port} || $_->{address} =~ /:\Q$o{port}\E$/)
		} $self->clients;
		$row;
	}, $o{timeout} // 5, 0.05);
	return $row;
}

# ===========================================================================
package PgMirrorTest;

# Parses an answer of the control protocol: { ok => 1|0, reason =>,
# header => [..], rows => [[..], ..] }; the first line must be OK or
# ERROR.
sub parse_answer {
	my ($text) = @_;
	return { ok => 0, reason => '(no answer)', header => [], rows => [] }
	  unless defined $text && length $text;
	my @lines = split /\n/, $text;
	my $first = shift @lines;
	my %a = (header => [], rows => []);
	if ($first eq 'OK') {
		$a{ok} = 1;
	} elsif ($first =~ /^ERROR (.*)$/) {
		$a{ok} = 0;
		$a{reason} = $1;
	} else {
		$a{ok} = 0;
		$a{reason} = "(malformed first line: $first)";
		$a{malformed} = 1;
	}
	if (@lines) {
		$a{header} = [ split /\t/, shift(@lines), -1 ];
		$a{rows} = [ map { [ split /\t/, $_, -1 ] } @lines ];
	}
	return \%a;
}

# The rows of a parsed answer as hashes keyed by the column names.
sub row_hashes {
	my ($a) = @_;
	my @h = @{ $a->{header} };
	return map { my $r = $_; +{ map { $h[$_] => $r->[$_] } 0 .. $#h } } @{ $a->{rows} };
}

# Common psql runner; see Pg::psql for the return convention.
sub _psql_result {
	my ($cmd, $env, %o) = @_;
	my ($rc, $out, $err) = run_cmd($cmd, env => $env, stdin => $o{stdin},
		stdin_file => $o{stdin_file}, stdout_file => $o{stdout_file},
		timeout => $o{timeout} // 120);
	if (wantarray) {
		chomp $out;
		return ($out, $err, $rc);
	}
	if ($rc != 0 && !$o{allow_fail}) {
		Carp::confess("psql failed (rc=$rc): @$cmd\n$err");
	}
	chomp $out;
	return $out;
}

require Carp;

# Opens a raw protocol connection: host+port or path.  Returns a
# PgMirrorTest::Raw.
sub raw_connect {
	my (%o) = @_;
	return PgMirrorTest::Raw->new(%o);
}

# ===========================================================================
# A minimal frontend for the PostgreSQL v3 protocol, for tests that need to
# see the bytes: SSLRequest, NegotiateProtocolVersion, authentication
# request codes, SQLSTATEs of startup errors.
package PgMirrorTest::Raw;

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use Digest::SHA qw(hmac_sha256 sha256);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use MIME::Base64 qw(encode_base64 decode_base64);
use Time::HiRes qw(time);

sub new {
	my ($class, %o) = @_;
	my $sock;
	if ($o{path}) {
		$sock = IO::Socket::UNIX->new(Peer => $o{path}, Type => Socket::SOCK_STREAM());
	} else {
		$sock = IO::Socket::INET->new(PeerAddr => $o{host}, PeerPort => $o{port},
			Proto => 'tcp', Timeout => 5);
	}
	die "raw connect failed: $!" unless $sock;
	binmode $sock;
	return bless { sock => $sock, buf => '', timeout => $o{timeout} // 15 }, $class;
}

sub send_bytes {
	my ($self, $b) = @_;
	my $off = 0;
	while ($off < length $b) {
		my $n = syswrite($self->{sock}, $b, length($b) - $off, $off);
		return 0 unless defined $n;
		$off += $n;
	}
	return 1;
}

# Sends a typed message.
sub send_msg {
	my ($self, $type, $payload) = @_;
	return $self->send_bytes($type . pack('N', 4 + length $payload) . $payload);
}

# Reads exactly $n bytes (undef on EOF or timeout).
sub read_bytes {
	my ($self, $n, $timeout) = @_;
	my $deadline = time + ($timeout // $self->{timeout});
	my $sel = IO::Select->new($self->{sock});
	while (length $self->{buf} < $n) {
		my $left = $deadline - time;
		if ($left <= 0) { $self->{timed_out} = 1; return undef }
		next unless $sel->can_read($left);
		my $r = sysread($self->{sock}, my $chunk, 65536);
		if (!$r) { $self->{eof} = 1; return undef }
		$self->{buf} .= $chunk;
	}
	return substr($self->{buf}, 0, $n, '');
}

# Reads one message; returns ($type, $payload) or () on EOF/timeout.
sub read_msg {
	my ($self, $timeout) = @_;
	my $hdr = $self->read_bytes(5, $timeout);
	return () unless defined $hdr;
	my ($type, $len) = unpack('a N', $hdr);
	my $payload = $len > 4 ? $self->read_bytes($len - 4, $timeout) : '';
	return () unless defined $payload;
	return ($type, $payload);
}

# Sends SSLRequest (or GSSENCRequest with gss => 1); returns the answer byte.
sub ssl_request {
	my ($self, %o) = @_;
	my $code = $o{gss} ? 80877104 : 80877103;
	$self->send_bytes(pack('N N', 8, $code));
	return $self->read_bytes(1, 5);
}

# Sends a StartupMessage.  %p: user, database and any other parameter;
# version defaults to 3.0 (196608).
sub startup {
	my ($self, $version, @params) = @_;
	my $body = pack('N', $version // 196608);
	while (my ($k, $v) = splice(@params, 0, 2)) {
		$body .= "$k\0$v\0";
	}
	$body .= "\0";
	return $self->send_bytes(pack('N', 4 + length $body) . $body);
}

# Parses an ErrorResponse/NoticeResponse body into { C => .., M => .., S => .. }.
sub parse_fields {
	my ($payload) = @_;
	my %f;
	while (length $payload) {
		my $code = substr($payload, 0, 1, '');
		last if $code eq "\0";
		my $z = index($payload, "\0");
		$f{$code} = substr($payload, 0, $z);
		substr($payload, 0, $z + 1, '');
	}
	return \%f;
}

# Runs the authentication exchange after startup().  Returns a hash:
#   auth   => [ request codes seen ], ok => 1 when ReadyForQuery arrived,
#   error  => { fields } on ErrorResponse, params => { ParameterStatus },
#   nego   => { version =>, count =>, options => [..] } (NegotiateProtocolVersion),
#   key    => [pid, secret], server_signature_ok => 1/0 (SCRAM),
#   messages => [types in order].
sub authenticate {
	my ($self, %o) = @_;
	my $user = $o{user} // '';
	my $pw = $o{password};
	my %r = (auth => [], params => {}, messages => []);
	my ($nonce, $client_first_bare, $salted, $auth_message);
	while (1) {
		my ($t, $p) = $self->read_msg($o{timeout});
		if (!defined $t) {
			$r{eof} = $self->{eof} ? 1 : 0;
			$r{timeout} = $self->{timed_out} ? 1 : 0;
			return \%r;
		}
		push @{ $r{messages} }, $t;
		if ($t eq 'E') {
			$r{error} = parse_fields($p);
			return \%r;
		} elsif ($t eq 'N') {
			push @{ $r{notices} }, parse_fields($p);
		} elsif ($t eq 'v') {
			# PostgreSQL sends the full newest version (3.0 = 196608) here.
			my ($version, $n) = unpack('N N', $p);
			my @opts = split /\0/, substr($p, 8);
			$r{nego} = { version => $version, count => $n,
				options => [ $n ? @opts[0 .. $n - 1] : () ] };
		} elsif ($t eq 'S') {
			my ($k, $v) = split /\0/, $p;
			$r{params}{$k} = $v // '';
		} elsif ($t eq 'K') {
			$r{key} = [ unpack('N N', $p) ];
		} elsif ($t eq 'Z') {
			$r{ok} = 1;
			$r{status} = $p;
			return \%r;
		} elsif ($t eq 'R') {
			my $code = unpack('N', $p);
			push @{ $r{auth} }, $code;
			if ($code == 0) {
				$r{auth_ok} = 1;
			} elsif ($code == 3) {
				return \%r if $o{no_answer};
				$self->send_msg('p', ($pw // '') . "\0");
			} elsif ($code == 5) {
				return \%r if $o{no_answer};
				my $salt = substr($p, 4, 4);
				$self->send_msg('p', 'md5' . md5_hex(md5_hex(($pw // '') . $user) . $salt) . "\0");
			} elsif ($code == 10) {
				my @mechs = grep { length } split /\0/, substr($p, 4);
				$r{mechanisms} = \@mechs;
				return \%r if $o{no_answer};
				$nonce = encode_base64(join('', map { chr(int(rand(256))) } 1 .. 18), '');
				$client_first_bare = "n=,r=$nonce";
				my $cf = "n,,$client_first_bare";
				$self->send_msg('p', "SCRAM-SHA-256\0" . pack('N', length $cf) . $cf);
			} elsif ($code == 11) {
				my $sf = substr($p, 4);
				my %a = map { /^(\w)=(.*)$/s ? ($1, $2) : () } split /,/, $sf;
				if (!defined $a{r} || index($a{r}, $nonce) != 0) {
					$r{scram_error} = "bad server nonce";
					return \%r;
				}
				$salted = _hi($pw // '', decode_base64($a{s}), $a{i});
				my $client_key = hmac_sha256('Client Key', $salted);
				my $stored_key = sha256($client_key);
				my $cfwp = "c=biws,r=$a{r}";
				$auth_message = "$client_first_bare,$sf,$cfwp";
				my $sig = hmac_sha256($auth_message, $stored_key);
				my $proof = $client_key ^ $sig;
				$self->send_msg('p', "$cfwp,p=" . encode_base64($proof, ''));
			} elsif ($code == 12) {
				my $sfin = substr($p, 4);
				my ($v) = $sfin =~ /v=([^,]+)/;
				my $server_key = hmac_sha256('Server Key', $salted);
				my $expect = encode_base64(hmac_sha256($auth_message, $server_key), '');
				$r{server_signature_ok} = (defined $v && $v eq $expect) ? 1 : 0;
			} else {
				$r{unsupported} = $code;
				return \%r;
			}
		}
	}
}

# PBKDF2-HMAC-SHA256 with one output block (SCRAM's Hi()).
sub _hi {
	my ($pw, $salt, $iter) = @_;
	my $u = hmac_sha256($salt . "\0\0\0\1", $pw);
	my $r = $u;
	for (2 .. $iter) {
		$u = hmac_sha256($u, $pw);
		$r ^= $u;
	}
	return $r;
}

# Sends a simple Query and collects until ReadyForQuery.  Returns
#   { rows => [[..]], tags => [..], error => {..}, notices => [..],
#     params => {..}, messages => [..], eof => 1 }
sub query {
	my ($self, $sql, %o) = @_;
	$self->send_msg('Q', "$sql\0");
	return $self->collect(%o);
}

# Reads messages until ReadyForQuery (see query()).
sub collect {
	my ($self, %o) = @_;
	my %r = (rows => [], tags => [], notices => [], params => {}, messages => []);
	while (1) {
		my ($t, $p) = $self->read_msg($o{timeout});
		if (!defined $t) {
			$r{eof} = $self->{eof} ? 1 : 0;
			$r{timeout} = $self->{timed_out} ? 1 : 0;
			return \%r;
		}
		push @{ $r{messages} }, $t;
		if ($t eq 'D') {
			my $n = unpack('n', $p);
			my $off = 2;
			my @row;
			for (1 .. $n) {
				my $len = unpack('l>', substr($p, $off, 4));
				$off += 4;
				if ($len < 0) { push @row, undef }
				else { push @row, substr($p, $off, $len); $off += $len }
			}
			push @{ $r{rows} }, \@row;
		} elsif ($t eq 'C') {
			(my $tag = $p) =~ s/\0$//;
			push @{ $r{tags} }, $tag;
		} elsif ($t eq 'E') {
			$r{error} = parse_fields($p);
		} elsif ($t eq 'N') {
			push @{ $r{notices} }, parse_fields($p);
		} elsif ($t eq 'S') {
			my ($k, $v) = split /\0/, $p;
			$r{params}{$k} = $v // '';
		} elsif ($t eq 'A') {
			my ($pid) = unpack('N', $p);
			my ($chan, $payload) = split /\0/, substr($p, 4);
			push @{ $r{notifies} }, [ $pid, $chan, $payload ];
		} elsif ($t eq 'Z') {
			$r{status} = $p;
			return \%r;
		}
	}
}

# Sends Terminate and closes.
sub close {
	my ($self) = @_;
	$self->send_msg('X', '') if $self->{sock};
	CORE::close($self->{sock}) if $self->{sock};
	delete $self->{sock};
}

# Convenience: connect, start up and authenticate in one go.  Options:
# host/port or path, user, database, password, params => [k, v, ...],
# version, ssl => 1 (send SSLRequest first).  Returns ($conn, $result).
sub login {
	my ($class, %o) = @_;
	my $c = $class->new(%o);
	if ($o{ssl}) {
		my $a = $c->ssl_request;
		$c->{ssl_answer} = $a;
	}
	$c->startup($o{version}, user => $o{user}, database => $o{database},
		@{ $o{params} || [] });
	my $r = $c->authenticate(user => $o{user}, password => $o{password},
		timeout => $o{timeout}, no_answer => $o{no_answer});
	return ($c, $r);
}

1;
