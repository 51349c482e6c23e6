"""The model cards of converted OpenAI weights: origin (the released file and its URL only when the caller says it
is one), MIT license in the metadata and the text, and the limitations OpenAI's model card states."""

import json

import pytest
from conftest import REFERENCE_DIR, clip_options, reference_options
from huggingface_hub import ModelCard

from diffusers_glide.conversion import (
    ConvertedCLIP,
    ConvertedGlide,
    convert_clip_checkpoints,
    convert_glide_checkpoint,
    write_pipeline_folder,
)
from diffusers_glide.model_cards import RELEASED_CHECKPOINT_NAMES
from diffusers_glide.variants import get_variant

URL = "https://openaipublic.blob.core.windows.net/diffusion/dec-2021/"
RELEASED_NAMES = {"base": "base", "upsample": "upsample", "base-inpaint": "base_inpaint"}
RELEASED_NAMES["upsample-inpaint"] = "upsample_inpaint"
GLIDE_LIMITS = (
    "they were trained on a filtered dataset from which images of people, violent objects and some hate symbols "
    "were removed; they are small (the base model has about 385M parameters)"
)
NOT_PEOPLE = "Do not expect faithful images of people, and expect biases of the training data to show"
LICENSE = "License: MIT. OpenAI's glide-text2im repository and the weights it releases are under the MIT license"


def _text(card: ModelCard) -> str:
    """The card's body with its line breaks joined (sentences may wrap)."""
    return " ".join(card.text.split())


def _card_only(model_type: str, released_name: str | None = None) -> ConvertedGlide:
    """A conversion without its models: the card needs only the variant (and the released name)."""
    return ConvertedGlide(get_variant(model_type), None, None, None, None, released_name=released_name)


@pytest.mark.parametrize("model_type", list(RELEASED_NAMES))
def test_the_card_of_a_released_checkpoint_names_it_its_url_license_and_limits(model_type):
    card = _card_only(model_type, RELEASED_NAMES[model_type]).model_card()
    text = _text(card)
    assert card.data.license == "mit" and "\nlicense: mit\n" in str(card)
    name = RELEASED_NAMES[model_type]
    assert f"OpenAI's released GLIDE (filtered) checkpoint `{name}.pt` <{URL}{name}.pt>" in text
    assert "[glide-text2im](https://github.com/openai/glide-text2im)" in text
    assert "[arXiv:2112.10741](https://arxiv.org/abs/2112.10741)" in text
    assert LICENSE in text and "(Copyright (c) 2021 OpenAI)" in text
    assert "## Limitations" in card.text and GLIDE_LIMITS in text and NOT_PEOPLE in text
    assert "released for research, not recommended for commercial use" in text


@pytest.mark.parametrize("model_type", list(RELEASED_NAMES))
def test_without_a_released_name_the_origin_is_neutral(model_type):
    card = _card_only(model_type).model_card()
    text = _text(card)
    assert "openaipublic" not in text and "OpenAI's released" not in text
    name = RELEASED_NAMES[model_type]
    assert f"Weights: converted from an OpenAI GLIDE checkpoint in the format of glide-text2im's `{name}.pt`." in text
    assert card.data.license == "mit" and LICENSE in text and GLIDE_LIMITS in text
    # the argument names the released file for one card
    assert f"<{URL}{name}.pt>" in _text(_card_only(model_type).model_card(released_name=name))


def test_a_wrong_released_name_is_refused_before_loading(tmp_path):
    with pytest.raises(ValueError, match=r"released_name='base' is not OpenAI's released 'base-inpaint' checkpoint: "):
        convert_glide_checkpoint(tmp_path / "missing.pt", "base-inpaint", released_name="base")
    with pytest.raises(ValueError, match=r"that is 'upsample_inpaint' \(" + URL + "upsample_inpaint.pt\\)"):
        _card_only("upsample-inpaint", "upsample-inpaint")
    with pytest.raises(ValueError, match="released_name='base.pt' is not"):
        _card_only("base").model_card(released_name="base.pt")


def test_a_conversion_told_it_is_released_writes_that_card(tmp_path, converted_folders):
    converted = convert_glide_checkpoint(
        REFERENCE_DIR / "base.pt", "base", options=reference_options("base"), released_name="base"
    )
    card = _text(ModelCard.load(write_pipeline_folder(converted, tmp_path / "out") / "README.md"))
    assert f"`base.pt` <{URL}base.pt>" in card and GLIDE_LIMITS in card
    # the fixtures converted by path (conftest): neutral
    neutral = _text(ModelCard.load(converted_folders["base"] / "README.md"))
    assert "openaipublic" not in neutral and "converted from an OpenAI GLIDE checkpoint" in neutral


def test_the_noised_clip_card(tmp_path, converted_clip_folder):
    paths = [REFERENCE_DIR / "clip_image_enc.pt", REFERENCE_DIR / "clip_text_enc.pt"]
    converted = convert_clip_checkpoints(paths, options=clip_options(), released=True)
    card = ModelCard.load(write_pipeline_folder(converted, tmp_path / "clip") / "README.md")
    text = _text(card)
    assert card.data.license == "mit" and LICENSE in text and "arXiv:2112.10741" in text
    released = (
        f"checkpoints `clip_image_enc.pt` and `clip_text_enc.pt` <{URL}clip_image_enc.pt> <{URL}clip_text_enc.pt>"
    )
    assert released in text
    assert "## Limitations" in card.text and "released for research and may reproduce biases" in text
    assert "from which images of people, violent objects and some hate symbols were removed" in text
    neutral = _text(ModelCard.load(converted_clip_folder / "README.md"))
    assert "openaipublic" not in neutral and "converted from OpenAI GLIDE checkpoints in the format" in neutral
    assert URL in _text(ConvertedCLIP(None, None, None).model_card(released=True))


def test_the_stated_numbers_hold():
    # "about 385M parameters": the released base.pt's UNet + text encoder (its key/shape manifest)
    manifest = json.loads((REFERENCE_DIR / "manifests" / "base.json").read_text())
    assert round(manifest["total_params"] / 1e6) == 385
    assert set(RELEASED_CHECKPOINT_NAMES) == {*RELEASED_NAMES, "clip"}
