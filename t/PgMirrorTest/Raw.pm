# PgMirrorTest::Raw: a minimal frontend for the PostgreSQL v3 protocol,
# for tests that need to see the bytes: SSLRequest,
# NegotiateProtocolVersion, authentication request codes, SQLSTATEs of
# startup errors.  Loaded by PgMirrorTest (raw_connect, Pgm::raw,
# Pgm::raw_login, Pg::raw_login).

package PgMirrorTest::Raw;

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use Digest::SHA qw(hmac_sha256 sha256);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use MIME::Base64 qw(encode_base64 decode_base64);
use Socket ();
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

# The next message for authenticate and collect: ($type, $payload), the
# type also added to $r->{messages}; at EOF or timeout, () with
# $r->{eof} and $r->{timeout} set.
sub _next_msg {
	my ($self, $r, $timeout) = @_;
	my ($t, $p) = $self->read_msg($timeout);
	if (!defined $t) {
		$r->{eof} = $self->{eof} ? 1 : 0;
		$r->{timeout} = $self->{timed_out} ? 1 : 0;
		return ();
	}
	push @{ $r->{messages} }, $t;
	return ($t, $p);
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
		my ($t, $p) = $self->_next_msg(\%r, $o{timeout}) or return \%r;
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
		my ($t, $p) = $self->_next_msg(\%r, $o{timeout}) or return \%r;
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

# Runs a simple Query (timeout => seconds, default 10); returns the first
# column of its first row, or undef on an ErrorResponse or no row.
sub value {
	my ($self, $sql, %o) = @_;
	my $r = $self->query($sql, timeout => $o{timeout} // 10);
	return undef if $r->{error} || !@{ $r->{rows} };
	return $r->{rows}[0][0];
}

# The pid of the session's server backend (SELECT pg_backend_pid()), or
# undef.
sub backend_pid {
	my ($self) = @_;
	return $self->value('SELECT pg_backend_pid()');
}

# Sends a CancelRequest for the backend key $key ([ pid, secret ], as
# authenticate returns it; [ 0, 0 ] when undef).  Send it on a connection
# of its own: the peer takes nothing else on it.
sub send_cancel {
	my ($self, $key) = @_;
	return $self->send_bytes(pack('N N N N', 16, 80877102, @{ $key || [ 0, 0 ] }));
}

# Reads what the peer sends until it closes the connection (EOF or a
# reset) or until $timeout seconds (default 5) from $t0 (default now)
# passed, then hangs up.  Returns { closed => 1 if the peer closed, secs
# => seconds since $t0, got => the bytes (with any left buffered), type
# => the type byte of the first message, fields => its fields when it is
# an ErrorResponse }.
sub read_until_close {
	my ($self, $timeout, $t0) = @_;
	$t0 //= time;
	my $sel = IO::Select->new($self->{sock});
	my $got = $self->{buf};
	$self->{buf} = '';
	my $closed = 0;
	while ((my $left = $t0 + ($timeout // 5) - time) > 0) {
		next unless $sel->can_read($left);
		my $n = sysread($self->{sock}, my $chunk, 65536);
		if (!$n) { $closed = 1; last }
		$got .= $chunk;
	}
	my %r = (closed => $closed, secs => time - $t0, got => $got);
	if (length $got >= 5) {
		my ($t, $len) = unpack('a N', $got);
		$r{type} = $t;
		$r{fields} = parse_fields(substr($got, 5, $len - 4)) if $t eq 'E' && $len >= 4;
	}
	$self->hang_up;
	return \%r;
}

# Sends Terminate and closes.
sub close {
	my ($self) = @_;
	$self->send_msg('X', '') if $self->{sock};
	$self->hang_up;
}

# Closes the connection without a Terminate, as a client that hangs up
# (or stops in the middle of a message, or of a TLS handshake: plain
# bytes after an 'S' would be garbage to TLS).  Nothing if already
# closed.
sub hang_up {
	my ($self) = @_;
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
