"""Feature-extraction throughput and peak memory: metamers vs THINGSvision, side by side.

One command runs everything and prints a table::

    python3 bench/extract.py

Every measurement runs in a fresh child process; its peak resident memory comes
from ``os.wait4`` (the child's own ``ru_maxrss``), its wall time from the parent.
Library workers also report the time of the extraction call alone and the peak
reached during it above the memory already held after imports and model loading
(``VmHWM`` reset through ``/proc/self/clear_refs``).

Tools compared on the same model (EfficientNet-Lite0, bundled real weights), the
same layers, the same PNG files on disk, the same batch size and thread count:

``metamers``          ``Extractor.extract`` in memory
``metamers-h5``       ``save_features(..., "features.h5")`` streamed to disk
``metamers-cli``      ``metamers extract ... --out features.h5`` (whole process)
``thingsvision``      ``get_extractor_from_model(...).extract_features`` in memory
``thingsvision-h5``   the flow of THINGSvision's own CLI: extract, then its
                      ``save_features(..., file_format="hdf5")`` per layer
``naive``             a plain full forward with detaching hooks under ``no_grad``
``decode-only``       reading, decoding and resizing the images, no model: the floor

THINGSvision runs in its own virtual environment (``bench/setup_thingsvision.sh``);
without it the comparison falls back to the naive baseline and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TV_PYTHON = REPO / ".venv" / "bench" / "bin" / "python"
MODEL = "efficientnet_lite0"
CONFIGS = {
    "early": ("blocks.2",),
    "late": ("blocks.6",),
    "early+late": ("blocks.2", "blocks.6"),
}
TOOLS = (
    "metamers",
    "metamers-h5",
    "metamers-cli",
    "thingsvision",
    "thingsvision-h5",
    "naive",
    "decode-only",
)
TV_TOOLS = ("thingsvision", "thingsvision-h5")
RESULT_FILE = "result.json"
TENSORFLOW_MODULES = (
    "tensorflow",
    "tensorflow.keras",
    "tensorflow.keras.layers",
    "tensorflow.keras.applications",
)
MEMORY_FEATURES = "features.npz"

# (metamers tool, reference tool, what the pair compares, timing used for images/s)
PAIRS = (
    ("metamers", "thingsvision", "library, in memory", "extract_s"),
    ("metamers-h5", "thingsvision-h5", "library, to disk", "extract_s"),
    ("metamers-cli", "thingsvision-h5", "CLI vs TV CLI flow (whole process)", "process_s"),
    ("metamers", "naive", "library vs naive full forward", "extract_s"),
)


# --------------------------------------------------------------------------- worker side


def _memory_status() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of this process in kB (Linux)."""
    status = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                status[key] = int(value.split()[0])
    return status


def _reset_peak() -> int:
    """Reset the peak-RSS mark to the current RSS; return that RSS in kB."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    return _memory_status()["VmRSS"]


def _setup_torch(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


def _timed(run: Callable[[], dict[str, np.ndarray] | None]) -> tuple[dict, dict]:
    """Run ``run``; return its features and its wall time, CPU time and memory."""
    rss_before = _reset_peak()
    start, cpu_start = time.perf_counter(), time.process_time()
    features = run()
    measures = {
        "extract_s": time.perf_counter() - start,
        "extract_cpu_s": time.process_time() - cpu_start,
        "rss_before_mb": rss_before / 1024,
        "extract_peak_mb": _memory_status()["VmHWM"] / 1024,
    }
    return features or {}, measures


def _metamers_worker(tool: str, layers: list[str], images: Path, batch: int, out: Path) -> dict:
    from metamers.extraction import Extractor, save_features
    from metamers.models import load_model
    from metamers.stimuli import resolve_stimuli

    model = load_model(MODEL, device="cpu")

    def run() -> dict[str, np.ndarray] | None:
        extractor = Extractor(model, batch_size=batch)
        stimuli = resolve_stimuli(str(images))
        if tool == "metamers-h5":
            save_features(extractor, stimuli, layers, out / "features.h5")
            return None
        return extractor.extract(stimuli, layers)

    return _finish(*_timed(run), out=out)


def _naive_worker(layers: list[str], images: Path, batch: int, out: Path) -> dict:
    """Whole-network forward, hooks that detach and copy, like a generic capture."""
    import torch

    from metamers.models import load_model
    from metamers.stimuli import resolve_stimuli

    model = load_model(MODEL, device="cpu")
    modules = dict(model.net.named_modules())

    def run() -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
        captured: dict[str, torch.Tensor] = {}
        hooks = [
            modules[name].register_forward_hook(
                lambda _m, _i, output, name=name: captured.__setitem__(
                    name, output.detach().clone()
                )
            )
            for name in layers
        ]
        with torch.no_grad():
            for _, x in resolve_stimuli(str(images)).batches(model.input_shape, batch):
                model(x)
                for name in layers:
                    parts[name].append(captured[name].flatten(1).numpy())
        for hook in hooks:
            hook.remove()
        return {name: np.concatenate(chunks) for name, chunks in parts.items()}

    return _finish(*_timed(run), out=out)


def _decode_worker(images: Path, batch: int, out: Path) -> dict:
    """Only read, decode and resize the images in batches: the cost every tool pays."""
    from metamers.models import load_model
    from metamers.stimuli import resolve_stimuli

    input_shape = load_model(MODEL, device="cpu").input_shape

    def run() -> None:
        for _ in resolve_stimuli(str(images)).batches(input_shape, batch):
            pass

    return _finish(*_timed(run), out=out)


def _install_tensorflow_placeholder() -> str:
    """Let THINGSvision 2.7.3 import without TensorFlow; return what was used.

    Its package ``__init__`` imports TensorFlow even for PyTorch models. The
    PyTorch path never calls it, so an inert placeholder module stands in when
    TensorFlow is not installed. NumPy 2 renamed ``np.AxisError``, which it
    reads at import time.
    """
    import importlib.machinery
    import types

    if not hasattr(np, "AxisError"):
        np.AxisError = np.exceptions.AxisError  # noqa: NPY201 (restores the old alias)
    try:
        import tensorflow

        return f"tensorflow {tensorflow.__version__}"
    except ImportError:
        pass

    class Placeholder(types.ModuleType):
        def __getattr__(self, attr: str):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return Placeholder(f"{self.__name__}.{attr}")

        def __call__(self, *args, **kwargs):
            return Placeholder(f"{self.__name__}()")

        def __bool__(self) -> bool:
            return False

        def __iter__(self):
            return iter(())

    for name in TENSORFLOW_MODULES:
        module = Placeholder(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        sys.modules[name] = module
    return "placeholder (TensorFlow not installed)"


def _thingsvision_worker(tool: str, layers: list[str], images: Path, batch: int, out: Path) -> dict:
    tensorflow = _install_tensorflow_placeholder()
    import thingsvision
    from thingsvision import get_extractor_from_model
    from thingsvision.utils.data import DataLoader, ImageDataset
    from thingsvision.utils.storing import save_features

    from metamers.models import load_model
    from metamers.stimuli.images import fit_image, pil_to_tensor

    model = load_model(MODEL, device="cpu")
    extractor = get_extractor_from_model(model=model, device="cpu", backend="pt")
    modules = [f"net.{name}" for name in layers]

    def transform(image):
        # The same decoding, crop and resize metamers applies, so inputs are identical.
        return fit_image(pil_to_tensor(image), model.input_shape)

    def run() -> dict[str, np.ndarray] | None:
        dataset = ImageDataset(
            root=str(images), out_path=str(out / "tv"), backend="pt", transforms=transform
        )
        batches = DataLoader(dataset=dataset, batch_size=batch, backend="pt")
        features = extractor.extract_features(
            batches=batches, module_names=modules, flatten_acts=True, output_type="ndarray"
        )
        if tool == "thingsvision-h5":
            for name, module in zip(layers, modules, strict=True):
                save_features(features[module], out_path=str(out / "tv" / name), file_format="hdf5")
            return None
        return {name: features[module] for name, module in zip(layers, modules, strict=True)}

    result = _finish(*_timed(run), out=out)
    result["versions"]["thingsvision"] = thingsvision.__version__
    result["versions"]["tensorflow"] = tensorflow
    return result


def _finish(features: dict, measures: dict, *, out: Path) -> dict:
    """Dump in-memory features (outside the timed region) and describe the run."""
    import torch

    if features:
        np.savez(out / MEMORY_FEATURES, **features)
    return {
        **measures,
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
    }


def run_worker(argv: Sequence[str]) -> None:
    """Entry point of a child process: ``extract.py worker TOOL LAYERS IMAGES BATCH THREADS OUT``."""
    tool, layers, images, batch, threads, out = argv
    _setup_torch(int(threads))
    args = (tool, layers.split(","), Path(images), int(batch), Path(out))
    if tool in TV_TOOLS:
        result = _thingsvision_worker(*args)
    elif tool == "naive":
        result = _naive_worker(*args[1:])
    elif tool == "decode-only":
        result = _decode_worker(*args[2:])
    else:
        result = _metamers_worker(*args)
    (Path(out) / RESULT_FILE).write_text(json.dumps(result))


# --------------------------------------------------------------------------- parent side


@dataclass
class Run:
    """One child process: its timings, memory and output location."""

    tool: str
    config: str
    process_s: float
    process_cpu_s: float
    peak_rss_mb: float
    out: Path
    extract_s: float | None = None
    extract_cpu_s: float | None = None
    rss_before_mb: float | None = None
    extract_peak_mb: float | None = None
    threads: int | None = None
    versions: dict = field(default_factory=dict)


def write_images(folder: Path, n_images: int) -> Path:
    """Write the bundled photos as PNG files, repeated to ``n_images`` files."""
    from PIL import Image

    from metamers.stimuli import resolve_stimuli

    folder.mkdir(parents=True, exist_ok=True)
    photos = resolve_stimuli("bundled:photos")
    originals = []
    for index, stimulus in enumerate(photos):
        array = (photos.load_raw(stimulus).permute(1, 2, 0).numpy() * 255).round()
        array = array.astype(np.uint8)
        path = folder / f".photo_{index:02d}.png"
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)
        originals.append(path)
    for index in range(n_images):
        shutil.copyfile(originals[index % len(originals)], folder / f"img_{index:04d}.png")
    for path in originals:
        path.unlink()
    return folder


def _metamers_executable() -> str:
    beside = Path(sys.executable).parent / "metamers"
    return str(beside) if beside.exists() else shutil.which("metamers") or "metamers"


def _command(tool: str, layers: Sequence[str], images: Path, args, out: Path) -> list[str]:
    if tool == "metamers-cli":
        return [
            _metamers_executable(), "extract", MODEL, "--layers", ",".join(layers),
            "--stimuli", str(images), "--out", str(out / "features.h5"),
            "--batch-size", str(args.batch_size), "--device", "cpu",
        ]  # fmt: skip
    python = str(args.tv_python) if tool in TV_TOOLS else sys.executable
    return [
        python, str(Path(__file__).resolve()), "worker", tool, ",".join(layers),
        str(images), str(args.batch_size), str(args.threads), str(out),
    ]  # fmt: skip


def run_child(tool: str, config: str, images: Path, args, out: Path) -> Run:
    """Run one measurement in a fresh process; raise with its log tail if it fails."""
    out.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env["PYTHONWARNINGS"] = "ignore"
    log = out / "log.txt"
    with log.open("w") as handle:
        start = time.perf_counter()
        child = subprocess.Popen(
            _command(tool, CONFIGS[config], images, args, out),
            stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=out,
        )  # fmt: skip
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:
            child.kill()
            child.wait()
            raise
        seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = log.read_text()[-2000:]
        raise RuntimeError(f"{tool} ({config}) failed with exit code {child.returncode}:\n{tail}")
    cpu = usage.ru_utime + usage.ru_stime
    run = Run(tool, config, seconds, cpu, usage.ru_maxrss / 1024, out)
    result_file = out / RESULT_FILE
    if result_file.exists():
        for key, value in json.loads(result_file.read_text()).items():
            setattr(run, key, value)
    return run


def check_thingsvision(python: Path) -> str | None:
    """Return why THINGSvision cannot run under ``python``, or ``None`` when it can."""
    if not python.exists():
        return f"no interpreter at {python} (run bench/setup_thingsvision.sh)"
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import extract; "
        "extract._install_tensorflow_placeholder(); import thingsvision, metamers; "
        "print(thingsvision.__version__)"
    )
    done = subprocess.run(
        [str(python), "-c", probe, str(Path(__file__).resolve().parent)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "import failed"
    return None


def read_output(run: Run) -> dict[str, np.ndarray]:
    """Features a run produced, by layer name, whatever tool wrote them."""
    import h5py

    from metamers.extraction.writers import read_features

    if run.tool == "decode-only":
        return {}
    if (run.out / MEMORY_FEATURES).exists():
        with np.load(run.out / MEMORY_FEATURES) as data:
            return {name: data[name] for name in data.files}
    if (run.out / "features.h5").exists():
        return read_features(run.out / "features.h5")[1]
    features = {}
    for name in CONFIGS[run.config]:
        with h5py.File(run.out / "tv" / name / "features.hdf5", "r") as h5:
            features[name] = h5["features"][:]
    return features


def max_abs_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Largest absolute difference over every layer (``inf`` on a shape mismatch)."""
    worst = 0.0
    for name, array in a.items():
        other = b.get(name)
        if other is None or other.shape != array.shape:
            return float("inf")
        worst = max(worst, float(np.max(np.abs(array - other))))
    return worst


@dataclass
class Summary:
    """Best-of-repeats numbers for one tool in one configuration."""

    tool: str
    images_per_s: float | None
    process_images_per_s: float
    images_per_cpu_s: float | None
    process_images_per_cpu_s: float
    peak_rss_mb: float
    extract_peak_above_baseline_mb: float | None
    max_abs_diff: float | None


def summarise(runs: list[Run], n_images: int, diff: float | None) -> Summary:
    """Fastest run's throughput; median memory."""
    extract = [r.extract_s for r in runs if r.extract_s is not None]
    extract_cpu = [r.extract_cpu_s for r in runs if r.extract_cpu_s is not None]
    above = [r.extract_peak_mb - r.rss_before_mb for r in runs if r.extract_peak_mb is not None]
    return Summary(
        tool=runs[0].tool,
        images_per_s=n_images / min(extract) if extract else None,
        process_images_per_s=n_images / min(r.process_s for r in runs),
        images_per_cpu_s=n_images / min(extract_cpu) if extract_cpu else None,
        process_images_per_cpu_s=n_images / min(r.process_cpu_s for r in runs),
        peak_rss_mb=statistics.median(r.peak_rss_mb for r in runs),
        extract_peak_above_baseline_mb=statistics.median(above) if above else None,
        max_abs_diff=diff,
    )


def ratios(summaries: dict[str, Summary]) -> list[dict]:
    """metamers / reference for throughput and peak memory, per comparable pair."""
    rows = []
    for ours, theirs, what, timing in PAIRS:
        if ours not in summaries or theirs not in summaries:
            continue
        a, b = summaries[ours], summaries[theirs]
        speed = "images_per_s" if timing == "extract_s" else "process_images_per_s"
        cpu_speed = speed.replace("per_s", "per_cpu_s")
        rows.append(
            {
                "pair": f"{ours} / {theirs}",
                "what": what,
                "speed_ratio": getattr(a, speed) / getattr(b, speed),
                "cpu_speed_ratio": getattr(a, cpu_speed) / getattr(b, cpu_speed),
                "peak_rss_ratio": a.peak_rss_mb / b.peak_rss_mb,
            }
        )
    return rows


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_config(config: str, summaries: dict[str, Summary], pair_rows: list[dict]) -> None:
    """One configuration's table, then its ratios."""
    print(f"\n== {config}: layers {', '.join(CONFIGS[config])}")
    print(
        f"{'tool':<16}{'img/s':>7}{'img/CPU-s':>10}{'proc img/s':>11}{'proc img/CPU-s':>15}"
        f"{'peak MB':>9}{'+MB extr':>9}{'max|diff|':>10}"
    )
    for s in summaries.values():
        print(
            f"{s.tool:<16}{_fmt(s.images_per_s):>7}{_fmt(s.images_per_cpu_s):>10}"
            f"{_fmt(s.process_images_per_s):>11}{_fmt(s.process_images_per_cpu_s):>15}"
            f"{_fmt(s.peak_rss_mb, '.0f'):>9}{_fmt(s.extract_peak_above_baseline_mb, '.0f'):>9}"
            f"{_fmt(s.max_abs_diff, '.0e'):>10}"
        )
    for row in pair_rows:
        print(
            f"  {row['pair']:<31} speed x{row['speed_ratio']:.2f} (wall) "
            f"x{row['cpu_speed_ratio']:.2f} (CPU)  peak RSS x{row['peak_rss_ratio']:.2f}  "
            f"({row['what']})"
        )


def run_benchmark(args) -> list[dict]:
    """Run every tool on every configuration ``args.repeats`` times; print and return results."""
    tools = [t for t in TOOLS if t in args.tools]
    problem = check_thingsvision(args.tv_python) if set(TV_TOOLS) & set(tools) else None
    if problem:
        print(f"THINGSvision NOT AVAILABLE: {problem}")
        print("Comparing metamers against the naive full-forward baseline only.")
        tools = [t for t in tools if t not in TV_TOOLS]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the temp folder is removed
    work = Path(tempfile.mkdtemp(prefix="metamers-bench-"))
    try:
        images = write_images(work / "images", args.n_images)
        runs: dict[tuple[str, str], list[Run]] = {}
        for repeat in range(args.repeats):
            order = tools[repeat % len(tools) :] + tools[: repeat % len(tools)]
            for config in args.configs:
                for tool in order:
                    run = run_child(tool, config, images, args, work / f"{config}-{tool}-{repeat}")
                    runs.setdefault((config, tool), []).append(run)
                    print(f"  {config:<11} {tool:<16} {run.process_s:6.1f} s", file=sys.stderr)
        return report(args, tools, runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args, tools: list[str], runs: dict[tuple[str, str], list[Run]]) -> list[dict]:
    """Print the tables and one JSON line per configuration."""
    lines = []
    versions = {k: v for rs in runs.values() for r in rs for k, v in r.versions.items()}
    print(
        f"\n{MODEL}, {args.n_images} PNG images, batch {args.batch_size}, "
        f"{args.threads} threads, CPU, best of {args.repeats} "
        f"(load average {os.getloadavg()[0]:.1f}); {json.dumps(versions)}"
    )
    print("img/s: extraction call only; proc: whole process (imports, model load);")
    print("img/CPU-s: per CPU second (user+sys, all threads), steadier on a shared machine")
    print("peak MB: child's ru_maxrss; +MB extr: peak during extraction above RSS before it")
    for config in args.configs:
        reference = read_output(runs[(config, "metamers")][0]) if "metamers" in tools else None
        summaries = {}
        for tool in tools:
            output = read_output(runs[(config, tool)][0])
            diff = max_abs_difference(reference, output) if reference and output else None
            summaries[tool] = summarise(runs[(config, tool)], args.n_images, diff)
        pair_rows = ratios(summaries)
        print_config(config, summaries, pair_rows)
        lines.append(
            {
                "benchmark": "extract",
                "config": config,
                "layers": list(CONFIGS[config]),
                "model": MODEL,
                "n_images": args.n_images,
                "batch_size": args.batch_size,
                "threads": args.threads,
                "repeats": args.repeats,
                "versions": versions,
                "tools": {tool: asdict(s) for tool, s in summaries.items()},
                "ratios": pair_rows,
            }
        )
    print()
    for line in lines:
        print(json.dumps(line))
    return lines


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="best time of this many runs")
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help=f"comma-separated, from {list(CONFIGS)}"
    )
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, from {TOOLS}")
    parser.add_argument(
        "--tv-python",
        type=Path,
        default=DEFAULT_TV_PYTHON,
        help="interpreter of the THINGSvision venv (bench/setup_thingsvision.sh)",
    )
    args = parser.parse_args(argv)
    args.configs = [c for c in args.configs.split(",") if c]
    args.tools = [t for t in args.tools.split(",") if t]
    unknown = [c for c in args.configs if c not in CONFIGS] + [
        t for t in args.tools if t not in TOOLS
    ]
    if unknown:
        parser.error(f"unknown config or tool: {', '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark, or one worker when called as ``extract.py worker ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        run_worker(argv[1:])
        return
    run_benchmark(parse_args(argv))


if __name__ == "__main__":
    main()
