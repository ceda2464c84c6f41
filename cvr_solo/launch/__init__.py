"""Entry points ``cvr-solo pretrain`` and ``cvr-solo linear``, built on solo-learn's blocks.

solo-learn's pip install ships no main_*.py, so these put its own pieces together: its config
parsing (solo.args), data pipelines (torchvision and DALI), Checkpointer and AutoResumer.
Importing this package requires solo-learn.
"""
