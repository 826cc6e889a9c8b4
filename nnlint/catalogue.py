"""The rule catalogue: one file per code in ``rules/``.

Each file's module docstring is the rule's Markdown documentation and its rule
class carries the metadata as *literal* class attributes. The catalogue reads
that metadata with :mod:`ast` instead of importing the files, so ``nnlint
rules``, ``nnlint explain`` and the cache key never import libcst or torch.
Rule classes are imported only when something runs them.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Optional, Tuple

DOC_SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead", "Source")
OPTIONAL_SECTIONS = ("Fix safety", "Options")
_CODE_RE = re.compile(r"^(NN|NR)\d{3}$")


@dataclass(frozen=True)
class RuleInfo:
    """Everything the catalogue knows about one rule without importing it."""

    code: str
    name: str
    summary: str
    severity: str
    default: bool
    fixable: bool
    options: Mapping[str, Any]
    doc: str
    path: Path
    class_name: str
    kind: str  # "static" (NN) or "runtime" (NR)
    #: option name -> bounds its values must keep ("minimum", "maximum", "above", "below")
    option_ranges: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def module_name(self) -> str:
        return f"nnlint._rules.{self.path.stem}"

    def sections(self) -> dict[str, str]:
        return doc_sections(self.doc)


@dataclass(frozen=True)
class Catalogue:
    rules: Tuple[RuleInfo, ...]
    directory: Path
    fingerprint: str
    by_code: Mapping[str, RuleInfo] = field(default_factory=dict)

    def get(self, code: str) -> Optional[RuleInfo]:
        return self.by_code.get(code.upper())

    @property
    def static_rules(self) -> Tuple[RuleInfo, ...]:
        return tuple(r for r in self.rules if r.kind == "static")

    @property
    def runtime_rules(self) -> Tuple[RuleInfo, ...]:
        return tuple(r for r in self.rules if r.kind == "runtime")


def rules_directory() -> Path:
    """Locate the catalogue: installed as ``nnlint._rules`` or the checkout's ``rules/``."""
    try:
        spec = importlib.util.find_spec("nnlint._rules")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if Path(location, "__init__.py").exists():
                return Path(location)
    checkout = Path(__file__).resolve().parent.parent / "rules"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError("nnlint's rule catalogue (rules/) is missing from this installation")


def doc_sections(doc: str) -> dict[str, str]:
    """Split a rule doc into its ``## Heading`` sections."""
    sections: dict[str, str] = {}
    current: Optional[str] = None
    lines: list[str] = []
    in_fence = False
    for line in doc.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and line.startswith("## "):
            if current is not None:
                sections[current] = "\n".join(lines).strip()
            current, lines = line[3:].strip(), []
        elif current is not None:
            lines.append(line)
    if current is not None:
        sections[current] = "\n".join(lines).strip()
    return sections


def code_blocks(section: str) -> list[str]:
    """The fenced ``python`` blocks of a doc section, in order."""
    return [m.group(1) for m in re.finditer(r"```python\n(.*?)```", section, re.S)]


def _literal_attrs(cls: ast.ClassDef) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for stmt in cls.body:
        target: Optional[ast.expr] = None
        value: Optional[ast.expr] = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        if isinstance(target, ast.Name) and value is not None:
            try:
                attrs[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return attrs


def read_rule_file(path: Path) -> Optional[RuleInfo]:
    """Read one rule file's metadata; ``None`` if it holds no rule class."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    doc = ast.get_docstring(tree, clean=True) or ""
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        attrs = _literal_attrs(node)
        code = attrs.get("code")
        if not isinstance(code, str) or not _CODE_RE.match(code):
            continue
        sections = doc_sections(doc)
        summary = attrs.get("summary") or _first_sentence(sections.get("What it does", ""))
        return RuleInfo(
            code=code,
            name=str(attrs.get("name", "")),
            summary=str(summary),
            severity=str(attrs.get("severity", "warning")),
            default=bool(attrs.get("default", not code[2] == "9")),
            fixable=bool(attrs.get("fixable", False)),
            options=dict(attrs.get("options", {})),
            doc=doc,
            path=path,
            class_name=node.name,
            kind="runtime" if code.startswith("NR") else "static",
            option_ranges=_option_ranges(attrs.get("option_ranges")),
        )
    return None


def _option_ranges(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        return {}
    return {str(name): dict(bounds) for name, bounds in value.items() if isinstance(bounds, dict)}


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return match.group(1) if match else text


def load_catalogue(directory: Optional[Path] = None) -> Catalogue:
    """Read every rule file's metadata (fast: no rule is imported)."""
    directory = directory or rules_directory()
    infos: list[RuleInfo] = []
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        data = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + data)
        info = read_rule_file(path)
        if info is not None:
            infos.append(info)
    infos.sort(key=lambda info: info.code)
    return Catalogue(
        rules=tuple(infos),
        directory=directory,
        fingerprint=digest.hexdigest(),
        by_code={info.code: info for info in infos},
    )


def import_rule_module(info: RuleInfo) -> ModuleType:
    """Import a rule's file (by path, so a plain checkout works without installing)."""
    name = info.module_name
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, info.path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load rule {info.code} from {info.path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


#: the method the engine calls on a static rule (``check(ctx)``) and the monitor calls on
#: a runtime detector (``inspect(window, ctx)``): different names for different contracts
ENTRY_POINTS = {"static": "check", "runtime": "inspect"}


class RuleLoadError(TypeError):
    """A rule file whose class does not keep its kind's contract (a bug in the rule file)."""


def load_rule_class(info: RuleInfo) -> type:
    """The class of a static rule or a runtime detector, checked against its kind's contract:
    a static rule defines ``check(ctx)``, a detector ``inspect(window, ctx)``, never the other."""
    cls = getattr(import_rule_module(info), info.class_name)
    expected = ENTRY_POINTS[info.kind]
    (wrong,) = (name for kind, name in ENTRY_POINTS.items() if kind != info.kind)
    where = f"{info.path.name}: {info.class_name} ({info.code}, a {info.kind} rule)"
    bases = [klass for klass in cls.__mro__ if (klass.__module__, klass.__qualname__) in _BASES.values()]
    if [(klass.__module__, klass.__qualname__) for klass in bases] != [_BASES[info.kind]]:
        raise RuleLoadError(f"{where} must subclass {'.'.join(_BASES[info.kind])}")
    # The base class declares the entry point and raises NotImplementedError: only a
    # definition below it counts.
    own = cls.__mro__[: cls.__mro__.index(bases[0])]
    if any(wrong in vars(klass) for klass in cls.__mro__):
        raise RuleLoadError(
            f"{where} defines {wrong}(); its entry point is {expected}()" + _SIGNATURES[info.kind]
        )
    if not any(callable(vars(klass).get(expected)) for klass in own):
        raise RuleLoadError(f"{where} does not define {expected}()" + _SIGNATURES[info.kind])
    return cls


_BASES = {"static": ("nnlint.rule", "Rule"), "runtime": ("nnlint.runtime.detector", "Detector")}
_SIGNATURES = {
    "static": ": def check(self, ctx: Context) -> None",
    "runtime": ": def inspect(self, window: Window, ctx: DetectorContext) -> None",
}
