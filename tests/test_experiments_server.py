"""The experiment server against real databases (SQLite, a local PostgreSQL), as a live process.

Protocol, idempotency, one id once, resume; 100 concurrent participants lose no
trial; a killed server loses nothing acknowledged; malformed and malicious
requests are refused and change nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from experiments_support import (
    ADMIN_TOKEN,
    SMALL_CONFIG,
    Participant,
    live_server,
    postgres_cluster,
    shared_metamers,
)
from metamers.experiments import build_bundle, parse_config


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    source = shared_metamers()
    config = parse_config({**SMALL_CONFIG, "design": {"max_stimuli": 6}})
    folder = tmp_path_factory.mktemp("bundle") / "b"
    manifest = build_bundle(source, folder, config, task="naway")
    return folder, manifest


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    cluster = postgres_cluster()
    yield cluster
    cluster.stop()


def answer_of(manifest: dict, trial: dict) -> str:
    return manifest["stimuli"][trial["stimulus"]]["label"]


def run_participant(url: str, manifest: dict, pid: str, stop_after: int | None = None):
    with httpx.Client(base_url=url, timeout=60) as client:
        person = Participant(client, pid)
        state = person.start()
        for trial in state["trials"][:stop_after]:
            person.answer(trial, answer_of(manifest, trial))
        if stop_after is None:
            person.finish()
        return person


def trial_rows(server) -> list[dict]:
    import csv
    import io

    text = server.admin("/api/admin/export/trials").text
    return list(csv.DictReader(io.StringIO(text)))


def test_protocol_on_sqlite_and_postgres(bundle, postgres, tmp_path):
    folder, manifest = bundle
    urls = {
        "sqlite": f"sqlite:///{tmp_path / 'exp.sqlite'}",
        "postgres": postgres.new_database("proto"),
    }
    for name, url in urls.items():
        with live_server(folder, url, tmp_path / f"{name}.log") as server:
            person = run_participant(server.url, manifest, f"P-{name}")
            n_trials = person.state["n_trials"]
            rows = trial_rows(server)
            assert len(rows) == n_trials, name
            assert {r["participant_id"] for r in rows} == {f"P-{name}"}
            assert [int(r["trial_index"]) for r in rows] == list(range(n_trials))
            assert all(r["correct"] == "True" for r in rows)
            assert {r["phase"] for r in rows} == {"practice", "screening", "main"}
            main = [r for r in rows if r["phase"] == "main"]
            assert sum(r["catch"] == "True" for r in main) == 2
            # The server, not the page, knows conditions: each main item once, in its list.
            assert len({r["item"] for r in main}) == len(main)
            with httpx.Client(base_url=server.url) as client:
                again = client.post(
                    "/api/session", json={"source": "prolific", "participant_id": f"P-{name}"}
                )
                assert again.status_code == 409  # one participant id takes the study once
                # A retried POST of an acknowledged trial is not saved twice.
                first = person.state["trials"][0]
                body = {
                    "token": person.token,
                    "index": first["index"],
                    "stimulus": first["stimulus"],
                    "response": answer_of(manifest, first),
                }
                retry = client.post("/api/trials", json=body)
                assert retry.status_code == 200 and retry.json()["duplicate"] is True
                changed = client.post(
                    "/api/trials",
                    json={**body, "response": "9" if body["response"] != "9" else "8"},
                )
                assert changed.status_code == 409
            assert len(trial_rows(server)) == n_trials
            summary = server.admin("/api/admin/summary").json()
            assert summary == {"participants": {"complete": 1}, "trials": n_trials}


def test_practice_feedback_screening_and_resume(bundle, tmp_path):
    folder, manifest = bundle
    with live_server(folder, f"sqlite:///{tmp_path / 'e.sqlite'}", tmp_path / "log") as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            person = Participant(client, "RESUMER")
            state = person.start()
            practice = state["trials"][0]
            wrong = next(c for c in manifest["choices"] if c != answer_of(manifest, practice))
            reply = person.answer(practice, wrong)
            assert reply["feedback"] == {"correct": False, "answer": answer_of(manifest, practice)}
            # Reload: the same id resumes at the next trial, with the same session.
            resumed = Participant(client, "RESUMER")
            again = resumed.start()
            assert again["token"] == state["token"] and again["next_index"] == 1
            assert again["trials"] == state["trials"][1:]
            # Out of order is refused.
            skip = again["trials"][1]
            body = {"token": person.token, "index": skip["index"], "stimulus": skip["stimulus"],
                    "response": answer_of(manifest, skip)}  # fmt: skip
            assert client.post("/api/trials", json=body).status_code == 409
            # Fail screening (every answer wrong): the session ends with the screen-out code.
            for trial in again["trials"]:
                if trial["phase"] == "main":
                    break
                if trial["phase"] == "practice":
                    resumed.answer(trial, answer_of(manifest, trial))
                    continue
                bad = next(c for c in manifest["choices"] if c != answer_of(manifest, trial))
                reply = resumed.answer(trial, bad)
            assert reply["status"] == "screened_out"
            assert reply["ending"]["code"] == "SCREENED"
            assert reply["ending"]["redirect"].endswith("cc=SCREENED")
            main = next(t for t in again["trials"] if t["phase"] == "main")
            body = {"token": person.token, "index": main["index"], "stimulus": main["stimulus"],
                    "response": answer_of(manifest, main)}  # fmt: skip
            assert client.post("/api/trials", json=body).status_code == 409
            assert (
                client.post(
                    "/api/session", json={"source": "prolific", "participant_id": "RESUMER"}
                ).status_code
                == 409
            )


def test_hundred_concurrent_participants_lose_no_trial(bundle, tmp_path):
    folder, manifest = bundle
    with live_server(folder, f"sqlite:///{tmp_path / 'load.sqlite'}", tmp_path / "log") as server:
        with ThreadPoolExecutor(max_workers=100) as pool:
            people = list(
                pool.map(lambda k: run_participant(server.url, manifest, f"L{k:03d}"), range(100))
            )
        rows = trial_rows(server)
        acknowledged = {(p.participant_id, i) for p in people for i in p.acknowledged}
        saved = {(r["participant_id"], int(r["trial_index"])) for r in rows}
        assert len(rows) == len(saved) == len(acknowledged) == 100 * people[0].state["n_trials"]
        assert saved == acknowledged
        assert server.admin("/api/admin/summary").json()["participants"] == {"complete": 100}
        # Latin square: arrivals rotate through the lists evenly.
        lists = [int(r["list_index"]) for r in rows if r["trial_index"] == "0"]
        counts = [lists.count(k) for k in range(len(manifest["conditions"]))]
        assert max(counts) - min(counts) <= 1


def test_killed_server_loses_nothing_acknowledged_and_participants_resume(bundle, tmp_path):
    folder, manifest = bundle
    url = f"sqlite:///{tmp_path / 'restart.sqlite'}"
    log = tmp_path / "log"
    with live_server(folder, url, log) as server:
        with ThreadPoolExecutor(max_workers=10) as pool:
            people = list(
                pool.map(
                    lambda k: run_participant(server.url, manifest, f"R{k}", stop_after=3 + k % 4),
                    range(10),
                )
            )
        server.kill()
    acknowledged = {(p.participant_id, i) for p in people for i in p.acknowledged}
    with live_server(folder, url, log) as server:
        saved = {(r["participant_id"], int(r["trial_index"])) for r in trial_rows(server)}
        assert saved == acknowledged
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for person in people:
                resumed = Participant(client, person.participant_id)
                state = resumed.start()
                assert state["next_index"] == len(person.acknowledged)
                for trial in state["trials"]:
                    resumed.answer(trial, answer_of(manifest, trial))
                assert resumed.finish()["code"] == "COMPLETE"
        rows = trial_rows(server)
        n = people[0].state["n_trials"]
        assert len(rows) == len({(r["participant_id"], r["trial_index"]) for r in rows}) == 10 * n


def test_malformed_and_malicious_requests_are_refused_and_change_nothing(bundle, tmp_path):
    folder, manifest = bundle
    with live_server(folder, f"sqlite:///{tmp_path / 'm.sqlite'}", tmp_path / "log") as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            person = Participant(client, "HONEST")
            state = person.start()
            first = state["trials"][0]
            person.answer(first, answer_of(manifest, first))
            before = (server.admin("/api/admin/export/trials").text,
                      server.admin("/api/admin/export/participants").text)  # fmt: skip
            trial = state["trials"][1]
            good = {"token": person.token, "index": trial["index"], "stimulus": trial["stimulus"],
                    "response": answer_of(manifest, trial)}  # fmt: skip
            bad_bodies = [
                {**good, "index": str(trial["index"])},  # wrong type
                {**good, "index": 1.5},
                {**good, "rt_ms": "fast"},
                {**good, "response": ["1"]},
                {**good, "response": "x'); DROP TABLE trials; --"},  # not a choice
                {**good, "token": "' OR '1'='1"},
                {**good, "token": "0" * 64},  # unknown session
                {**good, "stimulus": "../../bundle.json"},
                {**good, "extra": 1},  # unknown field
                {k: v for k, v in good.items() if k != "response"},
                {**good, "timing": {"x" * 100: 1}},
            ]
            for body in bad_bodies:
                response = client.post("/api/trials", json=body)
                assert response.status_code in (403, 422), (body, response.text)
            assert (
                client.post(
                    "/api/trials",
                    content=b"{not json",
                    headers={"Content-Type": "application/json"},
                ).status_code
                == 422
            )
            for pid in ("x'; DROP TABLE participants; --", "../../etc/passwd", "a" * 500, "名前"):
                body = {"source": "prolific", "participant_id": pid}
                assert client.post("/api/session", json=body).status_code == 422
            body = {"source": "mturk", "participant_id": "W1", "submit_to": "https://evil.example"}
            assert client.post("/api/session", json=body).status_code == 422
            # Bodies over the limit: declared, and streamed without a length.
            huge = {**good, "response": "1" * 2_000_000}
            assert client.post("/api/trials", json=huge).status_code == 413

            def chunks():
                for _ in range(200):
                    yield b"x" * 10_000

            assert client.post("/api/trials", content=chunks()).status_code == 413
            # No path from a request reaches the file system.
            for path in ("/api/stimuli/../bundle.json", "/api/stimuli/..%2Fbundle.json",
                         "/api/stimuli/%2e%2e%2fbundle.json", "/static/../bundle.json",
                         "/static/..%2f..%2fbundle.json", "/api/stimuli/ffffffffffffffff",
                         "/bundle.json", "/experiment.sqlite", "/static/%2e%2e/%2e%2e/bundle.json"):  # fmt: skip
                response = client.get(path)
                assert response.status_code in (404, 422), path
                assert "conditions" not in response.text
            stimulus = client.get(f"/api/stimuli/{first['stimulus']}")
            assert stimulus.status_code == 200 and stimulus.content[:4] == b"\x89PNG"
            # Export and admin need the token.
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN}):
                for path in ("/api/admin/export/trials", "/api/admin/summary",
                             "/api/admin/participants/HONEST"):  # fmt: skip
                    assert client.get(path, headers=headers).status_code in (401, 403)
            assert server.admin("/api/admin/export/../../bundle.json").status_code == 404
            # CORS closed: no cross-origin read is allowed.
            response = client.post("/api/session", json={"source": "anonymous"},
                                   headers={"Origin": "https://evil.example"})  # fmt: skip
            assert "access-control-allow-origin" not in response.headers
            preflight = client.options("/api/trials", headers={
                "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})  # fmt: skip
            assert "access-control-allow-origin" not in preflight.headers
            assert response.headers["x-content-type-options"] == "nosniff"
        after_participants = server.admin("/api/admin/export/participants").text
        assert server.admin("/api/admin/export/trials").text == before[0]
        # Only the anonymous session above (refused nothing, asked nothing) was added.
        assert after_participants.count("\n") == before[1].count("\n") + 1


def test_cli_build_export_over_http_and_locally_then_analyze(bundle, tmp_path):
    from typer.testing import CliRunner

    from metamers.cli.app import _register_commands, app

    _register_commands()
    runner = CliRunner()
    config = tmp_path / "exp.yaml"
    config.write_text(
        "practice: {trials: 2}\nscreening: {trials: 2, pass_min: 1}\ncatch: {trials: 2}\n"
    )
    built = runner.invoke(
        app,
        [
            "experiment",
            "build",
            str(tmp_path / "b"),
            "--metamers",
            str(shared_metamers()),
            "--task",
            "naway",
            "--config",
            str(config),
        ],
    )
    assert built.exit_code == 0, built.output
    assert "Latin-square lists" in built.output
    folder, manifest = bundle
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    with live_server(folder, url, tmp_path / "log") as server:
        for k in range(3):
            run_participant(server.url, manifest, f"C{k}")
        refused = runner.invoke(
            app,
            [
                "experiment",
                "export",
                str(folder),
                "--url",
                server.url,
                "--admin-token",
                "bad",
                "--out",
                str(tmp_path / "x"),
            ],
        )
        assert "export refused (403" in str(refused.exception)  # a one-line ConfigError
        remote = runner.invoke(
            app,
            [
                "experiment",
                "export",
                str(folder),
                "--url",
                server.url,
                "--admin-token",
                ADMIN_TOKEN,
                "--out",
                str(tmp_path / "remote"),
            ],
        )
        assert remote.exit_code == 0, remote.output
    local = runner.invoke(
        app, ["experiment", "export", str(folder), "--db", url, "--out", str(tmp_path / "local")]
    )
    assert local.exit_code == 0, local.output
    import pandas as pd

    for name in ("trials", "participants"):
        a = pd.read_csv(tmp_path / "remote" / f"{name}.csv")
        b = pd.read_csv(tmp_path / "local" / f"{name}.csv")
        assert len(a) == len(b) and list(a["participant_id"]) == list(b["participant_id"])
    analyzed = runner.invoke(
        app,
        [
            "experiment",
            "analyze",
            str(folder),
            "--tables",
            str(tmp_path / "local"),
            "--out",
            str(tmp_path / "analysis"),
            "--format",
            "json",
            "--n-boot",
            "100",
        ],
    )
    assert analyzed.exit_code == 0, analyzed.output
    assert (tmp_path / "analysis" / "figures" / "human_recognition.png").is_file()
    table = pd.read_csv(tmp_path / "analysis" / "human_recognition.csv")
    assert set(table["human_recognition"]) == {1.0}  # every simulated answer was right
    assert set(table["n_participants"]) == {3}
