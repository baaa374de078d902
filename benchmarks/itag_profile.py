"""Where an epoch of the iTag model goes: encoder, decoder, update, beam search.

Run from the repository root (a few minutes on 2 cores):

    python -m benchmarks.itag_profile
    python -m benchmarks.itag_profile --set model.encoder=conv --set data.batch_size=128

On the bundled data with `configs/itag.py` (`--config` another config,
`--set FIELD=VALUE` to change one field, as `--config.FIELD=VALUE` in the
launcher), it times, per training batch:

- `encoder`: forward and backward of the encoder alone (embedding, encoder,
  bridge) under `tf.GradientTape`, in one `tf.function`;
- `loss`: forward and backward of the whole loss (encoder, teacher-forced
  decoder over `max_tags + 1` steps, presence head, KL);
- `train step`: a `model.fit` step (the loss, the optimizer update and
  Keras's per-step work);

then the per-epoch work: `beam search` of the whole validation split
(`recommend`, what the launcher's validation callback runs after every
epoch). The decoder's share is `loss - encoder`, the update's
`train step - loss`. Runs alternate (`--repeats` rounds), medians reported,
and an epoch is estimated as `steps per epoch x train step + beam search`.
"""

import ast
import time

import keras
import tensorflow as tf

from benchmarks import common
from vtrain.tagging import configs, evaluate, train


def _apply(config, assignment):
    """Sets `config.a.b = value` from `"a.b=value"` (value read as a Python literal)."""
    field, _, text = assignment.partition("=")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    *path, name = field.split(".")
    node = config
    for part in path:
        node = getattr(node, part)
    setattr(node, name, value)


def main():
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--config", default="itag", help="a shipped config name or a path")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed training batches per run")
    args = parser.parse_args()
    common.print_header("itag_profile: where an iTag epoch goes", args)

    config = configs.base(args.config)
    for assignment in args.set:
        _apply(config, assignment)
    keras.utils.set_random_seed(config.seed)
    data = train.load_data(config)
    model = train._build_and_compile(config, data)
    batches = list(data.train.take(args.steps + 1))
    validation = list(data.validation)
    num_validation = sum(len(y) for _, y in validation)

    encoder_layers = model.encoder if isinstance(model.encoder, list) else [model.encoder]
    encoder_variables = [
        variable
        for layer in (model.embedding, *encoder_layers, model.bridge)
        for variable in layer.trainable_variables
    ]

    @tf.function
    def encoder_pass(x):
        with tf.GradientTape() as tape:
            memory, state = model.encode(x, training=True)
            total = tf.reduce_sum(memory["states"]) + tf.reduce_sum(state)
        return tape.gradient(total, encoder_variables)

    @tf.function
    def loss_pass(x, y):
        with tf.GradientTape() as tape:
            terms = model.compute_losses((x, y), training=True)
            total = model._weighted_total(terms)
        return tape.gradient(total, model.trainable_variables)

    def timed(function):
        function(*batches[0])  # trace and warm up
        start = time.perf_counter()
        for x, y in batches[1:]:
            function(x, y)
        return (time.perf_counter() - start) / args.steps

    def fit_step():
        dataset = tf.data.Dataset.from_tensor_slices(
            tuple(tf.concat(parts, 0) for parts in zip(*batches))
        ).batch(config.data.batch_size)
        return common.fit_step_seconds(model, dataset, warmup=1, steps=args.steps)

    def beam_search():
        start = time.perf_counter()
        evaluate.ranking_results(model, validation, ks=(3,))
        return time.perf_counter() - start

    runs = {
        "encoder": lambda: timed(lambda x, y: encoder_pass(x)),
        "loss": lambda: timed(loss_pass),
        "train step": fit_step,
        "beam search": beam_search,
    }
    beam_search()  # trace the recommend function
    results = common.alternate(runs, args.repeats)
    medians = {name: common.median(values) for name, values in results.items()}
    steps_per_epoch = -(-data.num_train // config.data.batch_size)
    step = medians["train step"]
    rows = [
        ["encoder (forward + backward)", f"{1000 * medians['encoder']:.1f} ms", "per batch"],
        [
            "decoder + presence + KL (loss - encoder)",
            f"{1000 * (medians['loss'] - medians['encoder']):.1f} ms",
            "per batch",
        ],
        [
            "update + Keras (train step - loss)",
            f"{1000 * (step - medians['loss']):.1f} ms",
            "per batch",
        ],
        [
            "train step",
            f"{1000 * step:.1f} ms",
            f"x {steps_per_epoch} batches of {config.data.batch_size}",
        ],
        ["validation beam search", f"{medians['beam search']:.1f} s", f"{num_validation} examples"],
        ["epoch (estimate)", f"{steps_per_epoch * step + medians['beam search']:.0f} s", ""],
    ]
    common.print_table(["part", "median", "unit"], rows)
    for name, values in results.items():
        print(f"spread of {name}: {common.spread(values)}")
    common.finish()


if __name__ == "__main__":
    main()
