"""What the page tells visitors about prompts (`app/help.py`), without a browser: the placeholder, the examples (which
use every word of the embedded model's vocabulary), the vocabulary line, the model in the header, and the note that
names unknown words."""

from types import SimpleNamespace

import gradio as gr
import pytest

from diffusers_glide.app import AppModels, GlideAppCallbacks, load_app_models
from diffusers_glide.app.help import (
    ENTER_HINT,
    GENERIC_PLACEHOLDER,
    SHAPES_PLACEHOLDER,
    markdown_text,
    model_label,
    models_line,
    prompt_help,
    reads_shape_captions,
    shapes_examples,
    unknown_words_note,
)
from diffusers_glide.app.interface import build_app
from diffusers_glide.app.models import DPM_SOLVER
from diffusers_glide.cascade import DEFAULT
from diffusers_glide.openai_checkpoints import OPENAI
from diffusers_glide.shapes.dataset import COLORS, HELD_OUT_COMBINATIONS, POSITIONS, SHAPES, caption_vocabulary
from diffusers_glide.tokenization import build_glide_tokenizer, unknown_words
from diffusers_glide.vocabularies import vocabulary_dir


@pytest.fixture(scope="module")
def models():
    return load_app_models()


@pytest.fixture(scope="module")
def demo(models):
    return build_app(models)


def _block(demo, elem_id: str):
    (block,) = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == elem_id]
    return block


def _models_like(models, tokenizer=None, **names):
    """A stand-in for `AppModels` with the base tokenizer and model names given (what the help reads)."""
    base = SimpleNamespace(tokenizer=tokenizer or models.base.tokenizer)
    return SimpleNamespace(
        base=base, names=names, inpaint=None, upsampler=None, inpaint_upsampler=None, has_clip=False
    )


# ---------------------------------------------------------------------------------------------------------------
# The examples and the vocabulary


def test_the_examples_use_every_word_of_the_vocabulary(models):
    examples = shapes_examples()
    text = " ".join(examples)
    assert set(text.split()) == set(caption_vocabulary())
    for color in COLORS:
        assert any(f"a {color} " in example for example in examples), f"{color} as a shape's colour"
        assert any(f" {color} background" in example for example in examples), f"{color} as a background"
    for shape in SHAPES:
        assert any(f" {shape} " in example for example in examples)
    for position in POSITIONS:
        assert any(example.endswith(position) for example in examples)
    assert any(example.endswith("background") for example in examples), "one example names no position"
    assert all(unknown_words(models.base.tokenizer, example) == [] for example in examples)


def test_the_examples_avoid_the_held_out_combinations():
    for example in shapes_examples():
        words = example.split()
        assert (words[1], words[2], words[5]) not in HELD_OUT_COMBINATIONS, example


def test_the_embedded_model_gets_its_vocabulary(models):
    assert models.names == dict.fromkeys(("base", "inpaint", "upsampler", "inpaint_upsampler", "clip"), DEFAULT)
    assert reads_shape_captions(models.base.tokenizer)
    page_help = prompt_help(models)
    assert page_help.placeholder == SHAPES_PLACEHOLDER
    assert page_help.examples == shapes_examples()
    for word in [*COLORS, *SHAPES, *POSITIONS]:
        assert word in page_help.vocabulary
    assert page_help.vocabulary == (
        "**This model knows only these words.** Colours: red, green, blue, yellow, white, black. Shapes: circle, "
        "square, triangle. Positions: in the middle, on the left, on the right, at the top, at the bottom. Captions "
        "read *a red circle on a blue background on the left* (the position is optional)."
    )


def test_a_shapes_model_of_ones_own_gets_the_vocabulary(models, tmp_path):
    page_help = prompt_help(_models_like(models, base=str(tmp_path)))
    assert page_help.placeholder == SHAPES_PLACEHOLDER
    assert page_help.vocabulary == prompt_help(models).vocabulary


def test_a_model_that_reads_any_text_gets_no_vocabulary(models):
    gpt2 = build_glide_tokenizer(vocabulary_dir())
    assert not reads_shape_captions(gpt2)
    page_help = prompt_help(_models_like(models, gpt2, base=OPENAI))
    assert page_help.placeholder == GENERIC_PLACEHOLDER
    assert page_help.vocabulary == ""
    assert page_help.examples and all(example not in shapes_examples() for example in page_help.examples)


# ---------------------------------------------------------------------------------------------------------------
# Unknown words


KNOWN = (  # the embedded models' words, written out
    "It knows only these 20 words: a on background red green blue yellow white black circle square triangle in the "
    "middle left right at top bottom."
)


def test_the_note_names_the_unknown_words_of_prompt_and_negative_prompt(models):
    tokenizer = models.base.tokenizer
    note = unknown_words_note(tokenizer, "a red Cat on a blue photo", "a cat, a dog", None)
    assert note == f"\n\n**Unknown words ignored by this model:** Cat, photo, dog. {KNOWN}"
    assert unknown_words_note(tokenizer, "a red circle on a blue background", "") == ""
    assert unknown_words_note(build_glide_tokenizer(vocabulary_dir()), "a zxqv corgi") == ""


def test_words_in_markdown_are_shown_literally():
    assert markdown_text("<b>_x_ *y*") == "\\<b\\>\\_x\\_ \\*y\\*"


def test_generate_and_image_to_image_name_unknown_words(models, tmp_path):
    import numpy as np
    import PIL.Image

    callbacks = GlideAppCallbacks(models)
    _, info, _ = callbacks.generate("a red cat on a blue photo", "", 3.0, 2, DPM_SOLVER, 0, False, 1)
    assert info.startswith("Seed 0 · DPM-Solver++, 2 steps · 32x32 · ")
    assert info.endswith(f"\n\n**Unknown words ignored by this model:** cat, photo. {KNOWN}")
    _, info, _ = callbacks.generate("a red circle on a blue background", "", 3.0, 2, DPM_SOLVER, 0, False, 1)
    assert "Unknown words" not in info
    PIL.Image.fromarray(np.full((32, 32, 3), 128, dtype=np.uint8)).save(tmp_path / "grey.png")
    _, info = callbacks.img2img(
        str(tmp_path / "grey.png"), "a red circle", "a zebra", 0.5, 3.0, 2, DPM_SOLVER, 0, False, 1
    )
    assert info.endswith(f"**Unknown words ignored by this model:** zebra. {KNOWN}")


# ---------------------------------------------------------------------------------------------------------------
# Which model is loaded


def test_model_labels(tmp_path):
    assert model_label(DEFAULT) == model_label(None) == "the embedded shapes model"
    assert model_label(OPENAI) == "OpenAI's released GLIDE (filtered)"
    assert model_label(str(tmp_path)) == f"the folder {markdown_text(str(tmp_path))}"
    assert model_label("my-user/glide-base") == "the Hugging Face Hub model my\\-user/glide\\-base"


def test_the_header_names_each_stage_whose_model_differs(models):
    assert models_line(models) == "**Model:** the embedded shapes model"
    mixed = _models_like(models, base=OPENAI, upsampler=DEFAULT)
    mixed.upsampler = object()
    assert models_line(mixed) == (
        "**Model:** OpenAI's released GLIDE (filtered) (upsampler: the embedded shapes model)"
    )


def test_app_models_built_directly_name_their_base_model(models, tmp_path):
    assert AppModels(base=models.base).names == {"base": DEFAULT}
    pipe = models.base.__class__(**models.base.components)
    pipe.register_to_config(_name_or_path=str(tmp_path))
    assert AppModels(base=pipe).names == {"base": str(tmp_path)}


# ---------------------------------------------------------------------------------------------------------------
# The page


def test_the_prompt_boxes_have_a_placeholder_and_enter_submits(demo):
    for prefix in ("generate", "img2img"):
        prompt = _block(demo, f"{prefix}-prompt")
        assert prompt.placeholder == f"e.g. {SHAPES_PLACEHOLDER}"
        assert prompt.lines == 1  # a one-line box: Enter submits (Gradio's multi-line boxes take Enter as a newline)
        assert prompt.info == ENTER_HINT and "Enter" in ENTER_HINT
        vocabulary = _block(demo, f"{prefix}-vocabulary")
        assert vocabulary.visible and "Colours: " + ", ".join(COLORS) in vocabulary.value


def test_the_page_shows_the_examples_and_the_model(demo):
    for prefix in ("generate", "img2img"):
        dataset = _block(demo, f"{prefix}-examples")
        assert isinstance(dataset, gr.Dataset)
        assert [sample[0] for sample in dataset.samples] == list(shapes_examples())
    assert _block(demo, "model-label").value == "**Model:** the embedded shapes model"
    # the examples of Generate run it: the button, Enter and the examples' click chain call `generate`
    generate = demo.glide_callbacks.generate
    assert sum(1 for fn in demo.fns.values() if getattr(fn.fn, "__wrapped__", fn.fn) == generate) == 2


def test_no_vocabulary_on_the_page_of_a_model_that_reads_any_text(models):
    gpt2_models = AppModels(base=models.base, names={"base": OPENAI})
    original = models.base.tokenizer
    gpt2_models.base.tokenizer = build_glide_tokenizer(vocabulary_dir())
    try:
        page = build_app(gpt2_models)
    finally:
        models.base.tokenizer = original
    assert not _block(page, "generate-vocabulary").visible
    assert _block(page, "generate-prompt").placeholder == f"e.g. {GENERIC_PLACEHOLDER}"
    assert _block(page, "model-label").value.startswith("**Model:** OpenAI's released GLIDE")
