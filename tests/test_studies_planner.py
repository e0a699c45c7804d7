"""Planner: content-keyed tasks, dependencies in waves, invalidation of exactly what changed."""

from __future__ import annotations

from metamers.studies import parse_study, plan_study, task_key
from studies_support import tiny_study


def _plan(tmp_path, **sections):
    return plan_study(parse_study(tiny_study(tmp_path, **sections)))


def test_keys_are_stable_and_depend_on_kind_settings_and_inputs():
    settings = {"a": 1, "b": [1, 2]}
    key = task_key("features", settings, ("x", "y"))
    assert key == task_key("features", {"b": [1, 2], "a": 1}, ("y", "x"))
    assert key != task_key("null", settings, ("x", "y"))
    assert key != task_key("features", {"a": 2, "b": [1, 2]}, ("x", "y"))
    assert key != task_key("features", settings, ("x", "z"))


def test_plan_has_a_task_per_model_and_a_final_report(tmp_path):
    plan = _plan(tmp_path)
    assert [t.label for t in plan.of_kind("features")] == ["features tiny_a", "features tiny_b"]
    waves = plan.waves()
    assert [t.kind for t in waves[-1]] == ["report"]
    report = waves[-1][0]
    assert set(report.inputs) == {t.key for t in plan if t.kind != "report"}
    assert plan.dependents(plan.of_kind("features")[0].key) == {report.key}
    generate = plan.of_kind("generate")
    assert [t.label for t in generate] == [
        "generate tiny_a conv1 #0",
        "generate tiny_a conv1 #1",
        "generate tiny_a relu2 #0",
        "generate tiny_a relu2 #1",
    ]
    (evaluate,) = plan.of_kind("evaluate")
    assert plan.dependents(generate[0].key) == {
        plan.of_kind("validate")[0].key,
        evaluate.key,
        report.key,
    }
    depth = {t.key: i for i, wave in enumerate(waves) for t in wave}
    assert all(depth[k] < depth[t.key] for t in plan for k in t.inputs)


def test_changing_one_model_invalidates_only_its_tasks(tmp_path):
    before = _plan(tmp_path)
    study = tiny_study(tmp_path)
    study["models"]["observers"][0]["layers"] = ["relu1", "conv2"]
    after = plan_study(parse_study(study))
    changed = {t.label for t in after if t.key not in before.tasks}
    assert changed == {"features tiny_b", "null tiny_b", "evaluate tiny_b", "compare cka", "report"}


def test_executor_and_output_do_not_change_keys(tmp_path):
    before = _plan(tmp_path)
    after = _plan(tmp_path, executor={"kind": "ray", "cpus_per_task": 2})
    assert list(before.tasks) == list(after.tasks)


def test_every_kind_is_planned_when_its_section_asks(tmp_path):
    plan = _plan(tmp_path, null={"enabled": True})
    kinds = {t.kind for t in plan}
    assert kinds == {"features", "null", "generate", "validate", "evaluate", "compare", "report"}
    assert plan.notes == []


def test_disabled_sections_leave_their_kinds_out(tmp_path):
    plan = _plan(tmp_path, null={"enabled": False})
    kinds = {t.kind for t in plan}
    assert "null" not in kinds and "validate" not in kinds  # validation needs the null
    assert {"features", "generate", "evaluate", "compare", "report"} <= kinds


def test_changing_synthesis_keeps_nulls_features_and_comparisons(tmp_path):
    before = _plan(tmp_path)
    after = _plan(tmp_path, synthesis={"max_steps": 21})
    changed = {t.kind for t in after if t.key not in before.tasks}
    assert changed == {"generate", "validate", "evaluate", "report"}


def test_estimate_counts_steps(tmp_path):
    totals = _plan(tmp_path).estimate()
    assert totals["features"]["tasks"] == 2
    assert totals["generate"]["steps"] == 20 * 3 * 2  # steps x stimuli x layers
