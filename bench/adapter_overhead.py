"""Cost of the monitor through the framework adapters: python bench/adapter_overhead.py [--steps N]

For one model (an MLP, 3 x 512, batch 128, CPU, one thread) it times, in one run, the seconds
per training step of

* a hand-written loop, plain and inside ``nnlint.monitor`` (the core's own cost);
* ``lightning.Trainer.fit``, without and with ``nnlint.integrations.lightning.NNLintCallback``;
* ``transformers.Trainer.train``, without and with ``nnlint.integrations.transformers.NNLintCallback``;

and prints each configuration's cost per step (monitored minus plain, in milliseconds) and
ratio. An adapter matches the core when its added cost per step is about the core's: the
frameworks' own per-step work makes their ratios smaller, so compare the milliseconds.
Frameworks that are not installed are skipped with a message. Each timing is the median of
``--rounds`` runs, plain and monitored alternating.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nnlint  # noqa: E402

INPUTS, WIDTH, BATCH = 256, 512, 128


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(INPUTS, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU(),
                         nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 10))


def data(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(steps * BATCH, INPUTS, generator=generator), torch.randint(0, 10, (steps * BATCH,),
                                                                                generator=generator)


def plain_loop(steps: int, monitored: bool) -> float:
    model, (x, y) = mlp(), data(steps)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def run() -> None:
        for i in range(steps):
            xb, yb = x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            if monitored:
                mon.observe_loss(loss)

    start = time.perf_counter()
    if monitored:
        with nnlint.monitor(model, optimizer) as mon:
            run()
    else:
        run()
    return (time.perf_counter() - start) / steps


def lightning_fit(steps: int, monitored: bool) -> float:
    import lightning as L
    from nnlint.integrations.lightning import NNLintCallback

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def training_step(self, batch: Any, index: int) -> torch.Tensor:
            return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    x, y = data(steps)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)
    callbacks = [NNLintCallback(print_report=False)] if monitored else []
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)
    start = time.perf_counter()
    trainer.fit(Module(), loader)
    return (time.perf_counter() - start) / steps


def transformers_train(steps: int, monitored: bool) -> float:
    import transformers
    from nnlint.integrations.transformers import NNLintCallback

    class Module(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"loss": nn.functional.cross_entropy(self.net(inputs), labels)}

    x, y = data(steps)
    rows = [{"inputs": x[i], "labels": y[i]} for i in range(len(x))]
    with tempfile.TemporaryDirectory() as folder:
        arguments = transformers.TrainingArguments(
            output_dir=folder, max_steps=steps, per_device_train_batch_size=BATCH, learning_rate=0.01,
            report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True)
        callbacks = [NNLintCallback(print_report=False)] if monitored else []
        trainer = transformers.Trainer(model=Module(), args=arguments, train_dataset=rows, callbacks=callbacks)
        start = time.perf_counter()
        trainer.train()
        return (time.perf_counter() - start) / steps


def timed(run: Callable[[int, bool], float], steps: int, rounds: int) -> tuple[float, float]:
    plain, monitored = [], []
    for _ in range(rounds):
        plain.append(run(steps, False))
        monitored.append(run(steps, True))
    return statistics.median(plain), statistics.median(monitored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    print(f"MLP 3 x {WIDTH}, batch {BATCH}, CPU, 1 thread, {options.steps} steps, median of {options.rounds}")
    print(f"{'loop':26} {'plain ms':>9} {'monitored ms':>13} {'added ms':>9} {'ratio':>6}")
    for name, run in (("hand-written + monitor", plain_loop), ("lightning + NNLintCallback", lightning_fit),
                      ("transformers + callback", transformers_train)):
        try:
            plain, monitored = timed(run, options.steps, options.rounds)
        except ImportError as error:
            print(f"{name:26} skipped: {error.name or error} is not installed")
            continue
        print(f"{name:26} {plain * 1e3:9.3f} {monitored * 1e3:13.3f} {(monitored - plain) * 1e3:9.3f} "
              f"{monitored / plain:6.3f}")


if __name__ == "__main__":
    main()
