"""Pausing Python's cyclic garbage collector while a lint run builds its trees.

A run keeps every parsed module (millions of CST nodes) alive from phase one until
phase two, so the collector's repeated passes over the growing heap free nothing and
cost about a third of a cold run (measured on 306 diffusers files: 30.5 s -> 20.0 s in
one process, peak memory 693 -> 718 MB). Reference counting still frees everything
that is not part of a cycle at once; cycles wait until the collector runs again.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block; restore its previous state after.

    Re-entrant, and it leaves a collector the caller had disabled alone. Nothing is
    collected on exit: a CLI run is about to end, and a library caller's collector
    picks the cycles up on its next pass.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
