"""`python -m vtrain.sweep`: hyper-parameter sweeps on Optuna, `vtrain.tagging.sweep_main`.

A forwarder, like `vtrain.main`: the command lives with the application.
"""

from vtrain.tagging.sweep_main import main, parse_flags  # noqa: F401  (defines the flags)

if __name__ == "__main__":
    from absl import app

    app.run(main, flags_parser=parse_flags)
