import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.runs import launch
from vtrain import schedules
from vtrain.tagging.models.vae import (
    BagOfWordsVAE,
    evaluate_elbo,
    gaussian_kl,
    multinomial_nll,
    unigram_perplexity,
)


def numpy_gaussian_kl(mu, log_var):
    """KL(N(mu, diag(s2)) || N(0, I)) = 1/2 sum(s2 + mu^2 - 1 - log s2)."""
    mu, log_var = np.asarray(mu, np.float64), np.asarray(log_var, np.float64)
    return 0.5 * (np.exp(log_var) + mu**2 - 1.0 - log_var).sum(axis=-1)


def numpy_multinomial_nll(counts, logits):
    logits = np.asarray(logits, np.float64)
    log_probs = logits - logits.max(axis=-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(axis=-1, keepdims=True))
    return -(np.asarray(counts, np.float64) * log_probs).sum(axis=-1)


def test_gaussian_kl_matches_closed_form():
    rng = np.random.default_rng(0)
    mu, log_var = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    got = gaussian_kl(mu.astype("float32"), log_var.astype("float32")).numpy()
    np.testing.assert_allclose(got, numpy_gaussian_kl(mu, log_var), rtol=1e-5)
    # One dimension by hand: mu=1, var=e -> (e + 1 - 1 - 1) / 2.
    assert float(gaussian_kl([[1.0]], [[1.0]])[0]) == pytest.approx((math.e - 1) / 2)


def test_reconstruction_is_the_multinomial_log_likelihood_on_a_tiny_case():
    counts = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0]])
    logits = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]])
    # Written out: -sum_w n_w log(exp(l_w) / sum_v exp(l_v)).
    by_hand = [
        -(
            2 * (0.5 - np.log(np.exp(0.5) + np.exp(-1.0) + np.exp(2.0)))
            + 1 * (2.0 - np.log(np.exp(0.5) + np.exp(-1.0) + np.exp(2.0)))
        ),
        -(
            3 * (0.0 - np.log(np.exp(1.0) + 1 + np.exp(-0.5)))
            + 1 * (-0.5 - np.log(np.exp(1.0) + 1 + np.exp(-0.5)))
        ),
    ]
    got = multinomial_nll(counts.astype("float32"), logits.astype("float32")).numpy()
    np.testing.assert_allclose(got, by_hand, rtol=1e-5)
    np.testing.assert_allclose(got, numpy_multinomial_nll(counts, logits), rtol=1e-5)


def small_vae(**kwargs):
    defaults = dict(vocabulary_size=12, num_topics=3, hidden_units=8, seed=5)
    return BagOfWordsVAE(**{**defaults, **kwargs})


def test_bag_of_words_counts_words_and_skips_reserved_ids():
    model = small_vae()
    ids = np.array([[2, 5, 5, 0, 0], [1, 11, 3, 3, 3]], np.int32)
    expected = np.zeros((2, 12))
    for row, seq in enumerate(ids):
        for i in seq:
            if i >= 2:
                expected[row, i] += 1
    np.testing.assert_array_equal(model.bag_of_words(ids).numpy(), expected)


def test_terms_equal_numpy_on_the_models_own_pass():
    model = small_vae()
    ids = np.array([[2, 5, 5, 7], [3, 3, 1, 0], [11, 10, 9, 8]], np.int32)
    # Same noise seed for both passes: a twin model draws the same z.
    twin = small_vae()
    for a, b in zip(twin.trainable_weights, model.trainable_weights):
        a.assign(b)
    out = twin.forward(ids, training=True)
    terms = model.compute_losses((ids, np.zeros((3, 2))), training=True)
    logits = out["logits"].numpy()
    assert (logits[:, :2] < -1e8).all()  # padding and [UNK] are never predicted
    expected_reconstruction = numpy_multinomial_nll(out["counts"].numpy(), logits).mean()
    expected_kl = numpy_gaussian_kl(out["mu"].numpy(), out["log_var"].numpy()).mean()
    assert float(terms["reconstruction"]) == pytest.approx(expected_reconstruction, rel=1e-5)
    assert float(terms["kl"]) == pytest.approx(expected_kl, rel=1e-5)


def topic_documents(n=128, length=12, seed=0):
    """Two topics: words 2-6 or words 7-11."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 2, n)
    return (2 + 5 * topic[:, None] + rng.integers(0, 5, (n, length))).astype(np.int32)


class ReconstructionOnly(BagOfWordsVAE):
    def compute_losses(self, data, training):
        return {"reconstruction": super().compute_losses(data, training)["reconstruction"]}


def fit_one_epoch(model, ids, weights):
    for variable, value in zip(model.trainable_weights, weights):
        variable.assign(value)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.fit(ids, epochs=1, batch_size=32, shuffle=False, verbose=0)
    return [w.numpy() for w in model.trainable_weights]


def test_annealed_kl_weight_reaches_the_step():
    # Epoch 0 of the warm-up has weight 0: the step must be exactly the
    # reconstruction-only step (the KL gradient is zero); with weight 1 it
    # must not be. All three models draw the same noise (same seed).
    ids = topic_documents()
    annealed = small_vae(loss_weights={"kl": schedules.linear_warmup(1.0, 3)})
    weights = [w.numpy() for w in annealed.trainable_weights]
    after_annealed = fit_one_epoch(annealed, ids, weights)
    after_reconstruction = fit_one_epoch(
        ReconstructionOnly(**small_vae().get_config()), ids, weights
    )
    after_full = fit_one_epoch(small_vae(loss_weights={"kl": 1.0}), ids, weights)
    for a, r in zip(after_annealed, after_reconstruction):
        np.testing.assert_allclose(a, r, rtol=0, atol=1e-7)
    assert any(not np.allclose(a, f, atol=1e-6) for a, f in zip(after_annealed, after_full))


def test_history_kl_weight_follows_the_cyclical_schedule_and_the_elbo_improves():
    ids = topic_documents()
    anneal = schedules.cyclical(1.0, total_epochs=6, cycles=2, ratio=0.5)
    model = small_vae(loss_weights={"kl": anneal})
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    before = evaluate_elbo(model, ids)
    history = model.fit(ids, epochs=6, batch_size=32, verbose=0).history
    np.testing.assert_allclose(history["kl_weight"], [anneal(e) for e in range(6)])
    for epoch in range(6):
        assert history["loss"][epoch] == pytest.approx(
            history["reconstruction"][epoch] + anneal(epoch) * history["kl"][epoch], rel=1e-4
        )
    after = evaluate_elbo(model, ids)
    assert after["elbo_per_document"] > before["elbo_per_document"] + 1.0
    # 12 words drawn uniformly from 5 of 10: the ideal perplexity is 5.
    assert 4.5 < after["perplexity"] < before["perplexity"]


def test_evaluate_elbo_is_the_sum_of_the_terms_and_perplexity_per_word():
    model = small_vae()
    ids = topic_documents(n=10)
    dataset = tf.data.Dataset.from_tensor_slices((ids, np.zeros((10, 3)))).batch(4)
    result = evaluate_elbo(model, dataset)
    assert result["documents"] == 10 and result["words_per_document"] == 12.0
    assert result["elbo_per_document"] == pytest.approx(-(result["reconstruction"] + result["kl"]))
    assert result["perplexity"] == pytest.approx(
        math.exp(-result["elbo_per_document"] / result["words_per_document"])
    )
    with pytest.raises(ValueError, match="expected at least one word"):
        evaluate_elbo(model, np.zeros((2, 3), np.int32))


def test_launcher_hooks_report_the_true_elbo():
    model = small_vae(loss_weights={"kl": 0.0})
    ids = topic_documents(n=16)
    dataset = tf.data.Dataset.from_tensor_slices((ids, np.zeros((16, 2)))).batch(8)
    callback = model.validation_callback(dataset)
    callback.set_model(model)
    logs = {}
    callback.on_epoch_end(0, logs)
    assert (callback.monitor, callback.mode) == ("val_elbo_per_document", "max")
    assert sorted(logs) == ["val_elbo_per_document", "val_perplexity"]
    # The KL counts with weight 1 even though the model's weight is 0.
    result = model.evaluate_split(dataset)
    assert result["elbo_per_document"] == pytest.approx(-(result["reconstruction"] + result["kl"]))
    assert result["kl"] > 0


def test_unigram_perplexity_matches_numpy():
    rng = np.random.default_rng(3)
    train = rng.integers(0, 12, (40, 9))
    held_out = rng.integers(0, 12, (15, 9))
    held_out[0, :3] = 11  # a word with no training use gets the add-one mass
    train[train == 11] = 5
    train[0, 0] = held_out[1, 0] = 14  # beyond the model's words (max_words): not counted
    counts = np.array([(train == w).sum() for w in range(12)], np.float64)
    counts[:2] = 0  # padding and [UNK] are not words
    p = (counts + 1.0) / (counts.sum() + 10)
    words = held_out[(held_out >= 2) & (held_out < 12)]
    want = math.exp(-np.log(p[words]).mean())
    dataset = tf.data.Dataset.from_tensor_slices((train, np.zeros(40))).batch(16)
    assert unigram_perplexity(dataset, held_out, vocabulary_size=12) == pytest.approx(want, 1e-12)
    model = BagOfWordsVAE(vocabulary_size=12, num_topics=2, hidden_units=4)
    assert model.reference_metrics(train, {"test": held_out}) == {
        "test": {"unigram_perplexity": pytest.approx(want)}
    }


def test_unigram_perplexity_without_words_says_so():
    with pytest.raises(ValueError, match=r"received data with no word \(ids >= 2\)"):
        unigram_perplexity([[2, 3]], [[0, 1, 0]], vocabulary_size=5)


def test_save_load_round_trip(tmp_path):
    ids = topic_documents(n=32)
    model = small_vae(loss_weights={"kl": schedules.cyclical(1.0, 4)})
    model.compile(optimizer="adam")
    model.fit(ids, epochs=2, verbose=0)
    path = str(tmp_path / "vae.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is BagOfWordsVAE and int(loaded.epoch.numpy()) == 1
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
    assert loaded.loss_weight_schedules == model.loss_weight_schedules


def test_invalid_num_reserved_message():
    with pytest.raises(ValueError, match=r"num_reserved=12 .*expected 0 <= num_reserved"):
        small_vae(num_reserved=12)


# -- End to end through the launcher ---------------------------------------


def test_config_trains_through_the_launcher_and_writes_elbo_results(tmp_path):
    result = launch(
        "--config=configs/vae.py",
        "--config.data.max_train_examples=600",
        "--config.data.sequence_length=32",
        "--config.model.max_words=500",
        "--config.model.num_topics=4",
        "--config.model.hidden_units=16",
        "--config.model.kl_anneal_epochs=2",
        "--config.train.num_epochs=2",
        f"--workdir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    test = results["test"]
    assert results["model"] == "vae" and test["documents"] > 0
    assert test["perplexity"] == pytest.approx(
        math.exp(-test["elbo_per_document"] / test["words_per_document"])
    )
    assert "perplexity" in result.stdout
    # The unigram baseline, on the same split, beside the VAE's figure.
    for split in ("test", "validation"):
        assert results[split]["unigram_perplexity"] > 1.0
    assert "unigram_perplexity" in result.stdout
