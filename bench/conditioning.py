"""Why metamer synthesis on EfficientNet-Lite0 crawls: the conditioning of the layer map.

Runs the ``fast`` preset for ``--steps`` steps at a layer, then, at the point
reached, solves the *linearised* matching problem ``min_d ||J d + r||`` (``J`` the
layer's Jacobian with respect to the pixels, ``r`` the activation residual) by
conjugate gradients on the normal equations — plain, and preconditioned by the
radially averaged Fourier spectrum of ``J^T J`` (a translation-invariant
preconditioner). It prints the loss that the linear model predicts after each
block of CG iterations and the radial spectrum of ``J^T J``. If even the exact
linear problem needs hundreds of Jacobian products to halve the loss, no
first-order method (nor Gauss–Newton) can take it down by orders of magnitude
in a few thousand steps. Not a test, not part of the package.

Usage: ``python bench/conditioning.py --layer blocks.1 --photo coffee``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from common import load_references, machine_line, set_threads
from metamers.models import load_model
from metamers.synthesis import MetamerSynthesis, get_preset

Operator = Callable[[torch.Tensor], torch.Tensor]


def radial_index(height: int, width: int, n_bins: int) -> torch.Tensor:
    """``(H, W)`` radial-frequency bin of every 2-D FFT coefficient."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.fftfreq(width)[None, :]
    radius = torch.sqrt(fy**2 + fx**2)
    return (radius / radius.max() * (n_bins - 1)).round().long()


def jtj_spectrum(jtj: Operator, shape: torch.Size, n_probes: int, n_bins: int) -> torch.Tensor:
    """``(C, n_bins)`` radial gain of ``J^T J`` per colour channel, from white-noise probes."""
    generator = torch.Generator().manual_seed(1)
    gain_out, gain_in = 0.0, 0.0
    for _ in range(n_probes):
        probe = torch.randn(shape, generator=generator)
        gain_out = gain_out + torch.fft.fft2(jtj(probe)).abs().pow(2)
        gain_in = gain_in + torch.fft.fft2(probe).abs().pow(2)
    gain = (gain_out / gain_in).sqrt()[0]
    index = radial_index(*gain.shape[-2:], n_bins).flatten()
    counts = torch.zeros(n_bins).index_add_(0, index, torch.ones_like(index, dtype=torch.float))
    sums = torch.zeros(gain.shape[0], n_bins).index_add_(1, index, gain.flatten(1))
    return sums / counts.clamp(min=1)


def conjugate_gradients(
    jtj: Operator, rhs: torch.Tensor, precondition: Operator, iterations: int
) -> list[torch.Tensor]:
    """Preconditioned CG on ``J^T J d = rhs``; the iterate after every iteration."""
    d = torch.zeros_like(rhs)
    residual = rhs.clone()
    z = precondition(residual)
    direction = z.clone()
    rz = (residual * z).sum()
    iterates = []
    for _ in range(iterations):
        product = jtj(direction)
        alpha = rz / (direction * product).sum()
        d = d + alpha * direction
        residual = residual - alpha * product
        z = precondition(residual)
        rz_next = (residual * z).sum()
        direction = z + (rz_next / rz) * direction
        rz = rz_next
        iterates.append(d)
    return iterates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="blocks.1")
    parser.add_argument("--photo", default="coffee")
    parser.add_argument("--steps", type=int, default=300, help="fast-preset steps before probing")
    parser.add_argument("--cg", type=int, default=150, help="CG iterations")
    parser.add_argument("--report-every", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_threads(args.threads)
    print(machine_line())
    model = load_model("efficientnet_lite0")
    reference = load_references(model, [args.photo])
    synthesis = MetamerSynthesis(
        model, args.layer, reference, settings=get_preset("fast", max_steps=args.steps)
    )
    synthesis.setup(seed=0).synthesize()
    x = synthesis.metamers.detach().clone()

    def layer_map(image: torch.Tensor) -> torch.Tensor:
        return model.activations(image, [args.layer])[args.layer]

    with torch.no_grad():
        target = layer_map(reference)
    activations, vjp = torch.func.vjp(layer_map, x)
    residual = (activations - target).detach()
    scale = target.norm()

    def jtj(v: torch.Tensor) -> torch.Tensor:
        return vjp(torch.func.jvp(layer_map, (x,), (v,))[1])[0]

    def predicted_loss(d: torch.Tensor) -> float:
        return float((residual + torch.func.jvp(layer_map, (x,), (d,))[1]).norm() / scale)

    print(
        f"{args.layer}, {args.photo}: loss {float(residual.norm() / scale):.4f} "
        f"after {args.steps} fast steps"
    )
    spectrum = jtj_spectrum(jtj, x.shape, n_probes=8, n_bins=16)
    profile = spectrum.mean(0)
    print(
        "radial gain of J^T J (low -> high frequency, relative to its maximum): "
        + " ".join(f"{v:.2f}" for v in profile / profile.max())
    )
    index = radial_index(*x.shape[-2:], spectrum.shape[1])
    fourier_gain = spectrum[:, index] + 0.01 * spectrum.max()

    def fourier_precondition(v: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifft2(torch.fft.fft2(v) / fourier_gain).real

    rhs = -vjp(residual)[0]
    for name, precondition in (
        ("plain CG", lambda v: v),
        ("Fourier-preconditioned CG", fourier_precondition),
    ):
        started = time.perf_counter()
        iterates = conjugate_gradients(jtj, rhs, precondition, args.cg)
        marks = range(args.report_every - 1, args.cg, args.report_every)
        line = ", ".join(
            f"{k + 1}: {predicted_loss(iterates[k]):.4f} (max|d| {float(iterates[k].abs().max()):.2f})"
            for k in marks
        )
        print(
            f"{name} — linearised loss after N iterations: {line} "
            f"[{time.perf_counter() - started:.0f} s]"
        )


if __name__ == "__main__":
    main()
