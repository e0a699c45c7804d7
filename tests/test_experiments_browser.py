"""A participant in a real browser: Playwright drives Debian's Chromium through whole experiments.

Consent, instructions, full screen, preload, (calibration and headphone check),
practice with feedback, screening, main trials with breaks, completion code,
against a live ``metamers experiment serve``; the database then holds every trial.
Set ``METAMERS_DOCS_SCREENSHOTS=1`` to refresh docs/images/experiment-*.png.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from experiments_support import SMALL_CONFIG, live_server, make_sounds, shared_metamers
from metamers.experiments import build_bundle, parse_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--mute-audio",
]  # fmt: skip
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
CLICK_THROUGH = {"consent", "instructions", "resume", "break", "fullscreen"}

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed (apt-get install chromium; the README's test "
    "command does)",
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield launched
        launched.close()


def participate(page, server, participant_id: str, screenshots: dict[str, Path]) -> dict:
    """Do the whole study as a careful participant (right answers from the admin API)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/?PROLIFIC_PID={participant_id}&STUDY_ID=st1&SESSION_ID=se1")
    timeline = None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert not errors, errors
        stage = page.evaluate("() => document.body.dataset.stage || ''")
        if stage and (not seen or seen[-1] != stage):
            seen.append(stage)
        if stage == "ending":
            break
        if stage in CLICK_THROUGH or stage.startswith("intro-"):
            page.locator("button.jspsych-btn").first.click(timeout=5000)
            page.wait_for_function(
                "(s) => document.body.dataset.stage !== s", arg=stage, timeout=10_000
            )
            continue
        if stage == "calibration":
            page.get_by_role("button", name="The level is comfortable").click(timeout=10_000)
            page.wait_for_function(
                "() => document.body.dataset.stage !== 'calibration'", timeout=10_000
            )
            continue
        if stage == "respond":
            timeline = timeline or server.admin(f"/api/admin/participants/{participant_id}").json()
            index = int(page.evaluate("() => document.body.dataset.trial"))
            answer = timeline["timeline"][index]["answer"]
            name = f"respond-{timeline['timeline'][index]['phase']}"
            if name in screenshots:
                page.screenshot(path=screenshots.pop(name))
            word = page.locator("#metamers-word")
            if word.count():
                word.fill(answer.upper())  # the page accepts any case, saves the vocabulary's
                page.locator("#jspsych-survey-html-form-next").click()
            else:
                page.get_by_role("button", name=answer, exact=True).click(timeout=10_000)
            page.wait_for_function(
                "(i) => document.body.dataset.stage !== 'respond' || document.body.dataset.trial !== i",
                arg=str(index),
                timeout=10_000,
            )
            continue
        if stage == "present" and "present" in screenshots:
            page.wait_for_selector(".metamers-stage img", timeout=5000)
            page.screenshot(path=screenshots.pop("present"))
        time.sleep(0.02)
    assert page.evaluate("() => document.body.dataset.stage") == "ending", seen
    return {
        "code": page.inner_text("#metamers-code"),
        "redirect": page.get_attribute("#metamers-return", "href"),
        "stages": seen,
    }


def check_database(server, participant_id: str, n_trials: int) -> list[dict]:
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(server.admin("/api/admin/export/trials").text)))
    assert [int(r["trial_index"]) for r in rows] == list(range(n_trials))
    assert {r["participant_id"] for r in rows} == {participant_id}
    assert all(r["correct"] == "True" for r in rows)
    summary = server.admin("/api/admin/summary").json()
    assert summary == {"participants": {"complete": 1}, "trials": n_trials}
    participants = server.admin("/api/admin/export/participants").text
    assert "env_refresh_hz" in participants and "HeadlessChrome" in participants
    return rows


def test_whole_image_experiment_in_chromium(browser, tmp_path):
    timing = {"fixation_ms": 200, "image_ms": 200, "mask_ms": 200}
    config = parse_config({**SMALL_CONFIG, "design": {"max_stimuli": 3}, "timing": timing})
    manifest = build_bundle(shared_metamers(), tmp_path / "bundle", config, task="naway")
    shots = {"respond-main": tmp_path / "respond.png", "present": tmp_path / "present.png"}
    with live_server(
        tmp_path / "bundle", f"sqlite:///{tmp_path / 'e.sqlite'}", tmp_path / "log"
    ) as server:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        done = participate(page, server, "PW-IMAGE", shots)
        assert done["code"] == "COMPLETE"
        assert done["redirect"] == "https://app.prolific.com/submissions/complete?cc=COMPLETE"
        stages = done["stages"]
        for stage in ("consent", "instructions", "fullscreen", "intro-practice", "feedback",
                      "intro-screening", "intro-main", "break", "present", "respond"):  # fmt: skip
            assert stage in stages, (stage, stages)
        n_trials = 2 + 2 + 2 + len(manifest["items"])
        rows = check_database(server, "PW-IMAGE", n_trials)
        # The browser measured the presentation: 200 ms each, within two frames at 60 Hz.
        for row in rows:
            for key in ("timing_fixation_ms", "timing_image_ms", "timing_mask_ms"):
                assert abs(float(row[key]) - 200) < 34, (key, row[key])
            assert float(row["rt_ms"]) > 0 and float(row["timing_refresh_hz"]) > 20
        # Nothing the page fetched names a label, model or layer.
        html = page.content()
        for secret in ("mnist", "conv1", "fc1", "natural"):
            assert secret not in html
        page.close()
    if os.environ.get("METAMERS_DOCS_SCREENSHOTS"):
        for name, path in (
            ("trial", tmp_path / "present.png"),
            ("response", tmp_path / "respond.png"),
        ):
            if path.exists():
                shutil.copy(path, DOCS_IMAGES / f"experiment-{name}.png")


def test_whole_words_experiment_in_chromium(browser, tmp_path):
    sounds = make_sounds(tmp_path / "sounds")
    config = parse_config(
        {
            **SMALL_CONFIG,
            "audio": {"sample_rate": 16000, "headphone_check": {"trials": 2, "pass_min": 2}},
            "vocabulary": ["apple", "river", "music", "candle", "table", "window"],
            "fullscreen": False,
        }
    )
    manifest = build_bundle(sounds, tmp_path / "bundle", config, task="words")
    assert [c["name"] for c in manifest["conditions"]] == ["natural", "noisy"]
    with live_server(
        tmp_path / "bundle", f"sqlite:///{tmp_path / 'w.sqlite'}", tmp_path / "log"
    ) as server:
        page = browser.new_page()
        done = participate(page, server, "PW-WORDS", {})
        assert done["code"] == "COMPLETE"
        for stage in ("consent", "calibration", "intro-headphone", "listen", "respond", "feedback"):
            assert stage in done["stages"], (stage, done["stages"])
        n_trials = 2 + 2 + 2 + 2 + len(manifest["items"])
        rows = check_database(server, "PW-WORDS", n_trials)
        assert [r["phase"] for r in rows[:2]] == ["headphone", "headphone"]
        words = [r["response"] for r in rows if r["phase"] != "headphone"]
        assert set(words) <= set(config.vocabulary) and all(w.islower() for w in words)
        listened = [float(r["timing_audio_played_ms"]) for r in rows if r["phase"] == "main"]
        assert all(300 < ms < 2000 for ms in listened), listened  # the 0.4-s clips, played once
        page.close()
