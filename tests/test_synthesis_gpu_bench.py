"""bench/gpu.py runs its tiny configuration on the CPU and writes its JSON lines."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu.py"


def test_gpu_bench_tiny_configuration_runs(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "rows.jsonl"
    argv = ["--tiny", "--n", "2", "--batches", "1,2", "--steps", "1", "--budget-steps", "8"]
    argv += ["--queue-n", "4", "--queue-steps", "8", "--queue-target", "0.5", "--json", str(out)]
    rows = bench.main(argv)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(rows) and lines[0]["part"] == "machine" and lines[0]["tiny"]
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == lines
    steps = [r for r in lines if r["part"] == "step"]
    assert [(r["method"], r["batch"]) for r in steps] == [
        ("published", 1),
        ("engine-fp32", 1),
        ("engine-fp32", 2),
    ]
    assert all(r["s_per_step"] > 0 for r in steps)
    assert all(r["ratio_to_bare"] > 0 and r["image_steps_per_s"] > 0 for r in steps[1:])
    [reach] = [r for r in lines if r["part"] == "reach" and r["method"] == "fast"]
    assert reach["method"] == "fast" and reach["n"] == 2
    queue = [r for r in lines if r["part"] == "queue"]
    assert [r["sync_every"] for r in queue] == [1, 10, 50]
    for row in queue:
        assert row["items"] == 4 and row["capacity"] == 2
        assert row["evaluations"] <= row["rows_evaluated"] <= row["slot_steps"]
    assert queue[0]["rows_per_evaluation"] == 1.0
