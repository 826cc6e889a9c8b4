"""Training-loop facts (nnlint/facts/loops.py) and the NN30x rules built on them."""
from __future__ import annotations

import textwrap

import libcst as cst
import pytest

import nnlint
from nnlint.facts import FileFacts

LOOP_RULES = ["NN302", "NN303", "NN304", "NN305", "NN306", "NN307", "NN308", "NN309", "NN310"]


def findings(source: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.code) for f in nnlint.lint_source(textwrap.dedent(source), path="x.py", select=[code])
            if f.code == code]


def lines(source: str, code: str) -> list[int]:
    return [line for line, _ in findings(source, code)]


def facts_of(source: str) -> FileFacts:
    return FileFacts("x.py", cst.parse_module(textwrap.dedent(source)), module_name="x")


# -- idiomatic, correct training code: quiet for every loop rule --------------------------

NANOGPT_STYLE = '''
import torch
from model import GPT

model = GPT(config)
scaler = torch.cuda.amp.GradScaler(enabled=(dtype == "float16"))
optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type)


@torch.no_grad()
def estimate_loss():
    out = {}
    model.eval()
    for split in ["train", "val"]:
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            X, Y = get_batch(split)
            with ctx:
                logits, loss = model(X, Y)
            losses[k] = loss.item()
        out[split] = losses.mean()
    model.train()
    return out


X, Y = get_batch("train")
while True:
    lr = get_lr(iter_num) if decay_lr else learning_rate
    for param_group in optimizer.param_groups:
        param_group["lr"] = lr
    if iter_num % eval_interval == 0 and master_process:
        losses = estimate_loss()
        if losses["val"] < best_val_loss or always_save_checkpoint:
            best_val_loss = losses["val"]
            if iter_num > 0:
                checkpoint = {
                    "model": raw_model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "iter_num": iter_num,
                }
                torch.save(checkpoint, os.path.join(out_dir, "ckpt.pt"))
    for micro_step in range(gradient_accumulation_steps):
        with ctx:
            logits, loss = model(X, Y)
            loss = loss / gradient_accumulation_steps
        X, Y = get_batch("train")
        scaler.scale(loss).backward()
    if grad_clip != 0.0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    iter_num += 1
    if iter_num > max_iters:
        break
'''

MNIST_STYLE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(5408, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        return F.log_softmax(self.fc1(x), dim=1)


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)


def main():
    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        test(model, device, test_loader)
        scheduler.step()
    if args.save_model:
        torch.save(model.state_dict(), "mnist_cnn.pt")
'''

DCGAN_STYLE = '''
import torch
import torch.nn as nn
import torch.optim as optim

netG = Generator(ngpu).to(device)
netD = Discriminator(ngpu).to(device)
criterion = nn.BCELoss()
optimizerD = optim.Adam(netD.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
optimizerG = optim.Adam(netG.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))

for epoch in range(opt.niter):
    for i, data in enumerate(dataloader, 0):
        netD.zero_grad()
        real_cpu = data[0].to(device)
        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        fake = netG(noise)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        optimizerD.step()

        netG.zero_grad()
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        optimizerG.step()
'''

LIGHTNING_STYLE = '''
import torch
import torch.nn.functional as F
import lightning as L


class LitModel(L.LightningModule):
    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)
'''

ACCELERATE_STYLE = '''
import torch
from accelerate import Accelerator

accelerator = Accelerator()
model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
for epoch in range(num_epochs):
    model.train()
    for batch in loader:
        outputs = model(**batch)
        loss = outputs.loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
'''

ACCUMULATION_STYLE = '''
import torch

optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for i, (x, y) in enumerate(loader):
    loss = criterion(model(x), y) / accum
    loss.backward()
    if (i + 1) % accum == 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
'''

TRAINER_CLASS_STYLE = '''
import torch


class Trainer:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer

    def _run_batch(self, source, targets):
        self.optimizer.zero_grad()
        output = self.model(source)
        loss = torch.nn.functional.cross_entropy(output, targets)
        loss.backward()
        self.optimizer.step()

    def _run_epoch(self, epoch):
        for source, targets in self.train_data:
            self._run_batch(source, targets)

    def train(self, max_epochs):
        for epoch in range(max_epochs):
            self._run_epoch(epoch)
'''

ROTATED_STYLE = '''
import torch

optimizer = torch.optim.Adam(model.parameters())
loss = criterion(model(x0), y0)
loss.backward()
for x, y in loader:
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
'''

AMP_BRANCHES_STYLE = '''
import torch

scaler = torch.cuda.amp.GradScaler()
optimizer = torch.optim.AdamW(model.parameters())
for x, y in loader:
    optimizer.zero_grad(set_to_none=True)
    loss = criterion(model(x), y)
    if use_amp:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
'''

LBFGS_CLOSURE_STYLE = '''
import torch

optimizer = torch.optim.LBFGS(model.parameters(), lr=0.8)
for i in range(steps):
    def closure():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        return loss
    optimizer.step(closure)
'''

MANUAL_GRAD_RESET_STYLE = '''
import torch

opt = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    loss = criterion(model(x), y)
    loss.backward()
    opt.step()
    for p in model.parameters():
        p.grad = None
'''

CORRECT = {
    "nanogpt": NANOGPT_STYLE,
    "mnist": MNIST_STYLE,
    "dcgan": DCGAN_STYLE,
    "lightning": LIGHTNING_STYLE,
    "accelerate": ACCELERATE_STYLE,
    "accumulation": ACCUMULATION_STYLE,
    "trainer-class": TRAINER_CLASS_STYLE,
    "rotated": ROTATED_STYLE,
    "amp-branches": AMP_BRANCHES_STYLE,
    "lbfgs": LBFGS_CLOSURE_STYLE,
    "manual-reset": MANUAL_GRAD_RESET_STYLE,
}


@pytest.mark.parametrize("code", LOOP_RULES)
@pytest.mark.parametrize("name", sorted(CORRECT))
def test_idiomatic_training_code_is_quiet(name: str, code: str) -> None:
    assert findings(CORRECT[name], code) == []


# -- the facts -------------------------------------------------------------------------

def test_training_loop_found_through_helper_and_epoch_loop_is_outer() -> None:
    facts = facts_of(MNIST_STYLE)
    loops = facts.loops
    assert len(loops.training_loops) == 1
    training = loops.training_loops[0]
    assert training.function is not None and training.function.name.value == "train"
    kinds = [e.kind for e in training.events if e.kind != "call"]
    assert kinds == ["zero_grad", "backward", "step"]
    assert [e.receiver for e in training.of_kind("zero_grad", "step")] == ["optimizer", "optimizer"]
    assert len(loops.outer_loops) == 1
    outer = loops.iteration(loops.outer_loops[0])
    assert [e.kind for e in outer if e.kind in ("train", "eval")] == ["train", "eval"]
    assert any(e.grad_disabled for e in outer if e.kind == "call" and e.receiver == "model")


def test_nanogpt_events_are_ordered_and_conditional() -> None:
    training = facts_of(NANOGPT_STYLE).loops.training_loops
    assert len(training) == 1
    events = [e for e in training[0].events if e.kind in ("backward", "unscale", "clip", "step", "zero_grad")]
    assert [e.kind for e in events] == ["backward", "unscale", "clip", "step", "zero_grad"]
    backward, unscale, clip, step, zero = events
    assert backward.scaler == "scaler" and backward.inner_loops
    assert unscale.conditional and clip.conditional and not step.conditional
    assert step.receiver == "optimizer" and clip.receiver == "model"


def test_helper_parameters_are_renamed_to_the_callers_arguments() -> None:
    source = '''
    import torch

    def fit_batch(net, opt, x, y):
        opt.zero_grad()
        crit(net(x), y).backward()
        opt.step()

    optimizer_g = torch.optim.Adam(gen.parameters())
    for x, y in loader:
        fit_batch(gen, optimizer_g, x, y)
    '''
    loops = facts_of(source).loops
    (training,) = loops.training_loops
    assert [e.receiver for e in training.of_kind("zero_grad", "step")] == ["optimizer_g", "optimizer_g"]
    assert loops.models_of_optimizer("optimizer_g") == frozenset({"gen"})


def test_scheduler_step_is_not_an_optimizer_step() -> None:
    source = '''
    for x, y in loader:
        loss = crit(model(x), y)
        loss.backward()
        scheduler.step()
    '''
    assert facts_of(source).loops.training_loops == ()


def test_bad_input_does_not_crash() -> None:
    for source in ["for x in y:\n    pass\n", "while True:\n    x.backward()\n    opt.step(*a)\n", ""]:
        facts = facts_of(source)
        facts.loops.training_loops
        facts.loops.outer_loops


# -- NN303 missing-zero-grad ------------------------------------------------------------

def test_nn303_missing_zero_grad_in_helper_batch_loop() -> None:
    source = MNIST_STYLE.replace("        optimizer.zero_grad()\n", "")
    assert lines(source, "NN303") == [30]


def test_nn303_zero_grad_before_the_loop_only() -> None:
    source = '''
    import torch
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    for x, y in loader:
        crit(model(x), y).backward()
        optimizer.step()
    '''
    assert lines(source, "NN303") == [7]


def test_nn303_gan_zeroing_the_wrong_network() -> None:
    source = DCGAN_STYLE.replace("netD.zero_grad()", "netG.zero_grad()", 1)
    assert lines(source, "NN303") == [23]


def test_nn303_zero_grad_on_other_optimizer() -> None:
    source = '''
    import torch
    opt_d = torch.optim.Adam(disc.parameters())
    opt_g = torch.optim.Adam(gen.parameters())
    for x in loader:
        opt_d.zero_grad()
        d_loss(x).backward()
        opt_d.step()
        g_loss(x).backward()
        opt_g.step()
    '''
    assert lines(source, "NN303") == [10]


def test_nn303_zero_grad_only_in_the_other_branch() -> None:
    source = '''
    import torch
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for i, (x, y) in enumerate(loader):
        crit(model(x), y).backward()
        if i % 2:
            optimizer.step()
        else:
            optimizer.zero_grad()
    '''
    assert lines(source, "NN303") == [7]


def test_nn303_model_zero_grad_and_unknown_optimizer_are_quiet() -> None:
    source = '''
    for x, y in loader:
        model.zero_grad()
        crit(model(x), y).backward()
        optimizer.step()
    '''
    assert lines(source, "NN303") == []


# -- NN304 zero-grad-before-step ----------------------------------------------------------

def test_nn304_zero_grad_between_backward_and_step() -> None:
    source = '''
    import torch
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        loss = crit(model(x), y)
        loss.backward()
        model.zero_grad()
        optimizer.step()
    '''
    assert lines(source, "NN304") == [7]


def test_nn304_zero_grad_in_accumulation_loop_through_helper() -> None:
    source = '''
    import torch

    def micro_step(model, optimizer, x, y):
        optimizer.zero_grad()
        crit(model(x), y).backward()

    optimizer = torch.optim.Adam(model.parameters())
    for chunk in loader:
        for x, y in chunk:
            micro_step(model, optimizer, x, y)
        optimizer.step()
    '''
    assert lines(source, "NN304") == [5]


def test_nn304_quiet_cases() -> None:
    gan_other_network = '''
    import torch
    opt_d = torch.optim.Adam(disc.parameters())
    opt_g = torch.optim.Adam(gen.parameters())
    for x in loader:
        disc.zero_grad()
        d_loss(x).backward()
        gen.zero_grad()
        opt_d.step()
        g_loss(x).backward()
        opt_g.step()
    '''
    conditional_reset = '''
    import torch
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for i, (x, y) in enumerate(loader):
        crit(model(x), y).backward()
        if skip_update(i):
            optimizer.zero_grad()
            continue
        optimizer.step()
        optimizer.zero_grad()
    '''
    wgan_critic_loop = '''
    import torch
    opt_d = torch.optim.RMSprop(disc.parameters())
    opt_g = torch.optim.RMSprop(gen.parameters())
    for x in loader:
        for _ in range(5):
            opt_d.zero_grad()
            d_loss(x).backward()
            opt_d.step()
        opt_g.zero_grad()
        g_loss(x).backward()
        opt_g.step()
    '''
    for source in (gan_other_network, conditional_reset, wgan_critic_loop):
        assert lines(source, "NN304") == []


# -- NN305 clip-outside-backward-step / NN306 clip-without-unscale ----------------------------

CLIP_LOOP = '''
import torch
from torch.nn.utils import clip_grad_norm_ as clip
scaler = torch.cuda.amp.GradScaler()
optimizer = torch.optim.Adam(model.parameters())
for x, y in loader:
    optimizer.zero_grad()
    {before}
    scaler.scale(crit(model(x), y)).backward()
    {middle}
    scaler.step(optimizer)
    scaler.update()
    {after}
'''


@pytest.mark.parametrize("before, middle, after, nn305, nn306", [
    ("pass", "scaler.unscale_(optimizer); clip(model.parameters(), 1.0)", "pass", [], []),
    ("pass", "clip(model.parameters(), 1.0)", "pass", [], [10]),
    ("clip(model.parameters(), 1.0)", "scaler.unscale_(optimizer)", "pass", [8], []),
    ("pass", "scaler.unscale_(optimizer)", "clip(model.parameters(), 1.0)", [13], []),
    ("pass", "scaler.unscale_(optimizer)", "pass", [], []),
])
def test_nn305_nn306_clip_positions(before: str, middle: str, after: str, nn305: list[int],
                                    nn306: list[int]) -> None:
    source = CLIP_LOOP.format(before=before, middle=middle, after=after)
    assert lines(source, "NN305") == nn305
    assert lines(source, "NN306") == nn306


def test_nn305_clip_for_the_other_network_is_not_after_its_step() -> None:
    source = '''
    import torch
    opt_d = torch.optim.Adam(disc.parameters())
    opt_g = torch.optim.Adam(gen.parameters())
    for x in loader:
        opt_d.zero_grad()
        opt_g.zero_grad()
        (d_loss(x) + g_loss(x)).backward()
        opt_d.step()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
        opt_g.step()
    '''
    assert lines(source, "NN305") == []


def test_nn305_clip_after_step_in_helper() -> None:
    source = '''
    import torch.nn as nn

    def update(model, optimizer):
        optimizer.step()
        nn.utils.clip_grad_value_(model.parameters(), 0.1)

    for x, y in loader:
        optimizer.zero_grad()
        crit(model(x), y).backward()
        update(model, optimizer)
    '''
    assert lines(source, "NN305") == [6]


def test_nn306_accelerate_clip_is_quiet() -> None:
    source = '''
    import torch
    scaler = torch.cuda.amp.GradScaler()
    for x, y in loader:
        optimizer.zero_grad()
        scaler.scale(crit(model(x), y)).backward()
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
    '''
    assert lines(source, "NN306") == []


# -- NN310 loss-accumulated-with-graph ----------------------------------------------------------

@pytest.mark.parametrize("setup, add, fires", [
    ("criterion = nn.CrossEntropyLoss()", "total += loss", True),
    ("criterion = nn.CrossEntropyLoss()", "total += loss * x.size(0)", True),
    ("criterion = nn.CrossEntropyLoss()", "total += loss.item()", False),
    ("criterion = nn.CrossEntropyLoss()", "total += loss.detach()", False),
    ("criterion = nn.CrossEntropyLoss()", "total += float(loss)", False),
    ("criterion = nn.CrossEntropyLoss()", "total += correct", False),
    ("criterion = make_criterion()", "total += loss", True),
    # whatever made it, ``loss.backward()`` shows the tensor carries a graph
    ("crit = make_criterion()", "total += loss", True),
])
def test_nn310_what_counts_as_a_loss_tensor(setup: str, add: str, fires: bool) -> None:
    source = f'''
    import torch.nn as nn
    {setup}
    total = 0.0
    for x, y in loader:
        optimizer.zero_grad()
        loss = {setup.split(" =")[0]}(model(x), y)
        loss.backward()
        optimizer.step()
        {add}
    '''
    assert lines(source, "NN310") == ([10] if fires else [])


def test_nn310_functional_and_hf_losses_with_fix() -> None:
    source = '''
    import torch.nn.functional as F
    epoch_loss, hf_loss = 0, 0
    for x, y in loader:
        epoch_loss += F.nll_loss(model(x), y)
        out = model(**batch)
        hf_loss += out.loss
    '''
    found = nnlint.lint_source(textwrap.dedent(source), path="x.py", select=["NN310"])
    assert [f.line for f in found] == [5, 7]
    assert all(f.fix is not None and f.fix.applicability == "unsafe" for f in found)
    assert found[0].fix.edits[0].content == "F.nll_loss(model(x), y).item()"
    assert found[1].fix.edits[0].content == "out.loss.item()"


def test_nn310_epoch_sum_reset_per_epoch_fires() -> None:
    source = '''
    import torch.nn.functional as F
    for epoch in range(10):
        epoch_loss = 0
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            epoch_loss += loss
        print(epoch_loss / len(loader))
    '''
    assert lines(source, "NN310") == [8]


def test_nn310_quiet_cases() -> None:
    backwarded = '''
    import torch.nn.functional as F
    total = 0
    for chunk in chunks:
        total += F.mse_loss(model(chunk), target)
    total.backward()
    '''
    no_grad = '''
    import torch
    import torch.nn.functional as F
    val = 0
    with torch.no_grad():
        for x, y in loader:
            val += F.cross_entropy(model(x), y)
    '''
    returned = '''
    import torch.nn.functional as F
    def closure_loss(parts):
        total = 0
        for p in parts:
            total += F.mse_loss(model(p), p)
        return total
    '''
    reset_per_iteration = '''
    import torch.nn.functional as F
    for batch in loader:
        total = 0
        total += F.mse_loss(model(batch), batch)
        print(total)
    '''
    for source in (backwarded, no_grad, returned, reset_per_iteration):
        assert lines(source, "NN310") == []


def test_nn310_sum_backpropagated_through_another_name_is_quiet() -> None:
    source = '''
    import torch.nn.functional as F
    for x in loader:
        optimizer.zero_grad()
        style = 0.0
        for a, b in zip(feats(x), grams):
            style += F.mse_loss(a, b)
        total = content(x) + style
        total.backward()
        optimizer.step()
    '''
    assert lines(source, "NN310") == []


# -- NN308 eval-mode-never-reset ----------------------------------------------------------

def test_nn308_helper_train_without_model_train() -> None:
    source = MNIST_STYLE.replace("    model.train()\n", "")
    assert source != MNIST_STYLE
    assert lines(source, "NN308") == [34]


def test_nn308_periodic_eval_inside_batch_loop() -> None:
    source = '''
    import torch
    optimizer = torch.optim.Adam(net.parameters())
    for step, (x, y) in enumerate(loader):
        optimizer.zero_grad()
        crit(net(x), y).backward()
        optimizer.step()
        if step % 100 == 0:
            net.eval()
            with torch.no_grad():
                print(crit(net(vx), vy).item())
    '''
    assert lines(source, "NN308") == [9]
    reset = source.replace("print(crit(net(vx), vy).item())", "print(crit(net(vx), vy).item())\n        net.train()")
    assert lines(reset, "NN308") == []


def test_nn308_frozen_feature_extractor_is_quiet() -> None:
    source = '''
    import torch
    optimizer = torch.optim.Adam(transformer.parameters())
    for x in loader:
        vgg.eval()
        optimizer.zero_grad()
        loss = crit(vgg(transformer(x)), vgg(x))
        loss.backward()
        optimizer.step()
    '''
    assert lines(source, "NN308") == []


def test_nn308_trainer_class_with_validation_method() -> None:
    source = '''
    import torch

    class Trainer:
        def __init__(self, model):
            self.model = model
            self.optimizer = torch.optim.Adam(self.model.parameters())

        def fit(self, epochs):
            for epoch in range(epochs):
                for x, y in self.loader:
                    self.optimizer.zero_grad()
                    crit(self.model(x), y).backward()
                    self.optimizer.step()
                self.validate()

        def validate(self):
            self.model.eval()
            with torch.no_grad():
                for x, y in self.val_loader:
                    self.model(x)
    '''
    assert lines(source, "NN308") == [18]


# -- NN309 eval-without-no-grad -----------------------------------------------------------

EVAL_FUNCTION = '''
import torch

{decorator}
def validate(model, loader):
    model.eval()
    {grad_line}
    for x, y in loader:
        {run}
    model.train()
'''


@pytest.mark.parametrize("decorator, grad_line, run, expected", [
    ("", "pass", "out = model(x)", [9]),
    ("", "pass", "out = model.forward(x)", [9]),
    ("@torch.no_grad()", "pass", "out = model(x)", []),
    ("@torch.inference_mode()", "pass", "out = model(x)", []),
    ("", "torch.set_grad_enabled(False)", "out = model(x)", []),
    ("", "pass", "with torch.no_grad():\n            out = model(x)", []),
    ("", "pass", "with torch.set_grad_enabled(phase == 'train'):\n            out = model(x)", []),
    ("", "pass", "out = model(x.requires_grad_())\n        out.sum().backward()", []),
    ("", "pass", "out = other(x)", []),
])
def test_nn309_eval_function(decorator: str, grad_line: str, run: str, expected: list[int]) -> None:
    source = EVAL_FUNCTION.format(decorator=decorator, grad_line=grad_line, run=run)
    assert lines(source, "NN309") == expected


def test_nn309_callers_under_no_grad_and_train_resets() -> None:
    called_under_no_grad = '''
    import torch

    def predict(net, x):
        net.eval()
        return net(x)

    with torch.no_grad():
        y = predict(model, batch)
    '''
    after_train = '''
    model.eval()
    model.train()
    out = model(x)
    '''
    lightning_hook = '''
    class Lit:
        def validation_step(self, batch, idx):
            self.model.eval()
            return self.model(batch)
    '''
    for source in (called_under_no_grad, after_train, lightning_hook):
        assert lines(source, "NN309") == []


def test_nn309_inference_script_and_chained_eval() -> None:
    source = '''
    import torch
    model = Net().to(device).eval()
    model.load_state_dict(torch.load("w.pt"))
    prediction = model(image)
    '''
    assert lines(source, "NN309") == [5]


# -- NN307 eval-without-eval-mode ---------------------------------------------------------

def test_nn307_mnist_test_without_eval_through_the_caller() -> None:
    source = MNIST_STYLE.replace("    model.eval()\n", "")
    assert lines(source, "NN307") == [40]


def test_nn307_eval_in_the_caller_counts() -> None:
    source = MNIST_STYLE.replace("    model.eval()\n", "").replace(
        "        test(model, device, test_loader)", "        model.eval()\n        test(model, device, test_loader)")
    assert lines(source, "NN307") == []


NET_WITH_BN = '''
import torch
import torch.nn as nn

net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
plain = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
'''


@pytest.mark.parametrize("body, expected", [
    ("with torch.no_grad():\n    out = net(x)", [9]),
    ("net.eval()\nwith torch.no_grad():\n    out = net(x)", []),
    ("net.train(False)\nwith torch.no_grad():\n    out = net(x)", []),
    ("net.eval()\nnet.train()\nwith torch.no_grad():\n    out = net(x)", [9]),  # at the train() that is wrong
    ("with torch.no_grad():\n    out = plain(x)", []),
    ("with torch.no_grad():\n    out = unknown_model(x)", []),
    ("out = net(x)", []),
])
def test_nn307_module_level_inference(body: str, expected: list[int]) -> None:
    assert lines(NET_WITH_BN + "\n" + body + "\n", "NN307") == expected


def test_nn307_quiet_inside_training_and_for_unknown_callers() -> None:
    inside_training = NET_WITH_BN + '''
opt = torch.optim.SGD(net.parameters(), lr=0.1)
for x, y in loader:
    opt.zero_grad()
    crit(net(x), y).backward()
    opt.step()
    with torch.no_grad():
        train_acc = (net(x).argmax(1) == y).float().mean()
'''
    uncalled_helper = NET_WITH_BN + '''
def evaluate(model, loader):
    with torch.no_grad():
        return [model(x) for x in loader]
'''
    for source in (inside_training, uncalled_helper):
        assert lines(source, "NN307") == []


def test_nn307_nanogpt_estimate_loss_is_quiet() -> None:
    source = NET_WITH_BN.replace("net =", "model =") + NANOGPT_STYLE.split("model = GPT(config)")[1]
    assert lines(source, "NN307") == []
    broken = source.replace("    model.eval()\n", "")
    assert lines(broken, "NN307") == [20]


# -- NN302 checkpoint-without-optimizer-state ----------------------------------------------

CHECKPOINT_LOOP = '''
import torch

optimizer = {optimizer}
for epoch in range(epochs):
    for x, y in loader:
        optimizer.zero_grad()
        crit(model(x), y).backward()
        optimizer.step()
    {save}
'''


@pytest.mark.parametrize("optimizer, save, expected", [
    ("torch.optim.Adam(model.parameters())", "torch.save(model.state_dict(), 'ckpt.pt')", [10]),
    ("torch.optim.RMSprop(model.parameters())", "torch.save({'model': model.state_dict()}, 'ckpt.pt')", [10]),
    ("torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)", "torch.save(model.state_dict(), 'c.pt')", [10]),
    ("torch.optim.SGD(model.parameters(), lr=0.1)", "torch.save(model.state_dict(), 'c.pt')", []),
    ("torch.optim.SGD(model.parameters(), lr=0.1, momentum=0)", "torch.save(model.state_dict(), 'c.pt')", []),
    ("torch.optim.Adam(model.parameters())",
     "torch.save({'model': model.state_dict(), 'optimizer': optimizer.state_dict()}, 'c.pt')", []),
    ("torch.optim.Adam(model.parameters())", "torch.save(model.state_dict(), 'best.pt')", []),
    ("torch.optim.Adam(model.parameters())", "torch.save(model, 'ckpt.pt')", []),
])
def test_nn302_payloads(optimizer: str, save: str, expected: list[int]) -> None:
    assert lines(CHECKPOINT_LOOP.format(optimizer=optimizer, save=save), "NN302") == expected


def test_nn302_export_after_the_loop_and_best_snapshot_are_quiet() -> None:
    source = CHECKPOINT_LOOP.format(
        optimizer="torch.optim.AdamW(model.parameters())",
        save="if val_loss < best_loss:\n        best_loss = val_loss\n        torch.save(model.state_dict(), path)",
    ) + "torch.save(model.state_dict(), 'final.pt')\n"
    assert lines(source, "NN302") == []


def test_nn302_payload_built_in_a_variable_and_passed_to_a_helper() -> None:
    source = '''
    import torch

    def save_checkpoint(state, filename):
        torch.save(state, filename)

    optimizer = torch.optim.Adam(model.parameters())
    for epoch in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            crit(model(x), y).backward()
            optimizer.step()
        state = {"epoch": epoch, "state_dict": model.state_dict()}
        save_checkpoint(state, "ckpt.pt")
    '''
    assert lines(source, "NN302") == [5]
    fixed = source.replace('"state_dict": model.state_dict()}', '"state_dict": model.state_dict(), '
                                                                 '"opt": optimizer.state_dict()}')
    assert lines(fixed, "NN302") == []
