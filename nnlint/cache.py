"""A result cache keyed by file content, configuration, rules and nnlint version.

One pickle per (version, settings) in ``.nnlint_cache/`` (git-ignored by a
``.gitignore`` inside it, safe to delete). A file's phase-one summary is reused
when its content is unchanged; its findings are reused when, in addition, the
summaries of the project modules it imports are unchanged.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from nnlint.facts.index import ModuleSummary
from nnlint.files import write_atomically
from nnlint.findings import Finding


@dataclass(frozen=True)
class CacheEntry:
    content_hash: str
    summary: Optional[ModuleSummary]
    early: Tuple[Finding, ...]
    dependencies: Optional[str] = None
    findings: Optional[Tuple[Finding, ...]] = None


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class ResultCache:
    def __init__(self, directory: Path, key: str) -> None:
        self.directory = directory
        self.path = directory / f"{key[:32]}.pickle"
        self.entries: dict[str, CacheEntry] = {}
        self._dirty = False

    def load(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                entries = pickle.load(handle)
            if isinstance(entries, dict):
                self.entries = entries
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
            self.entries = {}  # a stale or corrupt cache is just a miss

    def get(self, path: str, digest: str) -> Optional[CacheEntry]:
        entry = self.entries.get(path)
        return entry if entry is not None and entry.content_hash == digest else None

    def put(self, path: str, entry: CacheEntry) -> None:
        if self.entries.get(path) != entry:
            self.entries[path] = entry
            self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            root = self.directory.parent
            gitignore = root / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("# Created by nnlint: the cache is safe to delete.\n*\n")
            tag = root / "CACHEDIR.TAG"
            if not tag.exists():
                tag.write_text("Signature: 8a477f597d28d172789f06886806bc55\n# nnlint cache\n")
            data = pickle.dumps(self.entries, protocol=pickle.HIGHEST_PROTOCOL)
            if self.path.exists():
                write_atomically(str(self.path), data)
            else:
                tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only tree still lints; it just isn't cached
