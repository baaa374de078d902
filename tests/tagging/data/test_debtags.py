"""Tests for the bundled dataset (vtrain.tagging.data.debtags) and its builder."""

import collections
import doctest
import gzip
import hashlib
import json

import pytest

from vtrain.tagging.data import build_debtags, debtags, loaders


@pytest.fixture(scope="module")
def bundled():
    return debtags.load_examples()


@pytest.fixture(scope="module")
def metadata():
    with open(debtags.METADATA_PATH, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("module", [build_debtags, debtags, loaders])
def test_docstring_examples_run(module):
    assert doctest.testmod(module).failed == 0


# The shipped file.

def test_checksum_matches_metadata(metadata):
    with open(debtags.DEFAULT_PATH, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == metadata["sha256"]


def test_counts_match_metadata(bundled, metadata):
    assert build_debtags.summarize(bundled) == metadata["counts"]


def test_sorted_unique_tagged(bundled):
    packages = [example["package"] for example in bundled]
    assert packages == sorted(set(packages))
    assert len({example["text"] for example in bundled}) == len(bundled)
    assert all(example["tags"] and example["tags"] == sorted(set(example["tags"]))
               for example in bundled)
    assert not any(build_debtags.is_placeholder_tag(tag)
                   for example in bundled for tag in example["tags"])


def test_modified_bundled_file_fails_checksum(tmp_path, metadata):
    meta = tmp_path / "debtags.json"
    meta.write_text(json.dumps({**metadata, "sha256": "0" * 64}))
    with pytest.raises(debtags.ChecksumError) as info:
        debtags.verify_checksum(debtags.DEFAULT_PATH, str(meta))
    assert "does not match" in str(info.value) and "build_debtags" in str(info.value)


# Splits.

def test_split_of_is_deterministic_and_uses_sha256():
    assert [debtags.split_of(p) for p in ("vim", "gimp", "tmux")] == ["train", "validation", "test"]
    digest = hashlib.sha256(b"tmux").digest()
    assert int.from_bytes(digest[:8], "big") % 10 == 9


def test_split_proportions_on_bundled_data(bundled):
    counts = collections.Counter(debtags.split_of(e["package"]) for e in bundled)
    for name, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        assert abs(counts[name] / len(bundled) - share) < 0.01


def test_load_splits_on_bundled_data(bundled):
    splits = debtags.load_splits()
    kept = set(splits["tags"])
    train_uses = collections.Counter(t for e in splits["train"] for t in e["tags"])
    assert all(train_uses[tag] >= 5 for tag in kept)
    for name in ("train", "validation", "test"):
        assert all(e["tags"] and set(e["tags"]) <= kept for e in splits[name])
        assert all(debtags.split_of(e["package"]) == name for e in splits[name])
    total = sum(len(splits[name]) for name in ("train", "validation", "test"))
    assert total <= len(bundled)


def test_split_examples_filters_tags_exactly():
    # split_of: a, b, c, e -> train; d -> test; gimp -> validation.
    examples = [
        {"package": "a", "text": "A", "tags": ["common", "rare"]},
        {"package": "b", "text": "B", "tags": ["common", "pair"]},
        {"package": "c", "text": "C", "tags": ["pair", "common"]},
        {"package": "e", "text": "E", "tags": ["rare2"]},
        {"package": "d", "text": "D", "tags": ["pair", "unseen"]},
        {"package": "gimp", "text": "G", "tags": ["unseen"]},
    ]
    original = json.dumps(examples)
    splits = debtags.split_examples(examples, min_tag_train_uses=2)
    assert splits == {
        "train": [
            {"package": "a", "text": "A", "tags": ["common"]},
            {"package": "b", "text": "B", "tags": ["common", "pair"]},
            {"package": "c", "text": "C", "tags": ["pair", "common"]},
        ],
        "validation": [],
        "test": [{"package": "d", "text": "D", "tags": ["pair"]}],
        "tags": ["common", "pair"],
    }
    assert json.dumps(examples) == original


def test_load_splits_on_user_data(tmp_path):
    path = tmp_path / "mine.tsv"
    path.write_text("text\ttags\none\tx\ntwo\tx,y\n")
    splits = debtags.load_splits(str(path), min_tag_train_uses=1)
    assert [debtags.split_of(t) for t in ("one", "two")] == ["train", "train"]
    assert splits["tags"] == ["x", "y"] and len(splits["train"]) == 2


# The builder, on hand-written lists.

PACKAGES = """\
Package: zed
Version: 1.0
Description-md5: m-zed
Tag: role::program, use::editing,
 works-with::text
Section: editors

Package: alpha
Description-md5: m-alpha
Tag: implemented-in::c, suite::TODO

Package: alpha
Version: 2.0
Description-md5: m-alpha
Tag: role::program

Package: copy
Description-md5: m-copy
Tag: role::shared-lib

Package: todo-only
Description-md5: m-todo
Tag: culture::TODO, devel::lang:TODO, special::not-yet-tagged

Package: untagged
Description-md5: m-untagged

Package: undescribed
Description-md5: m-none
Tag: role::program
"""

TRANSLATIONS = """\
Package: zed
Description-md5: m-zed
Description-en: fast  text editor
 Zed edits text.
 .
 It is   fast.
   verbatim  line

Package: alpha
Description-md5: m-alpha
Description-en: Alpha library.
 Same words.

Package: copy
Description-md5: m-alpha
Description-en: Alpha library.
 Same words.

Package: copy
Description-md5: m-copy
Description-en: Alpha library.
 Same words.

Package: todo-only
Description-md5: m-todo
Description-en: nothing

Package: untagged
Description-md5: m-untagged
Description-en: untagged
"""

EXPECTED_LINES = [
    {"package": "alpha", "text": "Alpha library. Same words.",
     "tags": ["implemented-in::c", "role::program"]},
    {"package": "zed", "text": "fast text editor. Zed edits text. It is fast. verbatim line",
     "tags": ["role::program", "use::editing", "works-with::text"]},
]


def write_inputs(tmp_path, release=True):
    packages, translations = tmp_path / "Packages", tmp_path / "Translation-en"
    packages.write_text(PACKAGES)
    translations.write_text(TRANSLATIONS)
    args = ["--packages", str(packages), "--translations", str(translations)]
    if release:
        sums = "".join(f" {hashlib.sha256(text.encode()).hexdigest()} {len(text)} {name}\n"
                       for text, name in ((PACKAGES, "main/binary-amd64/Packages"),
                                          (TRANSLATIONS, "main/i18n/Translation-en")))
        path = tmp_path / "InRelease"
        path.write_text("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
                        "Origin: Debian\nSuite: stable\nCodename: test\nVersion: 0.1\n"
                        "Date: Sat, 01 Jan 2000 00:00:00 UTC\nSHA256:\n" + sums
                        + "-----BEGIN PGP SIGNATURE-----\nxx\n-----END PGP SIGNATURE-----\n")
        args += ["--release", str(path)]
    return args


def test_builder_output_is_exact(tmp_path):
    output = tmp_path / "out" / "debtags.jsonl.gz"
    args = write_inputs(tmp_path) + ["--output", str(output)]
    assert build_debtags.main(args) == 0
    with gzip.open(output, "rt", encoding="utf-8") as f:
        assert [json.loads(line) for line in f] == EXPECTED_LINES
    meta = json.loads((tmp_path / "out" / "debtags.json").read_text())
    assert meta["sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    assert meta["source"]["release"] == {"Origin": "Debian", "Suite": "stable",
                                         "Codename": "test", "Version": "0.1",
                                         "Date": "Sat, 01 Jan 2000 00:00:00 UTC"}
    assert meta["source"]["packages"]["release_path"] == "main/binary-amd64/Packages"
    assert meta["build_command"].startswith("python -m vtrain.tagging.data.build_debtags --packages")
    assert meta["counts"] == {"packages": 2, "distinct_tags": 4,
                              "tags_with_at_least_10_uses": 0,
                              "median_words_per_text": 7.5, "mean_tags_per_package": 2.5}
    assert meta["stages"] == {
        "package_stanzas": 7, "tagged_packages": 5, "tagged_with_description": 4,
        "with_non_placeholder_tag": 3, "duplicate_texts_removed": 1,
        "placeholder_tag_uses_dropped": {"culture::TODO": 1, "devel::lang:TODO": 1,
                                         "special::not-yet-tagged": 1, "suite::TODO": 1}}


def test_builder_is_byte_for_byte_reproducible(tmp_path):
    first, second = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    args = write_inputs(tmp_path, release=False)
    build_debtags.main(args + ["--output", str(first)])
    build_debtags.main(args + ["--output", str(second)])
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime field


def test_builder_output_loads_with_the_user_loader(tmp_path):
    output = tmp_path / "d.jsonl.gz"
    build_debtags.main(write_inputs(tmp_path, release=False) + ["--output", str(output)])
    assert [e["package"] for e in debtags.load_examples(str(output))] == ["alpha", "zed"]


def test_builder_rejects_release_of_other_lists(tmp_path, capsys):
    args = write_inputs(tmp_path)
    (tmp_path / "Packages").write_text(PACKAGES + "\nPackage: extra\n")
    output = tmp_path / "o.jsonl.gz"
    assert build_debtags.main(args + ["--output", str(output)]) == 1
    assert "not listed in the Release file" in capsys.readouterr().err
    assert not output.exists()


def test_builder_says_how_to_fetch_missing_lists(tmp_path, capsys):
    args = ["--lists-dir", str(tmp_path), "--output", str(tmp_path / "o.jsonl.gz")]
    assert build_debtags.main(args) == 1
    assert "apt-get -o Acquire::Languages=en update" in capsys.readouterr().err


def test_find_lists_picks_the_release_main_lists(tmp_path):
    names = ["h_dists_test_main_binary-amd64_Packages.lz4",
             "h_dists_test-updates_main_binary-amd64_Packages.lz4",
             "h_dists_test_main_i18n_Translation-en.lz4", "h_dists_test_InRelease"]
    for name in names:
        (tmp_path / name).write_text("")
    found = build_debtags.find_lists(str(tmp_path), "test", "amd64")
    assert [p.split("/")[-1] for p in found] == [names[0], names[2], names[3]]
