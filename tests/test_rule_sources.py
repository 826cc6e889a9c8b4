"""``nnlint explain``: each static rule's Source section says the advice in words a user can follow
and names a public reference (documentation page or paper), beside the seed documents it encodes."""
from __future__ import annotations

import re

import pytest

from nnlint.catalogue import RuleInfo, load_catalogue

STATIC = [info for info in load_catalogue().rules
          if info.kind == "static" and info.code not in ("NN001", "NN002")]
PUBLIC = re.compile(r"https://(pytorch\.org|keras\.io|www\.tensorflow\.org)/\S+|arXiv:\d{4}\.\d{4,5}|"
                    r"\((?:AISTATS|ICML|JMLR)[^)]*\d{4}\)")


@pytest.mark.parametrize("info", STATIC, ids=lambda info: info.code)
def test_source_gives_the_advice_and_a_public_reference(info: RuleInfo) -> None:
    source = info.sections()["Source"]
    advice = re.search(r"In short: (.+?) Public reference: (.+)", " ".join(source.split()))
    assert advice is not None, f"{info.code}: no 'In short: ... Public reference: ...' in its Source"
    assert len(advice.group(1).split()) >= 5
    assert PUBLIC.search(advice.group(2)), f"{info.code}: no documentation link or paper in {advice.group(2)!r}"
    assert re.search(r"\d{3}_[0-9a-f]{16}\.txt", source), f"{info.code}: the seed document is still named"
