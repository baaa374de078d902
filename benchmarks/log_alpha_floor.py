"""What the `V x 1` `log_alpha` work of a step costs, next to its floor.

Run from the repository root (about 1 minute on 2 cores):

    python -m benchmarks.log_alpha_floor

The KL of `VariationalEmbedding` pulls on every row of `log_alpha` at every
step, so a step does some passes over V floats whatever the batch. This
times, at `--vocab` rows (default 1M) and outside any model, each piece of
that work and the bare minimum of a pass over V:

- `one pass`: `x + 1` over V floats (read V, write V): the floor of any
  per-row work;
- `fused Adam`: TensorFlow's `ResourceApplyAdam` on a `V x 1` variable
  (read 4 arrays, write 3): the floor of an Adam step on every row;
- `KL value`: `clipped_kl_sum` forward (the loss term; needed every step);
- `KL value + gradient`: the same with its closed-form gradient; `(autodiff)`
  is the former formula differentiated by TensorFlow;
- `gradient sum`: the dense KL gradient plus a batch's `IndexedSlices`
  `log_alpha` gradient (12,800 ids), as `GradientTape` adds them;
- `whole path`: KL value, gradient, sum and `LazyAdam`'s fused step, as in a
  training step; `(XLA)` is the same path compiled as one XLA function, the
  best fusion TensorFlow offers, for comparison.

Each function runs `--calls` times per run; runs alternate, `--repeats`
rounds; medians of CPU ms (all threads) and wall ms per call.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import common
from vtrain import _keras_compat
from vtrain.layers.base import LOG_ALPHA_MAX, LOG_ALPHA_MIN, kl_log_uniform
from vtrain.layers.variational_embedding import clipped_kl_sum
from vtrain.optimizers import LazyAdam


def build(vocab, batch_ids, seed=0):
    """`{name: tf.function}` of the pieces, on one `[vocab, 1]` variable."""
    rng = np.random.default_rng(seed)
    log_alpha = keras.Variable(rng.uniform(0, 3, (vocab, 1)).astype("float32"))
    optimizer = LazyAdam(common.LEARNING_RATE)
    optimizer.build([log_alpha])
    var = log_alpha.value
    momentums, velocities = _keras_compat.adam_slots(optimizer)
    m, v = momentums[0].value, velocities[0].value
    ids = tf.constant(rng.integers(0, vocab, batch_ids).astype("int32"))
    data_grad = tf.IndexedSlices(tf.fill([batch_ids, 1], 1e-4), ids, tf.constant([vocab, 1]))
    grad = tf.constant(rng.normal(0, 1e-3, (vocab, 1)).astype("float32"))
    weight = 1e-5  # the KL weight, 1 / (training examples)

    def kl_and_grad(kl_sum):
        with tf.GradientTape() as tape:
            kl = weight * kl_sum(tf.convert_to_tensor(var))
        return kl, tape.gradient(kl, var)

    def autodiff_kl(x):
        return tf.reduce_sum(kl_log_uniform(tf.clip_by_value(x, LOG_ALPHA_MIN, LOG_ALPHA_MAX)))

    def whole_path():
        kl, kl_grad = kl_and_grad(clipped_kl_sum)
        optimizer.apply([tf.math.add_n([kl_grad, data_grad])], [log_alpha])
        return kl

    @tf.function(jit_compile=True)
    def xla_path(x, m0, v0, data, step):
        # Everything whole_path does, in one compiled function.
        with tf.GradientTape() as tape:
            tape.watch(x)
            kl = weight * autodiff_kl(x)
        g = tape.gradient(kl, x) + data
        b1, b2 = 0.9, 0.999
        m1 = m0 + (g - m0) * (1 - b1)
        v1 = v0 + (tf.square(g) - v0) * (1 - b2)
        lr = common.LEARNING_RATE * tf.sqrt(1 - b2**step) / (1 - b1**step)
        return kl, x - m1 * lr / (tf.sqrt(v1) + 1e-7), m1, v1

    def whole_path_xla():
        dense_data = tf.convert_to_tensor(data_grad)
        kl, x, m1, v1 = xla_path(var, m, v, dense_data, 1.0)
        var.assign(x), m.assign(m1), v.assign(v1)
        return kl

    def fused_adam():
        tf.raw_ops.ResourceApplyAdam(
            var=var.handle,
            m=m.handle,
            v=v.handle,
            beta1_power=0.9,
            beta2_power=0.999,
            lr=common.LEARNING_RATE,
            beta1=0.9,
            beta2=0.999,
            epsilon=1e-7,
            grad=grad,
        )

    pieces = {
        "one pass (x + 1)": lambda: grad + 1.0,
        "fused Adam": fused_adam,
        "KL value": lambda: clipped_kl_sum(tf.convert_to_tensor(var)),
        "KL value + gradient": lambda: kl_and_grad(clipped_kl_sum),
        "KL value + gradient (autodiff)": lambda: kl_and_grad(autodiff_kl),
        "gradient sum": lambda: tf.math.add_n([grad, data_grad]),
        "whole path": whole_path,
        "whole path (XLA)": whole_path_xla,
    }
    return {name: tf.function(f, autograph=False) for name, f in pieces.items()}


def per_call(function, calls):
    """`(wall ms, CPU ms)` per call, over `calls` calls after one warm-up."""
    function()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        function()
    return (1e3 * (time.perf_counter() - wall) / calls, 1e3 * (time.process_time() - cpu) / calls)


def main():
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=1_000_000)
    parser.add_argument(
        "--batch-ids",
        type=int,
        default=common.BATCH_SIZE * common.TOKENS,
        help="ids in a batch (the IndexedSlices part of the gradient)",
    )
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    common.print_header("log_alpha_floor: the V x 1 work of a step", args)

    functions = build(args.vocab, args.batch_ids)
    results = common.alternate(
        {name: (lambda f=f: per_call(f, args.calls)) for name, f in functions.items()},
        args.repeats,
    )
    print(
        f"\nmedian of {args.repeats} alternating runs, V={args.vocab:,}: CPU ms "
        "per call (all threads), wall ms per call:"
    )
    common.print_table(
        ["piece", "CPU ms", "wall ms"],
        [
            [
                name,
                f"{common.median([r[1] for r in runs]):.2f}",
                f"{common.median([r[0] for r in runs]):.2f} ±{common.spread([r[0] for r in runs])}",
            ]
            for name, runs in results.items()
        ],
    )
    common.finish()


if __name__ == "__main__":
    main()
