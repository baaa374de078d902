"""The launcher: configs load locked, overrides are checked, errors reach the user."""

import ast

import pytest
from absl import flags
from ml_collections import config_flags

from tests import runs

ROOT = runs.ROOT
CONFIGS = sorted((ROOT / "configs").glob("[!_]*.py"))


def parse(*argv, path=ROOT / "configs" / "default.py"):
    """Parses launcher-style flags into a fresh FlagValues; returns the config."""
    argv = ["vtrain.main", *argv]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config", str(path), flag_values=flag_values, lock_config=True, sys_argv=argv
    )
    flag_values(argv)
    return flag_values.config


def test_there_are_configs():
    assert {"default.py", "tiny.py"} <= {path.name for path in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_locked(path):
    config = parse(f"--config={path}", path=path)
    assert config.is_locked
    with pytest.raises(AttributeError):
        config.train.num_epoch = 1  # a typo must not create a field


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_has_the_fields_train_reads(path):
    default = runs.load_module(ROOT / "configs" / "default.py").get_config()
    config = runs.load_module(path).get_config()
    for section in ("data", "train"):
        assert sorted(config[section]) == sorted(default[section]), section
    assert isinstance(config.seed, int) and config.model.name


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_documents_its_command_result_and_fields(path):
    source = path.read_text()
    docstring = ast.get_docstring(ast.parse(source))
    assert "python -m vtrain.main" in docstring
    assert "Result" in docstring and "PENDING" not in docstring
    for line in source.splitlines():
        line = line.strip()
        if line.startswith("config.") and "=" in line and "ConfigDict()" not in line:
            assert "  # " in line, f"{path.name}: field without a comment: {line}"


def test_overrides_are_typed_and_applied():
    config = parse("--config.train.num_epochs=3", "--config.data.path=x.jsonl")
    assert config.train.num_epochs == 3 and config.data.path == "x.jsonl"
    with pytest.raises(flags.IllegalFlagValueError):
        parse("--config.train.num_epochs=three")


def test_mistyped_override_fails_with_a_suggestion(tmp_path):
    # Run outside the repository: the default config is found all the same.
    result = runs.launch(
        "--config.train.num_epoch=1", f"--workdir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert result.returncode == 1
    assert (
        "Error: unknown config field in --config.train.num_epoch: 'num_epoch'. "
        'Did you mean "num_epochs" instead of "num_epoch"?'
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_mistyped_override_of_an_explicit_config_fails_the_same_way(tmp_path):
    result = runs.launch(
        "--config=configs/tiny.py", "--config.data.batch_sise=1", f"--workdir={tmp_path / 'run'}"
    )
    assert result.returncode == 1
    assert 'Did you mean "batch_size" instead of "batch_sise"?' in result.stderr
    assert "Traceback" not in result.stderr


def test_data_error_reaches_the_launcher_with_file_and_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(
        '{"text": "a web server", "tags": ["web::server"]}\n'
        '{"text": "an editor", "tags": "editor"\n'
    )
    result = runs.launch(
        "--config=configs/tiny.py", f"--config.data.path={path}", f"--workdir={tmp_path / 'run'}"
    )
    assert result.returncode == 1
    assert f"Error: Invalid data in '{path}' line 2: malformed JSON" in result.stderr
    assert "Traceback" not in result.stderr
