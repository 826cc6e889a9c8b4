"""The monitor as a Hugging Face ``transformers.Trainer`` callback.

    from nnlint.integrations.transformers import NNLintCallback

    callback = NNLintCallback(mode="warn")
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
    trainer.train()
    callback.findings, callback.fixes, callback.report()

It watches the model and the optimizer from ``on_train_begin`` to ``on_train_end``. A step
is an optimizer step: with gradient accumulation its micro-batches are one step (their
losses averaged), and ``max_grad_norm`` clipping is seen as any clipping before ``optimizer.step()`` is. The
loss of each micro-batch is read from the model's output (``output.loss``), so a NaN or
infinite loss is reported even though ``logging_nan_inf_filter`` keeps it out of the
logged training loss. Evaluation runs in ``eval()``/``no_grad`` and is not counted.

The Trainer has no callback for a failed ``train()``: when it raises (``mode="raise"``
included), call ``callback.close()`` or use ``with callback: trainer.train()`` so that
every hook is removed.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from transformers import TrainerCallback

from nnlint.integrations._adapter import AdapterAttributes, MonitorAdapter


def _torch_optimizer(optimizer: Any) -> Any:
    """The ``torch.optim.Optimizer`` inside accelerate's ``AcceleratedOptimizer``: its
    ``step`` is the one that runs, so its step hooks are the ones that fire."""
    import torch

    seen = 0
    while seen < 8 and isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
        seen += 1
    return optimizer


class NNLintCallback(AdapterAttributes, TrainerCallback):
    """``mode``: "warn" | "fix" | "raise" (as :func:`nnlint.monitor`). ``log_dir``: write an
    event log there (see :mod:`nnlint.integrations.events`). ``print_report``: print the
    report on the main process when training ends. Other keywords go to
    :func:`nnlint.monitor` (``check_every``, ``options``, ``select``, ...)."""

    def __init__(self, mode: str = "warn", *, log_dir: Optional[str] = None, print_report: bool = True,
                 **monitor_kwargs: Any) -> None:
        self._adapter = MonitorAdapter(mode, print_report, log_dir, monitor_kwargs)
        self._loss_handle: Any = None

    def close(self) -> None:
        """Remove every hook now (after a ``train()`` that raised); idempotent."""
        self._remove_loss_hook()
        self._adapter.finish(raise_errors=False)

    def __enter__(self) -> "NNLintCallback":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()

    # -- Trainer events ------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        if model is None:
            raise ValueError("nnlint: the Trainer passed no model to on_train_begin")
        optimizer = kwargs.get("optimizer")
        self._remove_loss_hook()
        self._adapter.start(model, _torch_optimizer(optimizer) if optimizer is not None else None)
        self._loss_handle = model.register_forward_hook(self._on_model_output)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._remove_loss_hook()
        self._adapter.finish(raise_errors=True, print_report=bool(state.is_world_process_zero))

    # -- the loss ---------------------------------------------------------------------

    def _on_model_output(self, module: Any, inputs: Any, output: Any) -> None:
        import torch

        if not (module.training and torch.is_grad_enabled()):
            return
        loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
        if isinstance(loss, torch.Tensor):
            self._adapter.observe_loss(loss)

    def _remove_loss_hook(self) -> None:
        handle, self._loss_handle = self._loss_handle, None
        if handle is not None:
            handle.remove()
