"""Adapters: turn code as people write it into a :class:`~gradcheck.protocol.Problem`: attributes
and dicts (``attributes``), in-place training steps (``training``), PyTorch (``pytorch``), JAX
(``jax``: a ``custom_vjp`` rule), and
``FILE.py:NAME`` targets of the command line (``target``)."""
