"""The result cache when the project is not trusted.

A repository may ship any ``.nnlint_cache`` and any ``cache-dir`` setting. Nothing in it
may run code, change the findings, make nnlint write outside the project or fail the run;
and a cached run must always equal a ``--no-cache`` run (module layout and nnlint's own
code included). Every test here points the per-user key at a temporary directory
(``NNLINT_KEY_DIR``), so the suite never touches the real home directory.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

import nnlint
from nnlint import cli

REPO = Path(__file__).resolve().parents[1]
HEADER = b"nnlint-cache 7"

MODEL = """\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return F.softmax(self.fc(x), dim=1)
"""
TRAIN = """\
import torch.nn as nn
from pkg.model import Net

model = Net()
criterion = nn.CrossEntropyLoss()
loss = criterion(model(x), y)
"""
#: NN201 is reported at the activation, in the model's file
MODEL_SOFTMAX_LINE = next(n for n, line in enumerate(MODEL.splitlines(), start=1) if "F.softmax" in line)
ONE_FILE = MODEL + "\n\nmodel = Net()\ncriterion = nn.CrossEntropyLoss()\nloss = criterion(model(x), y)\n"


@pytest.fixture(autouse=True)
def key_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path_factory.mktemp("user-key") / "nnlint"
    monkeypatch.setenv("NNLINT_KEY_DIR", str(directory))
    return directory


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    write(root, "pyproject.toml", "[tool.nnlint]\n")
    write(root, "m.py", ONE_FILE)
    monkeypatch.chdir(root)
    return root


def write(root: Path, name: str, body: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[tuple[str, int, str]], str]:
    """``nnlint --format json --select NN201 ARGS`` in-process -> (exit code, (path, line, code) triples, stderr)."""
    code = cli.main(["--format", "json", "--select", "NN201", *args])
    captured = capsys.readouterr()
    findings = json.loads(captured.out)["findings"] if captured.out.strip() else []
    return code, [(f["path"], f["line"], f["code"]) for f in findings], captured.err


def cache_files(root: Path) -> list[Path]:
    """Every regular file nnlint keeps entries in, whatever its name or format."""
    return sorted(p for p in (root / ".nnlint_cache").glob("*/*") if p.is_file())


def old_cache_name(root: Path) -> Path:
    """Where earlier versions read a pickle for these settings (same key on every machine)."""
    from nnlint.catalogue import load_catalogue
    from nnlint.config import enabled_codes, load_settings, settings_fingerprint

    catalogue = load_catalogue()
    settings = load_settings(root / "pyproject.toml", catalogue).with_overrides(select=("NN201",))
    codes = tuple(sorted(enabled_codes(settings, catalogue)))
    key = hashlib.sha256(
        f"{nnlint.__version__}\0{settings_fingerprint(settings, codes, catalogue)}\0"
        f"{settings.per_file_ignores!r}".encode()
    ).hexdigest()
    return root / ".nnlint_cache" / nnlint.__version__ / f"{key[:32]}.pickle"


class _RunsCode:
    """Unpickling this calls ``os.mkdir(marker)``: proof that the cache ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return os.mkdir, (self.marker,)


def resign(path: Path, secret: bytes, change: Optional[Callable[[dict[str, Any]], None]] = None) -> None:
    """Rewrite a cache file's JSON with ``change`` applied, authenticated with ``secret``."""
    header, mac, payload = path.read_bytes().split(b"\n", 2)
    assert header == HEADER
    document = json.loads(payload)
    if change is not None:
        change(document)
    payload = json.dumps(document).encode()
    message = HEADER + b"\0" + document["key"].encode() + b"\0" + payload
    path.write_bytes(HEADER + b"\n" + hmac.new(secret, message, hashlib.sha256).hexdigest().encode() + b"\n" + payload)


# -- a hostile cache --------------------------------------------------------------

def test_a_shipped_pickle_runs_no_code_and_changes_no_findings(project: Path, capsys) -> None:
    expected = run(capsys, "--no-cache", ".")
    softmax_line = next(n for n, line in enumerate(ONE_FILE.splitlines(), start=1) if "softmax" in line.lower()
                        and "return" in line)
    assert expected[:2] == (1, [("m.py", softmax_line, "NN201")])  # at the activation
    marker = project.parent / "pwned"
    hostile = pickle.dumps({str(project / "m.py"): _RunsCode(marker)})
    old = old_cache_name(project)
    old.parent.mkdir(parents=True)
    old.write_bytes(hostile)
    assert run(capsys, ".") == expected
    assert not marker.exists()
    # the same payload in place of every file nnlint wrote itself
    assert cache_files(project)
    for path in cache_files(project):
        path.write_bytes(hostile)
    assert run(capsys, ".") == expected
    assert run(capsys, ".") == expected
    assert not marker.exists()


def test_a_forged_cache_cannot_hide_or_add_findings(project: Path, capsys, key_dir: Path, monkeypatch) -> None:
    from nnlint.cache import CacheEntry, content_hash
    from nnlint.findings import Finding

    expected = run(capsys, "--no-cache", ".")
    assert expected[0] == 1 and expected[1]
    # An old-style pickle of plain data (no code) claiming the file has one other finding.
    data = (project / "m.py").read_bytes()
    fake = Finding("NN201", "fake", "error", "injected", path="m.py", line=1, column=1, end_line=1, end_column=2)
    entry = CacheEntry(content_hash=content_hash(data), summary=None, early=(), dependencies="", findings=(fake,))
    old = old_cache_name(project)
    old.parent.mkdir(parents=True)
    old.write_bytes(pickle.dumps({os.path.realpath(project / "m.py"): entry}))
    assert run(capsys, ".") == expected

    # A well-formed cache written by someone else (their own key) that hides every finding.
    shutil.rmtree(project / ".nnlint_cache")
    attacker = key_dir.parent / "attacker"
    monkeypatch.setenv("NNLINT_KEY_DIR", str(attacker))
    assert run(capsys, ".") == expected
    (forged,) = cache_files(project)

    def hide(document: dict[str, Any]) -> None:
        for stored in document["entries"].values():
            stored["f"] = []

    resign(forged, (attacker / "key").read_bytes(), hide)
    monkeypatch.setenv("NNLINT_KEY_DIR", str(key_dir))
    assert run(capsys, ".") == expected
    # Control: the very same file authenticated with this user's key would be believed,
    # so what keeps the forgery out is the MAC alone.
    (forged,) = [p for p in cache_files(project) if p.name == forged.name]
    resign(forged, (key_dir / "key").read_bytes(), hide)
    assert run(capsys, ".")[:2] == (0, [])


def test_damaged_cache_files_are_misses(project: Path, capsys, key_dir: Path) -> None:
    expected = run(capsys, "--no-cache", ".")
    assert expected[0] == 1
    assert run(capsys, ".") == expected
    (written,) = cache_files(project)
    good = written.read_bytes()
    secret_path = key_dir / "key"
    rng = random.Random(9)
    real = os.path.realpath(project / "m.py")

    def wrong_types(document: dict[str, Any]) -> None:
        document["entries"][real]["f"] = [["NN201", "x", "error", "m", "m.py", "1", 1, 1, 2, None, None, None, []]]
        document["entries"][real]["s"] = [None]

    def wrong_shape(document: dict[str, Any]) -> None:
        document["entries"] = [1, 2, 3]

    damaged: list[Callable[[Path], None]] = [
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(b"\0" * 1000),
        lambda p: p.write_bytes(pickle.dumps({real: "not an entry"})),
        lambda p: p.write_bytes(pickle.dumps({real: None, "x": 3})),
        lambda p: (p.write_bytes(good), resign(p, secret_path.read_bytes(), wrong_types)),
        lambda p: (p.write_bytes(good), resign(p, secret_path.read_bytes(), wrong_shape)),
    ]
    for cut in (1, 10, len(good) // 2, len(good) - 1):
        damaged.append(lambda p, cut=cut: p.write_bytes(good[:cut]))
    for _ in range(24):
        bit = rng.randrange(len(good) * 8)
        flipped = bytearray(good)
        flipped[bit // 8] ^= 1 << (bit % 8)
        damaged.append(lambda p, data=bytes(flipped): p.write_bytes(data))
    for damage in damaged:
        for path in cache_files(project):
            damage(path)
        code, findings, err = run(capsys, ".")
        assert (code, findings) == expected[:2] and "error" not in err, (code, err)
    # a directory or a link where the cache file should be is a miss too
    for path in cache_files(project):
        path.unlink()
        path.mkdir()
    assert run(capsys, ".")[:2] == expected[:2]


def test_without_a_usable_key_nothing_is_cached(project: Path, capsys, key_dir: Path, monkeypatch) -> None:
    key_dir.parent.joinpath("not-a-dir").write_text("")
    monkeypatch.setenv("NNLINT_KEY_DIR", str(key_dir.parent / "not-a-dir" / "nnlint"))
    expected = run(capsys, "--no-cache", ".")
    assert run(capsys, ".") == expected
    assert not (project / ".nnlint_cache").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_the_key_is_private_and_a_shared_key_is_not_trusted(project: Path, capsys, key_dir: Path) -> None:
    run(capsys, ".")
    assert (key_dir / "key").stat().st_mode & 0o777 == 0o600
    assert key_dir.stat().st_mode & 0o777 == 0o700
    shutil.rmtree(project / ".nnlint_cache")
    (key_dir / "key").chmod(0o644)
    assert run(capsys, ".")[0] == 1
    assert not (project / ".nnlint_cache").exists()


# -- where the cache may be ----------------------------------------------------------

@pytest.mark.parametrize("value", ["..", "../elsewhere", "sub/../../elsewhere", ".", "./", "sub/..", "", "ABSOLUTE"])
def test_cache_dir_from_the_project_stays_inside_it(project: Path, capsys, value: str) -> None:
    elsewhere = project.parent / "elsewhere"
    if value == "ABSOLUTE":
        value = str(elsewhere)
    (project / "pyproject.toml").write_text(f"[tool.nnlint]\ncache-dir = {json.dumps(value)}\n")
    code, findings, err = run(capsys, ".")
    assert code == 2 and findings == []
    assert "cache-dir" in err and "pyproject.toml" in err
    assert not elsewhere.exists() and not (project / ".gitignore").exists()
    assert sorted(p.name for p in project.parent.iterdir()) == ["project"]


def test_cache_dir_inside_the_project_is_used_but_a_link_out_is_not_followed(project: Path, capsys) -> None:
    (project / "pyproject.toml").write_text('[tool.nnlint]\ncache-dir = "build/lint-cache"\n')
    expected = run(capsys, "--no-cache", ".")
    assert run(capsys, ".") == expected
    cache = project / "build" / "lint-cache"
    assert (cache / ".gitignore").read_text().strip().endswith("*") and (cache / "CACHEDIR.TAG").is_file()
    assert not (project / ".gitignore").exists() and not (project / "build" / ".gitignore").exists()
    assert run(capsys, ".") == expected

    # the default directory, committed as a link to somewhere else
    (project / "pyproject.toml").write_text("[tool.nnlint]\n")
    outside = project.parent / "outside"
    outside.mkdir()
    (project / ".nnlint_cache").symlink_to(outside, target_is_directory=True)
    assert run(capsys, ".") == expected
    assert list(outside.iterdir()) == []


def test_a_directory_nnlint_did_not_create_is_left_alone(project: Path, capsys) -> None:
    write(project, "src/model.py", MODEL)
    (project / "pyproject.toml").write_text('[tool.nnlint]\ncache-dir = "src"\n')
    expected = run(capsys, "--no-cache", ".")
    assert run(capsys, ".") == expected
    assert sorted(p.name for p in (project / "src").iterdir()) == ["model.py"]
    assert cli.main(["clean"]) == 2 and (project / "src" / "model.py").exists()
    capsys.readouterr()

    shared = project.parent / "shared"
    write(shared, "notes.txt", "mine")
    (project / "pyproject.toml").write_text("[tool.nnlint]\n")
    assert run(capsys, "--cache-dir", str(shared), ".") == expected
    assert sorted(p.name for p in shared.iterdir()) == ["notes.txt"]


def test_cache_dir_flag_may_point_anywhere(project: Path, capsys, monkeypatch) -> None:
    elsewhere = project.parent / "ci-cache" / "nnlint"
    expected = run(capsys, "--no-cache", ".")
    assert run(capsys, "--cache-dir", str(elsewhere), ".") == expected
    assert (elsewhere / "CACHEDIR.TAG").is_file() and (elsewhere / ".gitignore").is_file()
    assert not (project / ".nnlint_cache").exists()

    from nnlint import checker

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached file was parsed again")

    monkeypatch.setattr(checker.FileChecker, "summarize", refuse)
    assert run(capsys, "--cache-dir", str(elsewhere), ".") == expected


def test_clean_removes_only_the_cache_nnlint_created(project: Path, capsys) -> None:
    run(capsys, ".")
    cache = project / ".nnlint_cache"
    assert cache.is_dir()
    assert cli.main(["clean"]) == 0
    out = capsys.readouterr().out
    assert "Removed" in out and str(cache) in out
    assert not cache.exists() and (project / "m.py").exists()
    assert cli.main(["clean", str(project / "m.py")]) == 0
    assert "No cache" in capsys.readouterr().out

    # a directory that merely has the cache's name is not nnlint's to delete
    (cache / nnlint.__version__).mkdir(parents=True)
    (cache / "notes.txt").write_text("mine")
    assert cli.main(["clean"]) == 2
    assert "CACHEDIR.TAG" in capsys.readouterr().err
    assert (cache / "notes.txt").exists()

    elsewhere = project.parent / "ci-cache"
    run(capsys, "--cache-dir", str(elsewhere), ".")
    assert cli.main(["clean", "--cache-dir", str(elsewhere)]) == 0
    assert not elsewhere.exists() and (cache / "notes.txt").exists()


# -- stale results ---------------------------------------------------------------------

def test_a_new_package_marker_is_not_served_stale(tmp_path: Path, capsys, monkeypatch) -> None:
    root = tmp_path / "project"
    write(root, "pyproject.toml", "[tool.nnlint]\n")
    write(root, "pkg/model.py", MODEL)
    write(root, "train.py", TRAIN.replace("from pkg.model import", "from model import"))
    monkeypatch.chdir(root)
    # Without pkg/__init__.py, pkg/model.py is the top-level module "model" that train.py imports
    # (train.py sits outside pkg/: its own folder holds no model.py).
    assert run(capsys, ".")[:2] == (1, [(os.path.join("pkg", "model.py"), MODEL_SOFTMAX_LINE, "NN201")])
    (root / "pkg" / "__init__.py").touch()
    # Now it is "pkg.model": "from model import Net" names nothing in the project.
    expected = run(capsys, "--no-cache", ".")
    assert expected[:2] == (0, [])
    assert run(capsys, ".") == expected
    (root / "pkg" / "__init__.py").unlink()
    assert run(capsys, ".")[:2] == (1, [(os.path.join("pkg", "model.py"), MODEL_SOFTMAX_LINE, "NN201")])


def _lint_with(checkout: Path, project: Path, *args: str) -> tuple[int, list[tuple[str, int, str]]]:
    """Run the nnlint of ``checkout`` (a copy of the package) on ``project``."""
    program = f"import sys; sys.path.insert(0, {str(checkout)!r}); import nnlint.cli; sys.exit(nnlint.cli.main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", program, "--format", "json", "--select", "NN201", *args, "."],
        cwd=project, capture_output=True, text=True, timeout=120, env=dict(os.environ, NO_COLOR="1"),
    )
    assert done.returncode in (0, 1), done.stderr
    findings = json.loads(done.stdout)["findings"]
    return done.returncode, [(f["path"], f["line"], f["code"]) for f in findings]


def test_a_change_to_nnlints_own_code_invalidates_the_cache(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "nnlint", checkout / "nnlint", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "rules", checkout / "rules", ignore=shutil.ignore_patterns("__pycache__"))
    project = tmp_path / "project"
    write(project, "pyproject.toml", "[tool.nnlint]\n")
    write(project, "pkg/__init__.py", "")
    write(project, "pkg/model.py", MODEL)
    write(project, "pkg/train.py", TRAIN)
    finding = [(os.path.join("pkg", "model.py"), MODEL_SOFTMAX_LINE, "NN201")]
    assert _lint_with(checkout, project) == (1, finding)
    assert _lint_with(checkout, project) == (1, finding)
    files = len(cache_files(project))

    # An edit that changes nothing still gives a new key: nnlint cannot tell which edits matter.
    index = checkout / "nnlint" / "facts" / "index.py"
    index.write_text(index.read_text() + "\n# edited\n")
    assert _lint_with(checkout, project) == (1, finding)
    assert len(cache_files(project)) == files + 1

    # The editable install's facts/ now resolve no model across files: its results, not the old ones.
    index.write_text(index.read_text() + "\nProjectIndex.model = lambda self, qualname, near=None: None\n")
    assert _lint_with(checkout, project, "--no-cache") == (0, [])
    assert _lint_with(checkout, project) == (0, [])


def test_every_summary_field_survives_the_cache_encoding() -> None:
    # each field holds a value no other field could hold, so a misordered field cannot pass
    import dataclasses

    from nnlint.cache import _decode_summary, _encode_summary
    from nnlint.facts.index import CallRecord, LossParameter, ModelSummary, ModuleSummary, Passed, Site

    site = Site("m.py", 3, 5, 3, 20, ("NN201",))
    model = ModelSummary(
        name="Net", qualname="m.Net", framework="torch", layers=("Linear", "Softmax"), output_activation="softmax",
        output_units=10, has_dropout=True, has_batchnorm=False, output_elements=("sigmoid", None),
        output_site=site, element_sites=(Site("m.py", 9, 1, 9, 4, ()), None), returns_output=True,
        applies_argument=1, submodules=(("decoder", "dec.Decoder"),), output_model="dec.Head",
        parts=("dec.Block",), element_keys=("seg", "box"),
    )
    assert all(getattr(model, f.name) != f.default for f in dataclasses.fields(ModelSummary)
               if f.default is not dataclasses.MISSING)
    summary = ModuleSummary(
        module="m", path="m.py", is_package=True, models={"Net": model}, constants={"WIDTH": 32},
        bindings={"Decoder": "dec.Decoder"},
        calls=(CallRecord("t.fit", (Passed("m.Net"),), (("lr", None),), (("0", "train"), ("net", "eval"))),),
        loss_functions={"pair": (LossParameter(0, "y", "cross_entropy", "logits", "torch"),)},
        runners={"step": (0,)}, star_imports=("utils", "blocks"), defines=("Net", "pair"),
    )
    decoded = _decode_summary(json.loads(json.dumps(_encode_summary(summary))))
    assert decoded == summary
    assert [f.name for f in dataclasses.fields(ModuleSummary)] == [
        "module", "path", "is_package", "models", "constants", "bindings", "calls", "loss_functions", "runners",
        "star_imports", "defines"]
    assert [f.name for f in dataclasses.fields(CallRecord)] == ["target", "positional", "keywords", "modes"]
