"""Entry points for derivatives written in other shapes than ``loss(params)`` + ``grad(params)``.

Each is a thin adapter that builds a scalar loss and its hand-written gradient and hands them to
:func:`gradcheck.check`: same engine, same report, same diagnosis.

* :mod:`.value_and_grad`: ``fun(params) -> (loss, grads)`` in one call.
* :mod:`.layer`: a layer's ``forward``/``backward`` pair with an upstream ``dout``.
* :mod:`.derivatives`: Jacobians of vector functions, Hessians and Hessian-vector products.
"""
