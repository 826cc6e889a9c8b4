"""``nnlint run``: an unmodified training script, monitored.

    nnlint run [--mode warn|fix|raise] [--log-dir DIR] [--check-every N] script.py [args ...]
    nnlint run [options] -m package.module [args ...]

PyTorch's global hooks find what trains: every module whose forward runs in training mode
with gradients on is a candidate, and when an optimizer steps for the first time the
outermost candidate holding its parameters becomes the model, monitored with that
optimizer from the next step on (the first step of each optimizer is not watched). Once
every optimizer that stepped has its monitor, the global module hook is removed (it comes
back when an unknown optimizer steps). With a single monitored model, the scalar that
``backward()`` is called on is its loss.

At exit, also after a crash or Ctrl-C, every hook is removed and each monitor's report is
printed to standard error. The exit status is the script's own (1 for an uncaught
exception, 130 for Ctrl-C), or 1 when an error-severity finding was reported in raise mode.
On a terminal, one status line (step, loss, findings) is kept up to date at each check.
"""
from __future__ import annotations

import os
import runpy
import sys
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, TextIO

USAGE = ("usage: nnlint run [--mode warn|fix|raise] [--log-dir DIR] [--check-every N] "
         "(script.py | -m module) [args ...]")


@dataclass
class RunOptions:
    mode: Optional[str] = None
    log_dir: Optional[str] = None
    check_every: Optional[int] = None
    module: Optional[str] = None
    script: Optional[str] = None
    args: list[str] = field(default_factory=list)


class UsageError(ValueError):
    pass


def parse(argv: Sequence[str]) -> RunOptions:
    """Options up to the script (or ``-m module``); everything after it is the script's."""
    options = RunOptions()
    args = list(argv)
    i = 0

    def value(flag: str) -> str:
        nonlocal i
        if i + 1 >= len(args):
            raise UsageError(f"{flag} needs a value")
        i += 1
        return args[i]

    while i < len(args):
        arg = args[i]
        name, _, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in ("-h", "--help"):
            raise UsageError("")
        if name == "--mode":
            options.mode = inline or value(name)
            if options.mode not in ("warn", "fix", "raise"):
                raise UsageError(f"--mode must be warn, fix or raise, got {options.mode!r}")
        elif name == "--log-dir":
            options.log_dir = inline or value(name)
        elif name == "--check-every":
            text = inline or value(name)
            if not text.isdigit() or int(text) < 1:
                raise UsageError(f"--check-every must be a positive integer, got {text!r}")
            options.check_every = int(text)
        elif arg == "-m":
            options.module = value(arg)
            options.args = args[i + 1:]
            return options
        elif arg.startswith("-"):
            raise UsageError(f"unknown option {arg!r} (options go before the script)")
        else:
            options.script = arg
            options.args = args[i + 1:]
            return options
        i += 1
    raise UsageError("no script given")


def run_command(argv: Sequence[str]) -> int:
    try:
        options = parse(argv)
    except UsageError as error:
        print(USAGE, file=sys.stderr)
        if str(error):
            print(f"nnlint: error: {error}", file=sys.stderr)
            return 2
        return 0
    if options.script is not None and not os.path.isfile(options.script):
        print(f"nnlint: error: {options.script}: no such file", file=sys.stderr)
        return 2
    try:
        import torch  # noqa: F401
    except ImportError:
        print("nnlint: error: `nnlint run` needs torch (pip install torch)", file=sys.stderr)
        return 2
    return Runner(options).run()


class _StatusObserver:
    """A monitor observer: one status line on a terminal at each check."""

    def __init__(self, runner: "Runner") -> None:
        self.runner = runner

    def on_check(self, mon: Any, window: Any) -> None:
        losses = [s.loss for s in window.steps if s.loss is not None]
        self.runner._status(window.steps[-1].step if window.steps else None, losses[-1] if losses else None)


class Runner:
    def __init__(self, options: RunOptions, stream: Optional[TextIO] = None) -> None:
        self.options = options
        self.stream = stream if stream is not None else sys.stderr
        self.monitors: list[Any] = []  # (monitor, event log or None), in the order they started
        self.logs: list[Any] = []
        self._candidates: dict[int, Any] = {}  # id -> weakref of modules that ran forward in training
        self._optimizers: dict[int, Any] = {}  # id -> weakref of optimizers seen stepping
        self._paired: set[int] = set()
        self._module_hook: Any = None
        self._handles: list[Any] = []
        self._original_backward: Any = None
        self._live = self.stream.isatty()
        self._status_shown = False

    # -- global hooks -------------------------------------------------------------------

    def _install(self) -> None:
        import torch
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self._module_hooks(True)
        self._handles.append(register_optimizer_step_post_hook(self._on_step))
        original = torch.Tensor.backward
        runner = self

        def backward(tensor: Any, *args: Any, **kwargs: Any) -> Any:
            runner._on_backward(tensor)
            return original(tensor, *args, **kwargs)

        backward.__doc__ = original.__doc__
        self._original_backward = original
        torch.Tensor.backward = backward  # type: ignore[method-assign]

    def _module_hooks(self, on: bool) -> None:
        from torch.nn.modules.module import register_module_forward_pre_hook

        if on and self._module_hook is None:
            self._module_hook = register_module_forward_pre_hook(self._on_forward)
        elif not on and self._module_hook is not None:
            self._module_hook.remove()
            self._module_hook = None
            self._candidates.clear()

    def _uninstall(self) -> None:
        import torch

        self._module_hooks(False)
        while self._handles:
            self._handles.pop().remove()
        if self._original_backward is not None:
            torch.Tensor.backward = self._original_backward  # type: ignore[method-assign]
            self._original_backward = None

    def _on_forward(self, module: Any, inputs: Any) -> None:
        import torch

        if module.training and torch.is_grad_enabled() and id(module) not in self._candidates:
            self._candidates[id(module)] = weakref.ref(module)

    def _on_backward(self, tensor: Any) -> None:
        if len(self.monitors) == 1 and tensor.numel() == 1 and tensor.is_floating_point():
            self.monitors[0].observe_loss(tensor)

    def _on_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        import torch

        inner = getattr(optimizer, "optimizer", None)
        if isinstance(inner, torch.optim.Optimizer):
            return  # a wrapper (accelerate's): the optimizer inside it is the one watched
        key = id(optimizer)
        known = self._optimizers.get(key)
        if known is not None and known() is optimizer:
            return
        self._optimizers[key] = weakref.ref(optimizer)
        model = self._model_for(optimizer)
        if model is None:
            self._optimizers.pop(key)  # try again at its next step, with the module hook on
            self._module_hooks(True)
            return
        self._start(model, optimizer)
        self._module_hooks(False)  # every optimizer that stepped is paired now

    def _model_for(self, optimizer: Any) -> Any:
        """The outermost module that ran forward in training and holds the most of the
        optimizer's parameters (a DDP wrapper loses a tie to the model inside it)."""
        from nnlint.runtime.stats import has_own_forward

        wanted = {id(p) for group in optimizer.param_groups for p in group["params"]}
        best, best_key = None, None
        for ref in list(self._candidates.values()):
            module = ref()
            if module is None or not has_own_forward(module):
                continue
            owned = {id(p) for p in module.parameters()}
            overlap = len(wanted & owned)
            if overlap == 0:
                continue
            key = (overlap, -len(owned - wanted), -sum(1 for _ in module.modules()) if
                   type(module).__name__ == "DistributedDataParallel" else sum(1 for _ in module.modules()))
            if best_key is None or key > best_key:
                best, best_key = module, key
        return best

    def _start(self, model: Any, optimizer: Any) -> None:
        from nnlint.runtime.monitor import monitor

        kwargs: dict[str, Any] = {}
        if self.options.check_every:
            kwargs["check_every"] = self.options.check_every
        if self.options.log_dir:
            kwargs["log_dir"] = self.options.log_dir if not self.monitors else os.path.join(
                self.options.log_dir, f"{len(self.monitors) + 1}-{type(model).__name__}")
        mon = monitor(model, optimizer, self.options.mode, **kwargs)
        if self._live:
            mon.add_observer(_StatusObserver(self))
        mon.start()
        self.monitors.append(mon)
        self.logs.append(mon.event_log)

    # -- the status line ----------------------------------------------------------------

    def _status(self, step: Optional[int], loss: Optional[float]) -> None:
        findings = sum(len(m.findings) for m in self.monitors)
        text = f"nnlint: step {step if step is not None else '-'}"
        if loss is not None:
            text += f"  loss {loss:.4g}"
        text += f"  findings {findings}"
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self._status_shown = True

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> int:
        options = self.options
        saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else None
        status = 0
        self._install()
        try:
            if options.module is not None:
                sys.argv = [options.module, *options.args]
                sys.path.insert(0, os.getcwd())
                runpy.run_module(options.module, run_name="__main__", alter_sys=True)
            else:
                assert options.script is not None
                sys.argv = [options.script, *options.args]
                sys.path.insert(0, os.path.dirname(os.path.abspath(options.script)))
                runpy.run_path(options.script, run_name="__main__")
        except SystemExit as exit_:
            status = _exit_status(exit_.code, self.stream)
        except KeyboardInterrupt:
            self._end_status_line()
            print("nnlint: interrupted", file=self.stream)
            status = 130
        except BaseException:  # the script's own error: shown as Python would show it
            self._end_status_line()
            kind, error, tb = sys.exc_info()
            traceback.print_exception(kind, error, _script_frames(tb), file=self.stream)
            status = 1
        finally:
            sys.argv = saved_argv
            if saved_path0 is not None and sys.path and sys.path[0] != saved_path0:
                sys.path.pop(0)
            status = self._finish(status)
        return status

    def _finish(self, status: int) -> int:
        from nnlint.runtime.monitor import TrainingError

        self._uninstall()
        for mon in self.monitors:
            try:
                mon.close(raise_errors=False)
            except TrainingError:
                pass
        self._end_status_line()  # after the last check, which updates it once more
        if not self.monitors:
            print("nnlint run: no model trained (no optimizer stepped after a training forward pass); "
                  "nothing was monitored.", file=self.stream)
        for number, mon in enumerate(self.monitors, start=1):
            if len(self.monitors) > 1:
                print(f"-- model {number}: {type(mon.model).__name__}", file=self.stream)
            mon.report(stream=self.stream)
        for log in self.logs:
            if log is not None:
                print(f"event log: {log.path}", file=self.stream)
        errors = any(f.severity == "error" for mon in self.monitors for f in mon.findings)
        if errors and (self.options.mode or self._configured_mode()) == "raise" and status == 0:
            return 1
        return status

    def _configured_mode(self) -> str:
        return self.monitors[0].mode if self.monitors else "warn"

    def _end_status_line(self) -> None:
        if self._status_shown:
            self.stream.write("\n")
            self.stream.flush()
            self._status_shown = False


def _exit_status(code: Any, stream: TextIO) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=stream)  # sys.exit("message"), as Python prints it
    return 1


def _script_frames(tb: Any) -> Any:
    """Drop this runner's own frames (runpy's too) from the top of a traceback."""
    here = {os.path.abspath(__file__), os.path.abspath(runpy.__file__)}
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) in here:
        tb = tb.tb_next
    return tb
