"""One rank of the 2-process DDP runs in test_distributed.py (spawned; gloo on CPU)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import nnlint
from helpers import mlp, regression_batch

STEPS = 20
NAN_STEP = 7


def _counting_all_reduce(counter: list[int]) -> Any:
    original = dist.all_reduce

    def all_reduce(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return original(tensor, *args, **kwargs)

    return original, all_reduce


def _train(rank: int, mode: str | None, nan_on_rank: int | None) -> dict[str, Any]:
    """A DDP run: same initial weights, different data per rank; ``mode`` None: no monitor."""
    torch.manual_seed(0)
    model = mlp()
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05)
    torch.manual_seed(100 + rank)
    counter = [0]
    checks = [0]

    class CountChecks:
        def on_check(self, mon: Any, window: Any) -> None:
            checks[0] += 1

    def step(index: int, mon: Any) -> None:
        x, y = regression_batch()
        if rank == nan_on_rank and index == NAN_STEP:
            x[0, 0] = float("nan")
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(ddp(x), y)
        loss.backward()
        optimizer.step()
        if mon is not None:
            mon.observe_loss(loss)

    result: dict[str, Any] = {}
    if mode is None:
        for index in range(STEPS):
            step(index, None)
    else:
        mon = nnlint.monitor(ddp, optimizer, mode, check_every=5, use_config=False)
        mon.add_observer(CountChecks())
        original, counting = _counting_all_reduce(counter)
        dist.all_reduce = counting
        try:
            with mon:
                for index in range(STEPS):
                    step(index, mon)
        finally:
            dist.all_reduce = original
        report = io.StringIO()
        mon.report(stream=report)
        result.update(
            findings=[(f.code, f.module, f.step, f.message) for f in mon.findings],
            fixes=[(f.code, f.action, f.step) for f in mon.fixes],
            report=report.getvalue(),
            all_reduces=counter[0],
            checks=checks[0],
            world_size=mon.world_size,
        )
    result["weights"] = [p.detach().clone() for p in model.parameters()]
    return result


def run(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        results = {
            "fix_nan_on_rank_1": _train(rank, "fix", nan_on_rank=1),
            "warn": _train(rank, "warn", nan_on_rank=None),
            "plain": _train(rank, None, nan_on_rank=None),
        }
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
