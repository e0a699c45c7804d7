"""The one layer grammar: LayerJob, parse_layer_jobs, as_layer_job, parse_layer_list, parse_model_layers."""

from __future__ import annotations

import pytest

from metamers.errors import ConfigError, LayerError
from metamers.synthesis.jobs import (
    LayerJob,
    as_layer_job,
    parse_layer_jobs,
    parse_layer_list,
    parse_model_layers,
)


def layers(spec, n_models=1):
    return [job.layers for job in parse_layer_jobs(spec, n_models)]


def test_one_model_commas_make_jobs_and_plus_joins_layers():
    assert layers("blocks.1,blocks.3") == [(("blocks.1",),), (("blocks.3",),)]
    assert layers("blocks.1+blocks.3") == [(("blocks.1", "blocks.3"),)]
    assert layers(" a , b+c ,a") == [(("a",),), (("b", "c"),)]  # spaces; repeats dropped
    assert layers(["a", "b+c"]) == [(("a",),), (("b", "c"),)]
    assert layers("a,,b") == [(("a",),), (("b",),)]


def test_ensemble_forms():
    # the same layer in every model
    assert layers("3", 2) == [(("3",), ("3",))]
    # one layer per model, "+"-joined (several jobs) or as n plain names (one job; older form)
    assert layers("a1+b1,a2+b2", 2) == [(("a1",), ("b1",)), (("a2",), ("b2",))]
    assert layers("a1,b1", 2) == [(("a1",), ("b1",))]
    # ";" separates the models; "+" then joins one model's layers
    assert layers("a1+a2;b1", 2) == [(("a1", "a2"), ("b1",))]
    assert layers("a;a,b;b", 2) == [(("a",), ("a",)), (("b",), ("b",))]
    # Python forms: a sequence entry has one entry per model
    assert layers([("a1", "b1"), ("a2", "b2")], 2) == [(("a1",), ("b1",)), (("a2",), ("b2",))]
    assert layers([(["a1", "a2"], "b1")], 2) == [(("a1", "a2"), ("b1",))]
    job = LayerJob((("x",), ("y",)))
    assert parse_layer_jobs(job, 2) == [job]
    assert parse_layer_jobs(["z", job], 2) == [LayerJob.same("z", 2), job]


@pytest.mark.parametrize(
    ("spec", "n_models", "error", "match"),
    [
        ("", 1, ConfigError, "empty"),
        (" , ", 1, ConfigError, "empty"),
        ([], 1, ConfigError, "no generation layers"),
        ("a;b", 1, ConfigError, "separates the models"),
        ("a++b", 1, ConfigError, "empty name"),
        ("a+", 1, ConfigError, "empty name"),
        ("a;", 2, ConfigError, "empty group"),
        ("a+a", 1, LayerError, "listed twice"),
        ("a,b,c", 2, LayerError, "3 layers for 2 models"),
        ("a+b+c", 2, LayerError, "'a\\+b\\+c' are for 3 model"),
        ("a;b;c", 2, LayerError, "for 3 model"),
        ([("a", "b")], 1, LayerError, "2 layer entries for 1 model"),
        (LayerJob((("a",),)), 2, LayerError, "for 1 model"),
    ],
)
def test_malformed_specifications(spec, n_models, error, match):
    with pytest.raises(error, match=match):
        parse_layer_jobs(spec, n_models)


def test_job_labels_records_and_round_trip():
    one = LayerJob((("blocks.1", "blocks.3"),))
    assert one.label == "blocks.1+blocks.3" and one.record == ("blocks.1+blocks.3",)
    # labels of one layer per model are the folder names generate always used
    assert LayerJob((("3",), ("3",))).label == "3"
    assert LayerJob((("3",), ("1",))).label == "3+1"
    assert LayerJob((("a", "b"), ("a", "b"))).label == "a+b"
    assert LayerJob((("a1", "a2"), ("b1",))).label == "a1+a2;b1"
    for job in (one, LayerJob((("3",), ("1",))), LayerJob((("a1", "a2"), ("b1",)))):
        assert parse_layer_jobs(str(job), job.n_models) == [job]
        assert LayerJob.from_record(job.record) == job
    assert LayerJob((["a"],)) == LayerJob((("a",),))  # lists become tuples; hashable
    with pytest.raises(ConfigError, match="cannot contain"):
        LayerJob((("a+b",),))
    with pytest.raises(ConfigError, match="at least one layer"):
        LayerJob(((),))


def test_job_check_suggests_close_layer_names(tiny_model):
    assert LayerJob.same("relu1").check([tiny_model]).label == "relu1"
    with pytest.raises(LayerError, match="did you mean"):
        LayerJob.same("relu_1").check([tiny_model])
    with pytest.raises(LayerError, match="for 2 model"):
        LayerJob.same("relu1", 2).check([tiny_model])


def test_one_job_as_metamer_synthesis_reads_it():
    # one model: a list of names is one job matching them all (not several jobs)
    assert as_layer_job(["1", "3"]).layers == (("1", "3"),)
    assert as_layer_job("1+3").layers == (("1", "3"),)
    assert as_layer_job("3", 2).layers == (("3",), ("3",))
    assert as_layer_job(["3", "1"], 2).layers == (("3",), ("1",))
    assert as_layer_job([["1", "3"], "2"], 2).layers == (("1", "3"), ("2",))
    with pytest.raises(ConfigError, match="describes 2 jobs.*'1\\+3'"):
        as_layer_job("1,3")
    with pytest.raises(LayerError, match="3 layer entries for 2 model"):
        as_layer_job(["a", "b", "c"], 2)


def test_plain_layer_lists():
    assert parse_layer_list("blocks.1, blocks.3") == ["blocks.1", "blocks.3"]
    assert parse_layer_list(["a", "b"]) == ["a", "b"]
    for bad in ("", None, " , "):
        with pytest.raises(ConfigError, match="no layer names"):
            parse_layer_list(bad)
    with pytest.raises(ConfigError, match="plain names"):
        parse_layer_list("a+b")


def test_per_model_layer_lists():
    assert parse_model_layers("a, b") == ["a", "b"]
    assert parse_model_layers("m1=a,b; m2=c", ["m1", "m2"]) == {"m1": ["a", "b"], "m2": ["c"]}
    assert parse_model_layers("m1=a", ["m1", "m2"], complete=False) == {"m1": ["a"]}
    with pytest.raises(ConfigError, match="models compared are"):
        parse_model_layers("m1=a", ["m1", "m2"], role="models compared")
    with pytest.raises(ConfigError, match="name models \\['m3'\\]"):
        parse_model_layers("m3=a", ["m1", "m2"], complete=False)
    with pytest.raises(ConfigError, match="MODEL=layer"):
        parse_model_layers("m1=a;=b")
    with pytest.raises(ConfigError, match="MODEL=layer"):
        parse_model_layers("m1=")


def test_study_layers_use_the_plain_list_grammar(tmp_path):
    from metamers.studies import load_study
    from studies_support import tiny_study, write_study

    study = tiny_study(tmp_path)
    study["models"]["generators"][0]["layers"] = "conv1, relu2"
    config = load_study(write_study(tmp_path, study))
    assert config.models.generators[0].layers == ["conv1", "relu2"]
    study["models"]["generators"][0]["layers"] = ["conv1+relu2"]
    with pytest.raises(ConfigError, match=r"layers: 'conv1\+relu2' is not a layer name"):
        load_study(write_study(tmp_path, study))
    study["models"]["generators"][0]["layers"] = []
    with pytest.raises(ConfigError, match="layers: no layer names"):
        load_study(write_study(tmp_path, study))
