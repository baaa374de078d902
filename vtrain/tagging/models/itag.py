"""An iTag-style sequence-to-sequence tag recommender with a copy path.

After Tang et al., "An Integral Tag Recommendation Model for Textual Content"
(AAAI 2019, SoftWiser-group/iTag): a recurrent encoder reads the description,
an attention decoder emits the tags one at a time, and tags that are also
words can be *copied* from the input. Beam search turns the decoder into a
top-k recommender.

The model, `ITag`:

- **Encoder.** Word embedding (a `vtrain.layers.VariationalEmbedding` or a
  plain `keras.layers.Embedding`; id 0 is padding and is masked), then a
  bidirectional GRU (or convolutions, `encoder="conv"`). Its two final
  states, through a dense `tanh` layer, start the decoder.
- **Decoder.** A GRU cell fed, at each step, the previous tag (a start token
  first) and the previous attention context. The previous tag's vector is its
  own row of a tag table *plus*, when the tag is also a word, that word's row
  of the encoder's embedding: words and tags share one vocabulary, as in
  iTag.
- **Attention.** Additive (Bahdanau) attention over the encoder states.
  Padding positions get weight exactly 0.
- **Output.** A distribution over the T tags and an end-of-sequence (EOS)
  symbol, index T:
  `p = g * p_generate + (1 - g) * p_copy`, with `p_generate` a softmax over
  T + 1 classes and a gate `g = sigmoid(w . [state, context, input] + b)`
  that varies with the input (iTag's gate was a one-unit softmax, which is
  always 1). `p_copy` is a second attention over the input positions that
  hold a tag word (bilinear in the decoder state; other positions get weight
  exactly 0); a position's weight goes to its word's tags. The mixture is
  computed in log space (`logaddexp` of the two weighted log-probabilities;
  the copy weight a word receives is clamped at 1e-30 before its log, so the
  log never sees 0, and most tags, which no input word names, get 1e-30). An
  input with no tag word has no copy distribution: its output is
  `p_generate` alone, and its gate is reported as 1.

**Tag words** (`tag_word_pairs`). A tag's word is the text after the last
`:` of its name: `devel::lang:python` -> `python`, `interface::x11` -> `x11`,
`works-with-format::xml:rss` -> `rss`, `role::program` -> `program`. A tag
has a word when that text is, exactly, an entry of the vocabulary (so with
the default lower-casing and punctuation stripping, `c++` and `c-sharp` never
match: the vectorizer never produces them; on the bundled data 435 of the
490 tags have a word). One word may belong to several tags (`python`:
`devel::lang:python` and `implemented-in::python`; 54 such words); the copy
weight of a position holding it is then split between them in proportion to
their generate probabilities at that step (a softmax of the generate logits
within the word's tags), so context decides which of them is copied. An equal
split would cap each of them at half the copy mass: on a 4-example overfit
test the model then got stuck with both at one half.

**Targets.** A tag list is a set; the decoder needs an order. True tags are
emitted by a fixed priority, most frequent in training first (ties by tag
index), then EOS, then padding, over `max_tags + 1` steps. A list longer than
`max_tags` keeps its `max_tags` highest-priority tags and has *no* EOS (it
was cut, not finished); beam search treats a hypothesis with `max_tags` tags
the same way. Training is teacher-forced; the loss is the per-example sum of
the step negative log-likelihoods, padding steps masked, averaged over the
batch, plus `weight_decay * kl` (see `vtrain.VariationalModel`).

**Recommending** (`ITag.recommend`). Beam search (width `beam_width`) over
whole tag sequences, never emitting a tag twice, stopping each hypothesis at
EOS or after `max_tags` tags. The ranking is the best-scoring hypothesis's
tags (score: sum of log probabilities), then the tags that the other
hypotheses of the final beam add, best hypothesis first; when that is still
fewer than k tags, the remaining tags follow by decreasing fallback score
(`ITag.tag_scores`), so the ranking always holds exactly k distinct tags.
The fallback score is the first step's probability, or, with the presence
head, the tag's presence probability. Most best hypotheses hold one or two
tags (the median package has two), so F1@3 and F1@5 depend on the fallback.
With `ranking="fused"` the tags are instead ordered by presence probability
plus the share of the final beam's hypotheses that hold them
(`fused_scores`), so that the presence head ranks the tags the beam
treats alike.

**Tag-presence head** (`presence_weight > 0`; not in iTag). The decoder is
sharp on the first tags but ranks the rest poorly: after the tags it emits,
the first-step probability says which tag would come *first*, not which is
true. An optional head on the encoder (masked mean of its states and the
decoder's initial state; with `presence_reads_words`, also the masked mean
of the word vectors; with `presence_hidden_units`, through a hidden ReLU
layer) predicts each tag's presence, trained with a per-example summed
binary cross-entropy (term `presence`, weighted by `presence_weight`).

**Encoders.** `encoder="gru"` is iTag's bidirectional GRU; `"conv"` is two
width-3 `Conv1D` layers (ReLU), whose states see five words each and
whose masked mean starts the decoder: no recurrence over the 64 tokens.

Build one from the launcher's data with `build(model_config, data)`.

Example:
>>> import numpy as np
>>> vocabulary = ["", "[UNK]", "a", "python", "library", "x11"]
>>> tags = ["devel::lang:python", "role::program", "interface::x11"]
>>> model = ITag(
...     vocabulary_size=len(vocabulary), num_tags=len(tags),
...     tag_priority=priority_from_counts([5, 9, 2]),
...     copy_pairs=tag_word_pairs(vocabulary, tags),
...     embedding_dim=8, encoder_units=8, decoder_units=8, attention_units=8,
...     max_tags=3, beam_width=2)
>>> tag_word_pairs(vocabulary, tags)
[[3, 0], [5, 2]]
>>> model.recommend(np.array([[2, 3, 4, 0]]), k=3).shape
TensorShape([1, 3])
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vtrain.distribute import example_mean
from vtrain.layers.variational_embedding import VariationalEmbedding
from vtrain.tagging.models.classifier import UNKNOWN_WORDS
from vtrain.variational import VariationalModel
from vtrain.vocabulary.rankings import FIRST_WORD_ID, OOV_ID

PAD = -1  # target id of the steps after EOS; masked out of the loss
_NEG = -1e9  # a logit no softmax / top-k ever picks over a finite one
_COPY_EPSILON = 1e-30  # clamp before log: p_copy is exactly 0 for most tags


def tag_word(tag):
    """The word of a tag: the text after its last `:`.

    Example:
    >>> tag_word("devel::lang:python"), tag_word("uitoolkit::x11")
    ('python', 'x11')
    """
    return tag.rsplit(":", 1)[-1]


def tag_word_pairs(vocabulary, tags):
    """`[[word_id, tag_index], ...]`: which vocabulary words are tags.

    A word is a tag's word when it equals `tag_word(tag)` exactly (ids 0
    and 1, padding and `[UNK]`, never match). Sorted by word id, then tag.

    Example:
    >>> tag_word_pairs(["", "[UNK]", "python", "tool"],
    ...                ["devel::lang:python", "implemented-in::python"])
    [[2, 0], [2, 1]]
    """
    word_ids = {word: i for i, word in enumerate(vocabulary) if i > 1 and word}
    pairs = [
        [word_ids[tag_word(tag)], t] for t, tag in enumerate(tags) if tag_word(tag) in word_ids
    ]
    return sorted(pairs)


def priority_from_counts(tag_train_counts):
    """Emission rank of each tag: 0 for the most frequent, ties by index.

    Example:
    >>> priority_from_counts([5, 9, 2, 9])
    [2, 0, 3, 1]
    """
    counts = np.asarray(tag_train_counts)
    order = np.lexsort((np.arange(len(counts)), -counts))
    priority = np.empty(len(counts), dtype=np.int64)
    priority[order] = np.arange(len(counts))
    return priority.tolist()


@keras.saving.register_keras_serializable(package="vtrain")
class ITag(VariationalModel):
    """Encoder-decoder tag recommender with attention, copy path and beam search.

    See the module docstring for the model. `call(token_ids)` returns the
    first decoding step's log-probabilities over the T tags, `[B, T]` (a
    score matrix, usable with `vtrain.tagging.metrics.ranking_metrics`);
    `recommend(token_ids, k)` returns beam-search rankings, `[B, k]`.

    Args:
        vocabulary_size: V, the number of word ids (0 = padding).
        num_tags: T.
        tag_priority: list of T distinct ranks in [0, T): the order in which
            true tags are emitted (0 first); see `priority_from_counts`.
        copy_pairs: `[[word_id, tag_index], ...]` (`tag_word_pairs`).
        embedding_dim: size of word and tag vectors.
        encoder_units: GRU units per direction.
        decoder_units: decoder GRU units.
        attention_units: hidden size of the additive attention.
        max_tags: the longest tag sequence decoded (and trained on).
        beam_width: default beam width of `recommend`.
        dropout: dropout rate on embeddings, encoder states and readout.
        variational: a `VariationalEmbedding` (True) or a plain
            `keras.layers.Embedding` (False) for the words.
        threshold: the variational embedding's `log_alpha` threshold.
        presence_weight: weight of the `presence` loss term of the
            tag-presence head (0: no head, the pure iTag model; see the
            module docstring).
        encoder: `"gru"` (a bidirectional GRU, as in iTag) or `"conv"`
            (two `Conv1D` layers of width 3, ReLU: each state sees 5
            words; no recurrence, so several times cheaper on a CPU; the
            decoder's initial state then reads the masked mean of the
            states).
        presence_reads_words: the presence head also reads the masked
            mean of the word vectors (a skip past the encoder, as the
            pooled classifier reads them); needs `presence_weight > 0`.
        presence_hidden_units: width of a hidden ReLU layer of the presence
            head (0: the head is one linear layer).
        unknown_words: what an "[UNK]" token contributes, as in
            `vtrain.tagging.models.classifier.TagClassifier`: `"learned"`
            (its row's vector), `"zero"` (a zero vector in training and at
            inference) or `"zero_at_inference"`.
        ranking: how `recommend` orders the tags. `"beam"`: the beam's
            tags first (see `rank_tags`); `"fused"`: by presence
            probability plus the share of the final beam's hypotheses
            that hold the tag (`fused_scores`); needs `presence_weight > 0`.
        log_alpha_init: `(low, high)`: the variational embedding's
            `log_alpha` starts uniform in this range. Low, so that the words
            start almost noise-free: `VariationalEmbedding`'s default (0, 3)
            multiplies each word vector by noise of standard deviation 1 to
            4.5, through which the recurrent encoder learns far more slowly
            (on the Debian tags, validation cross-entropy after one epoch:
            7.15 with (0, 3), 6.25 with (-6, -4), 6.25 with a plain
            embedding). The KL term then raises the `log_alpha` of the words
            the data does not need.
        **kwargs: `vtrain.VariationalModel` arguments (`weight_decay`,
            `learning_rate`, ...).

    Example:
    >>> import numpy as np
    >>> model = ITag(vocabulary_size=20, num_tags=4, tag_priority=[0, 1, 2, 3],
    ...              copy_pairs=[[5, 2]], embedding_dim=8, encoder_units=8,
    ...              decoder_units=8, attention_units=8, max_tags=3)
    >>> model.compile(optimizer="adam")
    >>> x = np.random.randint(1, 20, (8, 6))
    >>> y = (np.random.rand(8, 4) < 0.4).astype("float32")
    >>> sorted(model.fit(x, y, epochs=1, verbose=0).history)
    ['cross_entropy', 'kl', 'kl_weight', 'learning_rate', 'loss']
    >>> tuple(model(x).shape)
    (8, 4)
    """

    def __init__(
        self,
        *,
        vocabulary_size,
        num_tags,
        tag_priority,
        copy_pairs=(),
        embedding_dim=128,
        encoder_units=128,
        decoder_units=256,
        attention_units=128,
        max_tags=8,
        beam_width=4,
        dropout=0.2,
        variational=True,
        threshold=3.0,
        log_alpha_init=(-6.0, -4.0),
        presence_weight=0.0,
        encoder="gru",
        presence_reads_words=False,
        presence_hidden_units=0,
        unknown_words="learned",
        ranking="beam",
        **kwargs,
    ):
        presence_weight = float(presence_weight)
        if not presence_weight >= 0.0:
            raise ValueError(
                f"Invalid presence_weight for ITag: received {presence_weight!r}. "
                "Expected a number >= 0 (0 turns the tag-presence head off)."
            )
        # The presence term's weight lives in presence_weight (saved in the
        # config); a "presence" entry of a reloaded config is the same value.
        loss_weights = dict(kwargs.pop("loss_weights", None) or {})
        loss_weights.pop("presence", None)
        if presence_weight > 0.0:
            loss_weights["presence"] = presence_weight
        super().__init__(loss_weights=loss_weights, **kwargs)
        for name, value in (
            ("vocabulary_size", vocabulary_size),
            ("num_tags", num_tags),
            ("embedding_dim", embedding_dim),
            ("encoder_units", encoder_units),
            ("decoder_units", decoder_units),
            ("attention_units", attention_units),
            ("max_tags", max_tags),
            ("beam_width", beam_width),
        ):
            _check_positive_int(name, value)
        self.vocabulary_size = vocabulary_size
        self.num_tags = num_tags
        self.tag_priority = _checked_priority(tag_priority, num_tags)
        self.copy_pairs = _checked_pairs(copy_pairs, vocabulary_size, num_tags)
        self.embedding_dim = embedding_dim
        self.encoder_units = encoder_units
        self.decoder_units = decoder_units
        self.attention_units = attention_units
        self.max_tags = max_tags
        self.beam_width = beam_width
        self.dropout_rate = float(dropout)
        self.variational = bool(variational)
        self.threshold = float(threshold)
        self.log_alpha_init = _checked_range(log_alpha_init)
        self.presence_weight = presence_weight
        self.encoder_kind = _checked_choice("encoder", encoder, ENCODERS)
        self.ranking = _checked_choice("ranking", ranking, RANKINGS)
        self.presence_reads_words = bool(presence_reads_words)
        self.unknown_words = _checked_choice("unknown_words", unknown_words, UNKNOWN_WORDS)
        if isinstance(presence_hidden_units, bool) or not (
            isinstance(presence_hidden_units, (int, np.integer)) and presence_hidden_units >= 0
        ):
            raise ValueError(
                f"Invalid presence_hidden_units for ITag: received {presence_hidden_units!r}. "
                "Expected an integer >= 0 (0: a linear presence head)."
            )
        self.presence_hidden_units = int(presence_hidden_units)
        if presence_weight == 0.0 and (
            self.presence_reads_words or self.presence_hidden_units or ranking == "fused"
        ):
            raise ValueError(
                f"Invalid ITag options: presence_reads_words={presence_reads_words!r}, "
                f"presence_hidden_units={presence_hidden_units!r} and ranking={ranking!r} "
                "need the presence head, but presence_weight is 0. Expected "
                "presence_weight > 0, or presence_reads_words=False, "
                'presence_hidden_units=0 and ranking="beam".'
            )
        self.eos = num_tags  # output class of EOS; also the decoder's start input

        if self.variational:
            self.embedding = VariationalEmbedding(
                vocabulary_size,
                embedding_dim,
                threshold=threshold,
                mask_zero=True,
                log_alpha_initializer=keras.initializers.RandomUniform(*self.log_alpha_init),
                name="word_embedding",
            )
        else:
            self.embedding = keras.layers.Embedding(
                vocabulary_size, embedding_dim, mask_zero=True, name="word_embedding"
            )
        if self.encoder_kind == "gru":
            self.encoder = keras.layers.Bidirectional(
                keras.layers.GRU(encoder_units, return_sequences=True, return_state=True),
                name="encoder",
            )
        else:  # states of the same width as the bidirectional GRU's
            self.encoder = [
                keras.layers.Conv1D(
                    2 * encoder_units, 3, padding="same", activation="relu", name=f"encoder_{i}"
                )
                for i in range(2)
            ]
        self.bridge = keras.layers.Dense(decoder_units, activation="tanh", name="bridge")
        # A Dense on one-hot tags, not an Embedding: vocabulary counts
        # (vtrain.tagging.evaluate.vocabulary_stats) must see only the word table.
        self.tag_embedding = keras.layers.Dense(embedding_dim, use_bias=False, name="tag_embedding")
        self.decoder_cell = keras.layers.GRUCell(decoder_units, name="decoder_cell")
        self.attention_keys = keras.layers.Dense(
            attention_units, use_bias=False, name="attention_keys"
        )
        self.attention_query = keras.layers.Dense(attention_units, name="attention_query")
        self.attention_score = keras.layers.Dense(1, use_bias=False, name="attention_score")
        self.copy_keys = keras.layers.Dense(decoder_units, use_bias=False, name="copy_keys")
        self.readout = keras.layers.Dense(decoder_units, activation="tanh", name="readout")
        self.generate = keras.layers.Dense(num_tags + 1, name="generate")
        self.gate = keras.layers.Dense(1, name="gate")
        self.presence = (
            keras.layers.Dense(num_tags, name="presence") if presence_weight > 0 else None
        )
        self.presence_hidden = (
            keras.layers.Dense(
                self.presence_hidden_units, activation="relu", name="presence_hidden"
            )
            if presence_weight > 0 and self.presence_hidden_units
            else None
        )
        self.dropout = keras.layers.Dropout(self.dropout_rate)

        # Constant lookup tables (rebuilt from the config, not saved weights).
        # Each tag word gets a slot (0: not a tag word); each tag at most one.
        words = sorted({word for word, _ in self.copy_pairs})
        slot = {word: i + 1 for i, word in enumerate(words)}
        word_to_slot = np.zeros(vocabulary_size, np.int32)
        for word, s in slot.items():
            word_to_slot[word] = s
        tag_slot = np.zeros(num_tags + 1, np.int32)
        tag_word_id = np.zeros(num_tags + 1, np.int32)
        for word, tag in self.copy_pairs:
            tag_slot[tag] = slot[word]
            tag_word_id[tag] = word
        self._num_slots = len(words) + 1
        self._word_to_slot = word_to_slot
        self._tag_slot = tag_slot
        self._tag_word_id = tag_word_id
        self._recommend_functions = {}
        # Built at once (no weight depends on the input length): fit's
        # BackupAndRestore and .keras loading need a built model, and fit
        # builds through compute_losses, which Keras does not count.
        self.build()

    # ------------------------------------------------------------------
    # Encoder and one decoder step.
    # ------------------------------------------------------------------

    @classmethod
    def data_arguments(cls, data):
        """The constructor arguments that `data` (a `TagData`) fixes.

        Example:
        >>> import types
        >>> data = types.SimpleNamespace(
        ...     vocabulary=["", "[UNK]", "gtk", "tool"], num_train=100,
        ...     tags=["uitoolkit::gtk", "role::program"], tag_train_counts=[3, 7])
        >>> arguments = ITag.data_arguments(data)
        >>> arguments["copy_pairs"], arguments["tag_priority"]
        ([[2, 0]], [1, 0])
        """
        return {
            "vocabulary_size": len(data.vocabulary),
            "num_tags": len(data.tags),
            "tag_priority": priority_from_counts(data.tag_train_counts),
            "copy_pairs": tag_word_pairs(data.vocabulary, data.tags),
        }

    def build(self, input_shape=None):
        if not self.built:
            # One step on a dummy input gives every sub-layer (the decoder's
            # included) its weights; none depends on the input length.
            memory, state = self.encode(tf.ones((1, 2), "int32"))
            self.decode_step(memory, state, self.initial_context(memory), self.start_tags(1))
            if self.presence is not None:
                self.presence_logits(memory, state)
        self.built = True

    def call(self, token_ids, training=False):
        memory, state = self.encode(token_ids, training=training)
        return self.tag_scores(memory, state, training=training)

    def tag_scores(self, memory, state, training=False):
        """Per-tag scores `[B, T]` that `recommend` falls back on.

        The tag-presence log-probabilities when the presence head is on
        (`presence_weight > 0`), else the first decoding step's
        log-probabilities. `model(token_ids)` returns them.
        """
        if self.presence is not None:
            return ops.log_sigmoid(self.presence_logits(memory, state, training=training))
        log_probs, _, _, _ = self.decode_step(
            memory,
            state,
            self.initial_context(memory),
            self.start_tags(ops.shape(state)[0]),
            training=training,
        )
        return log_probs[:, : self.num_tags]

    def presence_logits(self, memory, state, training=False):
        """Logits `[B, T]` of each tag being true, from the encoder alone.

        The presence head: a dense layer on the masked mean of the encoder
        states and the decoder's initial state. Only with `presence_weight > 0`.
        """
        features = [_masked_mean(memory["states"], memory["mask"]), state]
        if self.presence_reads_words:
            features.append(_masked_mean(memory["words"], memory["mask"]))
        features = self.dropout(ops.concatenate(features, axis=-1), training=training)
        if self.presence_hidden is not None:
            features = self.dropout(self.presence_hidden(features), training=training)
        return self.presence(features)

    def encode(self, token_ids, training=False):
        """Encodes `[B, L]` token ids; returns `(memory, initial_state)`.

        `memory` is a dict of `[B, L, ...]` tensors the decoder attends to
        (`states`, `mask`, attention `keys`, `copy_keys`, `copy_slot`: each
        position's tag-word slot, 0 if none) and `has_copy` `[B]`.

        Example:
        >>> model = ITag(vocabulary_size=10, num_tags=3, tag_priority=[0, 1, 2],
        ...              copy_pairs=[[4, 1]], encoder_units=4, decoder_units=6)
        >>> memory, state = model.encode(tf.constant([[4, 2, 0]]))
        >>> tuple(memory["states"].shape), tuple(state.shape)
        ((1, 3, 8), (1, 6))
        """
        token_ids = ops.cast(token_ids, "int32")
        mask = ops.not_equal(token_ids, 0)
        vectors = self.embedding(token_ids, training=training)
        if self.unknown_words == "zero" or (
            self.unknown_words == "zero_at_inference" and not training
        ):
            vectors = vectors * ops.cast(ops.not_equal(token_ids, OOV_ID), vectors.dtype)[..., None]
        # A word whose vector is exactly zero (dropped by the variational
        # threshold, or masked by vtrain.vocabulary) is not copied either:
        # the model then treats it as "[UNK]", as the pruned export does.
        copyable = mask & ops.any(ops.not_equal(vectors, 0), axis=-1)
        embedded = self.dropout(vectors, training=training)
        if self.encoder_kind == "gru":
            states, forward, backward = self.encoder(embedded, mask=mask, training=training)
            final = ops.concatenate([forward, backward], axis=-1)
        else:
            states = embedded * ops.cast(mask, embedded.dtype)[..., None]
            for layer in self.encoder:
                states = layer(states) * ops.cast(mask, embedded.dtype)[..., None]
            final = _masked_mean(states, mask)
        states = self.dropout(states, training=training)
        copy_slot = ops.where(
            copyable, ops.take(ops.convert_to_tensor(self._word_to_slot), token_ids), 0
        )
        memory = {
            "states": states,
            "mask": mask,
            "keys": self.attention_keys(states),
            "copy_keys": self.copy_keys(states),
            "copy_slot": copy_slot,
            "has_copy": ops.any(copy_slot > 0, axis=1),
        }
        if self.presence_reads_words:
            memory["words"] = vectors
        return memory, self.bridge(final)

    def initial_context(self, memory):
        """The zero attention context fed to the first decoder step."""
        states = memory["states"]
        return ops.zeros((ops.shape(states)[0], ops.shape(states)[2]), states.dtype)

    def start_tags(self, batch_size):
        """`[batch_size]` start symbols (id T), the decoder's first input."""
        return ops.full((batch_size,), self.eos, "int32")

    def decode_step(self, memory, state, context, previous_tags, training=False):
        """One decoder step: returns `(log_probs, state, context, details)`.

        Args:
            memory, state: from `encode` (or a previous step's state).
            context: the previous step's attention context (`initial_context`
                at the first step).
            previous_tags: `[B]` int, the previous tag, or `eos` (= T) as the
                start symbol.

        Returns:
            `log_probs` `[B, T + 1]` (last column: EOS), the new state and
            context, and `details`: `attention` and `copy_attention` `[B, L]`,
            `gate` `[B]` (the weight of the generate distribution),
            `generate_log_probs` and `copy_probs` `[B, T + 1]` (the two
            distributions mixed; `copy_probs` is all 0 without tag words).

        Example:
        >>> model = ITag(vocabulary_size=10, num_tags=3, tag_priority=[0, 1, 2],
        ...              copy_pairs=[[4, 1]], decoder_units=6)
        >>> memory, state = model.encode(tf.constant([[4, 2, 0]]))
        >>> out = model.decode_step(memory, state, model.initial_context(memory),
        ...                         model.start_tags(1))
        >>> round(float(tf.reduce_sum(tf.exp(out[0]))), 5)
        1.0
        """
        inputs = ops.concatenate([self._tag_vectors(previous_tags, training), context], axis=-1)
        state, _ = self.decoder_cell(inputs, [state], training=training)

        scores = self.attention_score(
            ops.tanh(memory["keys"] + self.attention_query(state)[:, None, :])
        )[..., 0]
        attention = _masked_softmax(scores, memory["mask"])
        context = ops.einsum("bl,bld->bd", attention, memory["states"])

        features = ops.concatenate([state, context, inputs], axis=-1)
        readout = self.dropout(
            self.readout(ops.concatenate([state, context], axis=-1)), training=training
        )
        log_generate = ops.log_softmax(self.generate(readout), axis=-1)

        copy_scores = ops.einsum("bld,bd->bl", memory["copy_keys"], state)
        copy_attention = _masked_softmax(copy_scores, memory["copy_slot"] > 0)
        log_copy = self._copy_log_probs(copy_attention, memory["copy_slot"], log_generate)
        gate_logit = self.gate(features)[:, 0]
        mixed = ops.logaddexp(
            ops.log_sigmoid(gate_logit)[:, None] + log_generate,
            ops.log_sigmoid(-gate_logit)[:, None] + log_copy,
        )
        has_copy = memory["has_copy"]
        log_probs = ops.where(has_copy[:, None], mixed, log_generate)
        gate = ops.where(has_copy, ops.sigmoid(gate_logit), 1.0)
        details = {
            "attention": attention,
            "copy_attention": copy_attention,
            "gate": gate,
            "generate_log_probs": log_generate,
            "copy_probs": ops.where(has_copy[:, None], ops.exp(log_copy), 0.0),
        }
        return log_probs, state, context, details

    def _copy_log_probs(self, copy_attention, copy_slot, log_generate):
        """Log of the copy distribution over the T + 1 outputs, `[B, T + 1]`.

        Each slot's attention weight is split between its word's tags in
        proportion to their generate probabilities (a within-word softmax),
        so the decoder can tell `devel::lang:python` from
        `implemented-in::python`. Tags with no word get log(1e-30).
        """
        num_slots = self._num_slots
        rows = tf.shape(log_generate)[0]
        slot_weights = _sum_by_slot(copy_attention, copy_slot, num_slots)
        tag_slot = tf.convert_to_tensor(self._tag_slot)
        segments = tf.range(rows)[:, None] * num_slots + tag_slot[None, :]
        # Stable within-slot log-softmax; the max only shifts, so no gradient.
        group_max = tf.gather(
            tf.stop_gradient(
                tf.math.unsorted_segment_max(log_generate, segments, rows * num_slots)
            ),
            segments,
        )
        shifted = log_generate - group_max
        group_sum = tf.gather(
            tf.math.unsorted_segment_sum(tf.exp(shifted), segments, rows * num_slots),
            segments,
        )  # >= 1: it holds exp(0) for the group's max
        weight = tf.gather(
            slot_weights, tf.broadcast_to(tag_slot, tf.shape(log_generate)), batch_dims=1
        )
        return ops.log(ops.maximum(weight, _COPY_EPSILON)) + shifted - ops.log(group_sum)

    def _tag_vectors(self, tags, training):
        # Shared vocabulary: a tag that is also a word adds that word's vector.
        tags = ops.cast(tags, "int32")
        word = ops.take(ops.convert_to_tensor(self._tag_word_id), tags)
        word_vectors = self.embedding(word, training=training)
        has_word = ops.cast(word > 0, word_vectors.dtype)[:, None]
        tag_vectors = self.tag_embedding(ops.one_hot(tags, self.num_tags + 1))
        return tag_vectors + has_word * word_vectors

    # ------------------------------------------------------------------
    # Training.
    # ------------------------------------------------------------------

    def targets_from_labels(self, labels):
        """Multi-hot `[B, T]` labels -> target sequences `[B, max_tags + 1]`.

        True tags by priority (see `priority_from_counts`), then `eos` (= T),
        then `PAD` (-1); a list cut at `max_tags` tags has no EOS.

        Example:
        >>> model = ITag(vocabulary_size=10, num_tags=4, tag_priority=[2, 0, 3, 1], max_tags=3)
        >>> labels = tf.constant([[1, 1, 0, 1], [0, 0, 1, 0], [1, 1, 1, 1]])
        >>> model.targets_from_labels(labels).numpy().tolist()
        [[1, 3, 0, 4], [2, 4, -1, -1], [1, 3, 0, -1]]
        """
        labels = ops.convert_to_tensor(labels)
        if labels.shape[-1] is not None and labels.shape[-1] != self.num_tags:
            raise ValueError(
                f"{type(self).__name__} received labels of shape "
                f"{tuple(labels.shape)}; expected multi-hot labels "
                f"[batch, {self.num_tags}] (one column per tag). Check that "
                "the model was built with the same tag list as the data."
            )
        is_true = ops.cast(labels, "float32") > 0.5
        priority = ops.convert_to_tensor(np.asarray(self.tag_priority, np.int32))
        # Lower key first: true tags by priority, then the others.
        key = ops.where(is_true, priority, priority + self.num_tags)
        steps = min(self.max_tags, self.num_tags)
        _, ordered = tf.math.top_k(-key, k=steps)
        ordered = ops.pad(ordered, [[0, 0], [0, self.max_tags + 1 - steps]])
        count = ops.sum(ops.cast(is_true, "int32"), axis=-1)[:, None]
        position = ops.arange(self.max_tags + 1, dtype="int32")[None, :]
        return ops.where(
            position < ops.minimum(count, self.max_tags),
            ordered,
            ops.where(position == count, self.eos, PAD),
        )

    def teacher_forcing(self, token_ids, targets, training=False):
        """Decodes `targets` `[B, S]` feeding the true previous tag.

        Returns a dict: `log_probs` `[B, S, T + 1]`, `attention` and
        `copy_attention` `[B, S, L]`, `gate` `[B, S]`.

        Example:
        >>> model = ITag(vocabulary_size=10, num_tags=3, tag_priority=[0, 1, 2],
        ...              copy_pairs=[[4, 1]], max_tags=2)
        >>> out = model.teacher_forcing(tf.constant([[4, 2]]), tf.constant([[1, 3, -1]]))
        >>> tuple(out["log_probs"].shape), tuple(out["gate"].shape)
        ((1, 3, 4), (1, 3))
        """
        memory, state = self.encode(token_ids, training=training)
        return self._teacher_forcing(memory, state, targets, training)

    def _teacher_forcing(self, memory, state, targets, training):
        targets = ops.cast(targets, "int32")
        context = self.initial_context(memory)
        previous = self.start_tags(ops.shape(targets)[0])
        outputs = {"log_probs": [], "attention": [], "copy_attention": [], "gate": []}
        for step in range(targets.shape[1]):
            log_probs, state, context, details = self.decode_step(
                memory, state, context, previous, training=training
            )
            outputs["log_probs"].append(log_probs)
            for name in ("attention", "copy_attention", "gate"):
                outputs[name].append(details[name])
            # After EOS the inputs are never scored; any valid id will do.
            previous = ops.where(targets[:, step] >= 0, targets[:, step], self.eos)
        return {name: ops.stack(values, axis=1) for name, values in outputs.items()}

    def sequence_cross_entropy(self, targets, log_probs, sample_weight=None):
        """Batch mean of per-example summed step NLLs; `PAD` steps count 0.

        Example:
        >>> model = ITag(vocabulary_size=10, num_tags=2, tag_priority=[0, 1])
        >>> log_probs = tf.math.log(tf.constant([[[0.5, 0.25, 0.25],
        ...                                       [0.1, 0.1, 0.8]]]))
        >>> round(float(model.sequence_cross_entropy(
        ...     tf.constant([[0, -1]]), log_probs)), 4)  # -log 0.5
        0.6931
        """
        targets = ops.cast(targets, "int32")
        valid = targets >= 0
        picked = ops.take_along_axis(log_probs, ops.maximum(targets, 0)[..., None], axis=-1)[..., 0]
        per_example = -ops.sum(ops.where(valid, picked, 0.0), axis=-1)
        return _weighted_mean(per_example, sample_weight)

    def compute_losses(self, data, training):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} needs labels: fit/evaluate received "
                "batches with no y. Pass (token_ids, multi-hot tags)."
            )
        targets = self.targets_from_labels(y)
        memory, state = self.encode(x, training=training)
        log_probs = self._teacher_forcing(memory, state, targets, training)["log_probs"]
        terms = {
            "cross_entropy": self.sequence_cross_entropy(targets, log_probs, sample_weight),
            "kl": self.kl_divergence(),
        }
        if self.presence is not None:
            logits = ops.cast(self.presence_logits(memory, state, training=training), "float32")
            per_example = ops.sum(
                ops.binary_crossentropy(ops.cast(y, "float32"), logits, from_logits=True),
                axis=-1,
            )
            terms["presence"] = _weighted_mean(per_example, sample_weight)
        return terms

    # ------------------------------------------------------------------
    # Inference.
    # ------------------------------------------------------------------

    def beam_search(self, token_ids, beam_width=None):
        """The final beam of each example: tag sequences, best first.

        Returns `(sequences, first_log_probs)`: `sequences`
        `[B, beam_width, max_tags]` int32, each hypothesis's tags in order
        (-1 after its end), sorted by decreasing score (sum of log
        probabilities); `first_log_probs` `[B, T]`, the first step's
        log-probabilities. With `beam_width=1` this is greedy decoding.

        Example:
        >>> model = ITag(vocabulary_size=10, num_tags=3, tag_priority=[0, 1, 2], max_tags=2)
        >>> sequences, first = model.beam_search(tf.constant([[4, 2]]), beam_width=2)
        >>> tuple(sequences.shape), tuple(first.shape)
        ((1, 2, 2), (1, 3))
        """
        beam_width = self._checked_beam_width(beam_width)
        return self._compiled("beam", beam_width, None)(ops.convert_to_tensor(token_ids, "int32"))

    def _encoded_beam_search(self, token_ids, beam_width):
        memory, state = self.encode(token_ids, training=False)
        return self._beam_search(memory, state, beam_width)

    def recommend(self, token_ids, k, beam_width=None):
        """Top-k tag indices `[B, k]` (int32, rank order, no repeats).

        The tags of the best beam-search hypothesis in order, then the new
        tags of the next hypotheses (best first), then, while fewer than k,
        the remaining tags by decreasing first-step probability.

        Example:
        >>> model = ITag(vocabulary_size=10, num_tags=5, tag_priority=[0, 1, 2, 3, 4],
        ...              max_tags=2)
        >>> top = model.recommend(tf.constant([[4, 2, 0]]), k=4)
        >>> top.shape, len(set(top.numpy()[0].tolist()))
        (TensorShape([1, 4]), 4)
        """
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.num_tags:
            raise ValueError(
                f"Invalid k for recommend: received {k!r}. Expected an integer "
                f"from 1 to the number of tags ({self.num_tags})."
            )
        beam_width = self._checked_beam_width(beam_width)
        return self._compiled("recommend", beam_width, k)(ops.convert_to_tensor(token_ids, "int32"))

    def _checked_beam_width(self, beam_width):
        beam_width = self.beam_width if beam_width is None else beam_width
        if (
            isinstance(beam_width, bool)
            or not isinstance(beam_width, int)
            or not 1 <= beam_width <= self.num_tags + 1
        ):
            raise ValueError(
                f"Invalid beam_width: received {beam_width!r}. Expected an "
                f"integer from 1 to num_tags + 1 ({self.num_tags + 1})."
            )
        return beam_width

    def _compiled(self, kind, beam_width, k):
        key = (kind, beam_width, k)
        if key not in self._recommend_functions:
            if kind == "beam":
                function = lambda ids: self._encoded_beam_search(ids, beam_width)  # noqa: E731
            else:
                function = lambda ids: self._recommend(ids, beam_width, k)  # noqa: E731
            self._recommend_functions[key] = tf.function(
                function,
                input_signature=[tf.TensorSpec([None, None], tf.int32)],
            )
        return self._recommend_functions[key]

    def _recommend(self, token_ids, beam_width, k):
        memory, state = self.encode(token_ids, training=False)
        sequences, first_log_probs = self._beam_search(memory, state, beam_width)
        if self.presence is None:
            scores = first_log_probs  # = tag_scores(), already computed
        else:
            scores = self.tag_scores(memory, state)
        if self.ranking == "fused":
            return tf.math.top_k(fused_scores(sequences, scores), k=k).indices
        return rank_tags(sequences, scores, k)

    def _beam_search(self, memory, state, beam_width):
        beams, classes, tags = beam_width, self.num_tags + 1, self.num_tags
        batch = tf.shape(state)[0]
        # Row b * beams + i is beam i of example b.
        memory = {name: tf.repeat(value, beams, axis=0) for name, value in memory.items()}
        state = tf.repeat(state, beams, axis=0)
        context = self.initial_context(memory)
        previous = self.start_tags(batch * beams)
        # Only beam 0 is alive at first, so the first step has no duplicates.
        scores = tf.tile(
            tf.concat([[0.0], tf.fill([beams - 1], _NEG)], axis=0)[None, :], [batch, 1]
        )
        finished = tf.zeros([batch, beams], tf.bool)
        used = tf.zeros([batch, beams, tags], tf.bool)
        sequences = tf.fill([batch, beams, self.max_tags], -1)
        # A finished beam continues only by "EOS" at no cost: its score stays.
        finished_row = tf.concat([tf.fill([tags], _NEG), [0.0]], axis=0)
        first_log_probs = None
        for step in range(self.max_tags):
            log_probs, state, context, _ = self.decode_step(memory, state, context, previous)
            log_probs = tf.reshape(log_probs, [batch, beams, classes])
            if first_log_probs is None:
                first_log_probs = log_probs[:, 0, :tags]
            log_probs = tf.concat(
                [tf.where(used, _NEG, log_probs[..., :tags]), log_probs[..., tags:]],
                axis=-1,
            )
            log_probs = tf.where(finished[..., None], finished_row, log_probs)
            candidates = tf.reshape(scores[..., None] + log_probs, [batch, beams * classes])
            scores, index = tf.math.top_k(candidates, k=beams)
            parent, token = index // classes, index % classes

            def reorder(value):
                shape = tf.shape(value)
                grouped = tf.reshape(value, tf.concat([[batch, beams], shape[1:]], 0))
                return tf.reshape(tf.gather(grouped, parent, batch_dims=1), shape)  # noqa: B023

            state, context = reorder(state), reorder(context)
            finished = tf.gather(finished, parent, batch_dims=1)
            used = tf.gather(used, parent, batch_dims=1)
            sequences = tf.gather(sequences, parent, batch_dims=1)
            is_eos = token == self.eos
            emitted = tf.where(is_eos | finished, -1, token)
            sequences = tf.concat(
                [sequences[..., :step], emitted[..., None], sequences[..., step + 1 :]],
                axis=-1,
            )
            used = used | tf.one_hot(emitted, tags, on_value=True, off_value=False, dtype=tf.bool)
            finished = finished | is_eos
            previous = tf.reshape(token, [-1])
        # top_k sorts its output: the beams are best first.
        return sequences, first_log_probs

    def pruned_config(self, rows):
        """`get_config()` for the same model on the vocabulary rows `rows` only.

        The protocol of `vtrain.vocabulary.export_pruned`: `rows[i]` is the
        old word id of new id `i`. `vocabulary_size` becomes `len(rows)` and
        `copy_pairs` follow their words to the new ids; a tag whose word is
        not kept loses its copy pair (that word now reads as "[UNK]").

        Example:
        >>> model = ITag(vocabulary_size=6, num_tags=2, tag_priority=[0, 1],
        ...              copy_pairs=[[3, 0], [5, 1]], embedding_dim=4,
        ...              encoder_units=4, decoder_units=4, attention_units=4)
        >>> config = model.pruned_config([0, 1, 5])
        >>> config["vocabulary_size"], config["copy_pairs"]
        (3, [[2, 1]])
        """
        new_id = {int(old): new for new, old in enumerate(rows) if new >= FIRST_WORD_ID}
        config = self.get_config()
        config["vocabulary_size"] = len(rows)
        config["copy_pairs"] = sorted(
            [new_id[word], tag] for word, tag in self.copy_pairs if word in new_id
        )
        return config

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            num_tags=self.num_tags,
            tag_priority=list(self.tag_priority),
            copy_pairs=[list(pair) for pair in self.copy_pairs],
            embedding_dim=self.embedding_dim,
            encoder_units=self.encoder_units,
            decoder_units=self.decoder_units,
            attention_units=self.attention_units,
            max_tags=self.max_tags,
            beam_width=self.beam_width,
            dropout=self.dropout_rate,
            variational=self.variational,
            threshold=self.threshold,
            log_alpha_init=list(self.log_alpha_init),
            presence_weight=self.presence_weight,
            encoder=self.encoder_kind,
            presence_reads_words=self.presence_reads_words,
            presence_hidden_units=self.presence_hidden_units,
            unknown_words=self.unknown_words,
            ranking=self.ranking,
        )
        config["loss_weights"] = {
            term: weight for term, weight in config["loss_weights"].items() if term != "presence"
        }
        return config


def rank_tags(sequences, scores, k):
    """Top-k tags from a final beam, then by decreasing score.

    Args:
        sequences: `[B, beams, steps]` int tag sequences, best hypothesis
            first, -1 after each one's end.
        scores: `[B, T]` fallback scores (`ITag.tag_scores`).
        k: tags per example (at most T).

    Returns:
        `[B, k]` int32: the tags in order of first appearance in the
        hypotheses laid end to end, then the other tags by decreasing score
        (ties: lower index first).

    Example:
    >>> sequences = tf.constant([[[3, 1, -1], [3, 0, 2], [4, -1, -1]]])
    >>> scores = tf.math.log(tf.constant([[0.1, 0.1, 0.1, 0.3, 0.2, 0.2]]))
    >>> rank_tags(sequences, scores, k=6).numpy().tolist()
    [[3, 1, 0, 2, 4, 5]]
    >>> rank_tags(sequences[:, :1], scores, k=4).numpy().tolist()
    [[3, 1, 4, 5]]
    """
    sequences = tf.convert_to_tensor(sequences, tf.int32)
    batch, num_tags = tf.shape(sequences)[0], scores.shape[-1]
    laid_out = tf.reshape(sequences, [batch, -1])
    length = tf.shape(laid_out)[1]
    in_list = tf.one_hot(
        laid_out, num_tags, on_value=True, off_value=False, dtype=tf.bool
    )  # -1 entries are all-False rows
    position = tf.range(length)[None, :, None]
    list_position = tf.reduce_min(tf.where(in_list, position, length), axis=1)
    score_rank = tf.argsort(tf.argsort(-scores, axis=-1, stable=True), axis=-1, stable=True)
    key = tf.where(list_position < length, list_position, length + score_rank)
    return tf.math.top_k(-key, k=k).indices


def fused_scores(sequences, log_presence):
    """`ranking="fused"` scores `[B, T]`: presence probability + beam share.

    A tag's share is the fraction of the final beam's hypotheses that hold
    it, so a tag every hypothesis emits gains 1 and outranks every tag none
    emits; among tags the beam treats alike, the presence head decides.

    Example:
    >>> sequences = tf.constant([[[2, 0], [2, -1]]])
    >>> presence = tf.math.log(tf.constant([[0.3, 0.6, 0.2]]))
    >>> [round(float(v), 4) for v in fused_scores(sequences, presence)[0]]
    [0.8, 0.6, 1.2]
    """
    sequences = tf.convert_to_tensor(sequences, tf.int32)
    beams = tf.cast(tf.shape(sequences)[1], tf.float32)
    held = tf.reduce_max(tf.one_hot(sequences, log_presence.shape[-1]), axis=2)  # -1: all 0
    return tf.exp(log_presence) + tf.reduce_sum(held, axis=1) / beams


def _masked_mean(values, mask):
    """Mean of `[B, L, D]` values over the positions where `mask` `[B, L]`; 0 if none."""
    weights = ops.cast(mask, values.dtype)[..., None]
    return ops.sum(values * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


def _weighted_mean(per_example, sample_weight):
    """Batch mean of `[B]` per-example losses, each scaled by its sample weight."""
    # example_mean: exact on N replicas with an uneven last batch.
    return example_mean(per_example, sample_weight)


def _masked_softmax(scores, mask):
    """Softmax over the last axis where `mask`; exactly 0 elsewhere (all-0 rows: 0)."""
    mask = ops.cast(mask, "bool")
    weights = ops.softmax(ops.where(mask, scores, _NEG), axis=-1)
    return weights * ops.cast(mask, weights.dtype)


def _sum_by_slot(weights, slots, num_slots):
    """`[B, L]` weights summed per slot id `[B, L]` -> `[B, num_slots]`."""
    # A segment sum costs O(B * L); a one-hot product would be O(B * L * slots).
    rows = tf.shape(weights)[0]
    segments = tf.range(rows)[:, None] * num_slots + tf.cast(slots, tf.int32)
    sums = tf.math.unsorted_segment_sum(weights, segments, rows * num_slots)
    return tf.reshape(sums, [rows, num_slots])


ENCODERS = ("gru", "conv")
RANKINGS = ("beam", "fused")


def _checked_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"Invalid {name} for ITag: received {value!r}. Expected one of "
            f"{', '.join(repr(c) for c in choices)}."
        )
    return value


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"Invalid {name} for ITag: received {value!r}. Expected a positive integer."
        )


def _checked_range(log_alpha_init):
    try:
        low, high = (float(value) for value in log_alpha_init)
    except (TypeError, ValueError):
        low = high = None
    if low is None or not low <= high:
        raise ValueError(
            f"Invalid log_alpha_init for ITag: received {log_alpha_init!r}. "
            "Expected a pair (low, high) with low <= high, e.g. (-6.0, -4.0)."
        )
    return (low, high)


def _checked_priority(tag_priority, num_tags):
    priority = [int(p) for p in tag_priority]
    if sorted(priority) != list(range(num_tags)):
        raise ValueError(
            f"Invalid tag_priority for ITag: received {len(priority)} ranks "
            f"(first: {priority[:5]}). Expected a permutation of 0..{num_tags - 1}, "
            "one emission rank per tag. Build it with "
            "vtrain.tagging.models.itag.priority_from_counts(tag_train_counts)."
        )
    return priority


def _checked_pairs(copy_pairs, vocabulary_size, num_tags):
    pairs = [[int(word), int(tag)] for word, tag in copy_pairs]
    for word, tag in pairs:
        if not (0 < word < vocabulary_size and 0 <= tag < num_tags):
            raise ValueError(
                f"Invalid copy pair [{word}, {tag}] for ITag: expected "
                f"[word_id, tag_index] with 0 < word_id < {vocabulary_size} and "
                f"0 <= tag_index < {num_tags}. Build the pairs with "
                "vtrain.tagging.models.itag.tag_word_pairs(vocabulary, tags)."
            )
    tags = [tag for _, tag in pairs]
    if len(set(tags)) != len(tags):
        raise ValueError(
            "Invalid copy_pairs for ITag: a tag appears in more than one pair; "
            "expected at most one word per tag (its name's last component). "
            "Build the pairs with vtrain.tagging.models.itag.tag_word_pairs."
        )
    return pairs
