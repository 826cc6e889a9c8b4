"""``--format json``: ``{"version": 1, "findings": [...]}``, each finding as :meth:`Finding.to_json`."""
from __future__ import annotations

import json
from typing import Sequence, TextIO

from nnlint.findings import Finding

JSON_VERSION = 1


def write_json(findings: Sequence[Finding], stream: TextIO) -> None:
    document = {"version": JSON_VERSION, "findings": [f.to_json() for f in findings]}
    # default=str: a runtime finding's ``extra`` may carry values JSON has no type for.
    stream.write(json.dumps(document, indent=2, default=str) + "\n")
