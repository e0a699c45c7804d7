"""Issue 14, cases 11 and 12: common mistakes and faults end in one line, before the work.

Every command error is one ``error: ...`` line on stderr with a non-zero exit,
found before any model is run where it can be, and nothing half-written is
left behind.
"""

from __future__ import annotations

import errno
import importlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import metamers.io
from metamers.cli import main
from metamers.cli.app import INTERRUPTED, _register_commands
from metamers.errors import ConfigError, MetamersError
from metamers.io import atomic_path, check_writable_dir, check_writable_file, write_bytes_atomic
from metamers.stimuli import images
from metamers.stimuli.images import LossyImageWarning, load_image
from metamers.studies import load_study
from metamers.studies.store import catalog_status
from studies_support import tiny_study, write_study, write_tiny_model

ROOT = os.geteuid() == 0
COMMAND_MODULES = ("common", "models", "synthesis", "evaluation")


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``metamers ARGS`` in this process: ``(exit code, stdout, stderr)``."""
    monkeypatch.setattr(sys, "argv", ["metamers", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exit_info:
        code = exit_info.code if isinstance(exit_info.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(err: str) -> str:
    """The one ``error:`` line, last on stderr (progress bars may come before it)."""
    lines = [line for line in err.strip().splitlines() if line.strip() and "━" not in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert err.strip().splitlines()[-1] == lines[0]
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def never_load_a_model(monkeypatch):
    """Fail the test if a command gets as far as loading a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("the output was not checked before the model was loaded")

    _register_commands()
    modules = [importlib.import_module(f"metamers.cli.{name}") for name in COMMAND_MODULES]
    for module in modules:  # all imported first: each binds the real open_model
        monkeypatch.setattr(module, "open_model", refuse)
    monkeypatch.setattr("metamers.cli.common.load_model", refuse)


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder this process cannot write in (simulated for root, who may write anywhere)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if not ROOT:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        yield folder
        folder.chmod(stat.S_IRWXU)
        return
    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(metamers.io.tempfile, "mkstemp", refuse)
    yield folder


# -- case 11: outputs checked before the work -----------------------------------------------------


GENERATE = ("generate", "efficientnet_lite0", "--layers", "blocks.1", "--stimuli", "bundled:photos")
EXTRACT = ("extract", "efficientnet_lite0", "--layers", "blocks.1", "--stimuli", "bundled:photos")
COMPARE = ("compare", "efficientnet_lite0", "--layers", "blocks.1", "--stimuli", "bundled:photos")


def test_case11_generate_out_is_an_existing_file(tmp_path, monkeypatch, capsys, never_load_a_model):
    target = tmp_path / "results"
    target.write_text("notes")
    code, _, err = _cli(monkeypatch, capsys, *GENERATE, "--out", target)
    assert code == 2
    assert _one_error_line(err) == f"error: {target} is a file, not a folder"
    assert target.read_text() == "notes"


def test_case11_generate_out_below_a_file(tmp_path, monkeypatch, capsys, never_load_a_model):
    blocker = tmp_path / "in-the-way"
    blocker.write_text("x")
    code, _, err = _cli(monkeypatch, capsys, *GENERATE, "--out", blocker / "out")
    assert code == 2
    assert "is a file, not a folder" in _one_error_line(err)


def test_case11_generate_out_read_only(read_only, monkeypatch, capsys, never_load_a_model):
    code, _, err = _cli(monkeypatch, capsys, *GENERATE, "--out", read_only / "out")
    assert code == 2
    assert _one_error_line(err).startswith(f"error: cannot write in {read_only}")
    assert list(read_only.iterdir()) == []


def test_case11_extract_out_is_a_folder_fails_before_extracting(
    tmp_path, monkeypatch, capsys, never_load_a_model
):
    folder = tmp_path / "features.h5"
    folder.mkdir()
    code, _, err = _cli(monkeypatch, capsys, *EXTRACT, "--out", folder)
    assert code == 2
    assert _one_error_line(err) == f"error: {folder} is a folder; give a file name"


def test_case11_save_features_checks_its_output_before_running_the_model(tmp_path, tiny_model):
    from metamers.extraction import Extractor, save_features
    from metamers.stimuli import resolve_stimuli

    class Untouchable(Extractor):
        def iter_batches(self, *args, **kwargs):
            raise AssertionError("extraction ran before the output was checked")

    folder = tmp_path / "f.npz"
    folder.mkdir()
    stimuli = resolve_stimuli("bundled:photos").limit(2)
    with pytest.raises(MetamersError, match="is a folder"):
        save_features(Untouchable(tiny_model), stimuli, ["conv1"], folder)


def test_case11_extract_read_only_folder(read_only, monkeypatch, capsys, never_load_a_model):
    code, _, err = _cli(monkeypatch, capsys, *EXTRACT, "--out", read_only / "f.h5")
    assert code == 2
    assert _one_error_line(err).startswith(f"error: cannot write in {read_only}")


def test_case11_compare_out_is_a_file_fails_before_computing(
    tmp_path, monkeypatch, capsys, never_load_a_model
):
    target = tmp_path / "matrices"
    target.write_text("x")
    code, _, err = _cli(monkeypatch, capsys, *COMPARE, "--out", target)
    assert code == 2
    assert _one_error_line(err) == f"error: {target} is a file, not a folder"


def test_case11_evaluate_output_in_the_way_fails_before_loading(
    tmp_path, monkeypatch, capsys, never_load_a_model
):
    (tmp_path / "evaluation").write_text("x")
    code, _, err = _cli(
        monkeypatch, capsys, "evaluate", tmp_path, "--observers", "efficientnet_lite0"
    )
    assert code == 2
    assert _one_error_line(err) == f"error: {tmp_path / 'evaluation'} is a file, not a folder"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_case11_device_cuda_without_cuda(tmp_path, monkeypatch, capsys):
    code, _, err = _cli(
        monkeypatch, capsys, *EXTRACT, "--out", tmp_path / "f.h5", "--device", "cuda"
    )
    assert code == 2
    assert "CUDA is not available" in _one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_case11_unknown_device(tmp_path, monkeypatch, capsys):
    code, _, err = _cli(
        monkeypatch, capsys, *EXTRACT, "--out", tmp_path / "f.h5", "--device", "gpu0"
    )
    assert code == 2
    assert "not a torch device" in _one_error_line(err)


def test_case11_metamers_threads_not_a_number(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METAMERS_THREADS", "abc")
    code, _, err = _cli(monkeypatch, capsys, *EXTRACT, "--out", tmp_path / "f.h5")
    assert code == 2
    assert _one_error_line(err) == (
        "error: METAMERS_THREADS must be a positive whole number (got 'abc')"
    )


def test_case11_disk_full_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    real_fsync = os.fsync

    def disk_full(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(metamers.io.os, "fsync", disk_full)
    out = tmp_path / "features" / "f.npz"
    code, _, err = _cli(monkeypatch, capsys, *EXTRACT, "--limit", "2", "--out", out)
    assert code == 1
    assert _one_error_line(err).startswith("error: no space left on device")
    assert [p.name for p in out.parent.iterdir()] == []  # no output, no temporary file


def test_case11_os_errors_at_the_boundary_are_one_line(tmp_path, monkeypatch, capsys):
    """The CLI boundary turns any OSError a command meets into one line (exit 1)."""
    from metamers.cli.app import app

    @app.command("raise-os-error", hidden=True)
    def _raise() -> None:
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(tmp_path))

    try:
        code, _, err = _cli(monkeypatch, capsys, "raise-os-error")
    finally:
        app.registered_commands[:] = [
            c for c in app.registered_commands if c.name != "raise-os-error"
        ]
    assert code == 1
    assert _one_error_line(err) == f"error: is a directory: {tmp_path}"


def test_case11_corrupt_catalog_is_one_line(tmp_path, monkeypatch, capsys):
    study = tmp_path / "study"
    study.mkdir()
    (study / "catalog.sqlite").write_bytes(b"this is not a database " * 100)
    code, _, err = _cli(monkeypatch, capsys, "status", study)
    assert code == 2
    line = _one_error_line(err)
    assert "catalog.sqlite is damaged" in line and "move it aside" in line
    with pytest.raises(MetamersError, match="damaged"):
        catalog_status(study)


def test_case11_database_errors_at_the_boundary_are_one_line(monkeypatch, capsys):
    from metamers.cli.app import app

    @app.command("raise-db-error", hidden=True)
    def _raise() -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    try:
        code, _, err = _cli(monkeypatch, capsys, "raise-db-error")
    finally:
        app.registered_commands[:] = [
            c for c in app.registered_commands if c.name != "raise-db-error"
        ]
    assert code == 1
    assert "database disk image is malformed" in _one_error_line(err)


def test_case11_cache_path_is_a_file(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    monkeypatch.setenv("METAMERS_CACHE", str(cache))
    model = write_tiny_model(tmp_path)
    code, _, err = _cli(
        monkeypatch,
        capsys,
        "null",
        f"file:{model}",
        "--trust-code",
        "--layers",
        "conv1",
        "--stimuli",
        "bundled:photos",
        "--pairs",
        "4",
    )
    assert code != 0
    assert str(cache) in _one_error_line(err)
    assert cache.read_text() == "not a folder"


def test_case11_writability_helpers(tmp_path):
    assert check_writable_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # nothing is created
    assert check_writable_file(tmp_path / "a" / "f.h5") == tmp_path / "a" / "f.h5"
    (tmp_path / "file").write_text("x")
    with pytest.raises(MetamersError, match="cannot write .* is a file"):
        check_writable_file(tmp_path / "file" / "f.h5")
    with pytest.raises(MetamersError, match="is a folder"):
        check_writable_file(tmp_path)
    (tmp_path / "folder").mkdir()
    with pytest.raises(MetamersError, match="is a folder"), atomic_path(tmp_path / "folder"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]


# -- case 12: smaller -------------------------------------------------------------------------------


@pytest.mark.slow
def test_case12_ctrl_c_prints_the_message_and_exits_130(tmp_path):
    study = tiny_study(
        tmp_path,
        synthesis={"max_steps": 40},
        null={"enabled": False},
        evaluation={"similarity": []},
    )
    path = write_study(tmp_path, study)
    output = load_study(path).output_dir
    env = {**os.environ, "TINY_MODEL_DELAY": "0.05", "METAMERS_THREADS": "1"}
    env["METAMERS_CACHE"] = str(tmp_path / "cache")
    process = subprocess.Popen(
        [sys.executable, "-c", "from metamers.cli import main; main()", "run", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if "done" in catalog_status(output).values():
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run finished before it could be interrupted"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == INTERRUPTED
    assert "Traceback" not in err and "Aborted" not in err


def test_case12_timm_model_offline_fails_fast_with_one_line(tmp_path):
    """No network: one line within seconds, not a minute of retries (hub made unreachable)."""
    pytest.importorskip("timm")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HTTPS_PROXY")}
    env.pop("https_proxy", None)
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://127.0.0.1:9")
    script = (
        "import sys, time, timm\n"
        "from metamers.cli import main\n"
        "sys.argv = ['metamers', 'layers', 'timm:resnet18']\n"
        "started = time.monotonic()\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    print(time.monotonic() - started)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, done.stderr
    assert float(done.stdout.strip().splitlines()[-1]) < 10
    line = _one_error_line(done.stderr)
    assert "timm:resnet18" in line and "--weights FILE or --random-weights" in line


def test_case12_timm_model_with_hub_offline_mode_is_one_line(monkeypatch, capsys):
    pytest.importorskip("timm")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", tempfile.mkdtemp())
    started = time.monotonic()
    code, _, err = _cli(monkeypatch, capsys, "layers", "timm:resnet18")
    assert time.monotonic() - started < 10
    assert code == 2
    assert "offline or unreachable" in _one_error_line(err)


def _write_png16(path: Path, array: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    import struct
    import zlib

    height, width = array.shape[:2]
    raw = b"".join(b"\x00" + array[row].astype(">u2").tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_case12_lossy_image_conversions_warn_once(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_WARNED", set())
    rng = np.random.default_rng(0)
    for name in ("deep_a.png", "deep_b.png"):
        _write_png16(tmp_path / name, (rng.random((6, 5, 3)) * 65535).astype(np.uint16))
    frames = [Image.new("RGB", (4, 4), (60 * i, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(np.array([[0.5, 2.0], [-1.0, 0.25]], np.float32)).save(tmp_path / "f.tif")
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "in_range.tif")
    Image.fromarray((rng.random((4, 4)) * 65535).astype(np.uint16)).save(tmp_path / "grey16.png")

    def warnings_of(name: str) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_image(tmp_path / name)
        return [str(w.message) for w in caught if issubclass(w.category, LossyImageWarning)]

    (deep,) = warnings_of("deep_a.png")
    assert "deep_a.png: 16 bits per channel read as 8" in deep
    assert warnings_of("deep_b.png") == []  # once, not once per file
    (gif,) = warnings_of("moving.gif")
    assert "3 frames; only the first is used" in gif
    (clipped,) = warnings_of("f.tif")
    assert "clipped to [0, 1]" in clipped
    assert warnings_of("in_range.tif") == []
    assert warnings_of("grey16.png") == []  # 16-bit grey keeps its precision: no loss


def test_case12_result_files_get_normal_permissions(tmp_path):
    from safetensors.torch import save_file

    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask
    with atomic_path(tmp_path / "metamer.safetensors") as tmp:
        save_file({"x": torch.zeros(2)}, str(tmp))  # safetensors creates its files 0600
    write_bytes_atomic(tmp_path / "record.json", b"{}")
    for name in ("metamer.safetensors", "record.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


def test_case12_duplicate_keys_in_a_study_file_are_an_error(tmp_path):
    path = write_study(tmp_path, tiny_study(tmp_path))
    text = path.read_text().replace("  max_steps: 20\n", "  max_steps: 20\n  max_steps: 40\n")
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"duplicate key 'max_steps', first given on line \d+"):
        load_study(path)


def test_case12_file_model_hint_names_the_yaml_key(tmp_path, monkeypatch, capsys):
    study = tiny_study(tmp_path)
    del study["models"]["generators"][0]["trust_code"]
    path = write_study(tmp_path, study)
    code, _, err = _cli(monkeypatch, capsys, "run", path, "--dry-run")
    assert code == 2
    line = _one_error_line(err)
    assert "models.generators[0].trust_code" in line and "`trust_code: true`" in line
    assert "--trust-code" not in line
