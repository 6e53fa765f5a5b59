# 080_dbdpg: a DBD::Pg application through pgmirror: placeholders and
# server-side prepared statements reused across executions, bytea and
# Unicode round trips, transaction commit and rollback as seen by another
# session, a 20 MB text value both ways, cursors, and the same answers as
# a direct connection.

use strict;
use warnings;

use DBD::Pg qw(:pg_types);
use Digest::MD5 qw(md5_hex);
use PgMirrorTest;
use Test::More;

my $pg = pg_start();
$pg->setup_app;
$pg->psql('CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2));'
	. ' CREATE TABLE blobs (id int PRIMARY KEY, data bytea);'
	. ' CREATE TABLE docs (id int PRIMARY KEY, body text);'
	. ' CREATE TABLE tx (id int)', db => 'appdb', user => 'app');
my $pgm = pgm_start($pg);

my $dbh = $pgm->dbh(attr => { pg_enable_utf8 => 1 });
my $direct = $pg->dbh(db => 'appdb', user => 'app', password => 'secret',
	attr => { pg_enable_utf8 => 1 });
ok($dbh->ping, 'ping through pgmirror');
is($dbh->{pg_server_version}, $direct->{pg_server_version}, 'server version as seen by DBD::Pg');

# --- placeholders and server-side prepared statements --------------------------

{
	my $ins = $dbh->prepare('INSERT INTO items (id, name, price) VALUES (?, ?, ?)');
	for my $i (1 .. 200) {
		$ins->execute($i, "item $i", $i * 1.25);
	}
	is($pg->psql('SELECT count(*), sum(price) FROM items', db => 'appdb'), '200|25125.00',
		'200 rows inserted with placeholders (checked directly)');

	my $sel = $dbh->prepare('SELECT name, price FROM items WHERE id = $1');
	my $name = $sel->{pg_prepare_name};
	my @got;
	for my $i (1, 50, 200) {
		$sel->execute($i);
		push @got, [ $sel->fetchrow_array ];
	}
	is_deeply(\@got, [ [ 'item 1', '1.25' ], [ 'item 50', '62.50' ], [ 'item 200', '250.00' ] ],
		'prepared statement executed three times with different values');
	ok($name || $sel->{pg_prepare_name}, 'DBD::Pg used a named server-side statement');
	my $prepared = $dbh->selectrow_array(
		'SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE ?', undef,
		'SELECT name, price FROM items WHERE id = $1%');
	is($prepared, 1, 'the statement is prepared once on the server and reused');

	my $rows = $dbh->selectall_arrayref('SELECT id, name FROM items WHERE id BETWEEN ? AND ?'
		. ' ORDER BY id', undef, 10, 19);
	my $drows = $direct->selectall_arrayref('SELECT id, name FROM items WHERE id BETWEEN ? AND ?'
		. ' ORDER BY id', undef, 10, 19);
	is_deeply($rows, $drows, 'selectall with placeholders: same as direct');
	is(scalar @$rows, 10, '10 rows');

	# NULLs and many parameters.
	my @vals = (undef, 1 .. 40);
	my $sql = 'SELECT ' . join(', ', map { "\$${_}::int" } 1 .. 41);
	is_deeply([ $dbh->selectrow_array($sql, undef, @vals) ], \@vals, '41 parameters incl. NULL');
}

# --- bytea and Unicode ------------------------------------------------------------

{
	my $bytes = join('', map { chr($_) } 0 .. 255) x 400;    # 100 kB, every byte value
	my $ins = $dbh->prepare('INSERT INTO blobs VALUES (?, ?)');
	$ins->bind_param(1, 1);
	$ins->bind_param(2, $bytes, { pg_type => PG_BYTEA });
	$ins->execute;
	my ($back) = $dbh->selectrow_array('SELECT data FROM blobs WHERE id = 1');
	is(length $back, length $bytes, 'bytea length round trip');
	ok($back eq $bytes, 'bytea content round trip');
	is($pg->psql('SELECT md5(data) FROM blobs WHERE id = 1', db => 'appdb'), md5_hex($bytes),
		'bytea stored exactly (checked directly)');

	my $text = "h\x{e9}llo w\x{f6}rld \x{263a} \x{1F600} \x{4e2d}\x{6587}";
	my ($echo) = $dbh->selectrow_array('SELECT ?::text', undef, $text);
	is($echo, $text, 'Unicode text round trip');
	my ($len) = $dbh->selectrow_array('SELECT length(?::text)', undef, $text);
	is($len, length $text, 'server sees the same number of characters');
}

# --- transactions ------------------------------------------------------------------

{
	my $other = $pgm->dbh;
	$dbh->begin_work;
	$dbh->do('INSERT INTO tx VALUES (1)');
	is($other->selectrow_array('SELECT count(*) FROM tx'), 0,
		'uncommitted row not visible to another session');
	is($dbh->selectrow_array('SELECT count(*) FROM tx'), 1, 'visible inside the transaction');
	$dbh->rollback;
	is($other->selectrow_array('SELECT count(*) FROM tx'), 0, 'rolled back: not visible');
	is($dbh->selectrow_array('SELECT count(*) FROM tx'), 0, 'rolled back: gone');

	$dbh->begin_work;
	$dbh->do('INSERT INTO tx VALUES (2)');
	$dbh->do('SAVEPOINT s1');
	$dbh->do('INSERT INTO tx VALUES (3)');
	$dbh->do('ROLLBACK TO SAVEPOINT s1');
	$dbh->commit;
	is_deeply($other->selectcol_arrayref('SELECT id FROM tx ORDER BY id'), [2],
		'committed row visible to another session, savepoint rolled back');
	is($pg->psql('SELECT array_agg(id) FROM tx', db => 'appdb'), '{2}', '... and directly');

	# AutoCommit off, the way many applications run.
	my $ac = $pgm->dbh(attr => { AutoCommit => 0 });
	$ac->do('INSERT INTO tx VALUES (4)');
	is($other->selectrow_array('SELECT count(*) FROM tx WHERE id = 4'), 0, 'AutoCommit off: not yet');
	$ac->commit;
	is($other->selectrow_array('SELECT count(*) FROM tx WHERE id = 4'), 1, 'AutoCommit off: committed');
	$ac->disconnect;

	# An error aborts the transaction; rollback recovers.
	$dbh->begin_work;
	eval { $dbh->do('INSERT INTO tx VALUES (1/0)') };
	is($dbh->state, '22012', 'error inside a transaction: 22012');
	eval { $dbh->do('SELECT 1') };
	is($dbh->state, '25P02', 'next statement: 25P02');
	$dbh->rollback;
	is($dbh->selectrow_array('SELECT 5'), 5, 'usable after rollback');
	$other->disconnect;
}

# --- a 20 MB text value ------------------------------------------------------------

{
	my $big = join('', map { sprintf('%07d ', $_) } 1 .. 2_621_440);    # 20 MB
	is(length $big, 20 * 1024 * 1024, 'built a 20 MB string');
	my $sth = $dbh->prepare('INSERT INTO docs VALUES (?, ?)');
	ok($sth->execute(1, $big), '20 MB value sent as a bind parameter');
	my ($back) = $dbh->selectrow_array('SELECT body FROM docs WHERE id = 1');
	is(length $back, length $big, '20 MB value read back: length');
	is(md5_hex($back), md5_hex($big), '20 MB value read back: content');
	is($pg->psql('SELECT md5(body) FROM docs WHERE id = 1', db => 'appdb'), md5_hex($big),
		'stored exactly (checked directly)');

	# The same value as a literal in a simple query (pg_server_prepare off).
	$dbh->do('INSERT INTO docs VALUES (2, ' . $dbh->quote($big) . ')');
	is($dbh->selectrow_array('SELECT md5(body) FROM docs WHERE id = 2'), md5_hex($big),
		'20 MB literal in a simple query');
	is($dbh->selectrow_array('SELECT count(*) FROM docs WHERE body = (SELECT body FROM docs WHERE id = 1)'),
		2, 'both copies equal on the server');
}

# --- cursors and larger result sets -------------------------------------------------

{
	$dbh->begin_work;
	$dbh->do('DECLARE c CURSOR FOR SELECT g, md5(g::text) FROM generate_series(1, 10000) g');
	my $n = 0;
	while (1) {
		my $r = $dbh->selectall_arrayref('FETCH 1000 FROM c');
		last unless @$r;
		$n += @$r;
	}
	$dbh->commit;
	is($n, 10000, 'cursor fetched in batches');

	my $q = 'SELECT g, md5(g::text), g * 1.5 FROM generate_series(1, 50000) g';
	my $via = $dbh->selectall_arrayref($q);
	my $dir = $direct->selectall_arrayref($q);
	ok(@$via == 50000 && md5_hex(join(',', map { @$_ } @$via)) eq md5_hex(join(',', map { @$_ } @$dir)),
		'50000-row result identical to direct');
}

# --- statements survive in the session -----------------------------------------------

{
	my $sth = $dbh->prepare('SELECT $1::int + 1');
	my @r = map { $sth->execute($_); ($sth->fetchrow_array)[0] } 1 .. 100;
	is_deeply(\@r, [ 2 .. 101 ], 'one prepared statement executed 100 times');
	is($dbh->selectrow_array("SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT \$1::int + 1'"),
		1, 'still one server-side statement');
	$dbh->do("SET application_name = 'dbd-app'");
	is($dbh->selectrow_array('SHOW application_name'), 'dbd-app', 'SET survives in the session');
}

$dbh->disconnect;
$direct->disconnect;
ok($pgm->alive, 'pgmirror still running');
done_testing();
