"""The framework never imports the application, and no module imports in a cycle.

Imports are read from the source (every `import` and `from ... import`,
at any depth, inside functions too), so a hidden import cannot escape.
"""

import ast
import os
import pathlib
import subprocess
import sys

import vtrain

PACKAGE = pathlib.Path(vtrain.__file__).parent
APPLICATION = "vtrain.tagging"
# `python -m vtrain.main` (and suggest, sweep) run the application: two-line forwarders.
FORWARDERS = {"vtrain.main", "vtrain.suggest", "vtrain.sweep"}


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(path, name, known):
    """The vtrain modules that `path` (module `name`) imports."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from pkg import module` depends on the module, not on pkg's
            # other contents; `from pkg import name` depends on pkg.
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t for t in submodules if t in known]
            if len(targets) < len(submodules):
                targets.append(base)
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target.startswith("vtrain") and target != name:
                found.add(target)
    return found


def _graph():
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def test_the_framework_never_imports_the_application():
    offenders = {
        name: sorted(t for t in targets if t.startswith(APPLICATION))
        for name, targets in _graph().items()
        if not name.startswith(APPLICATION) and name not in FORWARDERS
    }
    offenders = {name: targets for name, targets in offenders.items() if targets}
    assert offenders == {}


def test_vtrain_init_exports_framework_names_only():
    # A fresh `import vtrain` loads no application module at all.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, vtrain; "
            "print(sorted(m for m in sys.modules if m.startswith('vtrain.tagging')))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().splitlines()[-1] == "[]"
    init = (PACKAGE / "__init__.py").read_text()
    assert APPLICATION not in init and "tagging" not in init


def _cycle(graph):
    """One import cycle of `graph` as a list of modules, or None."""
    edges = graph
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_anywhere_in_the_package():
    assert _cycle(_graph()) is None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
