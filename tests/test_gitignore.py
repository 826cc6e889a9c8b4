"""``respect-gitignore``: folders walked skip what git ignores, as ruff does; explicit paths are linted."""
from __future__ import annotations

from pathlib import Path

import pytest

from nnlint import gitignore
from nnlint.catalogue import load_catalogue
from nnlint.config import ConfigError, Settings, load_settings
from nnlint.files import find_sources

MODEL = "import torch\n"


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def _found(root: Path, settings: Settings = Settings()) -> list[str]:
    discovery = find_sources([str(root)], settings)
    return sorted(Path(f.absolute).relative_to(root.resolve()).as_posix() for f in discovery.files)


@pytest.mark.parametrize("pattern, path, is_dir, ignored", [
    ("*.py", "a/b/c.py", False, True),
    ("/gen", "gen", True, True),
    ("/gen", "src/gen", True, False),
    ("gen/", "src/gen", True, True),
    ("gen/", "src/gen", False, False),  # a file named gen is not a folder
    ("src/*.py", "src/a.py", False, True),
    ("src/*.py", "src/deep/a.py", False, False),
    ("**/data", "x/y/data", True, True),
    ("a/**/b", "a/b", True, True),
    ("a/**/b", "a/x/y/b", True, True),
    ("logs/**", "logs/x/y.py", False, True),
    ("file?.py", "file1.py", False, True),
    ("file[0-9].py", "file7.py", False, True),
    ("file[!0-9].py", "file7.py", False, False),
    ("\\#notes.py", "#notes.py", False, True),
    ("# a comment", "# a comment", False, False),
])
def test_patterns(tmp_path: Path, pattern: str, path: str, is_dir: bool, ignored: bool) -> None:
    rule = gitignore.parse(pattern, str(tmp_path))
    rules = gitignore.Rules((rule,) if rule is not None else ())
    assert rules.ignores(str(tmp_path / path), is_directory=is_dir) is ignored


def test_walk_skips_ignored_folders_and_files(tmp_path: Path) -> None:
    (tmp_path / ".git" / "info").mkdir(parents=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("scratch.py\n")
    _tree(tmp_path, {
        ".gitignore": "# generated\n/build_out/\n*_pb2.py\n!keep_pb2.py\ndata/\n",
        "train.py": MODEL,
        "scratch.py": MODEL,
        "build_out/model.py": MODEL,
        "proto/msg_pb2.py": MODEL,
        "proto/keep_pb2.py": MODEL,
        "pkg/data/loader.py": MODEL,
        "pkg/.gitignore": "local_*.py\n",
        "pkg/local_exp.py": MODEL,
        "pkg/net.py": MODEL,
        "other/local_exp.py": MODEL,
    })
    assert _found(tmp_path) == ["other/local_exp.py", "pkg/net.py", "proto/keep_pb2.py", "train.py"]
    everything = _found(tmp_path, Settings(respect_gitignore=False))
    assert len(everything) == 9


def test_rules_of_the_folders_above_a_given_folder_apply(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    _tree(tmp_path, {".gitignore": "src/experiments/\n", "src/experiments/a.py": MODEL, "src/b.py": MODEL})
    found = find_sources([str(tmp_path / "src")], Settings())
    assert [Path(f.absolute).name for f in found.files] == ["b.py"]


def test_an_explicit_file_is_linted_even_when_ignored(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    _tree(tmp_path, {".gitignore": "*.py\n", "train.py": MODEL})
    found = find_sources([str(tmp_path / "train.py")], Settings())
    assert [Path(f.absolute).name for f in found.files] == ["train.py"]


def test_ignore_files_that_are_not_text_or_too_large_are_skipped(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.py": MODEL, "b.py": MODEL})
    (tmp_path / ".gitignore").write_bytes(b"\xff\xfe[\n\x00b.py\n")  # invalid pattern and bytes
    assert _found(tmp_path) == ["a.py", "b.py"]
    (tmp_path / ".gitignore").write_text("a.py\n" + "#" * gitignore.MAX_GITIGNORE_BYTES)
    assert _found(tmp_path) == ["a.py", "b.py"]


def test_config_key(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint]\nrespect-gitignore = false\n")
    catalogue = load_catalogue()
    assert load_settings(tmp_path / "pyproject.toml", catalogue).respect_gitignore is False
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint]\nrespect-gitignore = \"no\"\n")
    with pytest.raises(ConfigError, match="respect-gitignore"):
        load_settings(tmp_path / "pyproject.toml", catalogue)



def test_command_line_flag(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / ".git").mkdir()
    buggy = "import torch.nn.functional as F\nloss = F.cross_entropy(F.softmax(x, dim=1), y)\n"
    _tree(tmp_path, {".gitignore": "gen/\n", "gen/model.py": buggy})

    def listed(*flags: str) -> str:
        done = subprocess.run([sys.executable, "-m", "nnlint", "--no-cache", "--exit-zero", "--format", "concise",
                               *flags, "."], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout
    assert "NN201" not in listed() and "NN201" not in listed("--respect-gitignore")
    assert "gen/model.py:2" in listed("--no-respect-gitignore")


def test_a_given_folder_that_git_ignores_is_walked_with_the_other_rules(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    _tree(tmp_path, {".gitignore": "vendor/\n*_pb2.py\n", "vendor/lib/model.py": MODEL,
                     "vendor/lib/msg_pb2.py": MODEL, "vendor/lib/vendor/inner.py": MODEL})
    found = find_sources([str(tmp_path / "vendor" / "lib")], Settings())
    # the folder itself was asked for: the rule that ignores it does not apply below it (not to the
    # nested ``vendor/`` either), the others still do (the generated ``*_pb2.py``)
    assert [Path(f.absolute).name for f in found.files] == ["model.py", "inner.py"]
    assert _found(tmp_path) == []
