"""Suite-wide set-up: the cache's per-user key lives in a temporary folder, never in the real home."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_cache_key(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNLINT_KEY_DIR", str(tmp_path_factory.getbasetemp() / "nnlint-key"))
