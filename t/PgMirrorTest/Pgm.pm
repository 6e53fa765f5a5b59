# PgMirrorTest::Pgm: a pgmirror daemon started by PgMirrorTest::pgm_start:
# its process and workers, clients through it (psql, pgbench, DBD::Pg,
# the raw protocol client), pgmirrorctl and the control socket.  Loaded
# by PgMirrorTest.

package PgMirrorTest::Pgm;

use strict;
use warnings;

use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use PgMirrorTest ();
use Socket ();
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
		$port = PgMirrorTest::dbh_port($client);
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

# The rows of the answer to the control request $line ("show pools",
# ...), as hashes keyed by column name; none if it failed.
sub rows {
	my ($self, $line, %o) = @_;
	return PgMirrorTest::row_hashes($self->answer($line, %o));
}

# The "status" table of the control socket as a hash, name => value.
sub status {
	my ($self) = @_;
	return { map { $_->{name} => $_->{value} } $self->rows('status') };
}

# The rows of "show clients", as hashes keyed by column name.
sub clients {
	my ($self) = @_;
	return $self->rows('show clients');
}

# Waits up to $o{timeout} (5) seconds for a client in state $state (and,
# with port => P, the one whose address ends in :P; with db => D, one of
# database D); returns its row or undef.
sub wait_client_state {
	my ($self, $state, %o) = @_;
	my $row;
	PgMirrorTest::wait_until(sub {
		($row) = grep {
			$_->{state} eq $state
			  && (!defined $o{port} || $_->{address} =~ /:\Q$o{port}\E$/)
			  && (!defined $o{db} || $_->{database} eq $o{db})
		} $self->clients;
		$row;
	}, $o{timeout} // 5, 0.05);
	return $row;
}

# A raw login through the daemon to database $db that must be refused:
# no session, a FATAL ErrorResponse with SQLSTATE $code and a message
# matching $re (four tests named "$what: ...").  %o goes to raw_login
# (timeout 20 unless given).  Returns the error fields ({} if none).
sub login_refused {
	my ($self, $db, $what, $code, $re, %o) = @_;
	my ($c, $r) = $self->raw_login(database => $db, timeout => 20, %o);
	ok(!$r->{ok}, "$what: no session") or diag(explain($r));
	is($r->{error}{S}, 'FATAL', "$what: FATAL");
	is($r->{error}{C}, $code, "$what: SQLSTATE $code") or diag(explain($r->{error}));
	like($r->{error}{M} // '', $re, "$what: message matches $re");
	note("$what: $r->{error}{C} $r->{error}{M}") if $r->{error};
	$c->hang_up;
	return $r->{error} || {};
}

# --- the mirrors' counters ---------------------------------------------------
#
# Two views of a mirror: the "stats: mirror SOURCE -> DESTINATION: ..."
# lines the daemon logs every log.stats_period (logged_*), and the row of
# "show mirrors" on the control socket (shown_*).  Each has its own
# "drained".

# Every complete stats line of mirror $name ("SOURCE -> DESTINATION") in
# the log after offset $from (default 0), parsed (sessions, enqueued,
# replayed, errors, dropped, divergent, gaps, queue_length, queue_bytes,
# lag_ms), oldest first.
sub logged_stats {
	my ($self, $name, $from) = @_;
	my @l = substr($self->log, $from // 0) =~ /stats: mirror \Q$name\E: ([^\n]*)\n/g;
	return map { +{ /(\w+) (-?\d+)/g } } @l;
}

# The last stats line of mirror $name, parsed; {} if none yet.
sub last_logged_stats {
	my ($self, $name) = @_;
	my @all = $self->logged_stats($name);
	return $all[-1] // {};
}

# Drained by the log: waits up to $timeout seconds (default 60) for two
# stats lines of mirror $name written after the wait began, both with
# queue_length 0, the same enqueued and the same replayed + dropped.
# Returns the last stats line, or undef (with a diag) if that did not
# come.
sub logged_drained {
	my ($self, $name, $timeout) = @_;
	my $n0 = () = $self->logged_stats($name);
	my $ok = PgMirrorTest::wait_until(sub {
		my @all = $self->logged_stats($name);
		return 0 if @all < $n0 + 2;
		my ($p, $l) = @all[-2, -1];
		return $p->{queue_length} == 0 && $l->{queue_length} == 0
		  && $p->{enqueued} == $l->{enqueued}
		  && $p->{replayed} + $p->{dropped} == $l->{replayed} + $l->{dropped};
	}, $timeout // 60, 0.2);
	my $st = $self->last_logged_stats($name);
	diag("$name not drained: " . join(', ', map { "$_ $st->{$_}" } sort keys %$st))
	  unless $ok;
	return $ok ? $st : undef;
}

# The "show mirrors" row of the mirror from database $source; {} if none.
sub shown_mirror {
	my ($self, $source) = @_;
	my ($m) = grep { $_->{source} eq $source } $self->rows('show mirrors');
	return $m // {};
}

# Drained by "show mirrors": waits up to $timeout seconds (default 60)
# for two requests in a row (0.3 s apart) to show the mirror from
# $source with queue_length 0 and the same replayed; the test "$what:
# the mirror drained (queue_length 0)" says whether they did.  Returns
# the last row.
sub shown_drained_ok {
	my ($self, $what, $source, $timeout) = @_;
	my $prev = {};
	my $ok = PgMirrorTest::wait_until(sub {
		my $s = $self->shown_mirror($source);
		my $done = defined $s->{queue_length} && $s->{queue_length} == 0
		  && defined $prev->{queue_length} && $prev->{queue_length} == 0
		  && $prev->{replayed} == $s->{replayed};
		$prev = $s;
		return $done;
	}, $timeout // 60, 0.3);
	ok($ok, "$what: the mirror drained (queue_length 0)")
	  or diag(join(', ', map { "$_ $prev->{$_}" } sort keys %$prev));
	return $prev;
}

1;
