"""Brain-mapping speed: batched exact-LOO ridge vs the published per-target RidgeCV loop.

165 stimuli × D features → T targets with 3 repetitions, 10 splits of 83/82,
the noise correction (1 + 3 fits per target per split), the published alpha
grid 10^49..10^-50. Compared:

- ``metamers``: :func:`metamers.brain.fit_encoding` (one decomposition per
  split for every target and alpha; torch float64), all targets, all splits.
- ``per-target loop``: the published procedure -- one scikit-learn
  ``RidgeCV(alphas)`` (efficient LOO) per fit, 4 fits per target per split --
  timed on a subset of targets and splits and scaled to the whole.
- ``sklearn alpha_per_target``: one ``RidgeCV(alpha_per_target=True)`` call
  per split and fit set (all targets), timed on a subset of splits, scaled.
- ``himalaya``: ``himalaya.ridge.RidgeCV`` (5-fold CV, not LOO) per split, scaled.

It also checks that the batched fit chose the same alphas as the loop wherever
the LOO curve has a unique minimum (ties among alphas far beyond every
eigenvalue are numerically meaningless: their predictions have the same
direction, hence the same r) and gives the same test r. Times are CPU seconds of this process (all threads,
``time.process_time``): on a shared machine wall time swings with the load.
Not part of the test suite.

    python3 bench/brain.py --features 4096,50000 --targets 10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime

import numpy as np
import torch
from sklearn.linear_model import RidgeCV

from metamers.brain import NeuralData, fit_encoding, get_preset, ridge_loo


def machine_line() -> str:
    """Date, cores, threads and load (the machine may be shared)."""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{datetime.now(UTC).isoformat(timespec='minutes')} | {platform.processor() or 'cpu'} "
        f"{os.cpu_count()} cores | torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"| load average {load}"
    )


def make_data(n_features: int, n_targets: int, seed: int = 0) -> tuple[np.ndarray, NeuralData]:
    """Features with a decaying spectrum; targets driven by a few directions, plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(165, n_features)).astype(np.float32)
    x *= (1.0 / np.sqrt(1 + np.arange(n_features)))[None, :].astype(np.float32)
    basis = x[:, :20].astype(np.float64) @ rng.normal(size=(20, 8))
    signal = basis @ rng.normal(size=(8, n_targets)) * rng.uniform(0, 1, n_targets)
    signal /= signal.std(0) + 1e-12
    responses = signal[:, :, None] + rng.uniform(0.5, 3, n_targets)[None, :, None] * rng.normal(
        size=(165, n_targets, 3)
    )
    return x, NeuralData(responses, [f"s{i}" for i in range(165)])


def per_target_loop(x, data, splits, alphas, targets, split_numbers):
    """The published loop on some targets and splits: 4 RidgeCV fits per target per split."""
    out = {}
    for number in split_numbers:
        train, test = splits[number]
        for target in targets:
            y = data.responses[:, target, :]
            fits = [y.mean(1), y[:, 0], y[:, 1], y[:, 2]]
            models = [RidgeCV(alphas=alphas).fit(x[train], v[train]) for v in fits]
            prediction = models[0].predict(x[test])
            r = np.corrcoef(prediction, y.mean(1)[test])[0, 1]
            out[(number, target)] = (models[0].alpha_, r)
    return out


def sklearn_alpha_per_target(x, data, splits, alphas, split_numbers):
    """One multi-target RidgeCV(alpha_per_target=True) per split and fit set."""
    y = np.concatenate([data.mean(), *[data.responses[:, :, i] for i in range(3)]], axis=1)
    for number in split_numbers:
        train, test = splits[number]
        RidgeCV(alphas=alphas, alpha_per_target=True).fit(x[train], y[train]).predict(x[test])


def himalaya_fit(x, data, splits, alphas, split_numbers):
    """himalaya RidgeCV (5-fold) per split on all 4 fit sets."""
    from metamers.brain import ridge_himalaya

    y = np.concatenate([data.mean(), *[data.responses[:, :, i] for i in range(3)]], axis=1)
    for number in split_numbers:
        train, test = splits[number]
        ridge_himalaya(x[train], y[train], x[test], alphas)


def timed(function, *args) -> float:
    """CPU seconds (all threads) of one call: steadier than wall time on a shared machine."""
    start = time.process_time()
    function(*args)
    return time.process_time() - start


def run(n_features: int, args) -> dict:
    x, data = make_data(n_features, args.targets)
    preset = get_preset("tuckute2023")
    alphas = np.asarray(preset.alphas)
    splits_obj = preset.make_splits(data.stimulus_ids)
    splits = splits_obj.indices(data.stimulus_ids)
    start = time.process_time()
    result = fit_encoding({"layer": x}, data, preset=preset, device=args.device)
    ours = time.process_time() - start

    loop_targets = list(range(args.loop_targets))
    loop_splits = list(range(args.loop_splits))
    start = time.process_time()
    x64 = x.astype(np.float64)  # scikit-learn keeps float32 input in float32: compare in float64
    loop = per_target_loop(x64, data, splits, alphas, loop_targets, loop_splits)
    loop_time = (time.process_time() - start) * (
        args.targets / len(loop_targets) * len(splits) / len(loop_splits)
    )
    scores = result.scores.set_index(["split", "target"])
    unique = {}
    for number in loop_splits:
        train, test = splits[number]
        curves = ridge_loo(
            x[train], data.mean()[train][:, loop_targets], x[test], alphas, keep_loo=True
        ).loo_mse
        ordered = np.sort(curves, axis=0)
        for target, gap in zip(loop_targets, ordered[1] - ordered[0], strict=True):
            unique[(number, target)] = gap > 1e-9 * ordered[0][loop_targets.index(target)]
    same_alpha, diffs, meaningful = 0, [], 0
    for (number, target), (alpha, r) in loop.items():
        row = scores.loc[(number, target)]
        diffs.append(abs(row["r"] - r))
        if unique[(number, target)]:
            meaningful += 1
            same_alpha += int(row["alpha"] == alpha)
    record = {
        "features": n_features,
        "targets": args.targets,
        "splits": len(splits),
        "alphas": len(alphas),
        "metamers_s": ours,
        "per_target_loop_s_scaled": loop_time,
        "loop_measured": f"{len(loop_targets)} targets x {len(loop_splits)} splits",
        "speedup_vs_loop": loop_time / ours,
        "alpha_agreement": f"{same_alpha}/{meaningful} unique LOO minima",
        "max_abs_r_difference": float(max(diffs)) if diffs else float("nan"),
    }
    coef_gb = n_features * 4 * args.targets * 8 / 1e9  # its (features, 4 T) float64 weights
    if coef_gb > args.max_gb:
        record["sklearn_alpha_per_target_skipped"] = f"needs {coef_gb:.0f} GB of weights"
    elif not args.skip_sklearn:
        record["sklearn_alpha_per_target_s_scaled"] = timed(
            sklearn_alpha_per_target, x, data, splits, alphas, [0]
        ) * len(splits)
    if not args.skip_himalaya:
        record["himalaya_s_scaled"] = timed(himalaya_fit, x, data, splits, alphas, [0]) * len(
            splits
        )
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="4096,50000", help="Comma-separated D values.")
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--loop-targets", type=int, default=10)
    parser.add_argument("--loop-splits", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--skip-himalaya", action="store_true")
    parser.add_argument(
        "--max-gb",
        type=float,
        default=4.0,
        help="Skip sklearn's call when its coefficients need more.",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line())
    print("CPU seconds (all threads); loop, sklearn and himalaya scaled from a subset")
    header = (
        f"{'D':>7} {'targets':>8} {'metamers':>11} {'loop (scaled)':>16} {'speed-up':>9} "
        f"{'sklearn apt':>14} {'himalaya':>11}  alphas equal, max |Δr|"
    )
    print(header)
    for n_features in [int(v) for v in args.features.split(",")]:
        record = run(n_features, args)
        print(
            f"{n_features:>7} {record['targets']:>8} {record['metamers_s']:>11.1f} "
            f"{record['per_target_loop_s_scaled']:>16.0f} {record['speedup_vs_loop']:>8.0f}x "
            f"{record.get('sklearn_alpha_per_target_s_scaled', float('nan')):>14.1f} "
            f"{record.get('himalaya_s_scaled', float('nan')):>11.1f}  "
            f"{record['alpha_agreement']}, {record['max_abs_r_difference']:.1e}"
        )
        print(json.dumps(record))


if __name__ == "__main__":
    main()
