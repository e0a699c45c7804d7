"""L-BFGS keeps curvature pairs by a scale-free test."""

import torch

from metamers.synthesis.optimizers import LBFGS


def test_lbfgs_converges_on_a_quadratic_with_tiny_gradients():
    # f(x) = scale/2 * sum(a * x^2) per item: gradients of order 1e-7, so
    # s . y is of order 1e-14 and an absolute 1e-10 threshold would reject
    # every curvature pair (leaving gradient descent with a 1e-7 step).
    scale = 1e-7
    a = torch.linspace(1.0, 10.0, 48).reshape(1, 3, 4, 4)
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    start = 0.5 * scale * (a * x * x).flatten(1).sum(1)
    optimizer = LBFGS(history=10)
    optimizer.init_state(x)
    lr = torch.ones(2)
    for _ in range(40):
        x = optimizer.step(None, x, scale * a * x, lr)
    loss = 0.5 * scale * (a * x * x).flatten(1).sum(1)
    assert torch.all(loss < start * 1e-6), (start, loss)
