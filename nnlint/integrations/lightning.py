"""The monitor as a PyTorch Lightning callback.

    from nnlint.integrations.lightning import NNLintCallback

    callback = NNLintCallback(mode="warn")
    Trainer(callbacks=[callback]).fit(model, data)
    callback.findings, callback.fixes, callback.report()

It watches the ``LightningModule`` and its optimizer from ``on_fit_start`` to the end of
``fit`` (hooks removed also when training fails). Lightning runs every optimizer step
through a closure (training step, backward, its own gradient clipping), which the monitor
takes as one iteration, so accumulation, clipping and mixed precision need nothing more;
validation and sanity checks run in ``eval()``/``no_grad`` and are never counted as
training. Under DDP every rank monitors its own replica and rank 0 prints the report.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

try:  # the unified package first; the standalone one is the same API
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - depends on what is installed
    from pytorch_lightning.callbacks import Callback  # type: ignore[no-redef]

from nnlint.integrations._adapter import AdapterAttributes, MonitorAdapter

logger = logging.getLogger("nnlint.runtime")


class NNLintCallback(AdapterAttributes, Callback):
    """``mode``: "warn" | "fix" | "raise" (as :func:`nnlint.monitor`). ``log_dir``: write an
    event log there (see :mod:`nnlint.integrations.events`). ``print_report``: print the
    report on rank 0 when ``fit`` ends or fails. Other keywords go to :func:`nnlint.monitor`
    (``check_every``, ``options``, ``select``, ...)."""

    def __init__(self, mode: str = "warn", *, log_dir: Optional[str] = None, print_report: bool = True,
                 **monitor_kwargs: Any) -> None:
        super().__init__()
        self._adapter = MonitorAdapter(mode, print_report, log_dir, monitor_kwargs)
        self._state_to_load: Optional[dict[str, Any]] = None

    # -- Lightning hooks ---------------------------------------------------------

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        optimizers = list(trainer.optimizers)
        optimizer = optimizers[0] if len(optimizers) == 1 else None
        if len(optimizers) > 1:
            # The monitor follows one optimizer's steps; without one, a step is a forward pass.
            logger.warning("nnlint: %d optimizers: watching the LightningModule without optimizer hooks "
                           "(a step is one training forward pass)", len(optimizers))
        state, self._state_to_load = self._state_to_load, None
        self._adapter.start(pl_module, optimizer, state)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is not None and hasattr(loss, "detach"):
            self._adapter.observe_loss(loss)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._adapter.finish(raise_errors=True, print_report=bool(trainer.is_global_zero))

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._adapter.finish(raise_errors=False, print_report=bool(trainer.is_global_zero))

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._adapter.finish(raise_errors=False)

    # -- checkpoints: the detectors' windows continue in a resumed run ------------------

    def state_dict(self) -> dict[str, Any]:
        return self._adapter.monitor.state_dict() if self._adapter.monitor is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            self._state_to_load = dict(state_dict)
