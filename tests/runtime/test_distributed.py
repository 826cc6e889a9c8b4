"""The monitor under DDP: 2 processes, gloo, CPU. Statistics are reduced over ranks at each
check (one collective), every rank reaches the same findings and fixes, rank 0 reports,
and a NaN on one rank makes every rank skip that step."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import ddp_worker

dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with the gloo backend is not available", allow_module_level=True)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    import torch.multiprocessing as mp

    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(ddp_worker.run, args=(2, str(tmp / "init"), str(tmp)), nprocs=2, join=True)
    return [torch.load(tmp / f"rank{rank}.pt") for rank in range(2)]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_nan_on_one_rank_is_skipped_on_every_rank(ranks: list[dict[str, Any]]) -> None:
    zero, one = (r["fix_nan_on_rank_1"] for r in ranks)
    assert zero["world_size"] == one["world_size"] == 2
    assert _same(zero["weights"], one["weights"])
    assert all(torch.isfinite(w).all() for w in zero["weights"])
    skips = [(action, step) for _, action, step in zero["fixes"] if action == "skip-step"]
    assert skips == [("skip-step", ddp_worker.NAN_STEP)]
    assert zero["fixes"] == one["fixes"]
    # Rank 0 saw only gradients made NaN by DDP's all-reduce; the reduced statistics
    # show where the NaN started on rank 1: the batch reaching the first layer.
    assert zero["findings"] == one["findings"]
    nan = [f for f in zero["findings"] if f[0] == "NR301"]
    assert nan and nan[0][1:3] == ("module.0", ddp_worker.NAN_STEP), nan
    assert "NaN/Inf in the data" in nan[0][3]


def test_one_collective_per_check_and_rank_0_reports(ranks: list[dict[str, Any]]) -> None:
    for rank in ranks:
        result = rank["fix_nan_on_rank_1"]
        assert result["checks"] == 4 and result["all_reduces"] == result["checks"]
    assert "NR301" in ranks[0]["fix_nan_on_rank_1"]["report"]
    assert ranks[1]["fix_nan_on_rank_1"]["report"] == ""


def test_warn_mode_is_bit_identical_under_ddp(ranks: list[dict[str, Any]]) -> None:
    for rank in ranks:
        assert rank["warn"]["findings"] == []
        assert _same(rank["warn"]["weights"], rank["plain"]["weights"])
    assert _same(ranks[0]["warn"]["weights"], ranks[1]["warn"]["weights"])
