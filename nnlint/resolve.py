"""Configuration per file: each file is linted with the nearest ``pyproject.toml`` with
``[tool.nnlint]`` above it, as ruff does, so ``nnlint a b`` and ``nnlint b a`` agree.

What the caller changed in the settings it was given (command-line flags such as ``--cache-dir``)
applies to every configuration found.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional

from nnlint.catalogue import Catalogue
from nnlint.config import Settings, find_config, load_settings


class ConfigResolver:
    """Finds and loads the configuration of each folder once."""

    def __init__(self, given: Settings, catalogue: Catalogue) -> None:
        self._given = given
        self._catalogue = catalogue
        self._folders: dict[str, Optional[Path]] = {}
        self._settings: dict[Optional[Path], Settings] = {given.config_path: given}
        self._changed: Optional[dict[str, object]] = None

    def config_of(self, path: str) -> Optional[Path]:
        """The configuration file that applies to ``path`` (a file or a folder)."""
        folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        if folder not in self._folders:
            self._folders[folder] = find_config(Path(folder))
        return self._folders[folder]

    def settings(self, config: Optional[Path]) -> Settings:
        """The settings of ``config`` with the caller's changes to the settings it gave applied."""
        found = self._settings.get(config)
        if found is None:
            found = self._settings[config] = load_settings(config, self._catalogue).with_overrides(**self._changes())
        return found

    def _changes(self) -> dict[str, object]:
        """Fields of the given settings that differ from what their own configuration file says."""
        if self._changed is None:
            loaded = load_settings(self._given.config_path, self._catalogue)
            self._changed = {field.name: getattr(self._given, field.name) for field in dataclasses.fields(Settings)
                             if field.name not in ("root", "config_path")
                             and getattr(self._given, field.name) != getattr(loaded, field.name)}
        return self._changed
