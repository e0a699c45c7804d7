"""One decision per model and label space; the two named 16-way rules; one way to fit a stimulus."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metamers.decisions import LabelSpace, classify
from metamers.errors import ConfigError, StimulusError
from metamers.labels import (
    geirhos16_categories,
    imagenet_to_16way,
    sixteen_way_choice,
    sixteen_way_names,
)
from metamers.stimuli.fit import fit_to_input, match_channels

NAMES = sixteen_way_names()
OVEN, KNIFE, DOG = NAMES.index("oven"), NAMES.index("knife"), NAMES.index("dog")
DUTCH_OVEN, IMAGENET_OVEN = 544, 766


def logits_with(values: dict[int, float]) -> torch.Tensor:
    logits = torch.full((1, 1000), -10.0)
    for index, value in values.items():
        logits[0, index] = value
    return logits


def test_feather2023_sets_add_dutch_oven_only():
    official, published = geirhos16_categories("geirhos2021"), geirhos16_categories("feather2023")
    assert IMAGENET_OVEN in official["oven"] and DUTCH_OVEN not in official["oven"]
    assert published["oven"] == tuple(sorted((*official["oven"], DUTCH_OVEN)))
    assert {k: v for k, v in published.items() if k != "oven"} == {
        k: v for k, v in official.items() if k != "oven"
    }
    assert imagenet_to_16way(DUTCH_OVEN, "feather2023") == OVEN
    assert imagenet_to_16way(DUTCH_OVEN, "geirhos2021") is None


def test_feather2023_takes_the_first_member_class_from_the_top():
    knife = geirhos16_categories("feather2023")["knife"][0]
    # top class (Dutch oven) counts as oven; the non-member classes above nothing matter
    logits = logits_with({DUTCH_OVEN: 5.0, knife: 4.0, 0: 9.0})  # 0 = tench: in no category
    assert int(sixteen_way_choice(logits, "feather2023")[0]) == OVEN
    # without Dutch oven in its sets, the official first-hit walk reaches the knife
    logits = logits_with({knife: 4.0, 0: 9.0})
    assert int(sixteen_way_choice(logits, "feather2023")[0]) == KNIFE


def test_geirhos2021_averages_probabilities_per_category():
    dogs = geirhos16_categories("geirhos2021")["dog"]
    knife = geirhos16_categories("geirhos2021")["knife"]
    assert len(knife) == 1 and len(dogs) > 50
    # one dog class is the single highest logit, but the knife's one class holds more
    # probability than the dogs' average: mean-probability picks knife, first-hit picks dog
    logits = logits_with({dogs[0]: 6.0, knife[0]: 5.0})
    assert int(sixteen_way_choice(logits, "feather2023")[0]) == DOG
    assert int(sixteen_way_choice(logits, "geirhos2021")[0]) == KNIFE
    # by hand: softmax, then the mean over each category's classes
    p = torch.softmax(logits, dim=1)[0]
    means = {name: float(p[list(ix)].mean()) for name, ix in geirhos16_categories().items()}
    assert max(means, key=means.get) == "knife"


def test_label_space_resolves_and_refuses():
    assert LabelSpace().resolved("imagenet") == "16-way"
    assert LabelSpace().resolved("mnist") == "native"
    assert LabelSpace("native").resolved("imagenet") == "native"
    with pytest.raises(ConfigError, match="16-way labels need an ImageNet model"):
        LabelSpace("16-way").resolved("mnist")
    with pytest.raises(ConfigError, match="unknown label space"):
        LabelSpace("1000-way")
    with pytest.raises(ConfigError, match="unknown 16-way rule"):
        LabelSpace(rule="first")


def test_classify_is_the_decision_of_every_path():
    from metamers.models import load_model
    from metamers.stimuli import resolve_stimuli

    model = load_model("mnist_cnn_s0")
    digits = resolve_stimuli("bundled:mnist").limit(16)
    x = torch.stack([digits.load(s, model.input_shape) for s in digits])
    with torch.inference_mode():
        expected = model(x).argmax(1).numpy()
    np.testing.assert_array_equal(classify(model, x), expected)
    # any resolution is fitted to the model's input first
    big = torch.nn.functional.interpolate(x, size=(56, 56), mode="bilinear", antialias=True)
    assert (classify(model, big) == expected).mean() >= 0.9
    assert LabelSpace().describe(model) == "native (mnist)"


def test_fit_to_input_resizes_converts_and_keeps_a_fitting_batch():
    x = torch.rand(2, 3, 20, 20)
    assert fit_to_input(x, (3, 20, 20)) is x
    grey = fit_to_input(x, (1, 10, 10))
    assert grey.shape == (2, 1, 10, 10)
    expected = torch.nn.functional.interpolate(
        match_channels(x, 1), size=(10, 10), mode="bilinear", antialias=True
    )
    torch.testing.assert_close(grey, expected)
    assert fit_to_input(torch.rand(2, 1, 8, 8), (3, 8, 8)).shape == (2, 3, 8, 8)
    assert fit_to_input(torch.rand(3, 80), (40,)).shape == (3, 40)
    with pytest.raises(StimulusError, match="cannot be fitted"):
        fit_to_input(torch.rand(3, 80), (3, 8, 8))
    with pytest.raises(StimulusError, match="cannot convert"):
        fit_to_input(torch.rand(1, 2, 8, 8), (3, 8, 8))


def test_fit_to_input_is_differentiable():
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    fit_to_input(x, (1, 8, 8)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
