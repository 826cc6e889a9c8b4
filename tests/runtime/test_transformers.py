"""The Hugging Face Trainer callback with a real ``transformers.Trainer`` on CPU: a tiny
BERT built from a config (no download, no pretrained weights)."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any, Optional

import pytest
import torch

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_name] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import nnlint  # noqa: E402
from nnlint.integrations.transformers import NNLintCallback  # noqa: E402

from helpers import hook_count  # noqa: E402

INTERMEDIATE = "bert.encoder.layer.0.intermediate"


def tiny_bert(dead: bool = False) -> Any:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32, num_labels=1,
                                     hidden_act="relu", hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    model = transformers.BertForSequenceClassification(config)
    if dead:
        with torch.no_grad():
            model.bert.encoder.layer[0].intermediate.dense.bias.fill_(-100.0)  # every unit silent
    return model


class Rows(torch.utils.data.Dataset):
    def __init__(self, n: int = 96, nan_label_at: Optional[int] = None) -> None:
        g = torch.Generator().manual_seed(1)
        self.ids = torch.randint(1, 64, (n, 12), generator=g)
        self.labels = (self.ids[:, 0].float() / 64.0)
        self.fetched: list[int] = []  # the sampler shuffles: the order the Trainer asked for rows
        if nan_label_at is not None:
            self.labels[nan_label_at] = float("nan")  # one bad label in the data set

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        self.fetched.append(i)
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(12, dtype=torch.long),
                "labels": self.labels[i]}


def train(model: Any, tmp_path: Path, callbacks: list, data: Optional[Rows] = None, **arguments: Any) -> Any:
    kwargs: dict[str, Any] = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8,
                                  num_train_epochs=1, learning_rate=1e-3, report_to="none", save_strategy="no",
                                  use_cpu=True, disable_tqdm=True, logging_steps=4, seed=0,
                                  dataloader_num_workers=0, eval_strategy="steps", eval_steps=4)
    kwargs.update(arguments)
    data = data if data is not None else Rows()
    trainer = transformers.Trainer(model=model, args=transformers.TrainingArguments(**kwargs),
                                   train_dataset=data, eval_dataset=Rows(16), callbacks=callbacks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    return trainer


def callback(mode: str = "warn") -> NNLintCallback:
    return NNLintCallback(mode=mode, print_report=False, check_every=4, use_config=False)


def test_nan_loss_is_reported_although_the_logged_loss_hides_it(tmp_path: Path) -> None:
    cb = callback()
    data = Rows(nan_label_at=26)
    trainer = train(tiny_bert(), tmp_path, [cb], data)
    nan_step = data.fetched.index(26) // 8  # batches of 8, no accumulation: batch k is step k
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all(v == v for v in logged)  # logging_nan_inf_filter: the log shows no NaN
    nan = [f for f in cb.findings if f.code == "NR301"]
    assert nan and nan[0].step == nan_step and nan[0].severity == "error", cb.findings
    out = io.StringIO()
    cb.report(format="json", stream=out)
    assert any(e["kind"] == "loss" for e in __import__("json").loads(out.getvalue())["runtime"]["nonfinite_events"])


def test_dead_layer_is_found_and_named(tmp_path: Path) -> None:
    cb = callback()
    train(tiny_bert(dead=True), tmp_path, [cb])
    dead = [f for f in cb.findings if f.code == "NR201"]
    assert [f.module for f in dead] == [INTERMEDIATE + ".intermediate_act_fn"], cb.findings


def test_accumulation_and_clipping_are_quiet_and_bit_identical(tmp_path: Path) -> None:
    """Evaluation every 4 steps, max_grad_norm clipping and accumulation: no alarm on a
    healthy run, and warn mode leaves the weights bit-identical."""
    arguments = dict(gradient_accumulation_steps=2, max_grad_norm=0.5)
    plain = tiny_bert()
    train(plain, tmp_path, [], **arguments)
    watched = tiny_bert()
    cb = callback()
    train(watched, tmp_path, [cb], **arguments)
    assert cb.findings == [], cb.findings
    assert cb.monitor.step + 1 == 6  # 12 micro-batches, 6 optimizer steps: a step is an optimizer step
    for a, b in zip(plain.parameters(), watched.parameters()):
        assert torch.equal(a, b)
    assert hook_count(watched, cb.monitor.optimizer) == 0


def test_raise_mode_stops_training_and_close_removes_hooks(tmp_path: Path) -> None:
    model = tiny_bert()
    with NNLintCallback(mode="raise", print_report=False, check_every=4, use_config=False) as cb:
        with pytest.raises(nnlint.TrainingError, match="NR301"):
            train(model, tmp_path, [cb], Rows(nan_label_at=5))
    assert hook_count(model, cb.monitor.optimizer) == 0
