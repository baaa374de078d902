"""`python -m vtrain.suggest`: tag suggestions from a finished run, `vtrain.tagging.suggest`.

A forwarder, like `vtrain.main`: the command lives with the application.
"""

from vtrain.tagging.suggest import main  # noqa: F401

if __name__ == "__main__":
    import sys

    sys.exit(main())
