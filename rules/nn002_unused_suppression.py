'''
## What it does
Reports a suppression comment that silences nothing: its finding is gone, or the code is
misspelled. It covers `# nnlint: ignore[...]`, `# nnlint: ignore-file[...]` and `# noqa: NN...`.

## Why is this bad?
A stale suppression hides the next real finding of that code on the line, and a misspelled
one silences nothing while looking as if it did. Codes of rules that are not enabled for the
file, other tools' `# noqa` codes and a bare `# noqa` are left alone.

## Example
```python
import torch

x = torch.zeros(3)  # nnlint: ignore[NN2O1]  # NN002
y = torch.ones(3)  # noqa: E501, NN99  # NN002
```

## Use instead
```python
import torch

x = torch.zeros(3)
y = torch.ones(3)  # noqa: E501
```

## Fix safety
Safe: the fix removes the unused codes, or the whole comment (with its reason) when none is
left; a suppression only changes what nnlint reports, never what the code does.

## Source
Not from a seed document: this is the engine's own report, as for NN001. It keeps
suppression comments honest, so that each one still silences the finding it was written for.
'''
from __future__ import annotations

from nnlint.rule import Context, Rule


class UnusedSuppression(Rule):
    code = "NN002"
    name = "unused-suppression"
    severity = "warning"
    default = True
    fixable = True
    options = {}

    def check(self, ctx: Context) -> None:
        # The engine reports NN002 itself: which suppressions were used is known only after every
        # rule has run and the suppressions were applied (see nnlint/unused.py).
        return None
