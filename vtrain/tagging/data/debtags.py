"""The bundled Debian tag-recommendation dataset: load it, split it, filter its tags.

Each example is one Debian 12 package: its English description, its
debtags, its source package and its split group (the source, merged across
sources with near-twin descriptions). See docs/data.md for where it comes
from and how it is rebuilt.

>>> splits = load_splits()
>>> sorted(splits)
['tags', 'test', 'train', 'validation']
>>> example = splits["train"][0]
>>> sorted(example)
['group', 'package', 'source', 'tags', 'text']
"""

import hashlib
import json
import os

from vtrain.tagging.data import loaders

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "debtags.jsonl.gz")
METADATA_PATH = os.path.join(os.path.dirname(DEFAULT_PATH), "debtags.json")
REBUILD_COMMAND = (
    "python -m vtrain.tagging.data.build_debtags --output vtrain/tagging/data/debtags.jsonl.gz"
)
SPLITS = ("train", "validation", "test")
SPLIT_KEY_FIELDS = ("group", "package", "id", "text")


class ChecksumError(loaders.DataError):
    """The bundled file does not match the sha256 recorded in debtags.json."""


def load_examples(path=DEFAULT_PATH):
    """Reads examples (dicts with ``text``, ``tags``, ``package``, ...) from a data file.

    The default is the bundled dataset, whose sha256 is checked against
    debtags.json first; any other path is read with `loaders.load_file` as
    user data (``.jsonl``, ``.jsonl.gz``, ``.json`` or ``.tsv``).

    Raises:
        ChecksumError: the bundled file was modified or truncated.
        loaders.DataError: the file is missing or malformed.

    >>> examples = load_examples()
    >>> examples[0]["package"], examples[0]["tags"][:2]
    ('0ad', ['game::strategy', 'interface::graphical'])
    """
    path = os.fspath(path)
    if os.path.abspath(path) == DEFAULT_PATH:
        verify_checksum(path)
    return loaders.load_file(path)


def verify_checksum(path=DEFAULT_PATH, metadata_path=METADATA_PATH):
    """Raises `ChecksumError` unless ``path`` has the sha256 recorded in ``metadata_path``.

    >>> verify_checksum()
    """
    with open(metadata_path, encoding="utf-8") as f:
        expected = json.load(f)["sha256"]
    with open(path, "rb") as f:
        found = hashlib.sha256(f.read()).hexdigest()
    if found != expected:
        raise ChecksumError(
            path,
            None,
            f"sha256 {found} does not match the one in {metadata_path}",
            f"Expected sha256 {expected} (the file as built and shipped).",
            f"Reinstall vtrain, or rebuild both files with `{REBUILD_COMMAND}`.",
        )


def split_of(key):
    """Returns "train", "validation" or "test" for a split key (80/10/10).

    The key is a group or package name (see `split_key`). The split is a pure
    function of it (sha256, not Python's salted ``hash``), so it is the same
    on every machine and does not move when other groups are added or
    removed.

    >>> split_of("vim"), split_of("gimp"), split_of("tmux")
    ('train', 'validation', 'test')
    """
    bucket = int.from_bytes(hashlib.sha256(str(key).encode("utf-8")).digest()[:8], "big") % 10
    return "train" if bucket < 8 else "validation" if bucket == 8 else "test"


def split_key(example):
    """The name an example is split by: ``group``, else ``package``, else ``id``, else its text.

    Examples sharing a group (in the bundled data: the binaries of one
    Debian source package, and near-twin texts across sources) share a key,
    so they land in one split.

    >>> split_key({"id": 7, "text": "t", "tags": ["x"]})
    '7'
    >>> split_key({"package": "0ad-data", "group": "0ad", "text": "t", "tags": ["x"]})
    '0ad'
    """
    for field in SPLIT_KEY_FIELDS:
        if field in example:
            return str(example[field])
    raise ValueError(f"Example has none of the fields {', '.join(SPLIT_KEY_FIELDS)}: {example!r}")


def split_examples(examples, min_tag_train_uses=5):
    """Splits examples 80/10/10 by `split_of` of `split_key` and keeps the tags frequent in train.

    All examples with one key (one ``group``) land in the same split, so the
    split sizes are only about 80/10/10 when groups are large.

    A tag is kept when at least ``min_tag_train_uses`` train examples carry it
    (counting train only, so validation and test leak nothing into the label
    set). Other tags are removed from every example of every split, and an
    example left with no tag is dropped: it has nothing to predict. The
    input list and its dicts are not modified.

    Returns:
        {"train": [...], "validation": [...], "test": [...], "tags": sorted
        list of kept tags}; each split keeps the input order.

    >>> examples = [{"package": p, "text": p, "tags": ["common", p]}
    ...             for p in ("a", "b", "c", "d")]
    >>> [split_of(p) for p in "abcd"]
    ['train', 'train', 'train', 'test']
    >>> splits = split_examples(examples, min_tag_train_uses=2)
    >>> splits["tags"], [e["tags"] for e in splits["test"]]
    (['common'], [['common']])
    """
    by_split = {name: [] for name in SPLITS}
    for example in examples:
        by_split[split_of(split_key(example))].append(example)
    tags = frequent_tags(by_split["train"], min_tag_train_uses)
    result = {name: restrict_tags(by_split[name], tags) for name in SPLITS}
    result["tags"] = sorted(tags)
    return result


def frequent_tags(examples, min_uses):
    """The set of tags carried by at least ``min_uses`` of ``examples``.

    >>> sorted(frequent_tags([{"tags": ["a", "b"]}, {"tags": ["a"]}], 2))
    ['a']
    """
    uses = {}
    for example in examples:
        for tag in set(example["tags"]):
            uses[tag] = uses.get(tag, 0) + 1
    return {tag for tag, count in uses.items() if count >= min_uses}


def restrict_tags(examples, tags):
    """Copies of ``examples`` with only ``tags`` kept; those left with none are dropped.

    >>> restrict_tags([{"tags": ["a", "b"]}, {"tags": ["b"]}], {"a"})
    [{'tags': ['a']}]
    """
    kept = []
    for example in examples:
        remaining = [tag for tag in example["tags"] if tag in tags]
        if remaining:
            kept.append({**example, "tags": remaining})
    return kept


def load_splits(path=DEFAULT_PATH, min_tag_train_uses=5):
    """Loads a data file and returns its train / validation / test splits and tag set.

    Works on the bundled dataset (the default) and on user data in any
    format `loaders.load_file` reads; see `split_examples` for the split rule
    and the tag filtering.

    >>> splits = load_splits()
    >>> len(splits["tags"]) < 571, all(e["tags"] for e in splits["test"])
    (True, True)
    """
    return split_examples(load_examples(path), min_tag_train_uses)
