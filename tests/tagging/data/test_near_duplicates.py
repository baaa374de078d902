"""vtrain.tagging.data.near_duplicates: exact Jaccard, nearest text, pairs, near-twin groups, CLI."""

import itertools
import json
import random

import pytest

from vtrain.tagging.data import debtags
from vtrain.tagging.data import near_duplicates as nd


def brute_nearest(queries, corpus):
    results = []
    for query in queries:
        best = (0.0, None)
        for index, text in enumerate(corpus):
            similarity = nd.jaccard(nd.word_set(query), nd.word_set(text))
            if similarity > best[0]:
                best = (similarity, index)
        results.append(best)
    return results


def random_texts(rng, count, vocabulary=12, longest=9):
    words = [f"w{i}" for i in range(vocabulary)]
    return [" ".join(rng.sample(words, rng.randint(0, longest))) for _ in range(count)]


def test_word_set_lowercases_and_splits_on_non_alphanumerics():
    assert nd.word_set("GTK+ 3: a GUI tool-kit (GTK)") == {"gtk", "3", "a", "gui", "tool", "kit"}
    assert nd.word_set("snake_case café") == {"snake", "case", "café"}
    assert nd.word_set("... ---") == frozenset()


def test_nearest_against_a_hand_computed_example():
    train = [
        "Fast text editor for the console",  # {fast text editor for the console}
        "Text editor",  # {text editor}
        "Web server written in C",
    ]
    test = [
        "Fast text editor for the terminal",  # 5 of 7 with train 0
        "text EDITOR",  # identical set to train 1
        "web browser",  # {web} shared, union of 6 with train 2
        "mail",
    ]  # no shared word
    assert nd.nearest(test, train) == [(5 / 7, 0), (1.0, 1), (1 / 6, 2), (0.0, None)]
    report = nd.near_duplicate_report([{"text": t} for t in train], [{"text": t} for t in test])
    assert report["counts"] == {0.8: 1, 0.5: 2}
    assert report["rates"] == {0.8: 0.25, 0.5: 0.5}
    assert report["test_examples"] == 4


def test_nearest_ties_go_to_the_lowest_index():
    assert nd.nearest(["a b"], ["a c", "b c", "a b c", "a b d"]) == [(2 / 3, 2)]


def test_nearest_matches_brute_force_on_random_texts():
    rng = random.Random(3)
    queries, corpus = random_texts(rng, 60), random_texts(rng, 80)
    assert nd.nearest(queries, corpus) == brute_nearest(queries, corpus)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.8, 1.0])
def test_similar_pairs_matches_brute_force(threshold):
    texts = random_texts(random.Random(7), 120, vocabulary=10, longest=8)
    expected = []
    for i, j in itertools.combinations(range(len(texts)), 2):
        similarity = nd.jaccard(nd.word_set(texts[i]), nd.word_set(texts[j]))
        if similarity >= threshold and similarity > 0:
            expected.append((i, j, similarity))
    assert nd.similar_pairs(texts, threshold) == expected
    assert len(expected) > 0


def test_similar_pairs_keeps_a_pair_exactly_at_the_threshold():
    # 7 shared words, union 10: Jaccard 0.7 exactly, although 0.7 * 10 is
    # 7.000000000000001 in floating point (a naive prefix would miss it).
    a = "a b c d e f g h"
    b = "a b c d e f g i j"
    assert nd.jaccard(nd.word_set(a), nd.word_set(b)) == 0.7
    assert nd.similar_pairs([a, b], 0.7) == [(0, 1, 0.7)]
    assert nd.similar_pairs([a, b], 0.71) == []


def test_near_twin_groups_are_transitive_and_named_by_the_first_key():
    texts = [
        "a b c d e f g h i j",  # key m
        "a b c d e f g h i k",  # key z: 9/11 with the first
        "a b c d e f g h k l",  # key q: 9/11 with the second, 8/12 with the first
        "x y",  # key m (another binary of m)
        "p q r",
    ]  # key n: alone
    groups = nd.near_twin_groups(["m", "z", "q", "m", "n"], texts, 0.8)
    assert groups == ["m", "m", "m", "m", "n"]
    assert nd.near_twin_groups(["m", "z", "q", "m", "n"], texts, 0.95) == ["m", "z", "q", "m", "n"]


def test_invalid_threshold_is_rejected():
    with pytest.raises(ValueError, match=r"received 0\. Expected a Jaccard similarity in \(0, 1\]"):
        nd.similar_pairs(["a"], 0)


def test_regroup():
    example = {"package": "0ad-data", "source": "0ad-data", "group": "0ad", "text": "t"}
    assert [debtags.split_key(nd.regroup([example], by)[0]) for by in nd.SPLIT_BY] == [
        "0ad",
        "0ad-data",
        "0ad-data",
    ]
    with pytest.raises(ValueError, match="Expected one of group, source, package"):
        nd.regroup([example], "id")


# The command line, on a user file.


def user_file(tmp_path, grouped):
    # By id, 6 goes to test and 0..5 to train; group "g" (test) takes 0 there too.
    assert [debtags.split_of(str(i)) for i in range(7)] == ["train"] * 6 + ["test"]
    records = [{"id": i, "text": f"tool number {i} for files", "tags": ["x"]} for i in range(6)]
    records.append({"id": 6, "text": "tool number 0 for files", "tags": ["x"]})
    if grouped:
        records[0]["group"] = records[6]["group"] = "g"
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_cli_reports_the_rates_and_pairs(tmp_path, capsys):
    path = user_file(tmp_path, grouped=False)
    assert nd.main([f"--path={path}", "--min-tag-train-uses=1"]) == 0
    out = capsys.readouterr().out
    assert "examples: 6 train, 0 validation, 1 test" in out
    assert "Jaccard >= 0.8: 1 of 1 (100.0%)" in out
    assert "Jaccard >= 0.5: 1 of 1 (100.0%)" in out
    assert "1.000  6 <- 0" in out


def test_cli_with_a_group_moves_the_twin_out_of_train(tmp_path, capsys):
    path = user_file(tmp_path, grouped=True)
    assert nd.main([f"--path={path}", "--min-tag-train-uses=1"]) == 0
    out = capsys.readouterr().out
    assert "examples: 5 train, 0 validation, 2 test" in out
    # Nearest training text of "tool number 0 for files": "tool number 1 for
    # files", 4 shared words of 6.
    assert "Jaccard >= 0.8: 0 of 2 (0.0%)" in out
    assert "Jaccard >= 0.5: 2 of 2 (100.0%)" in out
    assert "no pair at Jaccard >= 0.8; the closest pairs" in out
    assert nd.main([f"--path={path}", "--min-tag-train-uses=1", "--split-by=package"]) == 0
    assert "Jaccard >= 0.8: 1 of 1 (100.0%)" in capsys.readouterr().out


def test_cli_sample_and_threshold(tmp_path, capsys):
    path = user_file(tmp_path, grouped=True)
    assert (
        nd.main([f"--path={path}", "--min-tag-train-uses=1", "--sample=1", "--threshold=0.6"]) == 0
    )
    out = capsys.readouterr().out
    assert "measured on a sample of 1 test examples" in out
    assert "Jaccard >= 0.6: 1 of 1 (100.0%)" in out and "Jaccard >= 0.5: 1 of 1" in out


@pytest.mark.parametrize(
    "argument, message",
    [
        ("--threshold=0", "--threshold: received 0.0. Expected a Jaccard similarity in (0, 1]"),
        ("--sample=-1", "--sample: received -1. Expected 0 (all test examples)"),
    ],
)
def test_cli_rejects_bad_arguments(argument, message, capsys):
    with pytest.raises(SystemExit):
        nd.main([argument])
    assert message in capsys.readouterr().err


def test_cli_on_a_missing_file(tmp_path, capsys):
    assert nd.main([f"--path={tmp_path / 'none.jsonl'}"]) == 1
    assert "file not found" in capsys.readouterr().err
