"""What the page tells visitors about prompts: which model is loaded, what to type (a placeholder, clickable
examples, the embedded model's vocabulary and what it does not follow), and which words of a prompt the model does
not know.

The embedded shapes models read a closed vocabulary with a word-level tokenizer (`shapes.dataset.caption_vocabulary`):
for them the page lists the vocabulary and offers examples that use every word of it. Other models (OpenAI's GLIDE,
GPT-2's byte-level BPE) read any text: they get a generic placeholder and examples, and no vocabulary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..cascade import DEFAULT
from ..openai_checkpoints import OPENAI
from ..shapes.dataset import COLORS, HELD_OUT_COMBINATIONS, POSITIONS, SHAPES, ShapeScene, caption_vocabulary
from ..tokenization import is_word_level, small_vocabulary, unknown_words

SHAPES_PLACEHOLDER = "a red circle on a blue background"
GENERIC_PLACEHOLDER = "an oil painting of a corgi wearing a party hat"
GENERIC_EXAMPLES = (
    "an oil painting of a corgi wearing a party hat",
    "a hedgehog using a calculator",
    "a stained glass window of a panda eating bamboo",
    "a crayon drawing of a space elevator",
)
ENTER_HINT = "Press Enter to generate."
# the stages of `AppModels`, as the header names them
STAGE_NAMES = {
    "base": "text to image",
    "inpaint": "inpainting",
    "upsampler": "upsampler",
    "inpaint_upsampler": "inpainting upsampler",
    "clip": "CLIP",
}
_MARKDOWN_SPECIAL = set("\\`*_{}[]<>()#+-.!|~&")


@dataclass(frozen=True)
class PromptHelp:
    """What the page shows around a prompt box for one base model."""

    placeholder: str
    examples: tuple[str, ...]
    vocabulary: str  # Markdown; "" when the model reads any text


def markdown_text(text: str) -> str:
    """`text` shown literally in Markdown (a visitor's words: `<`, `*`, `_` and the like are escaped)."""
    return "".join(f"\\{c}" if c in _MARKDOWN_SPECIAL else c for c in text)


def reads_shape_captions(tokenizer) -> bool:
    """Whether `tokenizer` is a word-level tokenizer that knows every word of the shapes captions (the embedded
    models', or one trained the same way)."""
    return is_word_level(tokenizer) and not unknown_words(tokenizer, " ".join(caption_vocabulary()))


def shapes_examples() -> tuple[str, ...]:
    """Captions that together use every colour (as shape and as background), every shape and every position of the
    shapes dataset, and one caption without a position; none is a held-out combination (`HELD_OUT_COMBINATIONS`)."""
    colors, positions = list(COLORS), [*POSITIONS, None]
    count = max(len(colors), len(positions))
    for offset in range(1, len(colors)):
        scenes = [
            (colors[i % len(colors)], SHAPES[i % len(SHAPES)], colors[(i + offset) % len(colors)])
            for i in range(count)
        ]
        if not any(scene in HELD_OUT_COMBINATIONS for scene in scenes):
            break
    else:  # pragma: no cover - the dataset's held-out list leaves room
        raise AssertionError("no examples avoid the held-out combinations")
    return tuple(
        ShapeScene(color, shape, background, positions[i % len(positions)], (0.5, 0.5), 0.2).caption
        for i, (color, shape, background) in enumerate(scenes)
    )


def shapes_vocabulary() -> str:
    """The shapes vocabulary as one Markdown line."""
    line = (
        f"**This model knows only these words.** Colours: {', '.join(COLORS)}. Shapes: {', '.join(SHAPES)}. "
        f"Positions: {', '.join(POSITIONS)}. Captions read *a red circle on a blue background on the left* "
        "(the position is optional)."
    )
    return line


def prompt_help(models) -> PromptHelp:
    """The placeholder, examples and vocabulary line for the base model of `models` (`AppModels`)."""
    if reads_shape_captions(models.base.tokenizer):
        return PromptHelp(SHAPES_PLACEHOLDER, shapes_examples(), shapes_vocabulary())
    return PromptHelp(GENERIC_PLACEHOLDER, GENERIC_EXAMPLES, "")


def unknown_words_note(tokenizer, *prompts: str | None) -> str:
    """A Markdown paragraph naming the words of `prompts` that `tokenizer` does not know, to append to a result's
    info line; "" when there are none."""
    words: dict[str, str] = {}
    for prompt in prompts:
        if isinstance(prompt, str):
            for word in unknown_words(tokenizer, prompt):
                words.setdefault(word.lower(), word)
    if not words:
        return ""
    shown = ", ".join(markdown_text(word) for word in words.values())
    note = f"\n\n**Unknown words ignored by this model:** {shown}"
    vocabulary = small_vocabulary(tokenizer)
    if vocabulary is not None:
        note += f". It knows only these {len(vocabulary)} words: {markdown_text(' '.join(vocabulary))}."
    return note


def model_label(name: str | None) -> str:
    """How the header names a model given as `name` (what `load_app_models` was passed)."""
    if name in (None, DEFAULT):
        return "the embedded shapes model"
    if name == OPENAI:
        return "OpenAI's released GLIDE (filtered)"
    if os.path.isdir(name):
        return f"the folder {markdown_text(name)}"
    return f"the Hugging Face Hub model {markdown_text(name)}"


def models_line(models) -> str:
    """The header's line naming the models of `models` (`AppModels`): the base model, then each other loaded stage
    whose model differs from it."""
    loaded = {
        "inpaint": models.inpaint is not None,
        "upsampler": models.upsampler is not None,
        "inpaint_upsampler": models.inpaint_upsampler is not None,
        "clip": models.has_clip,
    }
    base = models.names.get("base")
    others = [
        f"{what}: {model_label(models.names.get(stage))}"
        for stage, what in STAGE_NAMES.items()
        if loaded.get(stage) and models.names.get(stage) != base
    ]
    return f"**Model:** {model_label(base)}" + (f" ({'; '.join(others)})" if others else "")
