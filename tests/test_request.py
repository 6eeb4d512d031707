"""Every parameter is range-checked with a message that says what to change."""

import pytest

from engine import InvalidRequest, SynthesisRequest


@pytest.mark.parametrize("field,value", [
    ("exaggeration", 2.5), ("cfg_weight", -0.1), ("temperature", 0.0), ("top_p", 1.5), ("min_p", -1),
    ("repetition_penalty", 3.0), ("speed", 0.1), ("speed", 5), ("exaggeration", float("nan")),
    ("temperature", "hot"), ("seed", -1), ("seed", 1.5), ("model", "tts-9"), ("language", "xx"),
])
def test_out_of_range_parameters_are_refused_by_name(field, value):
    with pytest.raises(InvalidRequest) as error:
        SynthesisRequest("Hello.", **{field: value})
    assert error.value.param == field
    assert field in error.value.message or str(value) in error.value.message


def test_unset_parameters_take_the_models_defaults_then_the_english_ones():
    request = SynthesisRequest("Hello.", temperature=0.6)
    assert request.parameters()["repetition_penalty"] is None
    resolved = request.with_defaults({"repetition_penalty": 2.0, "temperature": 0.9})
    assert (resolved.repetition_penalty, resolved.temperature, resolved.exaggeration) == (2.0, 0.6, 0.5)
