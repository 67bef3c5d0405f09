"""Curvature from a block Hessian-vector operator: the top-k eigensolver, per-layer blocks and
the trace. It knows operators, never engines, so every engine (and a test's dense oracle) can
feed it."""
