"""Retrain the MNIST zoo from scratch and compare it with the committed weights (not run in CI).

Usage::

    python scripts/verify_zoo.py                    # every zoo model
    python scripts/verify_zoo.py mnist_cnn_s0 ...   # some of them
    python scripts/verify_zoo.py --out DIR --tolerance 1.0

Each model is trained on CPU with its fixed seed (one thread, deterministic
kernels) into ``--out`` (resumable: finished models are not retrained), then
its held-out accuracy and PGD robustness are printed next to the committed
values, with whether the weights are byte-identical. Exits 1 if any clean
accuracy differs from the committed value by more than ``--tolerance``
points, or a robust model is not more robust than its standard counterpart.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from metamers.models.zoo import Reproduction, resolve_names, train_zoo


def robustness_ordering_holds(results: list[Reproduction]) -> bool:
    """Each retrained robust model beats its retrained standard counterpart under attack."""
    by_name = {r.name: r for r in results}
    pairs = [
        (by_name[r.name.replace("_robust", "")], r)
        for r in results
        if "_robust" in r.name and r.name.replace("_robust", "") in by_name
    ]
    return all(robust.robust_accuracy > standard.robust_accuracy for standard, robust in pairs)


def main(argv: list[str] | None = None) -> int:
    """Retrain, print the comparison, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo models (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="weights directory (default: temp)")
    parser.add_argument("--tolerance", type=float, default=1.0, help="accuracy points allowed")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="metamers-zoo-"))
    specs = resolve_names(args.names, all_models=not args.names)

    def show(r: Reproduction) -> None:
        committed = "-" if r.committed_accuracy is None else f"{100 * r.committed_accuracy:5.1f}"
        robust = (
            "-"
            if r.committed_robust_accuracy is None
            else f"{100 * r.committed_robust_accuracy:5.1f}"
        )
        flag = "ok" if r.within(args.tolerance / 100) else "DIFFERS"
        print(
            f"{r.name:24s} acc {100 * r.accuracy:5.1f} (committed {committed})  "
            f"PGD {100 * r.robust_accuracy:5.1f} (committed {robust})  "
            f"identical={'yes' if r.identical else 'no'}  {flag}",
            flush=True,
        )

    results = train_zoo(specs, out, on_done=show)
    ordered = robustness_ordering_holds(results)
    close = all(r.within(args.tolerance / 100) for r in results)
    print(
        f"weights in {out}; accuracy within {args.tolerance} points: {close}; "
        f"robust beats standard: {ordered}"
    )
    return 0 if close and ordered else 1


if __name__ == "__main__":
    sys.exit(main())
