"""Core pipeline: parameters -> loss evaluations -> finite differences -> per-element verdicts.

``params`` (the user's parameters, perturbed and restored bitwise), ``evaluation`` (calling the
loss, serially or on an executor), ``numerics`` (step and tolerance rules), ``stencil`` (the
arithmetic of a finite-difference stencil), ``differences`` (numeric partials with error
estimates), ``compare`` (one verdict per element). Internal: the public API is :mod:`gradcheck`.
"""
