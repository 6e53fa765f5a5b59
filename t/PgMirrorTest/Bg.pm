# PgMirrorTest::Bg: a command started in the background by
# PgMirrorTest::start_cmd (and Pgm::psql_bg); finish waits for it and
# returns ($rc, $stdout, $stderr) as run_cmd.  Loaded by PgMirrorTest.

package PgMirrorTest::Bg;

use strict;
use warnings;

use Time::HiRes ();

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

1;
