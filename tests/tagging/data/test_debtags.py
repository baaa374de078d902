"""Tests for the bundled dataset (vtrain.tagging.data.debtags) and its builder."""

import collections
import doctest
import gzip
import hashlib
import json

import pytest

from vtrain.tagging.data import build_debtags, debtags, loaders, near_duplicates


@pytest.fixture(scope="module")
def bundled():
    return debtags.load_examples()


@pytest.fixture(scope="module")
def metadata():
    with open(debtags.METADATA_PATH, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("module", [build_debtags, debtags, loaders, near_duplicates])
def test_docstring_examples_run(module):
    assert doctest.testmod(module).failed == 0


# The shipped file.


def test_checksum_matches_metadata(metadata):
    with open(debtags.DEFAULT_PATH, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == metadata["sha256"]


def test_counts_match_metadata(bundled, metadata):
    assert build_debtags.summarize(bundled) == metadata["counts"]


def test_fields_and_counts_of_the_rebuilt_file(bundled, metadata):
    with gzip.open(debtags.DEFAULT_PATH, "rt", encoding="utf-8") as f:
        first = json.loads(f.readline())
    assert list(first) == ["package", "source", "group", "text", "tags"]
    assert metadata["source"]["release"]["Version"] == "12.15"
    assert metadata["build_command"] == debtags.REBUILD_COMMAND
    assert metadata["counts"] == {
        "packages": 29406,
        "distinct_tags": 571,
        "tags_with_at_least_10_uses": 450,
        "median_words_per_text": 55.0,
        "mean_tags_per_package": 3.714,
        "source_packages": 15836,
        "split_groups": 15115,
    }
    assert metadata["stages"]["sources_merged_with_near_twins"] == 721
    assert metadata["stages"]["near_twin_threshold"] == 0.8


def test_source_and_group_of_known_packages(bundled):
    by_package = {e["package"]: e for e in bundled}
    # 0ad-data is a source package of its own: the near-twin texts join 0ad's group.
    assert [
        (by_package[p]["source"], by_package[p]["group"])
        for p in ("0ad", "0ad-data", "0ad-data-common")
    ] == [("0ad", "0ad"), ("0ad-data", "0ad"), ("0ad-data", "0ad")]
    assert by_package["libreoffice-writer"]["source"] == "libreoffice"


def test_sorted_unique_tagged(bundled):
    packages = [example["package"] for example in bundled]
    assert packages == sorted(set(packages))
    assert len({example["text"] for example in bundled}) == len(bundled)
    assert all(
        example["tags"] and example["tags"] == sorted(set(example["tags"])) for example in bundled
    )
    assert not any(
        build_debtags.is_placeholder_tag(tag) for example in bundled for tag in example["tags"]
    )


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


def test_split_sizes_on_bundled_data(bundled):
    # Whole groups move together (the largest holds 414 packages), so the
    # shares are only near 80/10/10: 78.8% / 11.4% / 9.8%.
    counts = collections.Counter(debtags.split_of(debtags.split_key(e)) for e in bundled)
    assert counts == {"train": 23163, "validation": 3364, "test": 2879}
    for name, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        assert abs(counts[name] / len(bundled) - share) < 0.015


def test_all_binaries_of_one_source_land_in_one_split(bundled):
    splits_of = collections.defaultdict(set)
    for name, examples in debtags.load_splits().items():
        for example in examples if name != "tags" else ():
            splits_of[example["source"]].add(name)
            splits_of["group " + example["group"]].add(name)
    assert len(splits_of) == 15836 + 15115
    assert all(len(names) == 1 for names in splits_of.values())
    # Under the old rule (hash of the package name) 2,394 of the 5,029
    # sources with several binaries were spread over two or three splits.
    sources = collections.defaultdict(set)
    for example in bundled:
        sources[example["source"]].add(debtags.split_of(example["package"]))
    several = [e for e in collections.Counter(e["source"] for e in bundled).values() if e > 1]
    assert len(several) == 5029
    assert sum(1 for names in sources.values() if len(names) > 1) == 2394


def test_near_duplicate_rate_before_and_after_grouping(bundled):
    # The figures in docs/data.md: test examples whose nearest training text
    # has word-set Jaccard >= 0.8 / >= 0.5.
    expected = {"package": (2935, 1038, 1582), "source": (2970, 167, 379), "group": (2879, 0, 180)}
    for split_by, (test_size, at_08, at_05) in expected.items():
        splits = debtags.split_examples(near_duplicates.regroup(bundled, split_by))
        report = near_duplicates.near_duplicate_report(splits["train"], splits["test"])
        assert (report["test_examples"], report["counts"][0.8], report["counts"][0.5]) == (
            test_size,
            at_08,
            at_05,
        ), split_by


def test_load_splits_on_bundled_data(bundled):
    splits = debtags.load_splits()
    kept = set(splits["tags"])
    train_uses = collections.Counter(t for e in splits["train"] for t in e["tags"])
    assert all(train_uses[tag] >= 5 for tag in kept)
    for name in ("train", "validation", "test"):
        assert all(e["tags"] and set(e["tags"]) <= kept for e in splits[name])
        assert all(debtags.split_of(e["group"]) == name for e in splits[name])
    assert {name: len(splits[name]) for name in ("train", "validation", "test")} == {
        "train": 23163,
        "validation": 3364,
        "test": 2879,
    }
    assert len(splits["tags"]) == 487


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


def test_a_group_keeps_its_examples_in_one_split():
    # By package name foo would go to test and foo-doc, libfoo-dev to train.
    assert [debtags.split_of(p) for p in ("foo", "foo-doc", "libfoo-dev")] == [
        "test",
        "train",
        "train",
    ]
    vim = {"package": "vim", "text": "vim", "tags": ["x"]}  # train, so "x" is kept
    examples = [vim] + [
        {"package": p, "group": "foo", "text": p, "tags": ["x"]}
        for p in ("foo", "foo-doc", "libfoo-dev")
    ]
    splits = debtags.split_examples(examples, min_tag_train_uses=1)
    assert [e["package"] for e in splits["test"]] == ["foo", "foo-doc", "libfoo-dev"]
    assert splits["train"] == [vim] and splits["validation"] == []
    ungrouped = [{k: v for k, v in e.items() if k != "group"} for e in examples]
    splits = debtags.split_examples(ungrouped, min_tag_train_uses=1)
    assert [e["package"] for e in splits["test"]] == ["foo"]
    assert [e["package"] for e in splits["train"]] == ["vim", "foo-doc", "libfoo-dev"]


def test_split_key_order():
    assert debtags.split_key({"group": "g", "package": "p", "id": 1, "text": "t"}) == "g"
    assert debtags.split_key({"package": "p", "id": 1, "text": "t"}) == "p"
    assert debtags.split_key({"id": 1, "text": "t"}) == "1"
    assert debtags.split_key({"text": "t"}) == "t"


def test_load_splits_on_user_data(tmp_path):
    path = tmp_path / "mine.tsv"
    path.write_text("text\ttags\none\tx\ntwo\tx,y\n")
    splits = debtags.load_splits(str(path), min_tag_train_uses=1)
    assert [debtags.split_of(t) for t in ("one", "two")] == ["train", "train"]
    assert splits["tags"] == ["x", "y"] and len(splits["train"]) == 2


def test_load_splits_on_user_data_with_groups(tmp_path):
    # By id, 0, 1 and 2 go to train and 6 to test; group "g" takes 0 and 2 to test.
    assert [debtags.split_of(str(i)) for i in (0, 1, 2, 6)] == ["train"] * 3 + ["test"]
    assert debtags.split_of("g") == "test"
    path = tmp_path / "mine.jsonl"
    path.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"id": 0, "text": "zero", "tags": ["x"], "group": "g"},
                {"id": 1, "text": "one", "tags": ["x"]},
                {"id": 2, "text": "two", "tags": ["x"], "group": "g"},
                {"id": 6, "text": "six", "tags": ["x"]},
            ]
        )
    )
    splits = debtags.load_splits(str(path), min_tag_train_uses=1)
    assert [e["id"] for e in splits["train"]] == [1]
    assert [e["id"] for e in splits["test"]] == [0, 2, 6]


# The builder, on hand-written lists.

PACKAGES = """\
Package: zed
Source: zed-editor (1.0-2)
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
    {
        "package": "alpha",
        "source": "alpha",
        "group": "alpha",
        "text": "Alpha library. Same words.",
        "tags": ["implemented-in::c", "role::program"],
    },
    {
        "package": "zed",
        "source": "zed-editor",
        "group": "zed-editor",
        "text": "fast text editor. Zed edits text. It is fast. verbatim line",
        "tags": ["role::program", "use::editing", "works-with::text"],
    },
]


def write_inputs(tmp_path, release=True):
    packages, translations = tmp_path / "Packages", tmp_path / "Translation-en"
    packages.write_text(PACKAGES)
    translations.write_text(TRANSLATIONS)
    args = ["--packages", str(packages), "--translations", str(translations)]
    if release:
        sums = "".join(
            f" {hashlib.sha256(text.encode()).hexdigest()} {len(text)} {name}\n"
            for text, name in (
                (PACKAGES, "main/binary-amd64/Packages"),
                (TRANSLATIONS, "main/i18n/Translation-en"),
            )
        )
        path = tmp_path / "InRelease"
        path.write_text(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
            "Origin: Debian\nSuite: stable\nCodename: test\nVersion: 0.1\n"
            "Date: Sat, 01 Jan 2000 00:00:00 UTC\nSHA256:\n"
            + sums
            + "-----BEGIN PGP SIGNATURE-----\nxx\n-----END PGP SIGNATURE-----\n"
        )
        args += ["--release", str(path)]
    return args


def test_builder_output_is_exact(tmp_path):
    output = tmp_path / "out" / "debtags.jsonl.gz"
    args = write_inputs(tmp_path) + ["--output", str(output)]
    assert build_debtags.main(args) == 0
    with gzip.open(output, "rt", encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    assert lines == EXPECTED_LINES
    assert [list(line) for line in lines] == [["package", "source", "group", "text", "tags"]] * 2
    meta = json.loads((tmp_path / "out" / "debtags.json").read_text())
    assert meta["sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    assert meta["source"]["release"] == {
        "Origin": "Debian",
        "Suite": "stable",
        "Codename": "test",
        "Version": "0.1",
        "Date": "Sat, 01 Jan 2000 00:00:00 UTC",
    }
    assert meta["source"]["packages"]["release_path"] == "main/binary-amd64/Packages"
    assert meta["build_command"].startswith(
        "python -m vtrain.tagging.data.build_debtags --packages"
    )
    assert meta["counts"] == {
        "packages": 2,
        "distinct_tags": 4,
        "tags_with_at_least_10_uses": 0,
        "median_words_per_text": 7.5,
        "mean_tags_per_package": 2.5,
        "source_packages": 2,
        "split_groups": 2,
    }
    assert meta["stages"] == {
        "package_stanzas": 7,
        "tagged_packages": 5,
        "tagged_with_description": 4,
        "with_non_placeholder_tag": 3,
        "duplicate_texts_removed": 1,
        "placeholder_tag_uses_dropped": {
            "culture::TODO": 1,
            "devel::lang:TODO": 1,
            "special::not-yet-tagged": 1,
            "suite::TODO": 1,
        },
        "near_twin_threshold": 0.8,
        "sources_merged_with_near_twins": 0,
    }


@pytest.mark.parametrize(
    "field, source",
    [
        ("Source: foo (1.2-3)", "foo"),  # a version when it differs from the binary's
        ("Source: foo", "foo"),
        ("Source:   foo   (1:2.0~rc1-1+b2)", "foo"),
        (None, "libfoo-dev"),  # absent: the source has the binary's name
    ],
)
def test_source_field_parsing(field, source):
    packages = (
        "Package: libfoo-dev\n"
        + (field + "\n" if field else "")
        + ("Description-md5: 1\nTag: role::devel-lib\n")
    )
    translations = "Package: libfoo-dev\nDescription-md5: 1\nDescription-en: foo\n"
    examples, _ = build_debtags.build_examples(packages, translations)
    assert [(e["source"], e["group"]) for e in examples] == [(source, source)]


def test_builder_groups_binaries_of_a_source_and_near_twins_across_sources():
    text = "Text editor {}. Zed edits text files quickly and it is small."
    packages = "".join(
        f"Package: {p}\n"
        + (f"Source: {src} (1-1)\n" if src else "")
        + f"Description-md5: {p}\nTag: role::program\n\n"
        for p, src in (
            ("zed", None),
            ("zed-doc", "zed"),
            ("libzed1", "zed"),
            ("zed-data", "zed-data"),
            ("yed", None),
            ("other", None),
        )
    )
    descriptions = {
        "zed": text.format(""),
        "zed-doc": "Documentation of Zed.",
        "libzed1": "Library behind Zed.",
        # zed's 10 words and "data": Jaccard 10/11 with zed.
        "zed-data": text.format("data"),
        # Jaccard 11/13 with zed-data, 10/13 < 0.8 with zed: joins
        # the group through zed-data.
        "yed": text.format("data") + " Yed too",
        "other": "An unrelated package.",
    }
    translations = "".join(
        f"Package: {p}\nDescription-md5: {p}\nDescription-en: {d}\n\n"
        for p, d in descriptions.items()
    )
    examples, stages = build_debtags.build_examples(packages, translations)
    assert [(e["package"], e["source"], e["group"]) for e in examples] == [
        ("libzed1", "zed", "yed"),
        ("other", "other", "other"),
        ("yed", "yed", "yed"),
        ("zed", "zed", "yed"),
        ("zed-data", "zed-data", "yed"),
        ("zed-doc", "zed", "yed"),
    ]
    assert stages["sources_merged_with_near_twins"] == 2
    assert build_debtags.summarize(examples)["split_groups"] == 2
    splits = {debtags.split_of(debtags.split_key(e)) for e in examples if e["group"] == "yed"}
    assert len(splits) == 1


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
    names = [
        "h_dists_test_main_binary-amd64_Packages.lz4",
        "h_dists_test-updates_main_binary-amd64_Packages.lz4",
        "h_dists_test_main_i18n_Translation-en.lz4",
        "h_dists_test_InRelease",
    ]
    for name in names:
        (tmp_path / name).write_text("")
    found = build_debtags.find_lists(str(tmp_path), "test", "amd64")
    assert [p.split("/")[-1] for p in found] == [names[0], names[2], names[3]]
