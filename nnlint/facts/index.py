"""The project index: what each linted file exports, so files can see each other.

Linting runs in two phases. Phase one parses every file once and records a
:class:`ModuleSummary` (its models, module constants and import bindings).
Phase two checks each file with the :class:`ProjectIndex` of all summaries, so
``from .model import Net`` in ``train.py`` finds out what ``Net`` outputs.
Summaries are plain picklable data: they are cached by file content and sent to
worker processes.
"""
from __future__ import annotations

import hashlib
import json
import os
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional



def module_identity(path: Path) -> tuple[str, bool]:
    """Dotted module name of a file (walking up ``__init__.py`` packages) and whether it is a package."""
    path = Path(os.path.abspath(path))
    is_package = path.name == "__init__.py"
    parts: list[str] = [] if is_package else [path.stem]
    directory = path.parent
    while (directory / "__init__.py").exists() and directory.parent != directory:
        parts.append(directory.name)
        directory = directory.parent
    return ".".join(reversed(parts)), is_package


@dataclass(frozen=True)
class Site:
    """A place in a file, as other files report it: 1-based range and the codes silenced there."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    silenced: tuple[str, ...] = ()

    def silences(self, code: str) -> bool:
        return any(code.startswith(selector) for selector in self.silenced)


@dataclass(frozen=True)
class ModelSummary:
    """What another file needs to know about a model defined here (see :mod:`nnlint.facts.models`)."""

    name: str
    qualname: str
    framework: str
    layers: tuple[str, ...]
    output_activation: Optional[str]
    output_units: Optional[int]
    has_dropout: bool
    has_batchnorm: bool
    #: when every ``return`` of forward is a tuple literal (``return self.decode(z), mu, logvar``),
    #: or a dict literal with the same keys (``return {"seg": seg, "box": box}``): each element's
    #: output activation; empty otherwise
    output_elements: tuple[Optional[str], ...] = ()
    #: where the output activation is applied (the ``nn.Softmax``, the ``F.softmax`` in ``forward``)
    output_site: Optional[Site] = None
    #: with ``output_elements``: where each element's activation is applied
    element_sites: tuple[Optional[Site], ...] = ()
    #: a function whose call returns the output (a TF1 graph helper ``def model(x): ...; return
    #: tf.nn.softmax(logits)``), rather than a model class or a factory returning a model
    returns_output: bool = False
    #: a module whose ``forward(x, layer)`` returns ``layer(...)``: the position of that argument
    #: (``self`` not counted), so that ``self.wrap(x, nn.Sequential(fc, nn.Softmax()))`` ends in softmax
    applies_argument: Optional[int] = None
    #: the model classes it holds, by attribute (``self.decoder = Decoder()``: ``("decoder",
    #: "model.Decoder")``), so that ``net.decoder(x)`` in another file is that model
    submodules: tuple[tuple[str, str], ...] = ()
    #: a class of another project file whose output this model returns (``return self.decoder(h)``),
    #: when that file's summary was not known here; :meth:`ProjectIndex.model` fills the output in
    output_model: Optional[str] = None
    #: classes of other project files among its modules, not known here: their dropout and batch
    #: norm count as this model's (filled in by :meth:`ProjectIndex.model`)
    parts: tuple[str, ...] = ()
    #: with ``output_elements`` of a dict literal: their keys, in the same order
    element_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Passed:
    """What a call in another file passes for one parameter: the object that creates it."""

    #: ``model.Classifier``, ``torch.nn.CrossEntropyLoss``, ``torch.nn.functional.cross_entropy``
    qualname: str
    #: ``Classifier()`` (an instance) rather than ``Classifier`` itself (a class or function)
    called: bool = True


@dataclass(frozen=True)
class CallRecord:
    """A call of another project module's function or class, with what it passes where that is known."""

    target: str
    positional: tuple[Optional[Passed], ...] = ()
    keywords: tuple[tuple[str, Optional[Passed]], ...] = ()
    #: arguments that are modules switched to a mode before the call (``model.train()``): the
    #: position (as text) or keyword, and ``"train"`` or ``"eval"``
    modes: tuple[tuple[str, str], ...] = ()

    def mode(self, index: Optional[int], name: str) -> Optional[str]:
        """The mode of the module passed for a parameter at ``index`` named ``name``, where known."""
        for key, mode in self.modes:
            if key == name or (index is not None and key == str(index)):
                return mode
        return None

    def passed(self, index: Optional[int], name: str) -> tuple[bool, Optional[Passed]]:
        """``(given, what)`` for a parameter at ``index`` (``None``: keyword-only) named ``name``."""
        for keyword, value in self.keywords:
            if keyword == name:
                return True, value
        if index is not None and index < len(self.positional):
            return True, self.positional[index]
        return False, None


@dataclass(frozen=True)
class LossParameter:
    """A parameter that a top-level function hands to a loss as its prediction
    (``def pair_loss(y1, y2, t): return F.cross_entropy(y1, t) + F.cross_entropy(y2, t)``), so that a
    call from another file is a loss site for what it passes there."""

    #: position of the parameter (``None``: keyword-only) and its name
    index: Optional[int]
    name: str
    #: as :class:`nnlint.facts.models.LossSite`: the loss kind, what it expects, its framework
    kind: str
    expects: str
    framework: str


@dataclass(frozen=True)
class ModuleSummary:
    module: str
    path: str
    is_package: bool = False
    #: top-level class or variable name -> what the model looks like
    models: Mapping[str, "ModelSummary"] = field(default_factory=dict)
    #: module-level constants with a literal value
    constants: Mapping[str, Any] = field(default_factory=dict)
    #: import bindings (local name -> canonical qualified name), for re-exports
    bindings: Mapping[str, str] = field(default_factory=dict)
    #: calls of other project modules' functions and classes, with the models and losses they pass
    calls: tuple[CallRecord, ...] = ()
    #: top-level function name -> the parameters it hands to a loss as the prediction
    loss_functions: Mapping[str, tuple[LossParameter, ...]] = field(default_factory=dict)
    #: top-level function name -> the positions of the parameters it runs as modules
    #: (``def forward_step(model, batch): return model(batch.x)``: ``(0,)``)
    runners: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    #: modules it star-imports (``from .generator import *`` in a package's ``__init__``): their
    #: names are its names too
    star_imports: tuple[str, ...] = ()
    #: its module-level classes and functions (what ``from <module> import *`` brings)
    defines: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        payload = json.dumps(
            [self.module, self.is_package, sorted(self.constants.items(), key=repr),
             sorted(self.bindings.items()),
             sorted((k, repr(v)) for k, v in self.models.items()),
             [repr(call) for call in self.calls],
             sorted((k, repr(v)) for k, v in self.loss_functions.items()),
             sorted(self.runners.items()), self.star_imports, self.defines],
            default=repr,
        )
        return hashlib.sha256(payload.encode()).hexdigest()


class ProjectIndex:
    """Lookup of project symbols by qualified name, preferring the importer's neighbours."""

    def __init__(self, summaries: Iterable[ModuleSummary]) -> None:
        self._by_module: dict[str, list[ModuleSummary]] = {}
        #: id(summary) -> its fingerprint / the project modules it imports (both asked per importer)
        self._fingerprints: dict[int, str] = {}
        self._imports: dict[int, list[ModuleSummary]] = {}
        self._entries: dict[int, bytes] = {}
        #: call target -> the records of calls to it (built on first use)
        self._calls: Optional[dict[str, tuple[CallRecord, ...]]] = None
        #: (id(summary), depth) -> the summary with its other-file models filled in
        self._completed: dict[tuple[int, int], ModelSummary] = {}
        #: absolute path -> summary (built on first use)
        self._files: Optional[dict[str, ModuleSummary]] = None
        #: (module name, importer) -> the module it names there
        self._modules: dict[tuple[str, Optional[str]], Optional[ModuleSummary]] = {}
        digest = hashlib.sha256()
        for summary in sorted(summaries, key=lambda s: s.path):
            self._by_module.setdefault(summary.module, []).append(summary)
            fingerprint = summary.fingerprint()
            self._fingerprints[id(summary)] = fingerprint
            digest.update(summary.path.encode() + b"\0" + fingerprint.encode())
        self.fingerprint = digest.hexdigest()

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_module.values())

    def calls_to(self, qualname: str) -> tuple[CallRecord, ...]:
        """The calls other files make of the project function or class ``qualname`` (``train.fit``)."""
        if self._calls is None:
            calls: dict[str, list[CallRecord]] = {}
            for summaries in self._by_module.values():
                for summary in summaries:
                    for record in summary.calls:
                        calls.setdefault(record.target, []).append(record)
            self._calls = {k: tuple(v) for k, v in calls.items()}
        return self._calls.get(qualname, ())

    def _callers_entry(self, summary: ModuleSummary) -> bytes:
        """What the calls of ``summary``'s functions from other files pass (a dependency of its results)."""
        prefix = summary.module + "."
        if self._calls is None:
            self.calls_to("")
        assert self._calls is not None
        found = sorted(repr(record) for target, records in self._calls.items() if target.startswith(prefix)
                       for record in records)
        return "\0".join(found).encode()

    def module(self, name: str, near: Optional[str] = None) -> Optional[ModuleSummary]:
        key = (name, near)
        if key not in self._modules:  # asked for every prefix of every qualname resolved: memoised
            self._modules[key] = self._module(name, near)
        return self._modules[key]

    def _module(self, name: str, near: Optional[str]) -> Optional[ModuleSummary]:
        candidates = self._by_module.get(name)
        if not candidates and "." in name:
            # a namespace package (no ``__init__.py``): ``nspkg.model`` is the file ``nspkg/model.py``,
            # which names itself ``model``
            parts = name.split(".")
            candidates = [s for s in self._by_module.get(parts[-1], ())
                          if Path(os.path.abspath(s.path)).with_suffix("").parts[-len(parts):] == tuple(parts)]
        if not candidates and near is not None:
            # a script's own folder comes first on ``sys.path``: ``import utils`` in ``train.py`` is the
            # file next to it, also where that folder is a package and names it ``repo.utils``
            # (plain string paths: asked for every prefix of every import of every file)
            base = os.path.join(os.path.dirname(os.path.abspath(near)), *name.split("."))
            by_file = self._by_file()
            return by_file.get(base + ".py") or by_file.get(os.path.join(base, "__init__.py"))
        if not candidates:
            return None
        if len(candidates) == 1 or near is None:
            return candidates[0]
        near_dir = Path(os.path.abspath(near)).parent
        return max(candidates, key=lambda s: _common_depth(Path(os.path.abspath(s.path)).parent, near_dir))

    def _by_file(self) -> dict[str, ModuleSummary]:
        """Summaries by absolute file path (built on first use)."""
        if self._files is None:
            self._files = {os.path.abspath(s.path): s for summaries in self._by_module.values() for s in summaries}
        return self._files

    def resolve(
        self, qualname: str, near: Optional[str] = None, _depth: int = 0, any_name: bool = False
    ) -> Optional[tuple[ModuleSummary, str]]:
        """The module defining ``qualname`` (a model, constant, loss function or runner; with
        ``any_name``, also any other class or function) and the attribute name there, following
        re-exports."""
        if _depth > 8:
            return None
        module, _, attr = qualname.rpartition(".")
        while module:
            summary = self.module(module, near)
            if summary is not None:
                if attr in summary.models or attr in summary.constants or attr in summary.loss_functions \
                        or attr in summary.runners or (any_name and attr in summary.defines):
                    return summary, attr
                head, _, rest = attr.partition(".")
                target = summary.bindings.get(head)
                if target is not None and target != qualname:
                    return self.resolve(f"{target}.{rest}" if rest else target, summary.path, _depth + 1, any_name)
                for star in reversed(summary.star_imports):  # ``from .generator import *`` re-exports
                    found = self.resolve(f"{star}.{attr}", summary.path, _depth + 1, any_name)
                    if found is not None:
                        return found
                return None
            module, _, head = module.rpartition(".")
            attr = f"{head}.{attr}"
        return None

    def dependencies_fingerprint(self, summary: ModuleSummary, max_depth: int = 4) -> str:
        """Fingerprint of the project modules ``summary`` imports, transitively (for the cache)."""
        digest = hashlib.sha256()
        digest.update(self._callers_entry(summary))  # what other files pass to its functions
        seen: set[str] = {summary.path}
        frontier = [summary]
        for _ in range(max_depth):
            next_frontier: list[ModuleSummary] = []
            for current in frontier:
                for found in self._imported(current):
                    if found.path not in seen:
                        seen.add(found.path)
                        digest.update(self._entry_of(found))
                        next_frontier.append(found)
            frontier = next_frontier
        return digest.hexdigest()

    def _imported(self, current: ModuleSummary) -> list[ModuleSummary]:
        """The project modules ``current``'s imports resolve to, in binding order (memoised)."""
        held = id(current) in self._fingerprints  # ids of summaries the index holds stay unique
        cached = self._imports.get(id(current)) if held else None
        if cached is not None:
            return cached
        out: list[ModuleSummary] = []
        for target in sorted({*current.bindings.values(), *current.star_imports}):
            parts = target.split(".")
            for end in range(len(parts), 0, -1):
                found = self.module(".".join(parts[:end]), current.path)
                if found is not None:
                    out.append(found)
                    break
        if held:
            self._imports[id(current)] = out
        return out

    def _entry_of(self, summary: ModuleSummary) -> bytes:
        """``path + fingerprint`` as hashed for a dependency; memoised for held summaries."""
        found = self._entries.get(id(summary))  # held summaries only (see _imported)
        if found is None:
            fingerprint = self._fingerprints.get(id(summary)) or summary.fingerprint()
            found = summary.path.encode() + fingerprint.encode()
            if id(summary) in self._fingerprints:
                self._entries[id(summary)] = found
        return found

    def defines(self, qualname: str, near: Optional[str] = None) -> bool:
        """Does a project module define ``qualname`` (a class, function, model or constant), also
        through re-exports?"""
        return self.resolve(qualname, near, any_name=True) is not None

    def model(self, qualname: str, near: Optional[str] = None, _depth: int = 0) -> Optional["ModelSummary"]:
        """The summary of the project model ``qualname``, with what it takes from models of other
        project files (its output, their dropout and batch norm) filled in."""
        found = self.resolve(qualname, near)
        summary = found[0].models.get(found[1]) if found else None
        if summary is None or not (summary.output_model or summary.parts) or _depth > 4:
            return summary
        key = (id(summary), _depth)
        done = self._completed.get(key)
        if done is None:
            done = self._complete(summary, found[0].path, _depth)  # type: ignore[index]
            self._completed[key] = done
        return done

    def _complete(self, summary: "ModelSummary", path: str, depth: int) -> "ModelSummary":
        changes: dict[str, Any] = {}
        inner = self.model(summary.output_model, path, depth + 1) if summary.output_model else None
        if inner is not None and summary.output_activation is None:
            changes.update(output_activation=inner.output_activation, output_units=inner.output_units,
                           output_site=inner.output_site, output_elements=inner.output_elements,
                           element_sites=inner.element_sites, element_keys=inner.element_keys)
        held = [self.model(part, path, depth + 1) for part in summary.parts]
        changes["has_dropout"] = summary.has_dropout or any(part.has_dropout for part in held if part)
        changes["has_batchnorm"] = summary.has_batchnorm or any(part.has_batchnorm for part in held if part)
        return dataclasses.replace(summary, **changes)

    def constant(self, qualname: str, near: Optional[str] = None, default: Any = None) -> Any:
        found = self.resolve(qualname, near)
        if found and found[1] in found[0].constants:
            return found[0].constants[found[1]]
        return default

    def loss_parameters(self, qualname: str, near: Optional[str] = None) -> tuple[LossParameter, ...]:
        """The parameters the project function ``qualname`` hands to a loss as its prediction."""
        found = self.resolve(qualname, near)
        return found[0].loss_functions.get(found[1], ()) if found else ()

    def runs(self, qualname: str, near: Optional[str] = None) -> tuple[int, ...]:
        """The positions of the parameters the project function ``qualname`` runs as modules."""
        found = self.resolve(qualname, near)
        return found[0].runners.get(found[1], ()) if found else ()


def _common_depth(a: Path, b: Path) -> int:
    depth = 0
    for x, y in zip(a.parts, b.parts):
        if x != y:
            break
        depth += 1
    return depth


EMPTY_INDEX = ProjectIndex(())


class RecordingIndex:
    """A project index that remembers every question asked of it and the answer it gave.

    Phase one computes a file's facts without the project (nothing is known yet). If
    the full index of phase two answers each recorded question the same way, the facts
    computed so far are exactly what phase two would compute, so they can be kept
    (:meth:`nnlint.facts.FileFacts.with_project`) instead of being built a second time.
    """

    def __init__(self, inner: ProjectIndex = EMPTY_INDEX) -> None:
        self._inner = inner
        self._asked: dict[tuple[str, tuple[Any, ...]], Any] = {}
        #: something was asked that is not recorded: the answers cannot be compared
        self._unrecorded = False

    def __len__(self) -> int:
        self._unrecorded = True
        return len(self._inner)

    def __getattr__(self, name: str) -> Any:
        # any other question (resolve, module, ...) is answered but makes the facts unreusable
        if name.startswith("_"):
            raise AttributeError(name)
        self._unrecorded = True
        return getattr(self._inner, name)

    def model(self, qualname: str, near: Optional[str] = None) -> Optional[ModelSummary]:
        answer = self._inner.model(qualname, near)
        self._asked[("model", (qualname, near))] = answer
        return answer

    def constant(self, qualname: str, near: Optional[str] = None, default: Any = None) -> Any:
        try:
            self._asked[("constant", (qualname, near, default))] = answer = self._inner.constant(
                qualname, near, default)
        except TypeError:  # an unhashable default: not recordable
            self._unrecorded = True
            return self._inner.constant(qualname, near, default)
        return answer

    def calls_to(self, qualname: str) -> tuple[CallRecord, ...]:
        answer = self._inner.calls_to(qualname)
        self._asked[("calls_to", (qualname,))] = answer
        return answer

    def loss_parameters(self, qualname: str, near: Optional[str] = None) -> tuple[LossParameter, ...]:
        answer = self._inner.loss_parameters(qualname, near)
        self._asked[("loss_parameters", (qualname, near))] = answer
        return answer

    def defines(self, qualname: str, near: Optional[str] = None) -> bool:
        answer = self._inner.defines(qualname, near)
        self._asked[("defines", (qualname, near))] = answer
        return answer

    def runs(self, qualname: str, near: Optional[str] = None) -> tuple[int, ...]:
        answer = self._inner.runs(qualname, near)
        self._asked[("runs", (qualname, near))] = answer
        return answer

    def answers_alike(self, index: ProjectIndex) -> bool:
        """Does ``index`` answer every question asked so far as this index did?"""
        if self._unrecorded:
            return False
        for (method, arguments), answer in self._asked.items():
            if getattr(index, method)(*arguments) != answer:
                return False
        return True
