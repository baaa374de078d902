"""`python -m vtrain.main`: the tag recommender's launcher, `vtrain.tagging.main`.

Kept at this name because users and docs run it; the launcher itself lives
with the application it launches.
"""

from vtrain.tagging.main import main, parse_flags  # noqa: F401  (defines the flags)

if __name__ == "__main__":
    from absl import app

    app.run(main, flags_parser=parse_flags)
