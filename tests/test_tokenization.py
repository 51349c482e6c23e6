"""GLIDE's GPT-2 tokenizer against the reference cases of `glide_reference/tokenizer_cases.json`.

Expected ids, padded tokens, masks and decoded texts all come from the fixture file (produced by the
reference package's `get_encoder()` and `padded_tokens_and_mask(ids, 128)`).
"""

import gzip
import json
import logging
import shutil

import pytest
import torch
from conftest import REFERENCE_DIR, TOKENIZERS_DIR
from transformers import AutoTokenizer

from diffusers_glide.tokenization import build_glide_tokenizer, tokenize_prompts

CASES_FILE = json.loads((REFERENCE_DIR / "tokenizer_cases.json").read_text(encoding="utf-8"))
CASES = CASES_FILE["cases"]
CONTEXT = CASES_FILE["gpt2"]["text_ctx"]
PAD_ID = CASES_FILE["gpt2"]["end_token (padding id)"]
CASE_IDS = [f"{i}-{case['prompt'][:24]!r}" for i, case in enumerate(CASES)]
LONG_CASES = [case for case in CASES if case["gpt2_num_ids"] > CONTEXT]
TOKENIZER_LOGGER = "diffusers_glide.tokenization"


@pytest.fixture(scope="module")
def tokenizer():
    return build_glide_tokenizer(TOKENIZERS_DIR)


@pytest.fixture(scope="module")
def saved_dir(tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved_tokenizer")
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reloaded(saved_dir):
    return build_glide_tokenizer(saved_dir)


@pytest.fixture(scope="module")
def auto_reloaded(saved_dir):
    return AutoTokenizer.from_pretrained(saved_dir)


@pytest.fixture(scope="module")
def plain_files_tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain_bpe_files")
    for name in ("encoder.json", "vocab.bpe"):
        with gzip.open(TOKENIZERS_DIR / f"{name}.gz", "rb") as src, open(folder / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return build_glide_tokenizer(folder)


def _check_case(tok, case):
    ids = tok.encode(case["prompt"], add_special_tokens=False)
    assert ids == case["gpt2_ids"]
    assert len(ids) == case["gpt2_num_ids"]
    assert tok.decode(ids) == case["gpt2_decoded"]

    padded, mask = tokenize_prompts(tok, case["prompt"], CONTEXT)
    assert padded.dtype == torch.long and mask.dtype == torch.bool
    assert padded.shape == mask.shape == (1, CONTEXT)
    assert padded[0].tolist() == case["gpt2_padded_tokens"]
    assert mask[0].tolist() == case["gpt2_mask"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_cases_from_gzipped_files(tokenizer, case):
    _check_case(tokenizer, case)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_cases_after_save_pretrained(reloaded, auto_reloaded, case):
    _check_case(reloaded, case)
    _check_case(auto_reloaded, case)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_cases_from_plain_files(plain_files_tokenizer, case):
    _check_case(plain_files_tokenizer, case)


def test_batch_matches_cases(tokenizer):
    padded, mask = tokenize_prompts(tokenizer, [case["prompt"] for case in CASES], CONTEXT)
    assert padded.tolist() == [case["gpt2_padded_tokens"] for case in CASES]
    assert mask.tolist() == [case["gpt2_mask"] for case in CASES]


def test_fixture_covers_the_special_cases():
    prompts = [case["prompt"] for case in CASES]
    assert "" in prompts
    assert any("<|endoftext|>" in p for p in prompts)
    assert LONG_CASES
    assert CONTEXT == 128 and PAD_ID == 50256


def test_saved_files_carry_glide_behaviour(saved_dir, auto_reloaded):
    config = json.loads((saved_dir / "tokenizer_config.json").read_text())
    assert config["split_special_tokens"] is True
    backend = json.loads((saved_dir / "tokenizer.json").read_text())
    assert "Lowercase" in json.dumps(backend["normalizer"])
    # Through the plain transformers API too (not only tokenize_prompts): the literal is text, not id 50256.
    assert PAD_ID not in auto_reloaded("<|endoftext|>")["input_ids"]
    assert auto_reloaded.pad_token_id == PAD_ID


def test_tokenizer_call_padding_matches_reference(reloaded):
    short = [case for case in CASES if 0 < case["gpt2_num_ids"] <= CONTEXT]
    out = reloaded([case["prompt"] for case in short], padding="max_length", truncation=True, max_length=CONTEXT)
    assert out["input_ids"] == [case["gpt2_padded_tokens"] for case in short]
    assert out["attention_mask"] == [[int(m) for m in case["gpt2_mask"]] for case in short]


@pytest.mark.parametrize("text", ["ΟΔΟΣ ΠΡΟΣ ΤΗΝ ΑΘΗΝΑ", "ΑΣ.Σ ΑΣ'Β", "İSTANBUL", "Ὀδυσσεύς ΟΔΥΣΣΕΥΣ"])
def test_lowercasing_agrees_with_str_lower(tokenizer, text):
    # The reference BPE-encodes `text.lower()`; Python's lower() uses the word-final sigma form ς.
    assert tokenizer.encode(text) == tokenizer.encode(text.lower())


def test_truncation_warns(tokenizer, caplog):
    case = LONG_CASES[0]
    with caplog.at_level(logging.WARNING, logger=TOKENIZER_LOGGER):
        padded, mask = tokenize_prompts(tokenizer, ["a cat", case["prompt"]], CONTEXT)
    assert padded[1].tolist() == case["gpt2_padded_tokens"]
    assert mask[1].all()
    records = [r for r in caplog.records if r.name == TOKENIZER_LOGGER and r.levelno == logging.WARNING]
    assert len(records) == 1
    message = records[0].getMessage()
    assert f"{case['gpt2_num_ids'] - CONTEXT} tokens were truncated" in message
    assert "Prompt 1" in message
    # The warning shows the start of the removed text (the end of the lower-cased prompt), at most 60 characters.
    removed = tokenizer.decode(case["gpt2_ids"][CONTEXT:])
    assert case["gpt2_decoded"].endswith(removed)
    shown = removed if len(removed) <= 60 else f"{removed[:60]}... ({len(removed)} characters)"
    assert f"starting with {shown!r}" in message


def test_truncation_warning_of_a_huge_prompt_stays_short(tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger=TOKENIZER_LOGGER):
        tokenize_prompts(tokenizer, "a cat " * 2000, CONTEXT)
    (message,) = [r.getMessage() for r in caplog.records if r.name == TOKENIZER_LOGGER]
    assert len(message) < 300
    assert "starting with ' a cat a cat a cat" in message
    assert "... (" in message and " characters)" in message


def test_lone_surrogate_raises(tokenizer):
    with pytest.raises(
        ValueError, match=r"`prompts\[0\]` is not valid text: '\\udcff' at position 2 is a lone surrogate"
    ):
        tokenize_prompts(tokenizer, "a \udcff dog", CONTEXT)


def test_no_warning_without_truncation(tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger=TOKENIZER_LOGGER):
        tokenize_prompts(tokenizer, [case["prompt"] for case in CASES if case["gpt2_num_ids"] <= CONTEXT], CONTEXT)
    assert not [r for r in caplog.records if r.name == TOKENIZER_LOGGER]


def test_small_context(tokenizer):
    padded, mask = tokenize_prompts(tokenizer, ["hello world", ""], 4)
    assert padded.tolist() == [[31373, 995, PAD_ID, PAD_ID], [PAD_ID] * 4]  # "hello world" ids from the fixture
    assert mask.tolist() == [[True, True, False, False], [False] * 4]


def test_empty_list_raises(tokenizer):
    with pytest.raises(ValueError, match="empty"):
        tokenize_prompts(tokenizer, [], CONTEXT)


@pytest.mark.parametrize("prompts", [["a cat", 3], [None], b"a cat", 42, ["ok", ["nested"]]])
def test_non_string_prompt_raises(tokenizer, prompts):
    with pytest.raises(TypeError, match="string"):
        tokenize_prompts(tokenizer, prompts, CONTEXT)


@pytest.mark.parametrize("context_length", [0, -1, 1.5, True])
def test_bad_context_length_raises(tokenizer, context_length):
    with pytest.raises(ValueError, match="context_length"):
        tokenize_prompts(tokenizer, "a cat", context_length)


def test_missing_folder_raises(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        build_glide_tokenizer(missing)


def test_missing_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError) as excinfo:
        build_glide_tokenizer(tmp_path)
    message = str(excinfo.value)
    assert str(tmp_path) in message
    assert "encoder.json" in message and "vocab.bpe" in message and "tokenizer.json" in message

    shutil.copy(TOKENIZERS_DIR / "encoder.json.gz", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"missing vocab\.bpe"):
        build_glide_tokenizer(tmp_path)


def test_malformed_vocab_raises(tmp_path):
    (tmp_path / "encoder.json").write_text(json.dumps(["not", "a", "dict"]))
    shutil.copy(TOKENIZERS_DIR / "vocab.bpe.gz", tmp_path)
    with pytest.raises(ValueError, match="encoder.json"):
        build_glide_tokenizer(tmp_path)


def test_malformed_merges_raise(tmp_path):
    shutil.copy(TOKENIZERS_DIR / "encoder.json.gz", tmp_path)
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\na b c\n")
    with pytest.raises(ValueError, match="vocab.bpe"):
        build_glide_tokenizer(tmp_path)


def test_diffusers_pipeline_round_trip(tokenizer, tmp_path):
    import transformers
    from diffusers import DiffusionPipeline

    class _TokenizerOnlyPipeline(DiffusionPipeline):
        def __init__(self, tokenizer):
            super().__init__()
            self.register_modules(tokenizer=tokenizer)

    _TokenizerOnlyPipeline(tokenizer).save_pretrained(tmp_path)
    library, class_name = json.loads((tmp_path / "model_index.json").read_text())["tokenizer"]
    assert library == "transformers" and isinstance(tokenizer, getattr(transformers, class_name))
    loaded = _TokenizerOnlyPipeline.from_pretrained(tmp_path).tokenizer
    case = next(case for case in CASES if "<|endoftext|>" in case["prompt"])
    padded, mask = tokenize_prompts(loaded, case["prompt"], CONTEXT)
    assert padded[0].tolist() == case["gpt2_padded_tokens"]
    assert loaded.encode(case["prompt"]) == case["gpt2_ids"]
