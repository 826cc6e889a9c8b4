'''
## What it does
Reports a TensorFlow 1 `Saver` or variable initializer created before the optimizer's slot
variables exist. That is graph code that creates a `tf.train.Saver()` or builds
`tf.global_variables_initializer()` *before* the optimizer's `minimize(...)` /
`apply_gradients(...)` adds its slot variables to the graph, in the same function (or
at module level), for optimizers that keep per-weight state: Adam, Momentum, RMSProp,
Adagrad, Adadelta, Ftrl, Nadam, ... (also the `tf.compat.v1` spellings and
`import tensorflow.compat.v1 as tf`).

A plain `GradientDescentOptimizer` has no slots and is not reported; neither is a Saver
given an explicit variable list (`tf.train.Saver(tf.trainable_variables())` deliberately
saves only the weights), except `var_list=tf.global_variables()`, which is evaluated on
the spot and has the same problem.

## Why is this bad?
In graph mode a `Saver` captures the list of variables that exist when it is created, and
`global_variables_initializer()` groups the initialisers of the variables that exist when
it is called. Adam's moment estimates (`m`, `v`) and its `beta1_power`/`beta2_power`
accumulators are created only by `minimize()`. A Saver created earlier does not save or
restore them: every resumed run restarts Adam with zeroed moments, a large and silent
disturbance of training. An initialiser built earlier leaves them uninitialised and
`sess.run(train_op)` fails with `FailedPreconditionError: Attempting to use uninitialized value`.

## Example
```python
import tensorflow as tf

x = tf.placeholder(tf.float32, [None, 784])
y = tf.placeholder(tf.int64, [None])
logits = tf.layers.dense(x, 10)
loss = tf.losses.sparse_softmax_cross_entropy(y, logits)
saver = tf.train.Saver()  # NN301
train_op = tf.train.AdamOptimizer(1e-3).minimize(loss)
```

## Use instead
```python
import tensorflow as tf

x = tf.placeholder(tf.float32, [None, 784])
y = tf.placeholder(tf.int64, [None])
logits = tf.layers.dense(x, 10)
loss = tf.losses.sparse_softmax_cross_entropy(y, logits)
train_op = tf.train.AdamOptimizer(1e-3).minimize(loss)
saver = tf.train.Saver()
init = tf.global_variables_initializer()
```
In TensorFlow 2 / Keras use `tf.train.Checkpoint(model=model, optimizer=optimizer)`, which
tracks the optimizer's slots whenever they are created. PyTorch's equivalent concern is
saving `optimizer.state_dict()` together with `model.state_dict()`.

## Source
Seed 001_05b9fd847e40edfb.txt ("使用 ADAM 优化器"): when saving and restoring weights in
TensorFlow, create the Saver after the AdamOptimizer ("在设置完AdamOptimizer 后设置 Saver"),
because Adam also has state that must be restored (a learning rate per weight).

In short: Create the TensorFlow 1 `Saver` after the optimizer, so its slot variables are saved too.
Public reference: TensorFlow documentation, `tf.compat.v1.train.Saver` (it saves the variables that
exist when it is built), https://www.tensorflow.org/api_docs/python/tf/compat/v1/train/Saver.
'''
from __future__ import annotations

from typing import Optional

import libcst as cst

from nnlint.facts.names import argument, keyword, literal
from nnlint.rule import Context, Rule

_SLOT_OPTIMIZERS = frozenset(
    [f"tensorflow.train.{name}" for name in (
        "AdamOptimizer", "MomentumOptimizer", "RMSPropOptimizer", "AdagradOptimizer", "AdagradDAOptimizer",
        "AdadeltaOptimizer", "FtrlOptimizer", "ProximalAdagradOptimizer")]
    + [f"tensorflow.contrib.opt.{name}" for name in (
        "NadamOptimizer", "AdamWOptimizer", "LazyAdamOptimizer", "MomentumWOptimizer", "AdaMaxOptimizer")]
    + [f"keras.optimizers.{name}" for name in (
        "Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad", "Adadelta", "Ftrl", "Lion")]
)
_KERAS_SGD = "keras.optimizers.SGD"
_SLOT_CREATING_METHODS = frozenset({"minimize", "apply_gradients"})
_SAVER = "tensorflow.train.Saver"
_INITIALIZERS = frozenset({"tensorflow.global_variables_initializer", "tensorflow.initialize_all_variables",
                           "tensorflow.initializers.global_variables"})
_VARIABLES_INITIALIZER = frozenset({"tensorflow.variables_initializer", "tensorflow.initialize_variables"})
_ALL_VARIABLES = frozenset({"tensorflow.global_variables", "tensorflow.all_variables"})


class GraphSnapshotBeforeOptimizerSlots(Rule):
    code = "NN301"
    name = "graph-snapshot-before-optimizer-slots"
    severity = "error"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        snapshots: list[tuple[cst.Call, str]] = []
        updates: list[tuple[cst.Call, str]] = []
        for call in ctx.facts.calls():
            kind = self._snapshot_kind(ctx, call)
            if kind is not None:
                snapshots.append((call, kind))
                continue
            optimizer = self._slot_optimizer_update(ctx, call)
            if optimizer is not None:
                updates.append((call, optimizer))
        if not snapshots or not updates:
            return
        dataflow = ctx.facts.dataflow
        for snapshot, kind in snapshots:
            scope = dataflow.scope_of(snapshot)
            start = ctx.position(snapshot).start
            for update, optimizer in updates:
                if dataflow.scope_of(update) is not scope:
                    continue
                update_start = ctx.position(update).start
                if (update_start.line, update_start.column) <= (start.line, start.column):
                    continue
                method = update.func.attr.value if isinstance(update.func, cst.Attribute) else "minimize"
                if kind == "saver":
                    message = f"Saver created before {optimizer}.{method}(): the optimizer's slots are not saved"
                else:
                    message = (f"variable initializer built before {optimizer}.{method}(): "
                               "the optimizer's slots are left uninitialised")
                ctx.report(snapshot, message)
                break

    def _snapshot_kind(self, ctx: Context, call: cst.Call) -> Optional[str]:
        qualname = ctx.facts.names.qualname(call.func)
        if qualname == _SAVER:
            if keyword(call, "defer_build") is not None:
                return None
            var_list = argument(call, 0, "var_list")
            if var_list is None or self._all_variables(ctx, var_list):
                return "saver"
            return None
        if qualname in _INITIALIZERS:
            return "initializer"
        if qualname in _VARIABLES_INITIALIZER:
            var_list = argument(call, 0, "var_list")
            if var_list is not None and self._all_variables(ctx, var_list):
                return "initializer"
        return None

    def _all_variables(self, ctx: Context, expr: cst.BaseExpression) -> bool:
        value = ctx.facts.dataflow.resolve(expr)
        return isinstance(value, cst.Call) and ctx.facts.names.qualname(value.func) in _ALL_VARIABLES

    def _slot_optimizer_update(self, ctx: Context, call: cst.Call) -> Optional[str]:
        """The optimizer class name if ``call`` is ``<slot optimizer>.minimize(...)``/``apply_gradients``."""
        func = call.func
        if not isinstance(func, cst.Attribute) or func.attr.value not in _SLOT_CREATING_METHODS:
            return None
        constructor = ctx.facts.dataflow.resolve(func.value)
        if not isinstance(constructor, cst.Call):
            return None
        qualname = ctx.facts.names.qualname(constructor.func)
        if qualname in _SLOT_OPTIMIZERS:
            return qualname.rsplit(".", 1)[1]
        if qualname == _KERAS_SGD:
            momentum = literal(ctx.facts.dataflow.resolve(argument(constructor, 1, "momentum")), None)
            if isinstance(momentum, (int, float)) and momentum > 0:
                return "SGD"
        return None
