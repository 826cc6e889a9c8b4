"""Jupyter notebooks: code cells linted together, IPython syntax skipped, findings placed in
cells in every format, suppression comments, ``--fix`` written back byte for byte where
nothing changed, malformed notebooks reported, and the cache.

Most tests run :func:`nnlint.cli.main` in-process with a private catalogue (the real NN001
and one test rule with a safe fix); the cross-cell test uses the real rules.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import nnlint.catalogue
from nnlint import cli
from nnlint.catalogue import rules_directory
from nnlint.findings import Edit, Finding, Fix, Related
from nnlint.notebook import NotebookError, fix_cells, load_notebook, mask_ipython, with_sources

REPO = Path(__file__).resolve().parents[1]
SARIF_SCHEMA = REPO.parent / "shared/data/sarif-schema-2.1.0.json"

FLAG_SOFTMAX = '''"""
## What it does
Test rule: flags `nn.Softmax(...)` and offers a safe fix.
"""
from nnlint.rule import Context, Rule


class NbFlagSoftmax(Rule):
    code = "NN873"
    name = "nb-flag-softmax"
    severity = "error"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        for call in ctx.facts.calls():
            if ctx.facts.names.qualname(call.func) == "torch.nn.Softmax":
                ctx.report(call, "softmax layer here", fix=[(call.func, "nn.Identity")], fix_message="Use nn.Identity")
'''


@pytest.fixture(scope="module")
def private_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("nb_rules")
    shutil.copy(rules_directory() / "nn001_parse_error.py", directory)
    (directory / "nn873_nb_flag_softmax.py").write_text(FLAG_SOFTMAX)
    return directory


@pytest.fixture()
def run(private_rules: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path):
    """``nnlint ARGS`` in-process in ``tmp_path`` with the private catalogue; -> (rc, out, err)."""
    real = nnlint.catalogue.load_catalogue
    monkeypatch.setattr(nnlint.catalogue, "load_catalogue", lambda directory=None: real(directory or private_rules))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FORCE_COLOR", raising=False)

    def invoke(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def code_cell(*lines: str, outputs: Any = (), count: Any = None, **extra: Any) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": count, "metadata": {}, "outputs": list(outputs),
            "source": list(lines), **extra}


def markdown(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": [text]}


def notebook(*cells: dict[str, Any], language: str = "python") -> dict[str, Any]:
    return {
        "cells": copy.deepcopy(list(cells)),  # tests change them
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": language, "name": "python3"},
                     "language_info": {"name": language, "version": "3.11.7"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def save(path: Path, document: dict[str, Any], **dump: Any) -> Path:
    """Written as Jupyter writes notebooks (indent 1, no ASCII escapes, final newline) unless told otherwise."""
    options = {"indent": 1, "ensure_ascii": False, **dump}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, **options) + "\n", encoding="utf-8")
    return path


IMPORTS = code_cell("%matplotlib inline\n", "import torch\n", "import torch.nn as nn")
SOFTMAX_CELL = code_cell("!pip install torch\n", "for i in range(2):\n", "    %time x = 1\n",
                         "    head = nn.Softmax(dim=1)")
PLOT_OUTPUT = {"output_type": "display_data", "metadata": {},
               "data": {"image/png": "iVBORw0KGgo=", "text/plain": ["<Figure size 640x480 with 1 Axes>"]}}


# -- joining cells, IPython syntax -------------------------------------------------------

def test_model_in_one_cell_and_loss_in_a_later_one_are_found_together(tmp_path: Path) -> None:
    """The real rules: the softmax in cell 2 is reported because of the loss in cell 5."""
    save(tmp_path / "train.ipynb", notebook(
        markdown("# Training\n"),
        code_cell("%matplotlib inline\n", "import torch\n", "import torch.nn as nn\n",
                  "model = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))"),
        code_cell("!nvidia-smi\n", "x = torch.randn(2, 4)"),
        markdown("## Loss"),
        code_cell("criterion = nn.CrossEntropyLoss()\n", "loss = criterion(model(x), torch.tensor([0, 1]))\n",
                  "loss.backward()"),
    ))
    done = subprocess.run([sys.executable, "-m", "nnlint", "--no-cache", "--format", "json", "train.ipynb"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 1, done.stderr
    [finding] = [f for f in json.loads(done.stdout)["findings"] if f["code"] == "NN201"]
    assert (finding["path"], finding["cell"], finding["line"], finding["column"]) == ("train.ipynb", 2, 4, 40)
    assert [(r["cell"], r["line"], r["column"]) for r in finding["related"]] == [(5, 2, 8)]


def test_magics_are_skipped_without_moving_other_lines(run, tmp_path: Path) -> None:
    save(tmp_path / "nb.ipynb", notebook(IMPORTS, SOFTMAX_CELL))
    code, out, err = run("--no-cache", "nb.ipynb")
    assert (code, err) == (1, "")
    assert out.splitlines() == ["nb.ipynb:cell 2:4:12: NN873 softmax layer here",
                                "Found 1 error (1 fixable with --fix)."]


@pytest.mark.parametrize("source, masked", [
    ("%matplotlib inline\nimport torch\n", (1,)),
    ("!pip install x\n", (1,)),
    ("files = !ls\nout = %sx ls\n", (1, 2)),
    ("model?\nmodel.forward??\n??torch\n", (1, 2, 3)),
    ("for i in range(3):\n    !echo hi\n", (2,)),
    ("%%bash\necho hi\nls -l", (1, 2, 3)),
    ("%%time\nx = 1\n", (1,)),
    ("get_ipython().run_line_magic('matplotlib', 'inline')\n", ()),
    # Python that only looks like IPython: a continued expression, a string, a comment
    ("x = (1\n% 2)\ny = (a\n!= b)\n", ()),
    ("s = '''\n!not a shell line\n%neither?\n'''\n", ()),
    ("t = 1 + \\\n    2\n# what?\n", ()),
])
def test_ipython_lines(source: str, masked: tuple[int, ...]) -> None:
    python, found = mask_ipython(source)
    assert found == masked
    assert python.count("\n") == source.count("\n")
    kept = [line for number, line in enumerate(source.split("\n"), start=1) if number not in masked]
    assert kept == [line for number, line in enumerate(python.split("\n"), start=1) if number not in masked]
    compile(python, "<cell>", "exec")  # what remains is Python


def test_markdown_raw_and_non_python_notebooks_have_no_code(run, tmp_path: Path) -> None:
    save(tmp_path / "r.ipynb", notebook(code_cell("library(torch)\n", "head <- nn.Softmax(dim=1)"), language="R"))
    save(tmp_path / "md.ipynb", notebook(markdown("import torch.nn as nn\nnn.Softmax(dim=1)"),
                                         {"cell_type": "raw", "metadata": {}, "source": "nn.Softmax(dim=1)"}))
    assert run("--no-cache", "r.ipynb", "md.ipynb") == (0, "All checks passed!\n", "")


def test_notebooks_are_found_in_directories_but_not_checkpoints(run, tmp_path: Path) -> None:
    save(tmp_path / "nbs/a.ipynb", notebook(IMPORTS, SOFTMAX_CELL))
    save(tmp_path / "nbs/.ipynb_checkpoints/a-checkpoint.ipynb", notebook(IMPORTS, SOFTMAX_CELL))
    code, out, _ = run("--no-cache", ".")
    assert code == 1
    assert out.splitlines()[:-1] == [f"{os.path.join('nbs', 'a.ipynb')}:cell 2:4:12: NN873 softmax layer here"]


def test_a_syntax_error_in_a_cell_is_placed_in_the_cell(run, tmp_path: Path) -> None:
    save(tmp_path / "nb.ipynb", notebook(IMPORTS, markdown("x"), code_cell("x = 1\n", "y = (\n")))
    code, out, _ = run("--no-cache", "nb.ipynb")
    assert code == 1 and out.startswith("nb.ipynb:cell 3:2:") and " NN001 " in out


# -- every format --------------------------------------------------------------------------

def test_full_shows_the_cell_as_written(run, tmp_path: Path) -> None:
    save(tmp_path / "nb.ipynb", notebook(IMPORTS, SOFTMAX_CELL))
    out = run("--no-cache", "--format", "full", "nb.ipynb")[1]
    assert out.splitlines()[:5] == [
        "nb.ipynb:cell 2:4:12: NN873 [*] softmax layer here",
        "  |",
        "4 |     head = nn.Softmax(dim=1)",
        "  |            ^^^^^^^^^^^^^^^^^ NN873",
        "  |",
    ]


def test_json_has_the_cell_and_the_line_in_it(run, tmp_path: Path) -> None:
    save(tmp_path / "nb.ipynb", notebook(IMPORTS, SOFTMAX_CELL))
    (tmp_path / "m.py").write_text("import torch.nn as nn\nhead = nn.Softmax()\n")
    findings = json.loads(run("--no-cache", "--format", "json", "nb.ipynb", "m.py")[1])["findings"]
    notebook_finding, file_finding = findings
    assert {k: notebook_finding[k] for k in ("path", "cell", "line", "column", "end_line", "end_column")} == {
        "path": "nb.ipynb", "cell": 2, "line": 4, "column": 12, "end_line": 4, "end_column": 29}
    assert notebook_finding["fix"]["edits"] == [
        {"line": 4, "column": 12, "end_line": 4, "end_column": 22, "content": "nn.Identity", "cell": 2}]
    assert "cell" not in file_finding and "cell" not in file_finding["fix"]["edits"][0]


def test_concise_github_and_sarif(run, tmp_path: Path) -> None:
    save(tmp_path / "nb.ipynb", notebook(IMPORTS, SOFTMAX_CELL))
    assert run("--no-cache", "--format", "concise", "-q", "nb.ipynb")[1] == \
        "nb.ipynb:cell 2:4:12: NN873 softmax layer here\n"
    assert run("--no-cache", "--format", "github", "nb.ipynb")[1] == \
        "::error file=nb.ipynb,title=NN873::cell 2:4:12: softmax layer here\n"
    document = json.loads(run("--no-cache", "--format", "sarif", "nb.ipynb")[1])
    [result] = document["runs"][0]["results"]
    [location] = result["locations"]
    assert "region" not in location["physicalLocation"]  # lines of the JSON file would be wrong
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "nb.ipynb:cell 2"
    assert result["message"]["text"] == "cell 2:4:12: softmax layer here"
    assert (result["properties"]["cell"], result["properties"]["line"], result["properties"]["column"]) == (2, 4, 12)
    if SARIF_SCHEMA.is_file():
        jsonschema = pytest.importorskip("jsonschema")
        jsonschema.validate(document, json.loads(SARIF_SCHEMA.read_text()), cls=jsonschema.Draft7Validator)


# -- suppression ---------------------------------------------------------------------------

@pytest.mark.parametrize("comment", ["  # nnlint: ignore[NN873]", "  # noqa: NN873", "  # noqa"])
def test_suppression_comments_in_cells(run, tmp_path: Path, comment: str) -> None:
    save(tmp_path / "nb.ipynb", notebook(IMPORTS, code_cell("a = nn.Softmax(dim=1)" + comment + "\n",
                                                           "b = nn.Softmax(dim=1)")))
    assert run("--no-cache", "-q", "nb.ipynb")[1] == "nb.ipynb:cell 2:2:5: NN873 softmax layer here\n"


def test_ignore_file_in_a_cell_covers_the_notebook(run, tmp_path: Path) -> None:
    save(tmp_path / "nb.ipynb", notebook(code_cell("# nnlint: ignore-file[NN873]"), IMPORTS, SOFTMAX_CELL))
    assert run("--no-cache", "nb.ipynb")[0] == 0


# -- fixes ---------------------------------------------------------------------------------

def test_fix_rewrites_only_the_changed_source(run, tmp_path: Path) -> None:
    document = notebook(
        markdown("# Title \u00e9\n"),
        code_cell("%matplotlib inline\n", "import torch\n", "import torch.nn as nn", count=1,
                  outputs=[PLOT_OUTPUT], metadata={"tags": ["setup"], "collapsed": False}),
        dict(SOFTMAX_CELL, outputs=[{"name": "stdout", "output_type": "stream", "text": ["caf\u00e9 1.0\n"]}],
             execution_count=7),
        code_cell("other = nn.Softmax(dim=0)  # nnlint: ignore[NN873]"),
    )
    path = save(tmp_path / "nb.ipynb", document)
    before = path.read_bytes()
    code, out, _ = run("--no-cache", "--fix", "nb.ipynb")
    assert (code, out) == (0, "Found 1 error (1 fixed, 0 remaining).\n")
    after = path.read_bytes()
    expected = before.replace(b'"    head = nn.Softmax(dim=1)"', b'"    head = nn.Identity(dim=1)"')
    assert after == expected  # outputs, metadata, indentation, key order, final newline: as they were
    data = json.loads(after)
    assert data["cells"][2]["source"][:3] == ["!pip install torch\n", "for i in range(2):\n", "    %time x = 1\n"]
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.reads(after.decode("utf-8"), as_version=4))
    assert run("--no-cache", "--fix", "nb.ipynb")[0] == 0 and path.read_bytes() == after  # idempotent


@pytest.mark.parametrize("dump", [{"indent": 2, "ensure_ascii": True}, {"separators": (",", ":")},
                                  {"indent": 4, "sort_keys": True}])
def test_fix_keeps_each_writer_style(run, tmp_path: Path, dump: dict[str, Any]) -> None:
    document = notebook(markdown("caf\u00e9"), code_cell("import torch.nn as nn\n", "a = nn.Softmax(dim=1)\n",
                                                          "b = 'caf\u00e9'"))
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(document, **dump), encoding="utf-8")  # no final newline
    before = path.read_text(encoding="utf-8")
    assert run("--no-cache", "--fix", "nb.ipynb")[0] == 0
    assert path.read_text(encoding="utf-8") == before.replace("a = nn.Softmax(", "a = nn.Identity(")


def test_fix_of_a_string_source_and_an_empty_cell(tmp_path: Path) -> None:
    text = json.dumps(notebook(dict(code_cell(), source="x = 1\ny = 2"), code_cell()), indent=1) + "\n"
    loaded = load_notebook(text.encode())
    written = with_sources(loaded, {1: "x = 1\ny = 3", 2: "z = 0\n"}).decode()
    cells = json.loads(written)["cells"]
    assert cells[0]["source"] == "x = 1\ny = 3" and cells[1]["source"] == ["z = 0\n"]
    assert written.replace('"x = 1\\ny = 3"', '"x = 1\\ny = 2"').replace(
        '[\n    "z = 0\\n"\n   ]', "[]") == text


def test_fix_never_touches_a_magic_line() -> None:
    text = json.dumps(notebook(markdown("m"), code_cell("x = 1\n", "!ls\n", "y = 2\n", "z = 3")))
    loaded = load_notebook(text.encode())
    assert loaded.python == "x = 1\npass\ny = 2\nz = 3\n"

    def fix(line: int, column: int, end_line: int, end_column: int, content: str) -> Finding:
        return Finding("NN873", "x", "error", "m", "nb.ipynb", line, column,
                       fix=Fix("f", (Edit(line, column, end_line, end_column, content),)))

    def cells(*findings: Finding) -> Any:
        outcome = fix_cells(loaded, findings)
        return outcome and (outcome[0], len(outcome[1]))

    assert cells(fix(1, 1, 3, 1, "")) is None  # would delete the shell line
    assert cells(fix(2, 1, 2, 5, "w = 0")) is None  # would replace it
    # an edit up to the shell line, or on the lines around it, applies to the cell as written
    assert cells(fix(1, 1, 2, 1, ""), fix(3, 5, 3, 6, "9")) == ({2: "!ls\ny = 9\nz = 3"}, 2)
    # deleting the cell's last line (up to the joined text's next line): the cell still ends without a break
    assert cells(fix(4, 1, 5, 1, "")) == ({2: "x = 1\n!ls\ny = 2"}, 1)


def test_byte_order_mark_is_kept(run, tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(notebook(IMPORTS, SOFTMAX_CELL), indent=1).encode())
    assert run("--no-cache", "--fix", "nb.ipynb")[0] == 0
    assert path.read_bytes().startswith(b"\xef\xbb\xbf{") and b"nn.Identity(dim=1)" in path.read_bytes()


# -- malformed notebooks ---------------------------------------------------------------------

@pytest.mark.parametrize("content, where, message", [
    (b'{"cells": [\n  {"cell_type": "code"\n', "3:1", "invalid JSON"),
    (b"", "1:1", "invalid JSON"),
    (b"[1, 2]", "1:1", "top level is not a JSON object"),
    (b'{"cells": {}}', "1:1", "no 'cells' list"),
    (b'{"cells": [{"cell_type": "code", "source": 3}], "nbformat": 4}', "1:1", "source of cell 1 is not text"),
    (b'{"cells": [7], "nbformat": 4}', "1:1", "cell 1 is not a JSON object"),
    (b'{"worksheets": [], "nbformat": 3}', "1:1", "nbformat 4 is needed"),
    (b'{"cells": []}\xff', "1:14", "invalid UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "1:1", "nested too deeply"),
], ids=["truncated", "empty", "list", "cells-object", "source-number", "cell-number", "nbformat-3", "not-utf8",
        "deep"])
def test_malformed_notebook_is_a_finding(run, tmp_path: Path, content: bytes, where: str, message: str) -> None:
    (tmp_path / "bad.ipynb").write_bytes(content)
    save(tmp_path / "good.ipynb", notebook(IMPORTS, SOFTMAX_CELL))
    code, out, err = run("--no-cache", ".")
    assert code == 1 and "Traceback" not in err and err == ""
    first, second = out.splitlines()[:2]
    assert first.startswith(f"bad.ipynb:{where}: NN001 ") and message in first
    assert second.startswith("good.ipynb:cell 2:4:12: NN873")


def test_huge_notebook_is_skipped_with_a_warning(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nnlint.files

    monkeypatch.setattr(nnlint.files, "MAX_NOTEBOOK_BYTES", 10_000)
    document = notebook(IMPORTS, dict(SOFTMAX_CELL, outputs=[dict(PLOT_OUTPUT, data={"image/png": "A" * 20_000})]))
    save(tmp_path / "big.ipynb", document)
    code, out, err = run("--no-cache", "big.ipynb")
    assert (code, out) == (0, "All checks passed!\n")
    assert "big.ipynb: skipped:" in err and "limit for a notebook" in err


def test_load_notebook_errors_carry_a_position() -> None:
    with pytest.raises(NotebookError) as caught:
        load_notebook(b'{\n "cells": [,]}')
    assert (caught.value.line, caught.value.column) == (2, 12)


# -- the cache, workers, start-up ----------------------------------------------------------

def test_cache_places_findings_in_the_notebook_as_it_is_now(run, tmp_path: Path) -> None:
    document = notebook(IMPORTS, SOFTMAX_CELL)
    save(tmp_path / "nb.ipynb", document)
    first = run("nb.ipynb")
    assert first == run("nb.ipynb") and "cell 2:4:12" in first[1]
    assert list((tmp_path / ".nnlint_cache").rglob("*.json"))
    # a markdown cell above and new outputs change no code: the cached result, in today's cells
    document["cells"].insert(0, markdown("intro"))
    document["cells"][2]["outputs"] = [PLOT_OUTPUT]
    save(tmp_path / "nb.ipynb", document)
    assert run("nb.ipynb")[1].startswith("nb.ipynb:cell 3:4:12: NN873")
    # a code change is a new result
    document["cells"][2]["source"][3] = "    head = nn.Identity(dim=1)"
    save(tmp_path / "nb.ipynb", document)
    assert run("nb.ipynb") == (0, "All checks passed!\n", "")


def test_workers_read_notebooks_alike(run, tmp_path: Path) -> None:
    for number in range(8):
        save(tmp_path / f"nbs/n{number}.ipynb", notebook(IMPORTS, SOFTMAX_CELL))
    parallel = run("--no-cache", "-j", "2", "nbs")
    assert parallel == run("--no-cache", "-j", "1", "nbs")
    assert parallel[1].count("cell 2:4:12: NN873") == 8


def test_linting_a_notebook_never_imports_nbformat(tmp_path: Path) -> None:
    save(tmp_path / "nb.ipynb", notebook(IMPORTS, SOFTMAX_CELL))
    script = ("import sys, nnlint, nnlint.cli\nrc = nnlint.cli.main(['--no-cache', '--fix', 'nb.ipynb'])\n"
              "print(rc, [m for m in ('nbformat', 'torch') if m in sys.modules])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert done.stdout.splitlines()[-1].endswith(" []"), done.stderr


def test_a_notebook_from_standard_input(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    text = json.dumps(notebook(IMPORTS, SOFTMAX_CELL), indent=1) + "\n"

    def piped(data: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data.encode())))

    piped(text)
    assert run("-q", "--stdin-filename", "nb.ipynb", "-")[1] == "nb.ipynb:cell 2:4:12: NN873 softmax layer here\n"
    piped(text)
    code, out, err = run("--fix", "--stdin-filename", "nb.ipynb", "-")
    assert (code, out, err) == (0, text.replace("nn.Softmax(dim=1)", "nn.Identity(dim=1)"),
                                "Found 1 error (1 fixed, 0 remaining).\n")
    assert not (tmp_path / "nb.ipynb").exists()
    piped(text[:40])
    assert run("--stdin-filename", "nb.ipynb", "-")[1].startswith("nb.ipynb:4:23: NN001 not a valid notebook")


def test_diff_of_a_notebook_is_cell_by_cell_and_writes_nothing(run, tmp_path: Path) -> None:
    path = save(tmp_path / "nb.ipynb", notebook(markdown("m"), IMPORTS, SOFTMAX_CELL))
    before = path.read_bytes()
    code, out, err = run("--no-cache", "--diff", "nb.ipynb")
    assert (code, err) == (1, "Would fix 1 error.\n") and path.read_bytes() == before
    assert out == (
        "--- nb.ipynb:cell 3\n+++ nb.ipynb:cell 3\n@@ -1,4 +1,4 @@\n !pip install torch\n for i in range(2):\n"
        "     %time x = 1\n-    head = nn.Softmax(dim=1)\n\\ No newline at end of file\n"
        "+    head = nn.Identity(dim=1)\n\\ No newline at end of file\n"
    )
    assert run("--no-cache", "--fix", "nb.ipynb")[0] == 0
    assert run("--no-cache", "--diff", "nb.ipynb") == (0, "", "No fixes would be applied.\n")


def test_a_finding_in_a_cell_survives_json() -> None:
    finding = Finding("NN201", "x", "error", "m", "nb.ipynb", 4, 40, 4, 57, cell=2,
                      fix=Fix("f", (Edit(4, 40, 4, 57, "", cell=2),)),
                      related=(Related("nb.ipynb", 2, 8, 2, 49, "the loss", cell=5),))
    data = finding.to_json()
    assert list(data)[4:7] == ["path", "cell", "line"] and list(data["related"][0])[:3] == ["path", "cell", "line"]
    assert Finding.from_json(json.loads(json.dumps(data))) == finding
