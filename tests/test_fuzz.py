"""Fuzzing the command line: whatever the files contain, nnlint exits 0 or 1 with valid JSON.

Two sources of input, each bounded in wall-clock time so that the module stays well under a
minute on a small CI machine:

* real-looking files: the bundled examples and the rules' documentation examples, mutated with a
  seeded random generator (deleted, duplicated and swapped lines, bit flips, truncation, stray
  ``\\r`` and NUL bytes, bad UTF-8, deep nesting, huge literals, long operator chains);
* generated programs: ``hypothesmith`` strategies (from the grammar and from libcst nodes).

Every run lints several files at once, beside a sentinel file whose finding must be reported
whatever the others contain. On a failure the message names the seed and the file that breaks
nnlint on its own, with its text.
Set ``NNLINT_FUZZ_SEED`` to explore other inputs, ``NNLINT_FUZZ_SECONDS`` to fuzz for longer.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from nnlint import cli
from nnlint.catalogue import code_blocks, load_catalogue

REPO = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("NNLINT_FUZZ_SEED", "20240611"))
#: wall-clock budget of each fuzz test (seconds); a run in progress is finished, not cut off
BUDGET = float(os.environ.get("NNLINT_FUZZ_SECONDS", "10"))
FILES_PER_RUN = 6
HEADER = b"import torch\nimport torch.nn as nn\n"
#: linted beside the fuzzed files in every run: its finding must survive whatever they contain
SENTINEL = b"""import torch.nn as nn

model = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
loss = nn.CrossEntropyLoss()(model(x), y)
"""
SENTINEL_FINDING = ("sentinel.py", 3, "NN201")


def corpus() -> list[bytes]:
    """The bundled examples and every rule's documentation examples."""
    texts = [path.read_bytes() for path in sorted((REPO / "examples").glob("*.py"))]
    for info in load_catalogue().rules:
        if info.kind != "static":
            continue
        sections = info.sections()
        for name in ("Example", "Use instead"):
            texts.extend(block.encode() for block in code_blocks(sections.get(name, "")))
    return texts


def lint(directory: Path) -> tuple[int, str, str]:
    """``nnlint DIRECTORY --format json --no-cache`` in this process -> (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(directory), "--format", "json", "--no-cache", "--jobs", "1"])
        except SystemExit as exit_:  # argparse-style exits count as exit codes too
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def problem(directory: Path) -> Optional[str]:
    """What is wrong with nnlint's answer for ``directory`` (``None``: exit 0/1, valid JSON and, when the
    sentinel file is there, its finding)."""
    sentinel = (directory / SENTINEL_FINDING[0]).is_file()
    code, out, err = lint(directory)
    if code not in (0, 1):
        return f"exit {code}: {err.strip()[-800:]}"
    try:
        document = json.loads(out)
    except ValueError as error:
        return f"stdout is not JSON ({error}): {out[:300]!r}"
    if not isinstance(document, dict) or not isinstance(document.get("findings"), list):
        return f"unexpected JSON: {out[:300]!r}"
    if "Traceback" in err or "internal error" in err:
        return f"exit {code} but stderr says: {err.strip()[-800:]}"
    found = {(Path(f["path"]).name, f["line"], f["code"]) for f in document["findings"] if isinstance(f, dict)}
    if sentinel and SENTINEL_FINDING not in found:
        return f"the other files' findings were lost: {SENTINEL_FINDING} is missing (stderr: {err.strip()[-400:]})"
    return None


def files_problem(tmp_path: Path, files: list[bytes], label: str) -> Optional[str]:
    """Lint ``files`` together; on a problem, find the file that causes it alone and describe it."""
    directory = tmp_path / label
    directory.mkdir()
    for number, data in enumerate(files):
        (directory / f"m{number}.py").write_bytes(data)
    (directory / SENTINEL_FINDING[0]).write_bytes(SENTINEL)
    found = problem(directory)
    if found is None:
        return None
    singles = []
    for number, data in enumerate(files):  # narrow it down to the files that break it alone
        alone = tmp_path / f"{label}-alone-{number}"
        alone.mkdir()
        (alone / "m.py").write_bytes(data)
        (alone / SENTINEL_FINDING[0]).write_bytes(SENTINEL)
        single = problem(alone)
        if single is not None:
            singles.append(f"{label}: {single}\nreproducer (the bytes of m.py): {data[:3000]!r}")
    return "\n\n".join(singles) or f"{label}: {found}\n(only together) files: {[f[:300] for f in files]!r}"


def check_files(tmp_path: Path, files: list[bytes], label: str) -> None:
    found = files_problem(tmp_path, files, label)
    if found is not None:
        pytest.fail(found)


# -- mutations of real-looking files --------------------------------------------------------

def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [b""]


def delete_bytes(rng: random.Random, data: bytes) -> bytes:
    start = rng.randrange(len(data) + 1)
    return data[:start] + data[start + rng.randint(1, 40):]


def delete_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    start = rng.randrange(len(lines))
    del lines[start:start + rng.randint(1, 4)]
    return b"".join(lines)


def duplicate_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    start = rng.randrange(len(lines))
    chunk = lines[start:start + rng.randint(1, 6)]
    at = rng.randrange(len(lines) + 1)
    return b"".join(lines[:at] + chunk * rng.randint(1, 3) + lines[at:])


def swap_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[a], lines[b] = lines[b], lines[a]
    return b"".join(lines)


def flip_bits(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        buffer[rng.randrange(len(buffer))] ^= 1 << rng.randrange(8)
    return bytes(buffer)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _insert(rng: random.Random, data: bytes, piece: bytes, times: int) -> bytes:
    for _ in range(times):
        at = rng.randrange(len(data) + 1)
        data = data[:at] + piece + data[at:]
    return data


def stray_carriage_returns(rng: random.Random, data: bytes) -> bytes:
    if rng.random() < 0.3:
        return data.replace(b"\n", b"\r")  # a classic Mac file
    return _insert(rng, data, b"\r", rng.randint(1, 5))


def nul_bytes(rng: random.Random, data: bytes) -> bytes:
    return _insert(rng, data, b"\x00", rng.randint(1, 3))


def bad_encoding(rng: random.Random, data: bytes) -> bytes:
    piece = rng.choice([b"\xff\xfe", b"\xc3", b"\xe2\x82", b"\xef\xbb\xbf", "é".encode("latin-1"), b"\xed\xa0\x80"])
    return _insert(rng, data, piece, 1)


def indentation(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    index = rng.randrange(len(lines))
    lines[index] = rng.choice([b"\t", b" ", b"        ", b"\x0c"]) + lines[index]
    return b"".join(lines)


def swap_names(rng: random.Random, data: bytes) -> bytes:
    pairs = [(b"Softmax", b"Sigmoid"), (b"torch", b"tensorflow"), (b"self", b"cls"), (b"(", b"["),
             (b"def ", b"class "), (b"return", b"yield"), (b"=", b"=="), (b":", b""), (b"lr", b"learning_rate")]
    old, new = rng.choice(pairs)
    return data.replace(old, new, rng.randint(1, 3))


def _inserted_line(rng: random.Random, data: bytes, line: bytes) -> bytes:
    lines = _lines(data)
    at = rng.randrange(len(lines) + 1)
    indent = b""
    if at < len(lines):
        indent = lines[at][: len(lines[at]) - len(lines[at].lstrip(b" \t"))]
    return b"".join(lines[:at] + [indent + line + b"\n"] + lines[at:])


DEEP_AND_HUGE: list[Callable[[random.Random], bytes]] = [
    lambda rng: b"x = " + b"(" * rng.randint(50, 400) + b"1" + b")" * rng.randint(50, 400),
    lambda rng: b"x = " + b"[" * rng.randint(50, 300) + b"]" * rng.randint(50, 300),
    lambda rng: b"x = " + b"f(" * rng.randint(50, 250) + b"x" + b")" * rng.randint(50, 250),
    lambda rng: b"x = " + b" + ".join([b"1"] * rng.randint(200, 1500)),
    lambda rng: b"lr = " + b" * ".join([b"(2 ** 60)"] * rng.randint(10, 300)),
    lambda rng: b"x = y" + b".relu()" * rng.randint(50, 300),
    lambda rng: b"x = " + b"-" * rng.randint(100, 1500) + b"1",
    lambda rng: b"x = " + b"not " * rng.randint(100, 1500) + b"y",
    lambda rng: b"lr = 10 ** 10 ** " + str(rng.randint(5, 12)).encode(),
    lambda rng: b"lr = 2 ** " + str(rng.randint(1000, 100000)).encode(),
    lambda rng: b"lr = 1 << 10 ** 8",
    lambda rng: b"lr = " + b"9" * rng.randint(300, 6000),
    lambda rng: b"lr = 0x" + b"f" * rng.randint(300, 3000),
    lambda rng: b"lr = " + b"9" * rng.randint(300, 6000) + b".5e-3",
    lambda rng: b"lr = (-8) ** 0.5",
    lambda rng: b"lr = 'a' * 10 ** 9",
    lambda rng: b"x = " + b" ".join(b"'%d'" % i for i in range(rng.randint(100, 3000))),
    lambda rng: b"if a:\n    lr = 0\n" + b"".join(b"elif c%d:\n    lr = %d\n" % (i, i) for i in range(rng.randint(50, 600))),
    lambda rng: b"x = lambda: " * rng.randint(50, 300) + b"1",
]


def deep_or_huge(rng: random.Random, data: bytes) -> bytes:
    line = rng.choice(DEEP_AND_HUGE)(rng)
    if b"\n" in line:  # a compound statement: at module level
        return data + b"\n" + line + b"\n"
    return _inserted_line(rng, data, line)


MUTATIONS = [
    delete_bytes, delete_lines, duplicate_lines, swap_lines, flip_bits, truncate, stray_carriage_returns,
    nul_bytes, bad_encoding, indentation, swap_names, deep_or_huge, deep_or_huge,
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        data = rng.choice(MUTATIONS)(rng, data)
    if rng.random() < 0.8 and b"torch" not in data[:200]:
        data = HEADER + data  # only files that mention a framework are parsed at all
    return data


def test_mutated_real_files(tmp_path: Path) -> None:
    texts = corpus()
    assert len(texts) > 20
    rng = random.Random(SEED)
    deadline = time.monotonic() + BUDGET
    runs = 0
    while runs < 3 or time.monotonic() < deadline:
        seed = rng.randrange(2**32)
        local = random.Random(seed)
        files = [mutate(local, local.choice(texts)) for _ in range(FILES_PER_RUN)]
        check_files(tmp_path, files, f"seed-{SEED}-run-{runs}-{seed}")
        runs += 1
    assert runs >= 3


def test_each_deep_or_huge_construct_alone(tmp_path: Path) -> None:
    """Every construct of the deep-and-huge list, before, after and inside a real training script."""
    rng = random.Random(SEED)
    base = (REPO / "examples" / "torch_classifier.py").read_bytes()
    files = []
    for make in DEEP_AND_HUGE:
        code = make(rng)
        files.append(base + b"\n" + code + b"\n")  # at module level, after the findings
        files.append(HEADER + code + b"\n" + base)  # before them: their positions are computed past it
        in_function = b"".join(b"    " + line for line in code.splitlines(keepends=True))
        files.append(base + b"\n\ndef fuzzed(model, y, a, c, f):\n" + in_function + b"\n    return model(y)\n")
    problems = [files_problem(tmp_path, files[start:start + FILES_PER_RUN], f"deep-{start}")
                for start in range(0, len(files), FILES_PER_RUN)]
    found = [p for p in problems if p is not None]
    assert not found, "\n\n".join(found)


# -- generated programs --------------------------------------------------------------------

def _hypothesmith():
    return pytest.importorskip("hypothesmith", reason="hypothesmith is not installed (pip install -e '.[test]')")


@pytest.mark.parametrize("source", ["grammar", "node"])
def test_generated_programs(source: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    hypothesmith = _hypothesmith()
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st

    # from_node builds each program from libcst nodes: about a second apiece, so fewer of them
    strategy, examples = (hypothesmith.from_grammar(), 25) if source == "grammar" else (hypothesmith.from_node(), 8)
    texts = corpus()
    deadline = time.monotonic() + BUDGET * 0.6
    linted: list[int] = []

    # generation only: shrinking a failure can take minutes, and the failing program is printed as is
    @seed(SEED)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data) -> None:  # type: ignore[no-untyped-def]
        # always drawn (hypothesis requires the same draws on a replay), linted while the budget lasts
        if source == "grammar":  # several programs in one file: the grammar's are often tiny
            program = "\n".join(data.draw(st.lists(strategy, min_size=1, max_size=4), label="programs"))
        else:
            program = data.draw(strategy, label="program")
        program = program.encode("utf-8", "surrogatepass")
        example = texts[data.draw(st.integers(0, len(texts) - 1), label="example")]
        if time.monotonic() > deadline:
            return
        # also spliced into a real file, so that it reaches the rules' facts, not only the parser
        files = [HEADER + program, example + b"\n" + program]
        check_files(tmp_path_factory.mktemp(source), files, f"{source}-{len(linted)}")
        linted.append(len(program))

    run()
    assert linted, "no generated program was linted"
