"""The launcher's config files (`configs/` at the top of a checkout links here).

Each file defines `get_config()`. A config that changes another starts from
it with `base("default")`, so the base is read the same way from a checkout
(`configs/`) and from an installed wheel.
"""

import os
import runpy

DIRECTORY = os.path.dirname(os.path.abspath(__file__))


def path(name):
    """The path of config `name` (`"default"` or `"default.py"`).

    Example:
    >>> os.path.basename(path("default"))
    'default.py'
    """
    file_name = name if name.endswith(".py") else f"{name}.py"
    return os.path.join(DIRECTORY, file_name)


def base(name):
    """A fresh `ml_collections.ConfigDict` of config `name`, to change.

    Example:
    >>> base("default").model.name
    'pooled'
    """
    return runpy.run_path(path(name))["get_config"]()
