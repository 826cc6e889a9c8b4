from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # The CI box has 2 cores shared with other jobs; one intra-op thread is faster for
    # these tiny models and makes timings stable.
    torch.set_num_threads(1)
