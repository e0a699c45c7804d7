"""Shared pieces of the experiment tests: real metamers, sound folders, live servers, PostgreSQL."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

ADMIN_TOKEN = "test-admin-token"
SMALL_CONFIG = {
    "practice": {"trials": 2},
    "screening": {"trials": 2, "pass_min": 1},
    "catch": {"trials": 2},
    "breaks": 1,
}
WORDS = ("apple", "river", "music", "candle")


def make_metamers(folder: Path) -> Path:
    """A real, validated ``metamers generate`` folder: zoo MNIST CNN, 2 layers, 16 digits."""
    from typer.testing import CliRunner

    from metamers.cli.app import _register_commands, app

    _register_commands()
    runner = CliRunner()
    generate = [
        "generate", "mnist_cnn_s0", "--layers", "conv1,fc1", "--stimuli", "bundled:mnist",
        "--limit", "16", "--steps", "60", "--out", str(folder),
    ]  # fmt: skip
    done = runner.invoke(app, generate)
    assert done.exit_code == 0, done.output
    validate = ["validate", str(folder), "--null-stimuli", "bundled:mnist", "--pairs", "300"]
    done = runner.invoke(app, validate)
    assert done.exit_code == 0, done.output
    return folder


@functools.cache
def shared_metamers() -> Path:
    """:func:`make_metamers` once per test session (removed at exit), for every test module."""
    folder = Path(tempfile.mkdtemp(prefix="metamers-exp-"))
    atexit.register(shutil.rmtree, folder, True)
    return make_metamers(folder / "out")


def make_sounds(folder: Path, rate: int = 16_000) -> Path:
    """``ROOT/CONDITION/WORD/ITEM.wav``: 4 words x 6 items, natural and a noisy condition."""
    rng = np.random.default_rng(0)
    t = np.arange(int(0.4 * rate)) / rate
    for w, word in enumerate(WORDS):
        for item in range(6):
            tone = 0.3 * np.sin(2 * np.pi * (220 * (w + 1) + 20 * item) * t)
            for condition, noise in (("natural", 0.0), ("noisy", 0.2)):
                path = folder / condition / word / f"clip{item}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                wave = tone + noise * rng.standard_normal(t.size)
                soundfile.write(path, wave.astype(np.float32), rate, subtype="PCM_16")
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``metamers experiment serve`` in a child process, on a free local port."""

    def __init__(self, bundle: Path, db_url: str, log: Path) -> None:
        self.bundle, self.db_url, self.log = bundle, db_url, log
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> LiveServer:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [
            sys.executable, "-c", "from metamers.cli import main; main()", "experiment", "serve",
            str(self.bundle), "--db", self.db_url, "--port", str(port),
            "--admin-token", ADMIN_TOKEN,
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/favicon.ico", timeout=1).status_code == 204:
                    return self
            time.sleep(0.1)
        raise RuntimeError("server did not start in 30 s")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs (what a crash or power cut does to the process)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def admin(self, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=30)


@contextlib.contextmanager
def live_server(bundle: Path, db_url: str, log: Path) -> Iterator[LiveServer]:
    server = LiveServer(bundle, db_url, log).start()
    try:
        yield server
    finally:
        server.stop()


class Postgres:
    """A throw-away PostgreSQL cluster in a temporary folder, on a free port."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="metamers-pg-"))
        self.port = free_port()
        self.bin = _postgres_bin()
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> Postgres:
        data = self.folder / "data"
        if self.prefix:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=on"
        log = str(self.folder / "server.log")  # pg_ctl's own pipes must not stay open
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(data), "-l", log, "-o", options, "-w", "start"
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "stop"
            )

    def new_database(self, name: str) -> str:
        import psycopg

        url = f"postgresql://postgres@127.0.0.1:{self.port}"
        with psycopg.connect(f"{url}/postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"{url}/{name}"


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    pytest.skip(
        "PostgreSQL is not installed (apt-get install postgresql; the README's test command does)"
    )
    raise AssertionError  # unreachable


def postgres_cluster() -> Postgres:
    """Start a cluster, or skip with the reason when this machine cannot run one."""
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: PostgreSQL refuses to run as root")
    cluster = Postgres()
    try:
        return cluster.start()
    except (subprocess.SubprocessError, OSError, KeyError) as exc:
        pytest.skip(f"cannot start a local PostgreSQL: {exc}")
        raise AssertionError from None  # unreachable


class Participant:
    """A simulated participant speaking the server's JSON protocol (as the page does)."""

    def __init__(self, client: httpx.Client, participant_id: str) -> None:
        self.client, self.participant_id = client, participant_id
        self.state: dict = {}
        self.acknowledged: list[int] = []

    def start(self) -> dict:
        body = {
            "source": "prolific",
            "participant_id": self.participant_id,
            "study_id": "study1",
            "session_id": f"s-{self.participant_id}",
            "environment": {"refresh_hz": 60.0, "screen_width": 1920},
        }
        response = self.client.post("/api/session", json=body)
        response.raise_for_status()
        self.state = response.json()
        if self.state["status"] == "started":
            self.client.post("/api/consent", json={"token": self.token}).raise_for_status()
        return self.state

    @property
    def token(self) -> str:
        return self.state["token"]

    def answer(self, trial: dict, response: str) -> dict:
        body = {
            "token": self.token,
            "index": trial["index"],
            "stimulus": trial["stimulus"],
            "response": response,
            "rt_ms": 800.0,
            "timing": {"image_ms": 300.1, "refresh_hz": 60.0},
        }
        reply = self.client.post("/api/trials", json=body)
        reply.raise_for_status()
        self.acknowledged.append(trial["index"])
        return reply.json()

    def finish(self) -> dict:
        reply = self.client.post("/api/complete", json={"token": self.token})
        reply.raise_for_status()
        return reply.json()
