"""The objective registry: validating a run's objectives, building them for a model, and the
settings a model's config gives them."""

import numpy as np
import pytest

from mobile_sr.core.errors import ConfigError
from mobile_sr.models import build_model, get_model_spec, make_config, model_names
from mobile_sr.objectives import OBJECTIVES, build_objectives, objective_problems
from mobile_sr.objectives.high_frequency import HighFrequencyObjective
from mobile_sr.objectives.pixel import PixelObjective
from mobile_sr.runs import TrainConfig


@pytest.mark.parametrize("objectives,problem", [
    ({"pixel": 1.0, "perceptual": 1.0}, "unknown objective(s) perceptual; the objectives: pixel"),
    ({"high_frequency": 0.5}, "exactly one objective must produce the output (pixel, structure_texture), got none"),
    ({"pixel": 1.0, "structure_texture": 1.0}, "got pixel, structure_texture"),
    ({"pixel": 0.0}, "the weight of objective pixel must be a positive number, got 0.0"),
    ({"pixel": True}, "must be a positive number, got True"),
    ({"pixel": float("nan")}, "must be a positive number, got nan"),
    (["pixel"], "objectives must map objective names to weights"),
])
def test_objective_problems_are_named(objectives, problem):
    assert any(problem in text for text in objective_problems(objectives)), objective_problems(objectives)
    with pytest.raises(ConfigError, match="objective"):
        TrainConfig(objectives=objectives)


def test_every_model_names_a_default_the_registry_builds():
    for name in model_names():
        objectives = get_model_spec(name).objectives
        assert objective_problems(objectives) == []
        assert TrainConfig(model=name).with_objectives().objectives == objectives


def test_the_producing_objective_and_the_terms_are_built_for_the_model():
    config = make_config("rt4ksr", scale=2, channels=12, blocks=1, blur_kernel_size=7, blur_sigma=2.0)
    main, terms = build_objectives({"pixel": 1.0, "high_frequency": 0.25}, build_model("rt4ksr", config), config)
    assert isinstance(main, PixelObjective) and [type(term) for term in terms] == [HighFrequencyObjective]
    # the model's config gives the high-frequency loss the blur of its high-frequency branch
    assert terms[0].weight == 0.25 and terms[0].options == {"kernel_size": 7, "sigma": 2.0}
    assert terms[0].blur_kernel.shape == (7, 7) and np.isclose(terms[0].blur_kernel.sum(), 1.0)
    scsrn = make_config("scsrn", scale=2, channels=8, feature_convs=2)
    _, (default_blur,) = build_objectives({"pixel": 1.0, "high_frequency": 1.0}, build_model("scsrn", scsrn), scsrn)
    assert default_blur.options == HighFrequencyObjective.defaults


def test_an_unknown_option_is_refused_with_the_known_ones():
    config = make_config("scsrn", scale=2, channels=8, feature_convs=2)
    with pytest.raises(ValueError, match="objective 'high_frequency' has no option.*radius.*kernel_size, sigma"):
        HighFrequencyObjective(build_model("scsrn", config), config, 1.0, radius=2)


def test_the_registry_lists_each_objective_once_by_its_name():
    assert all(name == objective.name for name, objective in OBJECTIVES.items())
    assert {name for name, objective in OBJECTIVES.items() if objective.produces_output} == {"pixel", "structure_texture"}
