"""Adapters that attach the runtime monitor where people train: a Lightning callback
(:mod:`nnlint.integrations.lightning`), a Hugging Face ``Trainer`` callback
(:mod:`nnlint.integrations.transformers`), an event log with TensorBoard scalars
(:mod:`nnlint.integrations.events`) and ``nnlint run`` (:mod:`nnlint.integrations.run`).

They are thin: every decision is the monitor's (``nnlint.runtime``); an adapter only
says when a run starts, which loss a step had, and when the run ends. Importing this
package imports nothing heavy; each submodule imports its framework.
"""
