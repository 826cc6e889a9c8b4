"""``nnlint server``: a real LSP session over stdio (JSON-RPC with Content-Length framing)."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

TIMEOUT = 60.0

SOURCE = '''import torch
import torch.nn as nn
import torch.nn.functional as F


def nll(logits, target):
    log_probs = torch.log(F.softmax(logits, dim=1))
    return F.nll_loss(log_probs, target)


class Head(nn.Module):
    def forward(self, x):
        return F.dropout(torch.log(F.softmax(x, dim=1)), p=0.5)  # nnlint: ignore[NN401] kept as it is
'''


#: `nnlint server` as the console script runs it: the project's folder is not on sys.path
_SERVE = (
    "import sys\n"
    "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
    "from nnlint.cli import main\n"
    "sys.exit(main(['server']))\n"
)


def _needs_pygls() -> None:
    pytest.importorskip("pygls", reason="nnlint server needs pygls (pip install 'nnlint[server]')")
    pytest.importorskip("lsprotocol", reason="nnlint server needs lsprotocol (pip install 'nnlint[server]')")


class Client:
    """A minimal LSP client: requests, notifications, and what the server sends back."""

    def __init__(self, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVE],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.inbox: "queue.Queue[Optional[dict[str, Any]]]" = queue.Queue()
        self.notifications: list[dict[str, Any]] = []
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                header = stream.readline()
                if not header:
                    self.inbox.put(None)  # the server has gone
                    return
                if header in (b"\r\n", b"\n"):
                    break
                name, _, value = header.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            assert length is not None
            self.inbox.put(json.loads(stream.read(length)))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        number = self.next_id
        self.send({"id": number, "method": method, "params": params})
        reply = self._wait(lambda m: m.get("id") == number and "method" not in m)
        assert "error" not in reply, reply
        return reply.get("result")

    def _wait(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                message = self.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no answer from the server; stderr: {self._stderr()}") from None
            if message is None:
                self.process.wait(timeout=TIMEOUT)
                raise AssertionError(f"the server exited; stderr: {self._stderr()}")
            if wanted(message):
                return message
            if "method" in message:
                self.notifications.append(message)

    def diagnostics(self, uri: str, version: Optional[int] = None) -> list[dict[str, Any]]:
        """The next diagnostics published for ``uri`` (for ``version`` when given)."""
        def wanted(m: dict[str, Any]) -> bool:
            params = m.get("params") or {}
            return m.get("method") == "textDocument/publishDiagnostics" and params.get("uri") == uri \
                and (version is None or params.get("version") == version)

        for index, message in enumerate(self.notifications):
            if wanted(message):
                del self.notifications[index]
                return message["params"]["diagnostics"]
        return self._wait(wanted)["params"]["diagnostics"]

    def _stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stderr is not None
        return self.process.stderr.read().decode("utf-8", "replace")[-2000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def _uri(path: Path) -> str:
    return path.resolve().as_uri()


def _apply(text: str, edit: dict[str, Any]) -> str:
    """One LSP text edit applied to ``text`` (ASCII text: UTF-16 units are characters)."""
    lines = text.splitlines(keepends=True)

    def offset(position: dict[str, int]) -> int:
        return sum(len(line) for line in lines[: position["line"]]) + position["character"]

    start, end = offset(edit["range"]["start"]), offset(edit["range"]["end"])
    return text[:start] + edit["newText"] + text[end:]


@pytest.fixture
def session(tmp_path: Path) -> Any:
    _needs_pygls()
    (tmp_path / "pyproject.toml").write_text("[tool.nnlint]\n", encoding="utf-8")
    client = Client(tmp_path)
    try:
        result = client.request("initialize", {
            "processId": os.getpid(),
            "rootUri": _uri(tmp_path),
            "capabilities": {"general": {"positionEncodings": ["utf-16"]}},
        })
        assert result["serverInfo"]["name"] == "nnlint"
        assert result["capabilities"]["hoverProvider"]
        client.notify("initialized", {})
        yield client, tmp_path
    finally:
        client.close()


def test_session_diagnostics_code_actions_hover_and_edits(session: Any) -> None:
    client, root = session
    path = root / "m.py"
    path.write_text(SOURCE, encoding="utf-8")
    uri = _uri(path)
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": SOURCE}})
    diagnostics = client.diagnostics(uri, 1)
    by_code = {d["code"]: d for d in diagnostics}
    assert sorted(by_code) == ["NN105", "NN401"]
    nn401, nn105 = by_code["NN401"], by_code["NN105"]
    assert nn401["range"] == {"start": {"line": 6, "character": 16}, "end": {"line": 6, "character": 51}}
    assert nn401["source"] == "nnlint" and nn401["severity"] == 2

    # the safe fix and "ignore" for NN401
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": nn401["range"], "context": {"diagnostics": [nn401]}})
    titles = [a["title"] for a in actions]
    fix = next(a for a in actions if "log_softmax" in a["title"])
    assert fix["kind"] == "quickfix" and fix["isPreferred"] is True and "unsafe" not in fix["title"]
    [fix_edit] = fix["edit"]["changes"][uri]
    assert fix_edit["newText"] == "F.log_softmax(logits, dim=1)"
    ignore = next(a for a in actions if "Ignore NN401" in a["title"])
    [ignore_edit] = ignore["edit"]["changes"][uri]
    assert _apply(SOURCE, ignore_edit).splitlines()[6] == \
        "    log_probs = torch.log(F.softmax(logits, dim=1))  # nnlint: ignore[NN401]"
    assert not any("NN105" in title for title in titles)  # only what the range touches

    # NN105: an unsafe fix, marked so; "ignore" merges into the directive already on the line
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": nn105["range"], "context": {"diagnostics": [nn105]}})
    unsafe = next(a for a in actions if "training=self.training" in a["title"])
    assert "unsafe" in unsafe["title"] and not unsafe.get("isPreferred")
    ignore = next(a for a in actions if "Ignore NN105" in a["title"])
    [merge] = ignore["edit"]["changes"][uri]
    merged = _apply(SOURCE, merge)
    assert merged.splitlines()[12] == \
        "        return F.dropout(torch.log(F.softmax(x, dim=1)), p=0.5)  # nnlint: ignore[NN401, NN105] kept as it is"

    # hover: the finding and the rule's documentation
    hover = client.request("textDocument/hover", {
        "textDocument": {"uri": uri}, "position": {"line": 6, "character": 30}})
    text = hover["contents"]["value"]
    assert hover["contents"]["kind"] == "markdown"
    assert text.startswith("**NN401** log(softmax(x)) is unstable")
    assert "# NN401: log-of-softmax" in text and "Why is this bad?" in text
    assert client.request("textDocument/hover", {
        "textDocument": {"uri": uri}, "position": {"line": 0, "character": 3}}) is None

    # unsaved edits are linted from the editor's text: apply the fix (incrementally), then the ignore
    client.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": 2},
        "contentChanges": [{"range": fix_edit["range"], "text": fix_edit["newText"]}]})
    assert [d["code"] for d in client.diagnostics(uri, 2)] == ["NN105"]
    fixed = _apply(SOURCE, fix_edit)
    client.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": 3},
        "contentChanges": [{"text": _apply(fixed, merge)}]})
    assert client.diagnostics(uri, 3) == []
    assert path.read_text(encoding="utf-8") == SOURCE  # the file on disk is never written

    # saving the file as it is on disk lints it again
    client.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": 4}, "contentChanges": [{"text": SOURCE}]})
    assert len(client.diagnostics(uri, 4)) == 2
    client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    assert len(client.diagnostics(uri, 4)) == 2

    # closing a document clears its diagnostics
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert client.diagnostics(uri) == []

    assert client.request("shutdown", None) is None
    client.notify("exit", None)
    assert client.process.wait(timeout=TIMEOUT) == 0


def test_positions_in_utf16_and_fix_all(session: Any) -> None:
    client, root = session
    source = SOURCE.replace("    log_probs =", '    s = "\U0001F600"; log_probs =')
    uri = _uri(root / "unsaved.py")  # need not exist on disk
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": source}})
    nn401 = next(d for d in client.diagnostics(uri, 1) if d["code"] == "NN401")
    # the emoji is one code point but two UTF-16 units
    assert nn401["range"]["start"] == {"line": 6, "character": 16 + len('s = "\U0001F600"; ') + 1}
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": nn401["range"],
        "context": {"diagnostics": [nn401], "only": ["source.fixAll"]}})
    [fix_all] = actions
    assert fix_all["kind"] == "source.fixAll.nnlint"
    [edit] = fix_all["edit"]["changes"][uri]
    assert "torch.log(F.softmax(logits" not in edit["newText"]
    assert "F.log_softmax(logits, dim=1)" in edit["newText"]
    assert "training=self.training" not in edit["newText"]  # only the safe fixes
    assert not (root / "unsaved.py").exists()


def test_server_without_pygls_names_the_extra(tmp_path: Path) -> None:
    """Without pygls `nnlint server` exits 2 naming the extra; plain linting works and never imports it."""
    (tmp_path / "m.py").write_text(SOURCE, encoding="utf-8")
    script = (
        "import sys\n"
        "sys.modules['pygls'] = None; sys.modules['lsprotocol'] = None\n"
        "from nnlint.cli import main\n"
        "assert main(['--no-cache', 'm.py']) == 1\n"
        "sys.exit(main(['server']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 2, done.stderr
    assert "nnlint[server]" in done.stderr and "pygls" in done.stderr
    assert "Traceback" not in done.stderr


def test_ignore_edit_is_the_add_ignore_comment_as_one_small_edit() -> None:
    _needs_pygls()
    from nnlint.findings import Finding
    from nnlint.server import ignore_edit

    def ignored(text: str, line: int, end_line: int) -> Optional[str]:
        finding = Finding("NN401", "log-of-softmax", "warning", "m", "m.py", line, 5, end_line, 3)
        edit = ignore_edit(text, finding)
        if edit is None:
            return None
        (start_line, start_column), (stop_line, stop_column), content = edit
        assert (start_line, start_column) <= (stop_line, stop_column)
        lines = text.splitlines(keepends=True)
        start = sum(map(len, lines[: start_line - 1])) + start_column - 1
        stop = sum(map(len, lines[: stop_line - 1])) + stop_column - 1
        assert len(content) < 30  # the comment, not the file
        return text[:start] + content + text[stop:]

    assert ignored("x = a + \\\n    b\n", 1, 2) == "x = a + \\\n    b  # nnlint: ignore[NN401]\n"
    assert ignored('y = f("""\nz""", w)   \n', 1, 2) == 'y = f("""\nz""", w)  # nnlint: ignore[NN401]\n'
    assert ignored("x = 1  # nnlint: ignore[NN105] why\r\ny = 2\r\n", 1, 1) == \
        "x = 1  # nnlint: ignore[NN105, NN401] why\r\ny = 2\r\n"
    assert ignored("x = 1  # nnlint: ignore[NN4]\n", 1, 1) is None  # already silenced
    assert ignored('s = """\nabc\n"""\n', 2, 2) is None  # inside a string: no comment can silence it


MODEL = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)
'''

#: ``Net`` returns a sigmoid: BCELoss on it is NN204 in train.py, BCEWithLogitsLoss NN201 at the sigmoid
SIGMOID_MODEL = MODEL.replace("return self.fc(x)", "return torch.sigmoid(self.fc(x))")

TRAIN = '''import torch
import torch.nn as nn
from model import Net

model = Net()
criterion = nn.{loss}()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def train(x, y):
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
'''


def _open(client: Any, path: Path, text: str) -> str:
    uri = _uri(path)
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": text}})
    return uri


def _change(client: Any, uri: str, version: int, text: str) -> None:
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                             "contentChanges": [{"text": text}]})


def _codes(diagnostics: list[dict[str, Any]]) -> list[str]:
    return sorted(d["code"] for d in diagnostics)


def _until(client: Any, uri: str, version: int, codes: list[str]) -> tuple[float, list[dict[str, Any]]]:
    """Wait for ``uri``'s diagnostics of ``version`` to have ``codes``: when they came, and them."""
    while True:
        diagnostics = client.diagnostics(uri, version)
        if _codes(diagnostics) == codes:
            return time.monotonic(), diagnostics


def test_edit_answers_the_edited_file_first_then_its_importers(session: Any) -> None:
    """An edit that changes what model.py exports: model.py's own findings come first, without the
    importers checked again; what a loss in an importer reports in model.py follows, and after the
    save the open train.py is linted again with the new answer."""
    client, root = session
    (root / "model.py").write_text(MODEL, encoding="utf-8")
    (root / "fit.py").write_text(TRAIN.format(loss="BCEWithLogitsLoss"), encoding="utf-8")  # not open
    (root / "train.py").write_text(TRAIN.format(loss="BCELoss"), encoding="utf-8")
    model = _open(client, root / "model.py", MODEL)
    assert client.diagnostics(model, 1) == []
    train = _open(client, root / "train.py", TRAIN.format(loss="BCELoss"))
    assert client.diagnostics(train, 1) == []
    time.sleep(1.0)  # the background lints after opening are done
    client.notifications.clear()

    _change(client, model, 2, SIGMOID_MODEL)
    (root / "model.py").write_text(SIGMOID_MODEL, encoding="utf-8")
    client.notify("textDocument/didSave", {"textDocument": {"uri": model}})
    first = client._wait(lambda m: m.get("method") == "textDocument/publishDiagnostics")["params"]
    # the first answer is model.py's own: fit.py (whose loss reports the sigmoid) was not checked again
    assert (first["uri"], first["version"], first["diagnostics"]) == (model, 2, [])
    # then, in the background: fit.py's finding in model.py, and train.py's new finding
    _, [nn201] = _until(client, model, 2, ["NN201"])
    assert nn201["range"]["start"]["line"] == 11
    [related] = nn201["relatedInformation"]
    assert related["location"]["uri"] == _uri(root / "fit.py")
    [nn204] = client.diagnostics(train, 1)
    assert nn204["code"] == "NN204" and nn204["range"]["start"]["line"] == 11

    # edited back before the background lints ran: nothing older is published after the newer answer
    _change(client, model, 3, SIGMOID_MODEL.replace("import torch\n", "import torch\n\n", 1))
    _change(client, model, 4, MODEL)
    (root / "model.py").write_text(MODEL, encoding="utf-8")
    client.notify("textDocument/didSave", {"textDocument": {"uri": model}})
    assert client.diagnostics(train, 1) == []
    seen = [(m["params"]["version"], m["params"]["diagnostics"]) for m in client.notifications
            if m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == model]
    assert seen and seen[-1] == (4, []) and [v for v, _ in seen] == sorted(v for v, _ in seen), seen
    assert client.request("shutdown", None) is None
    client.notify("exit", None)
    assert client.process.wait(timeout=TIMEOUT) == 0


def test_edited_file_does_not_wait_for_its_importers(session: Any) -> None:
    """With many files importing model.py, an edit that moves its softmax is answered before any
    importer is checked again (their finding in model.py is not in the first answer), well before
    the full answer that checks them all."""
    from nnlint.server import FOLLOW_UP_DELAY

    client, root = session
    softmax = MODEL.replace("return self.fc(x)", "return F.softmax(self.fc(x), dim=1)")
    (root / "model.py").write_text(softmax, encoding="utf-8")
    for number in range(30):
        (root / f"train_{number}.py").write_text(TRAIN.format(loss="CrossEntropyLoss") + f"\nRUN = {number}\n",
                                                 encoding="utf-8")
    model = _open(client, root / "model.py", softmax)
    _until(client, model, 1, ["NN201"])  # the importers' finding, once they have all been checked
    time.sleep(0.5)
    client.notifications.clear()

    timings = []
    for version, moved in enumerate(("\n", "\n\n"), 2):
        text = softmax.replace("class Net", f"{moved}class Net")  # the softmax moves: model.py exports change
        start = time.monotonic()
        _change(client, model, version, text)
        assert client.diagnostics(model, version) == []  # its own findings: no importer checked yet
        own = time.monotonic()
        full, [nn201] = _until(client, model, version, ["NN201"])  # then the full answer
        assert nn201["range"]["start"]["line"] == 10 + version
        timings.append((own - start, full - start - FOLLOW_UP_DELAY))
    # both measured in this session: the quick answer is a fraction of checking the importers again
    for own, full in timings:
        assert own < full / 2, timings
