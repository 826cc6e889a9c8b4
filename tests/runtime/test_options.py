"""Detector options: spelled, checked and merged as static rules' options are, whether they
come from ``pyproject.toml`` or from ``nnlint.monitor(options=...)``."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import nnlint  # noqa: E402
from nnlint.catalogue import load_catalogue  # noqa: E402
from nnlint.config import ConfigError, load_settings  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from helpers import mlp  # noqa: E402


def _monitor_error(options: dict) -> str:
    with pytest.raises(ValueError) as info:
        nnlint.monitor(mlp(), None, use_config=False, options=options)
    assert isinstance(info.value, ConfigError)
    message = str(info.value)
    assert message.startswith("nnlint.monitor(options=...): "), message
    return message.split(": ", 1)[1]


def _file_error(tmp_path: Path, table: str) -> str:
    path = tmp_path / "pyproject.toml"
    path.write_text(table)
    with pytest.raises(ConfigError) as info:
        load_settings(path, load_catalogue())
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message.split(": ", 1)[1]


@pytest.mark.parametrize(
    ("options", "table", "expected"),
    [
        ({"NR101": {"clip-factr": 2.0}}, "[tool.nnlint.NR101]\nclip-factr = 2.0\n",
         "unknown option 'clip-factr' for NR101 (exploding-gradients) (did you mean 'clip-factor'?)"),
        ({"NR201": {"window": "10"}}, "[tool.nnlint.NR201]\nwindow = '10'\n",
         "option 'window' of NR201 must be int, got '10'"),
        ({"NR201": {"window": 10.0}}, "[tool.nnlint.NR201]\nwindow = 10.0\n",
         "option 'window' of NR201 must be int, got 10.0"),
        ({"NR201": {"swap_to_leaky": 1}}, "[tool.nnlint.NR201]\nswap-to-leaky = 1\n",
         "option 'swap-to-leaky' of NR201 must be bool, got 1"),
        ({"NR201": {"window": 0}}, "[tool.nnlint.NR201]\nwindow = 0\n",
         "option 'window' of NR201 must be >= 1, got 0"),
        ({"NR401": {"lr_factor": 2}}, "[tool.nnlint.monitor.NR401]\nlr-factor = 2\n",
         "option 'lr-factor' of NR401 must be < 1, got 2"),
        ({"NR102": {"max-ratio": 0.0}}, "[tool.nnlint.NR102]\nmax-ratio = 0.0\n",
         "option 'max-ratio' of NR102 must be > 0, got 0.0"),
        ({"NR101": {"clip-factor": float("nan")}}, "[tool.nnlint.NR101]\nclip-factor = nan\n",
         "option 'clip-factor' of NR101 must be a finite number, got nan"),
    ],
)
def test_the_file_and_the_call_give_the_same_error(tmp_path: Path, options: dict, table: str, expected: str) -> None:
    assert _monitor_error(options) == expected
    assert _file_error(tmp_path, table) == expected


def test_kebab_and_snake_case_are_one_option() -> None:
    kebab = nnlint.monitor(mlp(), None, use_config=False, options={"NR101": {"clip-factor": 3.0}})
    snake = nnlint.monitor(mlp(), None, use_config=False, options={"NR101": {"clip_factor": 3}})
    for mon in (kebab, snake):
        option = mon.detector("NR101").option
        assert option["clip-factor"] == 3.0 and "clip_factor" not in option
        assert option["warmup-steps"] == 5  # the class default fills in the rest
    with pytest.raises(ValueError, match="'clip-factor' of NR101 is given twice"):
        nnlint.monitor(mlp(), None, use_config=False, options={"NR101": {"clip-factor": 3.0, "clip_factor": 2.0}})


def test_detectors_are_named_by_code_or_name_and_a_typo_is_an_error() -> None:
    mon = nnlint.monitor(mlp(), None, use_config=False, options={"dead-relu": {"window": 7}, "nr402": {"window": 9}})
    assert mon.detector("NR201").option["window"] == 7 and mon.detector("NR402").option["window"] == 9
    assert _monitor_error({"NR2O1": {"window": 7}}) == "unknown detector 'NR2O1' (did you mean 'NR201'?)"
    assert _monitor_error({"NN102": {"max-depth": 4}}).startswith("unknown detector 'NN102'")
    assert _monitor_error({"NR201": 7}) == "the options of NR201 must be a dict, got 7"


def test_the_call_overrides_the_file_and_both_spellings_work_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.nnlint.NR101]\nmax-layer-ratio = 500\npatience = 4\n\n"
        "[tool.nnlint.monitor.NR101]\nwarmup_steps = 7\npatience = 6\n"
    )
    monkeypatch.chdir(tmp_path)
    option = nnlint.monitor(mlp(), None, options={"NR101": {"patience": 2}}).detector("NR101").option
    assert (option["max-layer-ratio"], option["warmup-steps"], option["patience"]) == (500, 7, 2)


def test_an_unknown_monitor_setting_names_a_close_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint.monitor]\ncheck-evry = 5\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="unknown key 'check-evry' in .* \\(did you mean 'check-every'\\?\\)"):
        nnlint.monitor(mlp(), None)


def test_a_detector_built_in_code_rejects_an_option_it_does_not_declare() -> None:
    from nnlint._rules.nr201_dead_relu import DeadRelu

    assert DeadRelu({"window": 5}).option["window"] == 5
    with pytest.raises(ValueError, match="unknown option"):
        DeadRelu({"window_size": 5})
