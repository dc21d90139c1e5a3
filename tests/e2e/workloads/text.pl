# SPDX-License-Identifier: MIT
# text.pl - allocation-heavy, deterministic Perl workload for
# real-programs.sh: generates its own text with a fixed LCG, then
# split/join/regex/hash counting/sort. Output never depends on hash order.
use strict;
use warnings;

my $seed = 12345;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return ($seed >> 16) % $_[0]; }

my @syll = qw(ka lo mi nu pe ra si to vu xe ya zo an el in or ul th st gr);
my @words = map { join '', map { $syll[rnd(scalar @syll)] } 1 .. 1 + rnd(4) } 1 .. 3000;

my @lines;
for my $i (1 .. 40000) {
	my @w = map { $words[rnd(scalar @words)] } 1 .. 3 + rnd(12);
	$w[0] = ucfirst $w[0];
	push @lines, join(' ', @w) . (rnd(5) ? '.' : '?') . " #$i";
}
my $text = join "\n", @lines;
printf "text: %d lines, %d bytes\n", scalar @lines, length $text;

my (%freq, %bigram, %len);
for my $line (split /\n/, $text) {
	(my $body = $line) =~ s/\s*#\d+$//;
	my @w = map { lc } ($body =~ /(\w+)/g);
	$freq{$_}++ for @w;
	$bigram{"$w[$_] $w[$_ + 1]"}++ for 0 .. $#w - 1;
	$len{length $_}++ for @w;
}
my @top = (sort { $freq{$b} <=> $freq{$a} || $a cmp $b } keys %freq)[0 .. 9];
print "words: ", scalar(keys %freq), " distinct\n";
print "top: ", join(' ', map { "$_=$freq{$_}" } @top), "\n";
my @bi = (sort { $bigram{$b} <=> $bigram{$a} || $a cmp $b } keys %bigram)[0 .. 4];
print "bigrams: ", scalar(keys %bigram), " distinct; ", join(', ', map { "$_=$bigram{$_}" } @bi), "\n";
print "lengths: ", join(' ', map { "$_:$len{$_}" } sort { $a <=> $b } keys %len), "\n";

my $rewritten = $text;
my $subs = ($rewritten =~ s/\b(\w)(\w*?)(th|st|gr)(\w*)\b/\U$1\E$2<$3>$4/g);
my $questions = () = $rewritten =~ /\?\s#\d+/g;
my %vowels;
$vowels{$_}++ for grep { /[aeiou]/ } split //, $rewritten;
print "rewrite: $subs substitutions, $questions questions, ", length $rewritten, " bytes\n";
print "vowels: ", join(' ', map { "$_=$vowels{$_}" } sort keys %vowels), "\n";

my %index;
for my $i (0 .. $#lines) {
	my %seen;
	for my $w (grep { !$seen{$_}++ } map { lc } $lines[$i] =~ /([a-z]{6,})/gi) {
		push @{ $index{$w} }, $i;
	}
}
my @long = sort { @{ $index{$b} } <=> @{ $index{$a} } || $a cmp $b } keys %index;
printf "index: %d keys, %d postings\n", scalar @long, eval { my $n = 0; $n += @$_ for values %index; $n };
printf "  %s -> %s\n", $_, join(',', @{ $index{$_} }[0 .. 4]) for @long[0 .. 4];

my @sorted = sort { length($a) <=> length($b) || $b cmp $a } map { scalar reverse } @lines;
my $checksum = 0;
$checksum = ($checksum * 31 + ord) % 1000000007 for split //, join('', @sorted[0 .. 999]);
print "sorted: first='$sorted[0]' last-len=", length $sorted[-1], " checksum=$checksum\n";
