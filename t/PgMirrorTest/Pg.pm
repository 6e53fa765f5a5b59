# PgMirrorTest::Pg: a PostgreSQL cluster started by PgMirrorTest::pg_start
# (initdb and pg_ctl, as the test user when run as root): psql, DBD::Pg
# and raw connections straight to it, roles and databases, start and
# stop.  Loaded by PgMirrorTest.

package PgMirrorTest::Pg;

use strict;
use warnings;

use PgMirrorTest ();
use Test::More ();

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

# The row count and md5 of the rows of $table in $key order, as text
# ("N rows, md5 X"), read directly as the superuser from database appdb
# (or db => D): two clusters hold the same rows when their table_sig
# agree.
sub table_sig {
	my ($self, $table, $key, %o) = @_;
	return $self->psql("SELECT count(*) || ' rows, md5 ' || coalesce(md5(string_agg(t::text, ','"
		. " ORDER BY $key)), '-') FROM $table t", db => $o{db} // 'appdb');
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

1;
