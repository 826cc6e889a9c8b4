'''
## What it does
Reports a file that nnlint could not read as Python: a syntax error, bytes that are not
valid in the file's encoding, or an unknown coding declaration.

## Why is this bad?
A file that does not parse cannot be checked, so every other rule is silent on it. The
rest of the tree is still linted; this finding makes sure the gap is visible instead of
silently skipped. (Only files that mention `torch`, `tensorflow`, `keras` or `jax` are
parsed at all, so a broken file unrelated to deep learning is not reported.)

A Python 2 script whose only Python 3 errors are `print x`, `exec code`, `except E, e:`,
`raise E, "message"` or indentation mixing tabs and spaces is not reported: those
statements are read in their Python 3 form, line for line, and the rest of the file is
checked as usual (much published training code is Python 2). Such a file gets no fixes.

## Example
```python
import torch.nn as nn

model = nn.Sequential(nn.Linear(4, 2) nn.ReLU())  # NN001
```

## Use instead
```python
import torch.nn as nn

model = nn.Sequential(nn.Linear(4, 2), nn.ReLU())
```

## Source
Not from a seed document: this is the engine's own report. It keeps the promise the
other rules make (every file below the given paths is checked) honest.
'''
from __future__ import annotations

from nnlint.rule import Context, Rule


class ParseError(Rule):
    code = "NN001"
    name = "parse-error"
    severity = "error"
    default = True
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        # The engine reports NN001 itself, when decoding or parsing fails, before any rule
        # runs; a file that reaches check() parsed fine and has nothing to report here.
        return None
