import json
import types

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

import vtrain
from tests import runs
from vtrain import vocabulary
from vtrain.layers import VariationalEmbedding
from vtrain.tagging import configs, train
from vtrain.tagging.models import itag

VOCABULARY = ["", "[UNK]", "a", "tool", "python", "x11", "c", "program", "reader", "web"]
TAGS = [
    "devel::lang:python",  # 0: word "python" (shared with 1)
    "implemented-in::python",  # 1
    "interface::x11",  # 2: "x11"
    "devel::lang:c++",  # 3: "c++" is not a word
    "devel::lang:c",  # 4: "c"
    "role::program",  # 5: "program"
    "accessibility::screen-reader",  # 6: "screen-reader" is not a word
    "game::toys",  # 7: "toys" is not in the vocabulary
]
SMALL = dict(embedding_dim=8, encoder_units=8, decoder_units=12, attention_units=8)


def tiny_data(n=16, length=7, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, len(VOCABULARY), (n, length)).astype("int32")
    # Post-padding of varying length, as TextVectorization produces.
    lengths = rng.integers(2, length + 1, n)
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
    labels = (rng.random((n, len(TAGS))) < 0.3).astype("float32")
    labels[labels.sum(axis=1) == 0, 5] = 1.0
    return ids, labels


def tiny_model(**kwargs):
    options = dict(
        vocabulary_size=len(VOCABULARY),
        num_tags=len(TAGS),
        tag_priority=itag.priority_from_counts([5, 3, 2, 1, 4, 9, 1, 2]),
        copy_pairs=itag.tag_word_pairs(VOCABULARY, TAGS),
        max_tags=4,
        beam_width=3,
        dropout=0.0,
        **SMALL,
    )
    options.update(kwargs)
    return itag.ITag(**options)


def test_tag_word_rule_on_debtags_names():
    assert itag.tag_word_pairs(VOCABULARY, TAGS) == [[4, 0], [4, 1], [5, 2], [6, 4], [7, 5]]


def test_priority_is_descending_train_frequency_ties_by_index():
    assert itag.priority_from_counts([5, 3, 2, 1, 4, 9, 1, 2]) == [1, 3, 4, 6, 2, 0, 7, 5]


def test_targets_from_multi_hot_labels():
    model = tiny_model(max_tags=3)
    # Priority order of the tags: 5, 0, 4, 1, 2, 7, 3, 6.
    labels = np.zeros((4, len(TAGS)), "float32")
    labels[0, [2, 5, 0]] = 1  # -> 5, 0, 2, EOS
    labels[1, [6]] = 1  # -> 6, EOS
    labels[2, [3, 1, 4, 5]] = 1  # 4 tags, cut at 3: 5, 4, 1 and no EOS
    eos = len(TAGS)
    expected = [[5, 0, 2, eos], [6, eos, -1, -1], [5, 4, 1, -1], [eos, -1, -1, -1]]
    assert model.targets_from_labels(labels).numpy().tolist() == expected


def test_sequence_cross_entropy_against_numpy_and_masked_steps_count_zero():
    model = tiny_model()
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 3, len(TAGS) + 1))
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    targets = np.array([[5, 8, -1], [0, 2, 8]])
    expected = np.mean(
        [
            -(log_probs[0, 0, 5] + log_probs[0, 1, 8]),
            -(log_probs[1, 0, 0] + log_probs[1, 1, 2] + log_probs[1, 2, 8]),
        ]
    )
    got = float(model.sequence_cross_entropy(targets, log_probs.astype("float32")))
    assert got == pytest.approx(expected, rel=1e-6)
    changed = log_probs.copy()
    changed[0, 2] = -1e6  # a padding step: must not move the loss
    again = float(model.sequence_cross_entropy(targets, changed.astype("float32")))
    assert again == got
    weighted = float(
        model.sequence_cross_entropy(
            targets, log_probs.astype("float32"), sample_weight=np.array([1.0, 0.0])
        )
    )
    assert weighted == pytest.approx(-(log_probs[0, 0, 5] + log_probs[0, 1, 8]) / 2, rel=1e-6)


def test_training_step_and_recommend_shapes():
    ids, labels = tiny_data()
    model = tiny_model()
    model.compile(optimizer="adam", run_eagerly=True)  # graph mode: the overfit test
    history = model.fit(ids, labels, batch_size=8, epochs=1, verbose=0).history
    assert {"loss", "cross_entropy", "kl"} <= set(history)
    assert np.isfinite(history["loss"]).all()
    assert history["kl"][-1] > 0.0  # the variational embedding is found
    top = model.recommend(ids, k=5)
    assert top.dtype == tf.int32 and tuple(top.shape) == (len(ids), 5)
    top = top.numpy()
    assert all(len(set(row)) == 5 for row in top)
    assert ((top >= 0) & (top < len(TAGS))).all()
    assert tuple(model(ids).shape) == (len(ids), len(TAGS))


def test_attention_on_padding_is_zero_and_gate_varies_in_open_interval():
    ids, labels = tiny_data(n=8)
    ids[:, 0] = 4  # every example holds a tag word ("python")
    model = tiny_model()
    out = model.teacher_forcing(ids, model.targets_from_labels(labels))
    padding = (ids == 0)[:, None, :]
    for name in ("attention", "copy_attention"):
        weights = out[name].numpy()
        assert (weights[np.broadcast_to(padding, weights.shape)] == 0.0).all()
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    # The copy attention only looks at positions holding a tag word.
    copyable = np.isin(ids, [4, 5, 6, 7])[:, None, :]
    copy_weights = out["copy_attention"].numpy()
    assert (copy_weights[np.broadcast_to(~copyable, copy_weights.shape)] == 0.0).all()
    gate = out["gate"].numpy()
    assert ((gate > 0.0) & (gate < 1.0)).all()
    assert gate.std() > 1e-4  # varies with the input (iTag's was always 1)


def test_a_word_with_a_zero_vector_is_not_copied():
    # A dropped word (zero vector: variational threshold or a masked row)
    # reads as "[UNK]": no copy slot, so the pruned export scores the same.
    ids = np.array([[4, 5, 2, 0], [4, 3, 0, 0]], "int32")  # "python", "x11"
    model = tiny_model(variational=False)
    slots = model.encode(ids)[0]["copy_slot"].numpy()
    assert (slots[:, 0] > 0).all() and slots[0, 1] > 0
    with vocabulary.mask_embedding(model, [2, 3, 5, 6, 7, 8, 9]):  # every word but "python"
        memory, _ = model.encode(ids)
    assert memory["copy_slot"].numpy()[:, 0].tolist() == [0, 0]
    assert memory["copy_slot"].numpy()[0, 1] == slots[0, 1]
    assert memory["has_copy"].numpy().tolist() == [True, False]


def test_pruned_export_scores_and_ranks_as_the_masked_model(tmp_path):
    ids, labels = tiny_data(n=12)
    model = tiny_model(presence_weight=0.5, weight_decay=vtrain.schedules.constant(0.01))
    model.compile(optimizer="adam")
    model.fit(ids, labels, epochs=2, verbose=0)
    keep_ids = np.array([2, 4, 6, 9])  # "python" and "c" stay copyable, "x11" does not
    pruned = vocabulary.pruned_model(model, keep_ids)
    assert pruned.vocabulary_size == 6
    # New ids: 0 padding, 1 "[UNK]", then 2 "a", 3 "python", 4 "c", 5 "web".
    assert pruned.copy_pairs == [[3, 0], [3, 1], [4, 4]]
    remap = np.ones(len(VOCABULARY), "int32")
    remap[0], remap[keep_ids] = 0, np.arange(2, 6)
    with vocabulary.mask_embedding(model, keep_ids):
        np.testing.assert_allclose(pruned(remap[ids]).numpy(), model(ids).numpy(), atol=1e-6)
        np.testing.assert_array_equal(
            pruned.recommend(remap[ids], k=5).numpy(), model.recommend(ids, k=5).numpy()
        )
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    assert keras.saving.load_model(path).get_config() == pruned.get_config()


def test_output_is_the_gated_mixture_of_generate_and_copy():
    ids, _ = tiny_data(n=4)
    ids[:, 0] = [4, 5, 2, 3]  # two with a tag word, then maybe none
    ids[2:, :] = np.where(np.isin(ids[2:], [4, 5, 6, 7]), 2, ids[2:])
    model = tiny_model()
    memory, state = model.encode(ids)
    log_probs, _, _, d = model.decode_step(
        memory, state, model.initial_context(memory), model.start_tags(4)
    )
    gate = d["gate"].numpy()[:, None]
    expected = gate * np.exp(d["generate_log_probs"].numpy()) + (1 - gate) * d["copy_probs"].numpy()
    np.testing.assert_allclose(np.exp(log_probs.numpy()), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.exp(log_probs.numpy()).sum(axis=-1), 1.0, rtol=1e-5)
    copy = d["copy_probs"].numpy()
    generate = np.exp(d["generate_log_probs"].numpy())
    # "python" splits its weight between its two tags as the generate
    # distribution does; tags with no word in the input (and EOS) get ~0.
    np.testing.assert_allclose(copy[0, 0] / copy[0, 1], generate[0, 0] / generate[0, 1], rtol=1e-5)
    np.testing.assert_allclose(copy[:2].sum(axis=-1), 1.0, rtol=1e-5)
    assert copy[0, 0] > 0 and (copy[:, -1] < 1e-29).all()
    # Without a tag word in the input, the output is the generate distribution.
    assert (gate[2:] == 1.0).all() and (copy[2:] == 0).all()


def numpy_softmax(scores, mask):
    scores = np.where(mask, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def test_first_step_attention_gate_and_copy_against_a_hand_computation():
    # "python" (4: tags 0 and 1) at positions 0 and 3, "x11" (5: tag 2) at 2.
    ids = np.array([[4, 2, 5, 4, 9, 0, 0]], "int32")
    model = tiny_model()
    memory, _ = model.encode(ids)
    log_probs, state, context, d = model.decode_step(
        memory, *model.encode(ids)[1:], model.initial_context(memory), model.start_tags(1)
    )
    h = state.numpy()[0].astype(np.float64)
    states, keys = memory["states"].numpy()[0], memory["keys"].numpy()[0]
    weights = lambda layer: [w.astype(np.float64) for w in layer.get_weights()]  # noqa: E731

    # Additive attention over the 5 words, 0 on the 2 padding positions.
    w_q, b_q = weights(model.attention_query)
    (v,) = weights(model.attention_score)
    scores = (np.tanh(keys + h @ w_q + b_q) @ v)[:, 0]
    attention = numpy_softmax(scores, ids[0] != 0)
    np.testing.assert_allclose(d["attention"].numpy()[0], attention, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(context.numpy()[0], attention @ states, rtol=1e-5, atol=1e-6)

    # Gate: sigmoid(w . [state, context, start tag's vector, zero context] + b).
    w_g, b_g = weights(model.gate)
    (tag_table,) = weights(model.tag_embedding)
    features = np.concatenate(
        [h, attention @ states, tag_table[model.eos], np.zeros(states.shape[-1])]
    )
    gate = 1 / (1 + np.exp(-(features @ w_g + b_g)[0]))
    assert float(d["gate"][0]) == pytest.approx(gate, rel=1e-5)

    # Copy: bilinear attention over the 3 tag-word positions; "python"'s two
    # positions go to tags 0 and 1 in the ratio of their generate probabilities.
    (w_c,) = weights(model.copy_keys)
    copy_attention = numpy_softmax(states @ w_c @ h, np.isin(ids[0], [4, 5]))
    np.testing.assert_allclose(d["copy_attention"].numpy()[0], copy_attention, rtol=1e-5, atol=1e-7)
    generate = np.exp(d["generate_log_probs"].numpy()[0].astype(np.float64))
    python = copy_attention[0] + copy_attention[3]
    copy = np.zeros(len(TAGS) + 1)
    copy[[0, 1]] = python * generate[[0, 1]] / generate[[0, 1]].sum()
    copy[2] = copy_attention[2]
    np.testing.assert_allclose(d["copy_probs"].numpy()[0], copy, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(
        np.exp(log_probs.numpy()[0]), gate * generate + (1 - gate) * copy, rtol=1e-5, atol=1e-8
    )
    # A tag no input word names gets the 1e-30 clamp in the log: finite.
    assert np.isfinite(log_probs.numpy()).all()


# P(next | previous) of a hand-made decoder over 3 tags and EOS (column 3);
# row 3 is the start symbol. Greedy decoding takes 0 (0.5), then 1 (0.5),
# then EOS (0.8): [0, 1], probability 0.2. A beam of 2 also keeps [1] (0.3),
# which ends at once (EOS 0.8): [1], 0.24, the better list.
TABLE = np.array(
    [
        [0.05, 0.5, 0.05, 0.4],
        [0.05, 0.05, 0.1, 0.8],
        [0.25, 0.25, 0.25, 0.25],
        [0.5, 0.3, 0.15, 0.05],
    ],
    "float32",
)


class TableDecoder(itag.ITag):
    """An `ITag` whose decoder step is `TABLE`, whatever the input."""

    def decode_step(self, memory, state, context, previous_tags, training=False):
        return tf.gather(tf.math.log(TABLE), previous_tags), state, context, {}


@pytest.mark.parametrize(
    "max_tags, beam_width, expected, ranking",
    [
        (3, 1, [[0, 1, -1]], [0, 1, 2]),
        (3, 2, [[1, -1, -1], [0, 1, -1]], [1, 0, 2]),  # 0.24, then 0.5 * 0.5 * 0.8 = 0.2
        # Cut at 2 tags, [0, 1] is not charged its EOS: 0.25 beats [1]'s 0.24.
        (2, 2, [[0, 1], [1, -1]], [0, 1, 2]),
    ],
)
def test_beam_search_on_a_hand_made_decoder(max_tags, beam_width, expected, ranking):
    model = TableDecoder(
        vocabulary_size=6, num_tags=3, tag_priority=[0, 1, 2], max_tags=max_tags, **SMALL
    )
    ids = np.array([[2, 3, 0], [4, 0, 0]], "int32")
    sequences, first = model.beam_search(ids, beam_width=beam_width)
    assert sequences.numpy().tolist() == [expected, expected]
    np.testing.assert_allclose(first.numpy(), np.log(TABLE[[3, 3], :3]), rtol=1e-6)
    # The ranking: the beam's tags, best list first, then by first-step probability.
    assert model.recommend(ids, k=3, beam_width=beam_width).numpy().tolist() == [ranking] * 2


def greedy(model, ids):
    """Reference greedy decoding, one example at a time, in NumPy."""
    memory, state = model.encode(ids)
    context, previous = model.initial_context(memory), model.start_tags(len(ids))
    sequences = np.full((len(ids), model.max_tags), -1)
    done = np.zeros(len(ids), bool)
    for step in range(model.max_tags):
        log_probs, state, context, _ = model.decode_step(memory, state, context, previous)
        log_probs = log_probs.numpy()
        choice = np.empty(len(ids), int)
        for b in range(len(ids)):
            used = sequences[b][sequences[b] >= 0]
            log_probs[b, used] = -np.inf
            choice[b] = np.argmax(log_probs[b])
            if not done[b] and choice[b] != model.eos:
                sequences[b, step] = choice[b]
            done[b] |= choice[b] == model.eos
        previous = tf.constant(choice, tf.int32)
    return sequences


def test_beam_width_one_is_greedy_decoding():
    ids, _ = tiny_data()
    model = tiny_model(max_tags=5)
    bias = model.generate.bias.numpy()
    bias[model.eos] = 2.0  # so that some lists end early, others do not
    model.generate.bias.assign(bias)
    sequences, _ = model.beam_search(ids, beam_width=1)
    sequences = sequences.numpy()[:, 0]
    expected = greedy(model, ids)
    lengths = (expected >= 0).sum(axis=1)
    assert lengths.min() < model.max_tags and lengths.max() > 0
    np.testing.assert_array_equal(sequences, expected)


def test_short_beam_sequences_are_padded_by_first_step_probability():
    ids, _ = tiny_data(n=6)
    model = tiny_model(copy_pairs=[])
    bias = model.generate.bias.numpy()
    bias[model.eos] = 50.0  # EOS first: every beam sequence is empty
    model.generate.bias.assign(bias)
    sequences, first = model.beam_search(ids, beam_width=1)
    assert (sequences.numpy() == -1).all()
    expected = np.argsort(-model(ids).numpy(), axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(model.recommend(ids, k=4, beam_width=1).numpy(), expected)


def test_presence_head_term_against_numpy_and_it_orders_the_fallback():
    ids, labels = tiny_data(n=6)
    model = tiny_model(presence_weight=0.5, copy_pairs=[])
    model.compile(optimizer="adam", run_eagerly=True)
    logs = model.evaluate(ids, labels, batch_size=6, verbose=0, return_dict=True)
    memory, state = model.encode(ids)
    z = model.presence_logits(memory, state).numpy().astype(np.float64)
    bce = np.maximum(z, 0) - z * labels + np.log1p(np.exp(-np.abs(z)))
    assert logs["presence"] == pytest.approx(bce.sum(axis=1).mean(), rel=1e-5)
    assert logs["loss"] == pytest.approx(
        logs["cross_entropy"] + 0.5 * logs["presence"] + logs["kl"], rel=1e-5
    )
    bias = model.generate.bias.numpy()
    bias[model.eos] = 50.0  # empty beam sequences: the ranking is the fallback
    model.generate.bias.assign(bias)
    expected = np.argsort(-z, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(model.recommend(ids, k=4, beam_width=1).numpy(), expected)


def test_conv_encoder_states_are_zero_on_padding_and_start_the_decoder_from_their_mean():
    ids, _ = tiny_data(n=5)
    model = tiny_model(encoder="conv", variational=False)
    memory, state = model.encode(ids)
    states = memory["states"].numpy()
    assert states.shape == (5, ids.shape[1], 2 * SMALL["encoder_units"])
    assert (states[ids == 0] == 0.0).all() and (states[ids != 0] != 0.0).any()
    lengths = (ids != 0).sum(axis=1, keepdims=True)
    mean = states.sum(axis=1) / lengths
    kernel, bias = (w.numpy() for w in model.bridge.weights)
    np.testing.assert_allclose(state.numpy(), np.tanh(mean @ kernel + bias), rtol=1e-5, atol=1e-6)
    # Padding does not change a text's states: the same text, padded longer.
    longer = np.concatenate([ids, np.zeros((5, 3), "int32")], axis=1)
    np.testing.assert_allclose(
        model.encode(longer)[0]["states"].numpy()[:, : ids.shape[1]], states, atol=1e-6
    )


@pytest.mark.parametrize("hidden_units", [0, 6])
def test_presence_head_reading_the_words_against_numpy(hidden_units):
    ids, _ = tiny_data(n=4)
    model = tiny_model(
        presence_weight=1.0,
        presence_reads_words=True,
        presence_hidden_units=hidden_units,
        variational=False,
    )
    memory, state = model.encode(ids)
    mask = (ids != 0)[..., None]
    words = model.embedding.embeddings.numpy()[ids]
    features = np.concatenate(
        [
            (memory["states"].numpy() * mask).sum(axis=1) / mask.sum(axis=1),
            state.numpy(),
            (words * mask).sum(axis=1) / mask.sum(axis=1),
        ],
        axis=-1,
    )
    if hidden_units:
        kernel, bias = (w.numpy() for w in model.presence_hidden.weights)
        features = np.maximum(features @ kernel + bias, 0.0)
    kernel, bias = (w.numpy() for w in model.presence.weights)
    np.testing.assert_allclose(
        model.presence_logits(memory, state).numpy(), features @ kernel + bias, rtol=1e-5, atol=1e-6
    )


def test_fused_ranking_is_presence_probability_plus_beam_share():
    ids, labels = tiny_data(n=6)
    model = tiny_model(presence_weight=1.0, ranking="fused", beam_width=3)
    model.compile(optimizer="adam")
    model.fit(ids, labels, epochs=3, verbose=0)
    sequences, _ = model.beam_search(ids, beam_width=3)
    memory, state = model.encode(ids)
    presence = np.exp(model.tag_scores(memory, state).numpy())
    share = np.zeros_like(presence)
    for b in range(3):
        for row, beam in enumerate(sequences.numpy()[:, b]):
            share[row, sorted(set(beam[beam >= 0].tolist()))] += 1 / 3
    expected = np.argsort(-(presence + share), axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(model.recommend(ids, k=5).numpy(), expected)


@pytest.mark.parametrize("unknown_words", ["zero", "zero_at_inference"])
def test_unknown_words_zero_reads_unk_as_a_zero_vector(unknown_words):
    ids, _ = tiny_data(n=4)
    ids[:, 1] = 1  # "[UNK]"
    zero = tiny_model(variational=False, unknown_words=unknown_words, presence_weight=1.0)
    learned = tiny_model(variational=False, presence_weight=1.0)
    learned.set_weights(zero.get_weights())
    table = learned.embedding.embeddings.numpy()
    assert (table[1] != 0).any()
    assert not np.allclose(learned(ids).numpy(), zero(ids).numpy())
    table[1] = 0.0
    learned.embedding.embeddings.assign(table)
    np.testing.assert_allclose(learned(ids).numpy(), zero(ids).numpy(), atol=1e-6)


def test_option_errors():
    with pytest.raises(
        ValueError,
        match=r"Invalid encoder for ITag: received 'lstm'. Expected one of 'gru', 'conv'",
    ):
        tiny_model(encoder="lstm")
    with pytest.raises(ValueError, match=r"Invalid ranking for ITag: received 'sum'"):
        tiny_model(ranking="sum")
    with pytest.raises(ValueError, match=r"need the presence head, but presence_weight is 0"):
        tiny_model(ranking="fused")
    with pytest.raises(ValueError, match=r"presence_hidden_units=8 and ranking='beam' need the"):
        tiny_model(presence_hidden_units=8)
    with pytest.raises(ValueError, match=r"presence_hidden_units for ITag: received -1. Expected"):
        tiny_model(presence_weight=1.0, presence_hidden_units=-1)


def test_ranking_lays_out_the_beam_best_first_then_first_step_order():
    sequences = np.array(
        [[[3, 1, -1], [3, 0, 2], [4, -1, -1]], [[-1, -1, -1], [5, -1, -1], [5, 1, -1]]]
    )
    first = np.log(
        np.array([[0.05, 0.1, 0.1, 0.3, 0.2, 0.25], [0.3, 0.1, 0.1, 0.1, 0.2, 0.2]], "float32")
    )
    ranked = itag.rank_tags(sequences, first, k=6).numpy().tolist()
    assert ranked == [[3, 1, 0, 2, 4, 5], [5, 1, 0, 4, 2, 3]]


def test_overfits_four_examples_and_recommends_their_tags_first():
    ids = np.array([[2, 3, 0, 0], [4, 2, 2, 0], [5, 9, 3, 0], [9, 9, 2, 3]], "int32")
    true_tags = [[5, 2], [0, 1, 5], [2], [7, 3]]
    labels = np.zeros((4, len(TAGS)), "float32")
    for row, tags in enumerate(true_tags):
        labels[row, tags] = 1.0
    model = tiny_model(variational=False)
    model.compile(optimizer=keras.optimizers.Adam(0.03))
    batches = tf.data.Dataset.from_tensors((ids, labels)).repeat(150)
    model.fit(batches, epochs=1, verbose=0)  # one epoch of 150 steps: less overhead
    top = model.recommend(ids, k=4, beam_width=3).numpy()
    targets = model.targets_from_labels(labels).numpy()
    for row, tags in enumerate(true_tags):
        assert top[row, : len(tags)].tolist() == targets[row, : len(tags)].tolist()


@pytest.mark.parametrize("variational", [True, False])
def test_save_load_round_trip(variational, tmp_path):
    ids, labels = tiny_data()
    options = {"encoder": "conv", "presence_reads_words": True, "ranking": "fused"}
    model = tiny_model(
        variational=variational,
        presence_weight=0.5 if variational else 0.0,
        weight_decay=vtrain.schedules.constant(0.01),
        **(options if variational else {}),
    )
    embedding_type = VariationalEmbedding if variational else keras.layers.Embedding
    assert type(model.embedding) is embedding_type
    if variational:  # trained, so that noise, masks and optimizer state are in play
        model.compile(optimizer="adam", run_eagerly=True)
        model.fit(ids, labels, epochs=1, verbose=0)
    path = str(tmp_path / "itag.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is itag.ITag
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded(ids).numpy(), model(ids).numpy())
    np.testing.assert_array_equal(
        loaded.recommend(ids, k=5).numpy(), model.recommend(ids, k=5).numpy()
    )


def test_build_from_launcher_data():
    data = types.SimpleNamespace(
        vocabulary=VOCABULARY,
        tags=TAGS,
        num_train=200,
        tag_train_counts=np.array([5, 3, 2, 1, 4, 9, 1, 2]),
    )
    config = configs.base("itag")
    config.model = ml_collections.ConfigDict(
        {"name": "itag", "variational": False, "max_tags": 6, **SMALL}
    )
    config.train.weight_decay_scale, config.train.weight_decay_warmup_epochs = 1.0, 0
    model = train.build_model(config, data)
    assert isinstance(model, vtrain.VariationalModel)
    assert type(model.embedding) is keras.layers.Embedding
    assert model.max_tags == 6 and model.copy_pairs == itag.tag_word_pairs(VOCABULARY, TAGS)
    assert model.loss_weight_schedules["kl"](0) == pytest.approx(1 / 200)


def itag_config():
    return runs.load_module(runs.ROOT / "configs" / "itag.py").get_config()


def test_build_reads_every_model_field_of_the_itag_config():
    model_config = itag_config().model
    data = types.SimpleNamespace(
        vocabulary=VOCABULARY,
        tags=TAGS,
        num_train=200,
        tag_train_counts=np.array([5, 3, 2, 1, 4, 9, 1, 2]),
    )
    model = train.build_model(itag_config(), data)
    config = model.get_config()
    for field in model_config:
        if field != "name":
            expected = model_config[field]
            expected = list(expected) if isinstance(expected, tuple) else expected
            assert config[field] == expected, field


def test_error_messages():
    with pytest.raises(ValueError, match="Expected a permutation of 0..7"):
        tiny_model(tag_priority=[0] * 8)
    with pytest.raises(ValueError, match=r"Expected a pair \(low, high\) with low <= high"):
        tiny_model(log_alpha_init=(-4.0, -6.0))
    with pytest.raises(ValueError, match=r"Invalid copy pair \[10, 0\]"):
        tiny_model(copy_pairs=[[10, 0]])
    model = tiny_model()
    with pytest.raises(ValueError, match="Invalid k for recommend: received 9"):
        model.recommend(np.ones((1, 3), "int32"), k=9)
    with pytest.raises(ValueError, match=r"expected multi-hot labels \[batch, 8\]"):
        model.targets_from_labels(np.ones((2, 5)))


@pytest.mark.slow
def test_shrunken_itag_config_trains_end_to_end(tmp_path):
    config = itag_config()
    config.data.max_train_examples = 400
    config.data.max_vocabulary_size = 2000
    config.data.sequence_length = 32
    config.data.batch_size = 16
    config.train.num_epochs = 1
    config.train.weight_decay_warmup_epochs = 0  # one epoch: the KL weight from the start
    config.train.vocabulary_report_sizes = 4
    config.model.update(
        embedding_dim=16,
        encoder_units=16,
        decoder_units=16,
        attention_units=16,
        max_tags=3,
        beam_width=2,
        # 25 steps instead of 8 epochs: start the words near the threshold,
        # so that the KL term pushes some past it within the run.
        log_alpha_init=(2.0, 3.0),
    )
    train.train_and_evaluate(config, str(tmp_path))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "itag" and results["num_train"] == 400
    for k in (1, 3, 5):
        for name in ("precision", "recall", "f1"):
            assert 0.0 <= results["test"][f"{name}@{k}"] <= 1.0
    # The tag table is not counted as vocabulary: only the 2,000 word rows.
    assert results["vocabulary_size"] == 2000
    # Learned something: a random ranking of the 490 tags gets F1@3 ~ 0.01.
    assert results["test"]["f1@3"] > 0.1  # 0.18 when written
    # The launcher's best checkpoint is a .keras file that loads as an ITag.
    loaded = keras.saving.load_model(tmp_path / "checkpoints" / "best.keras")
    assert type(loaded) is itag.ITag and loaded.max_tags == 3
    # The variational embedding drops words, and the run has its vocabulary
    # report, whose pruned export scores as the masked model.
    assert 0.0 < results["sparsity"] < 1.0
    report = json.loads((tmp_path / "vocabulary.json").read_text())
    pruned = report["pruned"]
    assert pruned["kept_words"] < pruned["num_words"] == 2000 - 2  # padding, [UNK]
    assert pruned["kept_words"] <= results["kept_vocabulary"]
    assert report["pruned"]["max_abs_score_difference"] < 1e-5
    assert len(report["curves"]["variational"]["sizes"]) >= 2
    for name in ("vocabulary.md", "vocabulary.png", "pruned/model.keras"):
        assert (tmp_path / name).is_file(), name
