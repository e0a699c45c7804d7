"""A study's validation and `metamers validate` give the same verdicts on the same metamers."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from metamers.cli.app import _register_commands, app
from metamers.evaluation.directory import VALIDATION_FILE, accepted_results
from metamers.studies import StudyStore, parse_study, run_study
from metamers.synthesis import load_results
from metamers.validation.acceptance import recorded_loader
from studies_support import tiny_study

PAIRS = 40


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agreement")
    config = tiny_study(
        folder,
        name="agree",
        stimuli={"limit": 3, "chunk": 3},
        synthesis={"max_steps": 30},
        null={"pairs": PAIRS},
        evaluation={"features": False, "similarity": [], "representation_test": False},
    )
    config["models"]["observers"] = []
    study = parse_study(config)
    summary = run_study(study)
    assert not summary.failed, summary.failed  # (the report task waits for a reporter)
    return study


def _finished(study, kind):
    with StudyStore(study.output_dir) as store:
        return {r.label: store.task_dir(r) for r in store.records() if r.kind == kind}


@pytest.mark.filterwarnings("ignore:.*distinct stimuli")
def test_study_and_cli_validate_agree(study_run, tmp_path, monkeypatch):
    monkeypatch.setenv("METAMERS_CACHE", str(tmp_path / "cache"))
    generated, validated = _finished(study_run, "generate"), _finished(study_run, "validate")
    assert len(generated) == 2  # two generation layers, one chunk
    # The metamers record how their generator was loaded (file: path): validate reloads it
    # from that record, running its code only with --trust-code.
    _register_commands()
    runner = CliRunner()
    for label, folder in generated.items():
        copy = tmp_path / folder.name
        shutil.copytree(folder, copy)
        args = ["validate", str(copy), "--pairs", str(PAIRS), "--seed", "0", "--trust-code"]
        outcome = runner.invoke(app, args)
        assert outcome.exit_code == 0, outcome.output
        cli = pd.read_parquet(copy / VALIDATION_FILE).sort_values("stimulus_id")
        study_dir = validated[label.replace("generate", "validate", 1)]
        study = pd.read_parquet(study_dir / "acceptance.parquet").sort_values("stimulus_id")
        for column in ("accepted", "label_match", "label_space", "criterion", "null_pairs"):
            assert cli[column].tolist() == study[column].tolist(), column
        for column in ("spearman", "pearson", "snr_db", "spearman_threshold", "snr_db_threshold"):
            np.testing.assert_allclose(cli[column], study[column], rtol=1e-6, err_msg=column)
        # evaluate reuses the stored validation only under the same settings: same verdicts
        results = load_results(copy)
        kept = accepted_results(
            copy, results, null_stimuli="bundled:photos", n_pairs=None, seed=0,
            models=recorded_loader(results, trust_code=True),
        )  # fmt: skip
        assert sorted(r.stimulus_id for r in kept) == sorted(
            cli.loc[cli["accepted"], "stimulus_id"]
        )
