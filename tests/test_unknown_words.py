"""Unknown words: `tokenization.unknown_words` and the warning that names them (pipeline and command line)."""

import logging
import subprocess
import sys

import pytest

from diffusers_glide import GlidePipeline, embedded_model_path
from diffusers_glide.shapes.dataset import caption_vocabulary
from diffusers_glide.tokenization import (
    build_glide_tokenizer,
    build_word_level_tokenizer,
    small_vocabulary,
    tokenize_prompts,
    unknown_words,
    unknown_words_message,
)
from diffusers_glide.vocabularies import vocabulary_dir

TOKENIZER_LOGGER = "diffusers_glide.tokenization"
# the embedded models' words, in the order of their token ids (written out: the warnings must list exactly these)
VOCABULARY = (
    "a on background red green blue yellow white black circle square triangle in the middle left right at top bottom"
)


@pytest.fixture(scope="module")
def words_tokenizer():
    return build_word_level_tokenizer(caption_vocabulary(), context_length=16)


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    return build_glide_tokenizer(vocabulary_dir())


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == TOKENIZER_LOGGER and r.levelno == logging.WARNING]


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("a red circle on a blue background at the top", []),
        ("A RED Circle, on a blue background!", []),  # lower-cased, punctuation dropped
        ("a red cat on a blue photo", ["cat", "photo"]),
        ("a red Cat, on a cat photo of a CAT", ["Cat", "photo", "of"]),  # once each, first spelling, in order
        ("zebra", ["zebra"]),
        ("", []),
        ("   ", []),
    ],
)
def test_unknown_words_of_the_word_level_tokenizer(words_tokenizer, prompt, expected):
    assert unknown_words(words_tokenizer, prompt) == expected


def test_every_caption_word_is_known(words_tokenizer):
    assert unknown_words(words_tokenizer, " ".join(caption_vocabulary())) == []


def test_the_gpt2_tokenizer_has_no_unknown_words(gpt2_tokenizer):
    assert unknown_words(gpt2_tokenizer, "a zxqv corgi <|endoftext|> \u00e9t\u00e9 \U0001f600") == []


def test_unknown_words_needs_a_string(words_tokenizer):
    with pytest.raises(TypeError, match="`prompt` must be a string"):
        unknown_words(words_tokenizer, None)


def test_the_warning_names_the_unknown_words(words_tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger=TOKENIZER_LOGGER):
        tokenize_prompts(words_tokenizer, ["a red circle", "a red cat on a Photo of a cat"], 16)
    assert _warnings(caplog) == [
        "Prompt 1 ('a red cat on a Photo of a cat') has words outside the tokenizer's vocabulary: 'cat', 'Photo', "
        f"'of' (this model knows only these 20 words: {VOCABULARY}); the model sees them as '<unk>'."
    ]


def test_small_vocabulary_is_listed_only_for_small_word_level_tokenizers(words_tokenizer, gpt2_tokenizer):
    assert small_vocabulary(words_tokenizer) == VOCABULARY.split()
    assert small_vocabulary(gpt2_tokenizer) is None
    large = build_word_level_tokenizer([f"word{i}" for i in range(101)], context_length=16)
    assert small_vocabulary(large) is None  # 101 words: named in the warning, not listed
    assert unknown_words_message(large, ["cat"]) == "words outside the tokenizer's vocabulary: 'cat'"


def test_no_warning_for_known_words_or_the_gpt2_tokenizer(words_tokenizer, gpt2_tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger=TOKENIZER_LOGGER):
        tokenize_prompts(words_tokenizer, "a red circle on a blue background", 16)
        tokenize_prompts(gpt2_tokenizer, "a red zxqv on a blue corgi", 128)
    assert _warnings(caplog) == []


def test_the_embedded_pipeline_warns_with_the_words(caplog):
    pipe = GlidePipeline.from_pretrained(embedded_model_path("base"))
    pipe.set_progress_bar_config(disable=True)
    assert unknown_words(pipe.tokenizer, "a red cat") == ["cat"]
    with caplog.at_level(logging.WARNING, logger=TOKENIZER_LOGGER):
        pipe("a red cat on a blue background", num_inference_steps=2, output_type="np")
    assert any(
        f"vocabulary: 'cat' (this model knows only these 20 words: {VOCABULARY});" in m for m in _warnings(caplog)
    )


def test_the_command_line_prints_the_warning(tmp_path):
    code = (
        "import sys; from diffusers_glide.cli import main; "
        "sys.exit(main(['generate', 'a red cat on a blue photo', '--steps', '2', '-o', sys.argv[1], '--no_progress']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "out.png")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert (
        "Prompt 0 ('a red cat on a blue photo') has words outside the tokenizer's vocabulary: 'cat', 'photo' (this "
        f"model knows only these 20 words: {VOCABULARY}); the model sees them as '<unk>'." in result.stderr
    )
