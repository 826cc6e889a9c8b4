"""nnlint's rule catalogue: one file per code (see nnlint/catalogue.py)."""
