"""Edge cases of the optimizer rules: NN311, NN312, NN902, NN903, NN905 (and nnlint.facts.optimizers).

Each snippet is linted with exactly one rule, run directly (a crashing rule fails the
test instead of being reported as an internal error), and compared with the lines that
carry a ``# !`` marker.
"""
from __future__ import annotations

import textwrap
from typing import Any, Mapping, Optional

import libcst as cst
import pytest

from nnlint.catalogue import load_catalogue, load_rule_class
from nnlint.facts import FileFacts
from nnlint.facts.index import ProjectIndex
from nnlint.findings import Finding
from nnlint.rule import Context

CATALOGUE = load_catalogue()


def lint(source: str, code: str, options: Optional[Mapping[str, Any]] = None,
         project: Optional[ProjectIndex] = None) -> list[Finding]:
    source = textwrap.dedent(source)
    info = CATALOGUE.get(code)
    assert info is not None, code
    rule = load_rule_class(info)()
    facts = FileFacts("snippet.py", cst.parse_module(source), module_name="snippet", project=project)
    ctx = Context("snippet.py", source, facts)
    ctx.run(rule, {**dict(info.options), **dict(options or {})})
    return sorted(ctx.findings(), key=lambda f: f.sort_key)


def marked_lines(source: str) -> list[int]:
    return [n for n, line in enumerate(textwrap.dedent(source).splitlines(), 1) if line.rstrip().endswith("# !")]


def check(source: str, code: str, options: Optional[Mapping[str, Any]] = None,
          project: Optional[ProjectIndex] = None) -> list[Finding]:
    findings = lint(source, code, options, project)
    assert [f.line for f in findings] == marked_lines(source), findings
    assert all(f.code == code for f in findings)
    return findings


def facts_of(source: str) -> FileFacts:
    return FileFacts("snippet.py", cst.parse_module(textwrap.dedent(source)), module_name="snippet")


MLP = """
import torch
import torch.nn as nn
import torch.optim as optim

model = nn.Sequential(
    nn.Linear(784, 256), nn.ReLU(),
    nn.Linear(256, 128), nn.ReLU(),
    nn.Linear(128, 10),
)
"""

KERAS_MLP = """
from tensorflow import keras
from tensorflow.keras import layers

model = keras.Sequential([
    layers.Dense(256, activation="relu"),
    layers.Dense(128, activation="relu"),
    layers.Dense(10),
])
"""


# ---------------------------------------------------------------------------
# facts: optimizer sites


def test_facts_resolve_optimizer_kinds_and_arguments() -> None:
    facts = facts_of(
        """
        import torch
        from torch.optim import Adam as A
        from torch.optim.sgd import SGD
        import tensorflow as tf
        from tensorflow.keras.optimizers import legacy

        a = A(net.parameters(), 0.1)
        b = SGD(net.parameters(), 0.1, 0.9)
        c = tf.compat.v1.train.AdagradOptimizer(0.5)
        d = legacy.Adam(lr=0.02)
        e = torch.optim.lr_scheduler.StepLR(a, 10)
        net.compile(optimizer="Adagrad", loss="mse")
        """
    )
    optimizers = facts.optimizers
    sites = optimizers.sites
    assert [(s.kind.name, s.framework) for s in sites] == [
        ("Adam", "torch"), ("SGD", "torch"), ("AdagradOptimizer", "tensorflow"), ("Adam", "keras"),
        ("Adagrad", "keras"),
    ]
    assert [optimizers.learning_rate(s) for s in sites] == [0.1, 0.1, 0.5, 0.02, None]
    assert optimizers.momentum(sites[1]) == 0.9
    assert sites[0].target == "a"
    assert sites[4].compile_call is not None and sites[4].call is None


def test_facts_trained_models_through_variables_and_self() -> None:
    facts = facts_of(
        """
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(4, 4)
                self.b = nn.Linear(4, 2)

            def forward(self, x):
                return self.b(self.a(x))

            def configure_optimizers(self):
                return torch.optim.Adagrad(self.parameters())

        net = Net()
        params = filter(lambda p: p.requires_grad, net.parameters())
        opt = torch.optim.Adagrad(params)
        unknown = torch.optim.Adagrad(get_params())
        """
    )
    optimizers = facts.optimizers
    first, second, third = optimizers.sites
    assert [m.name for m in optimizers.trained_models(first) or ()] == ["Net"]
    assert [m.layers for m in optimizers.trained_models(second) or ()] == [("Linear", "Linear")]
    assert optimizers.trained_models(third) is None


# ---------------------------------------------------------------------------
# NN311 AdaGrad on a deep network


def test_nn311_torch_keras_and_identifier() -> None:
    check(MLP + "opt = optim.Adagrad(model.parameters(), lr=0.01)  # !\n", "NN311")
    check(KERAS_MLP + "model.compile(optimizer=keras.optimizers.Adagrad(), loss='mse')  # !\n", "NN311")
    check(KERAS_MLP + "model.compile(optimizer='adagrad', loss='mse')  # !\n", "NN311")
    check(KERAS_MLP + "opt = keras.optimizers.Adagrad(0.01)  # !\nmodel.compile(opt, loss='mse')\n", "NN311")


def test_nn311_quiet_for_shallow_unknown_and_embedding_models() -> None:
    check(
        """
        import torch
        import torch.nn as nn

        linear = nn.Linear(10, 1)
        torch.optim.Adagrad(linear.parameters(), lr=0.1)
        one_hidden = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
        torch.optim.Adagrad(one_hidden.parameters())
        torch.optim.Adagrad(model.parameters())           # unknown model
        torch.optim.Adagrad(params)                       # unknown parameters
        recommender = nn.Sequential(nn.EmbeddingBag(10000, 64), nn.Linear(64, 64), nn.ReLU(),
                                    nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
        torch.optim.Adagrad(recommender.parameters())      # sparse embeddings: AdaGrad's home ground
        """,
        "NN311",
    )


def test_nn311_min_depth_option() -> None:
    source = MLP + "opt = optim.Adagrad(model.parameters())\n"
    assert lint(source, "NN311", {"min-depth": 4}) == []
    assert len(lint(source, "NN311", {"min-depth": 2})) == 1
    # options set in code bypass the configuration's checks: an unusable value is the default (3)
    for unusable in (True, 0, "4", None):
        assert len(lint(source, "NN311", {"min-depth": unusable})) == 1
    assert lint(source.replace("nn.Linear(256, 128), nn.ReLU(),", ""), "NN311", {"min-depth": True}) == []


def test_nn312_unusable_max_lr_is_the_default() -> None:
    deeper = MLP.replace("nn.Linear(128, 10),", "nn.Linear(128, 64), nn.ReLU(),\n    nn.Linear(64, 10),")
    source = deeper + "opt = optim.Adam(model.parameters(), lr=0.02)\n"
    assert len(lint(source, "NN312", {"max-lr": 0.01})) == 1
    assert lint(source, "NN312", {"max-lr": 0.05}) == []
    for unusable in (-1.0, 0, False, "high"):
        assert len(lint(source, "NN312", {"max-lr": unusable})) == 1


def test_nn311_model_from_another_file_and_torchvision() -> None:
    models = facts_of(
        """
        import torch.nn as nn
        class Deep(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
            def forward(self, x):
                return self.layers(x)
        """
    )
    summary = models.summary()
    summary = type(summary)(module="nets", path="nets.py", models=summary.models)
    check(
        """
        import torch
        import torchvision
        from nets import Deep

        model = Deep()
        torch.optim.Adagrad(model.parameters())  # !
        resnet = torchvision.models.resnet18()
        torch.optim.Adagrad(resnet.parameters())  # !
        """,
        "NN311",
        project=ProjectIndex([summary]),
    )


def test_nn311_multiple_parameter_owners_add_up() -> None:
    check(
        """
        import itertools
        import torch
        import torch.nn as nn

        encoder = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
        decoder = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 8))
        opt = torch.optim.Adagrad(itertools.chain(encoder.parameters(), decoder.parameters()))  # !
        half = torch.optim.Adagrad(list(encoder.parameters()) + list(other.parameters()))
        """,
        "NN311",
    )


# ---------------------------------------------------------------------------
# NN312 Adam learning rate


@pytest.mark.parametrize(
    "line",
    [
        "torch.optim.Adam(model.parameters(), lr=0.1)",
        "torch.optim.Adam(model.parameters(), 0.1)",
        "torch.optim.AdamW(model.parameters(), lr=2e-2)",
        "optim.NAdam(model.parameters(), lr=LR)",
        "optim.RAdam(model.parameters(), lr=LR / 2)",
        "optim.Adamax(params=model.parameters(), lr=0.02)",
        "keras.optimizers.Adam(learning_rate=0.05)",
        "keras.optimizers.Adam(0.05)",
        "keras.optimizers.Adam(lr=0.05)",
        "keras.optimizers.Nadam(learning_rate=0.05)",
        "keras.optimizers.AdamW(learning_rate=0.05)",
        "tf.train.AdamOptimizer(0.1)",
        "tf.compat.v1.train.AdamOptimizer(learning_rate=0.1)",
    ],
)
def test_nn312_flags_high_learning_rates(line: str) -> None:
    check(
        f"""
        import torch
        from torch import optim
        import tensorflow as tf
        from tensorflow import keras
        LR = 0.1
        opt = {line}  # !
        """,
        "NN312",
    )


@pytest.mark.parametrize(
    "line",
    [
        "torch.optim.Adam(model.parameters())",
        "torch.optim.Adam(model.parameters(), lr=1e-3)",
        "torch.optim.Adam(model.parameters(), lr=0.0099)",
        "torch.optim.Adam(model.parameters(), lr=1e-2)",        # the limit itself is accepted
        "torch.optim.Adam(model.parameters(), lr=lr)",          # a parameter: unknown
        "torch.optim.Adam(model.parameters(), lr=cfg.lr)",      # unknown
        "torch.optim.Adam(model.parameters(), betas=(0.9, 0.999), eps=0.1)",
        "torch.optim.SGD(model.parameters(), lr=0.1)",          # not Adam
        "torch.optim.Adagrad(model.parameters(), lr=0.1)",
        "torch.optim.Adam([image], lr=0.1)",                    # optimising an input, not a network
        "torch.optim.Adam([w, b.requires_grad_()], lr=0.1)",
        "keras.optimizers.Adam(learning_rate=schedule)",        # a schedule object
        "keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.1, 1000, 0.9))",
        "keras.optimizers.RMSprop(learning_rate=0.1)",
        "torch.optim.Adam([{'params': model.head.parameters(), 'lr': 1e-3}, {'params': model.body.parameters(), 'lr': 1e-4}], lr=0.1)",
        "torch.optim.Adam([dict(params=model.parameters(), lr=1e-3)], lr=0.1)",
    ],
)
def test_nn312_quiet(line: str) -> None:
    check(
        f"""
        import torch
        from tensorflow import keras
        def make(model, lr, cfg, image, w, b, schedule):
            return {line}
        """,
        "NN312",
    )


def test_nn312_argparse_defaults() -> None:
    check(
        """
        import argparse
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float, default=0.1)
        parser.add_argument("--fine-lr", type=float, default=1e-3)
        args = parser.parse_args()
        a = torch.optim.Adam(model.parameters(), lr=args.lr)  # !
        b = torch.optim.Adam(model.parameters(), lr=args.fine_lr)
        c = torch.optim.Adam(model.parameters(), lr=args.lr * 0.01)
        """,
        "NN312",
    )
    check(
        """
        import argparse
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float, default="0.1")

        def train(args, model):
            return torch.optim.Adam(model.parameters(), lr=args.lr)  # !

        if __name__ == "__main__":
            train(parser.parse_args(), Net())
        """,
        "NN312",
    )


def test_nn312_imported_constant() -> None:
    config = facts_of("LEARNING_RATE = 0.05\n").summary()
    config = type(config)(module="config", path="config.py", constants=config.constants)
    check(
        """
        import torch
        from config import LEARNING_RATE
        opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)  # !
        """,
        "NN312",
        project=ProjectIndex([config]),
    )


@pytest.mark.parametrize(
    "extra",
    [
        "sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=100)",
        "sched = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=1e-4, max_lr=1e-3)",
        "sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, step / 1000) * 0.01)",
        "sched = get_linear_schedule_with_warmup(opt, 100, 1000)",
        "for group in opt.param_groups:\n    group['lr'] = get_lr(step)",
        "opt.param_groups[0]['lr'] = 1e-3",
    ],
)
def test_nn312_quiet_when_the_learning_rate_is_set_elsewhere(extra: str) -> None:
    header = (
        "import torch\n"
        "from transformers import get_linear_schedule_with_warmup\n"
        "opt = torch.optim.Adam(model.parameters(), lr=0.1)\n"
    )
    check(header + extra + "\n", "NN312")


def test_nn312_decay_only_scheduler_still_reported() -> None:
    check(
        """
        import torch
        opt = torch.optim.Adam(model.parameters(), lr=0.1)  # !
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
        """,
        "NN312",
    )


def test_nn312_keras_learning_rate_callbacks_and_assignments() -> None:
    for extra in ("cb = keras.callbacks.LearningRateScheduler(schedule)",
                  "model.optimizer.learning_rate.assign(1e-3)",
                  "keras.backend.set_value(model.optimizer.lr, 1e-3)"):
        check(
            f"""
            from tensorflow import keras
            model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss="mse")
            {extra}
            """,
            "NN312",
        )


def test_nn312_small_networks_known_in_full_are_quiet() -> None:
    check(
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Policy(nn.Module):
            def __init__(self):
                super().__init__()
                self.affine = nn.Linear(4, 128)
                self.head = nn.Linear(128, 2)

            def forward(self, x):
                return F.softmax(self.head(F.relu(self.affine(x))), dim=-1)

        class Custom(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = GraphConv(16, 16)
                self.out = nn.Linear(16, 2)

            def forward(self, x):
                return self.out(self.conv(x))

        class LocalLayer(nn.Linear):
            def __init__(self, n, m):
                super().__init__(n, m)
                self.relu = nn.ReLU()
                self.opt = torch.optim.Adam(self.parameters(), lr=0.03)

        policy = Policy()
        a = torch.optim.Adam(policy.parameters(), lr=3e-2)
        linear = nn.Linear(3, 1)
        b = torch.optim.Adam(linear.parameters(), lr=0.1)
        mlp = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                            nn.Linear(8, 1))
        c = torch.optim.Adam(mlp.parameters(), lr=0.1)  # !
        custom = Custom()
        d = torch.optim.Adam(custom.parameters(), lr=0.1)  # !
        """,
        "NN312",
    )


def test_nn312_max_lr_option_and_message() -> None:
    source = "import torch\nLR = 3e-3\nopt = torch.optim.Adam(model.parameters(), lr=LR)\n"
    assert lint(source, "NN312") == []
    findings = lint(source, "NN312", {"max-lr": 1e-3})
    assert len(findings) == 1
    assert "LR = 0.003" in findings[0].message


def test_nn312_unrelated_calls_named_like_optimizers() -> None:
    check(
        """
        from mylib import Adam
        import torch
        opt = Adam(model.parameters(), lr=0.1)
        torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)
        """,
        "NN312",
    )


# ---------------------------------------------------------------------------
# NN902 SGD without momentum


def test_nn902_torch_and_keras() -> None:
    check(
        MLP
        + """
a = optim.SGD(model.parameters(), lr=0.1)  # !
b = optim.SGD(model.parameters(), 0.1, 0)  # !
c = optim.SGD(model.parameters(), lr=0.1, momentum=0.0)  # !
d = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
e = optim.SGD(model.parameters(), 0.1, 0.9)
f = optim.SGD(model.parameters(), lr=0.1, momentum=args.momentum)
g = optim.SGD(model.parameters(), **cfg)
h = optim.Adam(model.parameters())
""",
        "NN902",
    )
    check(KERAS_MLP + "model.compile(optimizer='sgd', loss='mse')  # !\n", "NN902")
    check(KERAS_MLP + "model.compile(optimizer=keras.optimizers.SGD(0.01), loss='mse')  # !\n", "NN902")
    check(KERAS_MLP + "model.compile(optimizer=keras.optimizers.SGD(0.01, 0.9), loss='mse')\n", "NN902")


def test_nn902_quiet_on_shallow_or_unknown_models() -> None:
    check(
        """
        import torch
        import torch.nn as nn
        linear = nn.Linear(13, 1)
        torch.optim.SGD(linear.parameters(), lr=1e-3)
        torch.optim.SGD(net.parameters(), lr=1e-3)
        """,
        "NN902",
    )


# ---------------------------------------------------------------------------
# NN903 training without a random seed

LOOP = """
for x, y in loader:  # !
    optimizer.zero_grad()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
"""


def test_nn903_reports_once_at_the_first_loop() -> None:
    check("import torch\nimport torch.nn.functional as F\n" + LOOP + LOOP.replace("  # !", ""), "NN903")


@pytest.mark.parametrize(
    "seeding",
    [
        "torch.manual_seed(0)",
        "random.seed(1)",
        "np.random.seed(2)",
        "tf.random.set_seed(3)",
        "keras.utils.set_random_seed(4)",
        "pl.seed_everything(5)",
        "set_seed(args.seed)",
        "torch.cuda.manual_seed_all(0)",
        "rng = np.random.default_rng(0)",
        "utils.fix_seeds()",
    ],
)
def test_nn903_any_seeding_call_counts(seeding: str) -> None:
    source = (
        "import random\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\nimport tensorflow as tf\n"
        "from tensorflow import keras\nimport pytorch_lightning as pl\nfrom utils import set_seed\nimport utils\n"
        f"{seeding}\n" + LOOP.replace("  # !", "")
    )
    check(source, "NN903")


def test_nn903_library_module_is_quiet_but_main_script_reported() -> None:
    library = """
        import torch

        def train_one_epoch(model, loader, optimizer):
            for x, y in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
        """
    check(library, "NN903")
    check(library.replace("for x, y in loader:", "for x, y in loader:  # !")
          + "\n        if __name__ == '__main__':\n            train_one_epoch(Net(), data, opt)\n", "NN903")
    check(library.replace("for x, y in loader:", "for x, y in loader:  # !") + "\n        train_one_epoch(Net(), data, opt)\n",
          "NN903")


def test_nn903_reachability_from_module_code() -> None:
    trainer = """
        import torch
        import torch.multiprocessing as mp

        class Trainer:
            def train(self):
                for x, y in self.loader:{marker}
                    self.opt.zero_grad()
                    self.model(x).sum().backward()
                    self.opt.step()

        def main(rank):
            Trainer().train()
        """
    # a launcher that receives the function
    check(trainer.format(marker="  # !") + "\n        mp.spawn(main, nprocs=2)\n", "NN903")
    # a method called on an instance
    check(trainer.format(marker="  # !") + "\n        if __name__ == '__main__':\n            Trainer().train()\n",
          "NN903")
    # a __main__ block that only runs a demo, not the training
    check(trainer.format(marker="") + "\n        if __name__ == '__main__':\n            print(Net()(x).shape)\n",
          "NN903")


def test_nn903_keras_and_lightning_fit() -> None:
    (keras_finding,) = check(
        KERAS_MLP + "model.compile(optimizer='adam', loss='mse')\nmodel.fit(x, y, epochs=3)  # !\n", "NN903")
    check(KERAS_MLP + "keras.utils.set_random_seed(0)\nmodel.fit(x, y, epochs=3)\n", "NN903")
    (lightning_finding,) = check(
        """
        import pytorch_lightning as pl
        trainer = pl.Trainer(max_epochs=3)
        trainer.fit(model, datamodule)  # !
        """,
        "NN903",
    )
    (torch_finding,) = check("import torch\nimport torch.nn.functional as F\n" + LOOP, "NN903")
    # the message names the seeding call of the script's framework
    assert "keras.utils.set_random_seed" in keras_finding.message and "torch" not in keras_finding.message
    assert "seed_everything" in lightning_finding.message
    assert "torch.manual_seed" in torch_finding.message
    # Keras 3 on the torch backend: a fit() is still seeded the Keras way
    (keras3_finding,) = check("import torch\n" + KERAS_MLP + "model.fit(x, y, epochs=3)  # !\n", "NN903")
    assert "keras.utils.set_random_seed" in keras3_finding.message
    check(
        """
        from sklearn.linear_model import LogisticRegression
        clf = LogisticRegression()
        clf.fit(x, y)
        """,
        "NN903",
    )


# ---------------------------------------------------------------------------
# NN905 gradient clipping by value


def test_nn905_spellings() -> None:
    check(
        """
        import torch
        import torch.nn as nn
        from torch.nn.utils import clip_grad_value_
        import tensorflow as tf
        from tensorflow import keras

        nn.utils.clip_grad_value_(model.parameters(), 1.0)  # !
        clip_grad_value_(model.parameters(), clip_value=0.5)  # !
        accelerator.clip_grad_value_(model.parameters(), 1.0)  # !
        opt = keras.optimizers.Adam(1e-3, clipvalue=0.5)  # !
        for p in model.parameters():
            p.grad.data.clamp_(-1, 1)  # !
            p.grad = torch.clamp(p.grad, -1, 1)  # !
        gvs = optimizer.compute_gradients(loss)
        capped = [(tf.clip_by_value(g, -1.0, 1.0), v) for g, v in gvs]  # !
        grads = tape.gradient(loss, model.trainable_variables)
        clipped = [tf.clip_by_value(x, -1.0, 1.0) for x in grads]  # !
        clipped2 = [tf.clip_by_value(grad, -1.0, 1.0) for grad in grads]  # !
        """,
        "NN905",
    )


def test_nn905_quiet_on_norm_clipping_and_other_clamps() -> None:
    check(
        """
        import torch
        import tensorflow as tf
        from tensorflow import keras

        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        keras.optimizers.Adam(1e-3, clipnorm=1.0)
        keras.optimizers.Adam(1e-3, clipvalue=None)
        images = tf.clip_by_value(images, 0.0, 1.0)
        probs = torch.clamp(probs, 1e-7, 1 - 1e-7)
        x = x.clamp(0, 1)
        p.data.clamp_(-0.01, 0.01)   # WGAN weight clipping: weights, not gradients
        grads, _ = tf.clip_by_global_norm(grads, 5.0)
        """,
        "NN905",
    )


def test_nn905_quiet_when_norm_clipping_is_the_other_option() -> None:
    check(
        """
        import torch

        def dispatch(parameters, value, mode="norm"):
            if mode == "norm":
                torch.nn.utils.clip_grad_norm_(parameters, value)
            elif mode == "value":
                torch.nn.utils.clip_grad_value_(parameters, value)

        def only_value(parameters, value, enabled):
            if enabled:
                torch.nn.utils.clip_grad_value_(parameters, value)  # !
        """,
        "NN905",
    )


# ---------------------------------------------------------------------------
# NN306 clip of scaled gradients in a function without the training loop


def test_nn306_optimizer_wrapper_step() -> None:
    findings = check(
        """
        from typing import Optional
        import torch
        from torch.cuda.amp import GradScaler

        class Wrapper:
            def __init__(self, params, optimizers, clip):
                self.params = params
                self.optimizers = optimizers
                self.clip = clip
                self.amp = GradScaler()

            def step(self, loss):
                self.amp.scale(loss).backward()
                if self.clip is not None:
                    torch.nn.utils.clip_grad_norm_(parameters=self.params, max_norm=self.clip)  # !
                for optimizer in self.optimizers:
                    self.amp.step(optimizer)
                self.amp.update()

        class Updater:
            def step(self, *, grad_scaler: Optional[torch.cuda.amp.GradScaler] = None):
                if self.grad_clip:
                    torch.nn.utils.clip_grad_value_(self.network.parameters(), self.grad_clip)  # !
                if grad_scaler is not None:
                    grad_scaler.step(self.optimizer)
                    grad_scaler.update()
                else:
                    self.optimizer.step()

            def step_unscaled(self, grad_scaler: "torch.amp.GradScaler"):
                grad_scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), 1.0)
                grad_scaler.step(self.optimizer)

            def step_clipped_after(self, scaler):
                scaler.step(self.optimizer)  # clipping after the step is another mistake
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), 1.0)

            def step_without_scaler(self, sched):
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), 1.0)
                sched.step(self.optimizer)  # not a GradScaler

            def step_either(self, scaler, clip):
                if scaler is None:
                    torch.nn.utils.clip_grad_norm_(self.network.parameters(), clip)
                    self.optimizer.step()
                else:
                    scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.network.parameters(), clip)
                    scaler.step(self.optimizer)

            def apply(self, scaler):
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), 1.0)
                scaler.step(self.optimizer)

            def train_step(self, loss, scaler):
                scaler.scale(loss).backward()
                scaler.unscale_(self.optimizer)
                self.apply(scaler)  # unscaled before the call: apply() clips true gradients

        def train(model, loader, optimizer, scaler):
            for x, y in loader:
                optimizer.zero_grad()
                scaler.scale(model(x).sum()).backward()
                # reported once, by the training-loop analysis, with its fix
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # !
                scaler.step(optimizer)
                scaler.update()
        """,
        "NN306",
    )
    assert [f.fix is None for f in findings] == [True, True, False]
    assert "self.amp.unscale_(optimizer)" in findings[0].message
