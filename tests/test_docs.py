"""Every docstring example and every Python block in the docs runs.

Blocks fenced as ```python run; ```python sketch (or signature) blocks are
illustrations and do not.
"""

import doctest
import importlib
import pathlib
import pkgutil
import re

import pytest

import vtrain

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERAS2_ONLY = "# Keras 2 / tf.keras only."
# The launchers define absl flags at import.
LAUNCHERS = ("vtrain.main", "vtrain.tagging.main", "vtrain.sweep", "vtrain.tagging.sweep_main")
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(vtrain.__path__, prefix="vtrain.")
    if info.name not in LAUNCHERS
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def python_blocks(path):
    text = (ROOT / path).read_text()
    return [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if KERAS2_ONLY not in b]


@pytest.mark.parametrize(
    "path", ["docs/index.md", "docs/migrating.md", "docs/extending.md", "README.md"]
)
def test_doc_code_blocks_run(path):
    for number, block in enumerate(python_blocks(path)):
        exec(compile(block, f"{path}[block {number}]", "exec"), {})
