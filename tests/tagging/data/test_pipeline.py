"""The text pipeline: vocabulary from train only, multi-hot tags, batches, errors."""

import json

import numpy as np
import pytest

from vtrain.tagging.data import debtags, loaders, pipeline

NUM_EXAMPLES = 60


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


@pytest.fixture
def records():
    # Every example has "Tool" and "tool" (one word once lower-cased), a word
    # of its own (seen once) and, on even ids, "GTK+"; tags a, b alternate.
    return [
        {
            "id": i,
            "text": f"Tool tool word{i} GTK+" if i % 2 == 0 else f"Tool tool word{i}",
            "tags": ["a"] if i % 2 == 0 else ["a", "b"],
        }
        for i in range(NUM_EXAMPLES)
    ]


@pytest.fixture
def data_file(tmp_path, records):
    return write_jsonl(tmp_path / "mine.jsonl", records)


def split_ids(name):
    return [i for i in range(NUM_EXAMPLES) if debtags.split_of(str(i)) == name]


def test_shapes_dtypes_and_split_sizes(data_file):
    data = pipeline.load_tag_data(
        data_file, sequence_length=5, batch_size=4, min_tag_train_uses=1, min_word_count=1
    )
    assert data.num_train == len(split_ids("train"))
    assert data.sequence_length == 5
    assert data.tags == ["a", "b"]
    for dataset, name in (
        (data.train, "train"),
        (data.validation, "validation"),
        (data.test, "test"),
    ):
        batches = list(dataset)
        assert sum(len(ids) for ids, _ in batches) == len(split_ids(name))
        ids, tags = batches[0]
        assert ids.dtype.name == "int32" and ids.shape[1] == 5
        assert tags.dtype.name == "float32" and tags.shape[1] == 2
    assert len(next(iter(data.train))[0]) == 4


def test_vocabulary_is_fit_on_train_only_with_min_count(data_file):
    data = pipeline.load_tag_data(data_file, min_tag_train_uses=1, min_word_count=2)
    # Specials first, then by count: "tool" (twice per example), "gtk".
    assert data.vocabulary[:4] == ["", "[UNK]", "tool", "gtk"]
    # Each "word<i>" occurs once: below min_word_count, so out of vocabulary.
    assert not any(word.startswith("word") for word in data.vocabulary)
    assert data.vocabulary == data.vectorizer.get_vocabulary()


def test_words_only_in_validation_and_test_are_unknown(data_file):
    data = pipeline.load_tag_data(data_file, min_tag_train_uses=1, min_word_count=1)
    train_words = {f"word{i}" for i in split_ids("train")}
    held_out = {f"word{i}" for i in split_ids("validation") + split_ids("test")}
    assert train_words <= set(data.vocabulary)
    assert not held_out & set(data.vocabulary)


def test_max_vocabulary_size_caps_rows_including_specials(data_file):
    data = pipeline.load_tag_data(
        data_file, min_tag_train_uses=1, min_word_count=1, max_vocabulary_size=3
    )
    assert data.vocabulary == ["", "[UNK]", "tool"]


def test_lowercase_and_punctuation_follow_the_arguments(data_file):
    kept_case = pipeline.load_tag_data(
        data_file, min_tag_train_uses=1, lowercase=False, strip_punctuation=False
    )
    assert {"Tool", "tool", "GTK+"} <= set(kept_case.vocabulary)
    stripped = pipeline.load_tag_data(data_file, min_tag_train_uses=1)
    assert "gtk" in stripped.vocabulary and "GTK+" not in stripped.vocabulary


def test_token_ids_truncate_and_pad(data_file):
    data = pipeline.load_tag_data(data_file, min_tag_train_uses=1, sequence_length=6)
    tool, gtk = data.vocabulary.index("tool"), data.vocabulary.index("gtk")
    ids = data.vectorizer(["Tool tool unseen GTK+ tool tool tool", "tool"]).numpy()
    assert ids.tolist() == [[tool, tool, 1, gtk, tool, tool], [tool, 0, 0, 0, 0, 0]]


def test_multi_hot_tags_and_unshuffled_evaluation_order(data_file, records):
    data = pipeline.load_tag_data(data_file, min_tag_train_uses=1, eval_batch_size=2)
    expected = [[1.0, 0.0] if i % 2 == 0 else [1.0, 1.0] for i in split_ids("test")]
    tags = np.concatenate([tags.numpy() for _, tags in data.test])
    assert tags.tolist() == expected
    second_pass = np.concatenate([tags.numpy() for _, tags in data.test])
    assert second_pass.tolist() == expected
    assert data.tag_train_counts.tolist() == [
        len(split_ids("train")),
        sum(1 for i in split_ids("train") if i % 2),
    ]


def test_training_batches_are_reshuffled_every_epoch(data_file):
    data = pipeline.load_tag_data(data_file, min_tag_train_uses=1, min_word_count=1, batch_size=100)
    first, second = (next(iter(data.train))[0].numpy() for _ in range(2))
    assert sorted(map(tuple, first)) == sorted(map(tuple, second))
    assert first.tolist() != second.tolist()


def test_max_train_examples_keeps_the_first(data_file):
    data = pipeline.load_tag_data(data_file, min_tag_train_uses=1, max_train_examples=7)
    assert data.num_train == 7


def test_rare_tags_are_dropped(data_file):
    data = pipeline.load_tag_data(data_file, min_tag_train_uses=len(split_ids("train")))
    assert data.tags == ["a"]


@pytest.mark.parametrize(
    "argument, value",
    [
        ("sequence_length", 0),
        ("batch_size", -1),
        ("min_word_count", 1.5),
        ("max_vocabulary_size", 2),
        ("max_train_examples", -1),
        ("batch_size", True),
    ],
)
def test_invalid_arguments_name_themselves(data_file, argument, value):
    with pytest.raises(ValueError, match=f"Invalid {argument}: received {value!r}"):
        pipeline.load_tag_data(data_file, **{argument: value})


def test_malformed_user_file_names_file_and_line(tmp_path, records):
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(r) for r in records[:3]] + ['{"text": "no tags here"}']
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(loaders.DataError, match=r"bad\.jsonl' line 4: missing field"):
        pipeline.load_tag_data(str(path))


def test_empty_split_is_explained(tmp_path, records):
    path = write_jsonl(tmp_path / "few.jsonl", records[:2])
    with pytest.raises(ValueError, match="split of .* is empty"):
        pipeline.load_tag_data(path, min_tag_train_uses=1)
