"""How many test texts have a near-twin in the training split, and grouping such twins.

A test example is a *near-duplicate* of the training split when some training
text shares at least ``threshold`` of their combined word set: word-set
Jaccard ``|A & B| / |A | B| >= threshold``, words being the runs of letters
and digits of the lower-cased text (`word_set`). The rate is computed
exactly over every test example (no sampling, no MinHash): `nearest` finds
each test text's most similar training text with an inverted index (NumPy
only, about 2 s for the bundled data's 2,900 test x 23,500 train texts).

Command line::

    python -m vtrain.tagging.data.near_duplicates [--path=FILE] [--threshold=0.8]
        [--sample=0] [--split-by=group|source|package]

prints the rate at ``--threshold`` and at 0.5 for the splits
`debtags.load_splits` makes (the bundled data by default), and a few pairs.
``--split-by=source`` or ``package`` measures the splits the data would get
if it were split by the source package only, or by the package name (the
rule before groups).

`near_twin_groups` is what the dataset builder uses to put near-twin texts
of different Debian source packages in one split group: union-find over the
pairs at Jaccard >= 0.8, which `similar_pairs` finds exactly with prefix
filtering (an inverted index of the rarest words of each text).

>>> sorted(word_set("Vim: a text-editor; VIM 9"))
['9', 'a', 'editor', 'text', 'vim']
>>> jaccard(word_set("a b c d"), word_set("a b c e"))
0.6
>>> nearest(["a b c e", "x y"], ["a b c d", "a b"])
[(0.6, 0), (0.0, None)]
"""

import argparse
import bisect
import math
import random
import re
import sys

import numpy as np

WORD = re.compile(r"[^\W_]+")
DEFAULT_THRESHOLD = 0.8
SECOND_THRESHOLD = 0.5
SPLIT_BY = ("group", "source", "package")
# Subtracted before rounding the minimum overlap up, so that a float product
# such as 0.7 * 10 = 7.000000000000001 cannot shorten a prefix (which would
# miss pairs). A longer prefix only adds candidates, which are then checked.
_SLACK = 1e-9


def word_set(text):
    """The set of lower-cased words (runs of Unicode letters and digits) of a text.

    >>> sorted(word_set("GNU's C/C++ compiler, v2"))
    ['c', 'compiler', 'gnu', 's', 'v2']
    """
    return frozenset(WORD.findall(text.lower()))


def jaccard(a, b):
    """``|a & b| / |a | b|`` of two sets; 0.0 when both are empty.

    >>> jaccard({1, 2, 3}, {2, 3, 4, 5})
    0.4
    """
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def _prefix_length(size, threshold):
    """How many of a set's rarest words must be indexed so no pair >= threshold is missed.

    If J(x, y) >= t then |x & y| >= t * max(|x|, |y|), so x and y share at
    least one word among the first ``|x| - ceil(t |x|) + 1`` words of x and
    the first ``|y| - ceil(t |y|) + 1`` of y, under any fixed word order
    (prefix filtering; Chaudhuri et al. 2006, Bayardo et al. 2007).

    >>> _prefix_length(10, 0.8), _prefix_length(10, 0.7), _prefix_length(3, 0.5)
    (3, 4, 2)
    """
    return size - math.ceil(threshold * size - _SLACK) + 1


class _Encoder:
    """Words -> integer ranks, rarest first, so that prefixes hold the rarest words."""

    def __init__(self, sets):
        frequency = {}
        for words in sets:
            for word in words:
                frequency[word] = frequency.get(word, 0) + 1
        order = sorted(frequency, key=lambda word: (frequency[word], word))
        self.rank = {word: rank for rank, word in enumerate(order)}

    def encode(self, words):
        return sorted(self.rank[word] for word in words)


class _SizeIndex:
    """Inverted index of the prefixes of sets, each posting list kept in order of size.

    `add` must be called in order of non-decreasing set size. `candidates`
    returns every added set that can have Jaccard >= threshold with the
    probe: it shares a prefix word with it (see `_prefix_length`) and its
    size lies in [t |x|, |x| / t] (a smaller or larger set cannot reach t).
    """

    def __init__(self, encoder, threshold):
        self.encoder, self.threshold = encoder, threshold
        self.positions, self.sizes = {}, {}

    def _prefix(self, words):
        ranks = self.encoder.encode(words)
        return ranks[: _prefix_length(len(ranks), self.threshold)]

    def add(self, position, words):
        for rank in self._prefix(words):
            self.positions.setdefault(rank, []).append(position)
            self.sizes.setdefault(rank, []).append(len(words))

    def candidates(self, words):
        size = len(words)
        smallest = math.ceil(self.threshold * size - _SLACK)
        largest = math.floor(size / self.threshold + _SLACK)
        found = set()
        for rank in self._prefix(words):
            sizes = self.sizes.get(rank)
            if sizes:
                found.update(
                    self.positions[rank][
                        bisect.bisect_left(sizes, smallest) : bisect.bisect_right(sizes, largest)
                    ]
                )
        return found


def _jaccard_of_sizes(a, b):
    """`jaccard` from the intersection alone (the union follows from the sizes)."""
    common = len(a & b)
    union = len(a) + len(b) - common
    return common / union if union else 0.0


def _check_threshold(threshold):
    if not 0 < threshold <= 1:
        raise ValueError(
            f"Invalid threshold: received {threshold!r}. Expected a Jaccard "
            "similarity in (0, 1], e.g. 0.8."
        )


def nearest(queries, corpus):
    """For each query text, its most similar corpus text: ``(similarity, index)``.

    The similarity is the exact word-set Jaccard, maximised over the whole
    corpus; on ties the lowest index wins. A query sharing no word with any
    corpus text gets ``(0.0, None)``. NumPy only: an inverted index (word ->
    corpus positions) gives each query's intersection size with every
    corpus text in one ``bincount``.

    >>> nearest(["free chess engine", "chess", "mail"], ["chess engine", "free chess engine"])
    [(1.0, 1), (0.5, 0), (0.0, None)]
    """
    corpus_sets = [word_set(text) for text in corpus]
    postings = {}
    for position, words in enumerate(corpus_sets):
        for word in words:
            postings.setdefault(word, []).append(position)
    postings = {word: np.array(positions, dtype=np.int64) for word, positions in postings.items()}
    sizes = np.array([len(words) for words in corpus_sets], dtype=np.int64)
    results = []
    for text in queries:
        words = word_set(text)
        hits = [postings[word] for word in words if word in postings]
        if not hits:
            results.append((0.0, None))
            continue
        common = np.bincount(np.concatenate(hits), minlength=len(corpus_sets))
        similarity = common / (len(words) + sizes - common)
        best = int(np.argmax(similarity))
        results.append((float(similarity[best]), best))
    return results


def similar_pairs(texts, threshold=DEFAULT_THRESHOLD):
    """All pairs ``(i, j, similarity)``, i < j, of texts with word-set Jaccard >= threshold.

    Exact (prefix-filtered self-join, every candidate checked), sorted by
    (i, j). Texts with no word pair with nothing.

    >>> similar_pairs(["a b c d e", "x y z", "a b c d f", "a b c d e g"], 0.8)
    [(0, 3, 0.8333333333333334)]
    >>> similar_pairs(["a b c d e", "x y z", "a b c d f", "a b c d e g"], 0.6)
    [(0, 2, 0.6666666666666666), (0, 3, 0.8333333333333334)]
    """
    _check_threshold(threshold)
    sets = [word_set(text) for text in texts]
    index, pairs = _SizeIndex(_Encoder(sets), threshold), []
    # In order of size, so that every indexed set is at most as large as the probe.
    for position in sorted(range(len(sets)), key=lambda p: (len(sets[p]), p)):
        words = sets[position]
        for other in index.candidates(words):
            similarity = _jaccard_of_sizes(words, sets[other])
            if similarity >= threshold:
                pairs.append((min(other, position), max(other, position), similarity))
        index.add(position, words)
    return sorted(pairs)


def near_twin_groups(keys, texts, threshold=DEFAULT_THRESHOLD):
    """Merges the keys of near-twin texts: one group name per text.

    ``keys[i]`` is text i's own group (for Debian: its source package).
    Texts whose word sets have Jaccard >= ``threshold`` are joined, and so,
    transitively, are their keys (union-find): every text of every key in a
    connected component gets the component's alphabetically first key. Keys
    with no near-twin elsewhere keep their name.

    >>> near_twin_groups(["b", "a", "c", "c"],
    ...                  ["x y z w", "x y z w v", "p q", "r s"])
    ['a', 'a', 'c', 'c']
    """
    if len(keys) != len(texts):
        raise ValueError(
            f"near_twin_groups: {len(keys)} keys for {len(texts)} texts; expected one key per text."
        )
    parent = {key: key for key in keys}

    def root(key):
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for i, j, _ in similar_pairs(texts, threshold):
        a, b = root(keys[i]), root(keys[j])
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [root(key) for key in keys]


def near_duplicate_report(train, test, thresholds=(DEFAULT_THRESHOLD, SECOND_THRESHOLD)):
    """The near-duplicate rate of ``test`` against ``train`` at each threshold.

    ``train`` and ``test`` are lists of examples (dicts with ``text``).
    Returns ``{"test_examples": n, "rates": {threshold: fraction}, "counts":
    {threshold: count}, "nearest": [(similarity, train index) per test
    example, from `nearest`]}``.

    >>> train = [{"text": "chess engine"}, {"text": "web server"}]
    >>> test = [{"text": "chess engine"}, {"text": "a chess engine"},
    ...         {"text": "mail client"}, {"text": "fast web server daemon"}]
    >>> report = near_duplicate_report(train, test)
    >>> report["counts"], report["rates"]
    ({0.8: 1, 0.5: 3}, {0.8: 0.25, 0.5: 0.75})
    """
    found = nearest([e["text"] for e in test], [e["text"] for e in train])
    counts = {t: sum(1 for similarity, _ in found if similarity >= t) for t in thresholds}
    return {
        "test_examples": len(test),
        "counts": counts,
        "rates": {t: counts[t] / len(test) if test else 0.0 for t in thresholds},
        "nearest": found,
    }


def regroup(examples, split_by):
    """Copies of ``examples`` whose split key is their ``group`` / ``source`` / package.

    ``"group"`` leaves them as they are; ``"source"`` makes the source (when
    there is one) the group; ``"package"`` removes the group, so that
    `debtags.split_key` falls back to the package, id or text.

    >>> example = {"package": "0ad-data", "source": "0ad-data", "group": "0ad"}
    >>> [regroup([example], by)[0].get("group") for by in SPLIT_BY]
    ['0ad', '0ad-data', None]
    """
    if split_by not in SPLIT_BY:
        raise ValueError(
            f"Invalid split_by: received {split_by!r}. Expected one of {', '.join(SPLIT_BY)}."
        )
    regrouped = []
    for example in examples:
        example = {k: v for k, v in example.items() if k != "group" or split_by == "group"}
        if split_by == "source" and "source" in example:
            example["group"] = example["source"]
        regrouped.append(example)
    return regrouped


def _name(example):
    for field in ("package", "id"):
        if field in example:
            return str(example[field])
    return repr(example["text"][:40])


def _short(text, width=100):
    return text if len(text) <= width else text[: width - 3] + "..."


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m vtrain.tagging.data.near_duplicates",
        description="Fraction of test examples whose nearest training text has word-set "
        "Jaccard >= threshold, computed exactly over all test examples.",
    )
    parser.add_argument(
        "--path",
        default=None,
        help="data file (.jsonl, .json, .tsv, optionally .gz); default: the bundled Debian dataset",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="Jaccard threshold of the headline rate (default 0.8); the rate at 0.5 is printed too",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        help="measure only this many test examples, drawn with seed 0 (default 0: all of them)",
    )
    parser.add_argument(
        "--min-tag-train-uses", type=int, default=5, help="as in debtags.load_splits (default 5)"
    )
    parser.add_argument(
        "--split-by",
        choices=SPLIT_BY,
        default="group",
        help="group (default): the split as shipped; source: hash the "
        "source package only (no near-twin merging); package: hash "
        "the package / id / text, ignoring groups (the old rule)",
    )
    parser.add_argument(
        "--examples", type=int, default=5, help="near-duplicate pairs to print (default 5)"
    )
    args = parser.parse_args(argv)
    if not 0 < args.threshold <= 1:
        parser.error(
            f"--threshold: received {args.threshold}. Expected a Jaccard "
            "similarity in (0, 1], e.g. 0.8."
        )
    if args.sample < 0:
        parser.error(
            f"--sample: received {args.sample}. Expected 0 (all test examples) "
            "or a positive number of test examples."
        )
    return args


def main(argv=None):
    """Command-line entry point; prints the report and returns the exit code."""
    from vtrain.tagging.data import debtags, loaders

    args = parse_args(sys.argv[1:] if argv is None else argv)
    path = args.path or debtags.DEFAULT_PATH
    try:
        examples = debtags.load_examples(path)
    except loaders.DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    examples = regroup(examples, args.split_by)
    splits = debtags.split_examples(examples, args.min_tag_train_uses)
    train, test = splits["train"], splits["test"]
    if args.sample and args.sample < len(test):
        test = random.Random(0).sample(test, args.sample)
    thresholds = tuple(sorted({args.threshold, SECOND_THRESHOLD}, reverse=True))
    report = near_duplicate_report(train, test, thresholds)
    rule = {
        "group": "group, else package / id / text",
        "source": "source, else package / id / text (--split-by=source)",
        "package": "package / id / text, groups ignored (--split-by=package)",
    }[args.split_by]
    print(f"data: {path}")
    print(f"split by a hash of: {rule}")
    print(
        f"examples: {len(train)} train, {len(splits['validation'])} validation, "
        f"{len(splits['test'])} test"
        + (
            f"; measured on a sample of {len(test)} test examples"
            if len(test) < len(splits["test"])
            else ""
        )
    )
    for threshold in thresholds:
        print(
            f"test examples whose nearest training text has Jaccard >= {threshold:g}: "
            f"{report['counts'][threshold]} of {len(test)} "
            f"({100 * report['rates'][threshold]:.1f}%)"
        )
    pairs = sorted(
        (
            (similarity, position, index)
            for position, (similarity, index) in enumerate(report["nearest"])
            if index is not None
        ),
        key=lambda p: (-p[0], p[1]),
    )
    above = [pair for pair in pairs if pair[0] >= args.threshold]
    if args.examples > 0 and pairs:
        if above:
            print(
                f"pairs at Jaccard >= {args.threshold:g}, spread over the "
                f"{len(above)} (test <- nearest train):"
            )
            shown = above[:: max(1, len(above) // args.examples)][: args.examples]
        else:
            print(
                f"no pair at Jaccard >= {args.threshold:g}; the closest pairs "
                "(test <- nearest train):"
            )
            shown = pairs[: args.examples]
        for similarity, position, index in shown:
            print(f"  {similarity:.3f}  {_name(test[position])} <- {_name(train[index])}")
            print(f"         test:  {_short(test[position]['text'])}")
            print(f"         train: {_short(train[index]['text'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
