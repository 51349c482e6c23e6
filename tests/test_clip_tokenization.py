"""The CLIP BPE tokenizer of GLIDE's noised CLIP against `glide_reference/tokenizer_cases.json`.

Expected ids, padded tokens and lengths come from the fixture files (produced by the reference package's
`SimpleTokenizer().encode(prompt)` and `padded_tokens_and_len(ids, 77)`, with ftfy 6.3.1) and from the CLIP
reference recordings (`clip.forward`, `base.sample_clip`).
"""

import gzip
import json
import logging
import shutil
import sys

import pytest
import torch
from conftest import REFERENCE_DIR, TOKENIZERS_DIR, load_reference
from transformers import AutoTokenizer, CLIPTokenizer

from diffusers_glide.clip_tokenization import (
    CLIP_CONTEXT_LENGTH,
    CLIP_VOCAB_FILE,
    build_clip_tokenizer,
    clean_clip_prompt,
    tokenize_clip_prompts,
)

CASES_FILE = json.loads((REFERENCE_DIR / "tokenizer_cases.json").read_text(encoding="utf-8"))
CASES = CASES_FILE["cases"]
CLIP_INFO = CASES_FILE["clip"]
CASE_IDS = [f"{i}-{case['prompt'][:24]!r}" for i, case in enumerate(CASES)]
LONG_CASES = [case for case in CASES if case["clip_num_ids"] > CLIP_CONTEXT_LENGTH - 2]
START, END = CLIP_INFO["start_token"], CLIP_INFO["end_token"]
LOGGER = "diffusers_glide.clip_tokenization"
# the cases whose reference ids depend on ftfy (it un-curls the quotes and repairs the mojibake "cafÃ©")
FTFY_PROMPTS = [
    "it’s “quoted” text — with typographic punctuation…",
    "html entities &amp; &lt;b&gt;bold&lt;/b&gt; and mojibake cafÃ©",
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer(TOKENIZERS_DIR)


@pytest.fixture(scope="module")
def saved_dir(tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved_clip_tokenizer")
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def plain_file_tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain_clip_vocab")
    with gzip.open(TOKENIZERS_DIR / f"{CLIP_VOCAB_FILE}.gz", "rb") as src, open(folder / CLIP_VOCAB_FILE, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return build_clip_tokenizer(folder)


@pytest.fixture
def without_ftfy(monkeypatch):
    # `import ftfy` raises ImportError while sys.modules holds None for it: ftfy is "not installed".
    monkeypatch.setitem(sys.modules, "ftfy", None)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def _check_case(tok, case):
    ids, mask = tokenize_clip_prompts(tok, case["prompt"])
    assert ids.dtype == torch.long and mask.dtype == torch.bool
    assert ids.shape == mask.shape == (1, CLIP_CONTEXT_LENGTH)
    assert ids[0].tolist() == case["clip_padded_tokens"]
    assert mask[0].sum().item() == case["clip_len"]
    assert mask[0].tolist() == [True] * case["clip_len"] + [False] * (CLIP_CONTEXT_LENGTH - case["clip_len"])
    # the unpadded ids, before truncation
    assert tok.encode(clean_clip_prompt(case["prompt"]), add_special_tokens=False) == case["clip_ids"]
    assert len(case["clip_ids"]) == case["clip_num_ids"]


def test_fixture_covers_the_special_cases():
    prompts = [case["prompt"] for case in CASES]
    assert "" in prompts and "   " in prompts
    assert any("<|startoftext|>" in p and "<|endoftext|>" in p for p in prompts)
    assert all(p in prompts for p in FTFY_PROMPTS)
    assert LONG_CASES
    assert CLIP_INFO["text_ctx"] == CLIP_CONTEXT_LENGTH and CLIP_INFO["padding id"] == 0
    assert (START, END, CLIP_INFO["n_vocab_used"]) == (49406, 49407, 49408)
    assert CASES_FILE["library_versions"]["ftfy"] == "6.3.1"


def test_vocabulary(tokenizer):
    assert isinstance(tokenizer, CLIPTokenizer)
    assert len(tokenizer) == 49408
    assert tokenizer.model_max_length == CLIP_CONTEXT_LENGTH
    assert tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"]) == [START, END]
    # ids 0..255 are the byte symbols ("!" first), 256..511 the same with </w>, then the merges
    assert tokenizer.convert_ids_to_tokens([0, 255, 256, 511, 512]) == ["!", "Ń", "!</w>", "Ń</w>", "in"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_cases_from_gzipped_file(tokenizer, case):
    _check_case(tokenizer, case)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_cases_from_plain_file(plain_file_tokenizer, case):
    _check_case(plain_file_tokenizer, case)


def test_batch_matches_cases(tokenizer):
    ids, mask = tokenize_clip_prompts(tokenizer, [case["prompt"] for case in CASES])
    assert ids.tolist() == [case["clip_padded_tokens"] for case in CASES]
    assert mask.sum(1).tolist() == [case["clip_len"] for case in CASES]


def test_full_length_ids_without_truncation(tokenizer):
    # With a context large enough for every case, the row is [start] + clip_ids + [end]: our own encoding path
    # (cleaning, lower-casing, special literals) gives the reference's unpadded ids.
    context = max(case["clip_num_ids"] for case in CASES) + 2
    ids, mask = tokenize_clip_prompts(tokenizer, [case["prompt"] for case in CASES], context)
    for row, row_mask, case in zip(ids.tolist(), mask.tolist(), CASES, strict=True):
        length = case["clip_num_ids"] + 2
        assert row[:length] == [START, *case["clip_ids"], END]
        assert row[length:] == [0] * (context - length)
        assert sum(row_mask) == length


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_decoded_text(tokenizer, case):
    # the reference decode replaces "</w>" by a space and keeps the trailing one; CLIPTokenizer strips it
    assert tokenizer.decode(case["clip_ids"]) == case["clip_decoded"].strip()


def test_special_literals_map_to_special_ids(tokenizer):
    case = next(case for case in CASES if "<|startoftext|>" in case["prompt"])
    assert case["clip_ids"][0] == END and case["clip_ids"][-1] == START
    ids, mask = tokenize_clip_prompts(tokenizer, case["prompt"])
    assert ids[0, : case["clip_len"]].tolist() == [START, *case["clip_ids"], END]


def test_clip_forward_recording(tokenizer):
    tensors, info = load_reference("clip.forward")
    ids, mask = tokenize_clip_prompts(tokenizer, info["prompts"])
    assert ids.tolist() == tensors["text_tokens"].tolist()
    assert mask.sum(1).tolist() == tensors["text_lens"].tolist() == [8, 2, 77]


def test_clip_guided_sampling_recording(tokenizer):
    tensors, info = load_reference("base.sample_clip")
    prompts = info["spec"]["prompts"]
    ids, mask = tokenize_clip_prompts(tokenizer, prompts)
    assert ids.tolist() == tensors["clip_tokens"].tolist()
    assert mask.sum(1).tolist() == tensors["clip_lens"].tolist()


# Beyond the fixture: behaviours of the reference algorithm (`str.lower` of the cleaned text, then CLIP's regex, in
# which a special literal is a word only where no punctuation run swallows its "<|") that the tokenizer called
# directly does not have.
def test_special_literal_inside_punctuation_is_text(tokenizer):
    ids, mask = tokenize_clip_prompts(tokenizer, "a !<|endoftext|> b")
    as_text = tokenizer.encode("a !<|endoftext|> b", add_special_tokens=False, split_special_tokens=True)
    assert ids[0, : mask.sum()].tolist() == [START, *as_text, END]
    assert END not in as_text
    # whereas the tokenizer's added-token matching cuts the literal out
    assert END in tokenizer.encode("a !<|endoftext|> b", add_special_tokens=False)


def test_upper_case_special_literal_is_special(tokenizer):
    ids, mask = tokenize_clip_prompts(tokenizer, "A<|ENDOFTEXT|>B")
    a, b = tokenizer.convert_tokens_to_ids(["a</w>", "b</w>"])
    assert ids[0, : mask.sum()].tolist() == [START, a, END, b, END]
    # the tokenizer alone matches special tokens before lower-casing: the upper-case literal stays text
    assert END not in tokenizer.encode("A<|ENDOFTEXT|>B", add_special_tokens=False)


def test_final_sigma_lowercased_like_python(tokenizer):
    ids, mask = tokenize_clip_prompts(tokenizer, "ΟΔΟΣ")
    expected = tokenizer.encode("ΟΔΟΣ".lower(), add_special_tokens=False)  # "οδος", ending in ς
    assert ids[0, : mask.sum()].tolist() == [START, *expected, END]
    assert expected != tokenizer.encode("οδοσ", add_special_tokens=False)


def test_truncation_warns(tokenizer, caplog):
    case = LONG_CASES[0]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ids, mask = tokenize_clip_prompts(tokenizer, ["a cat", case["prompt"]])
    assert ids[1].tolist() == case["clip_padded_tokens"]
    assert mask[1].all()
    messages = _warnings(caplog)
    assert len(messages) == 1
    assert "Prompt 1 " in messages[0]
    assert f"{case['clip_num_ids']} tokens long" in messages[0]
    assert f"the last {case['clip_num_ids'] - (CLIP_CONTEXT_LENGTH - 2)} tokens were truncated" in messages[0]
    removed = tokenizer.decode(case["clip_ids"][CLIP_CONTEXT_LENGTH - 2 :])
    assert case["clip_decoded"].strip().endswith(removed)
    assert repr(removed) in messages[0]


def test_no_warning_without_truncation(tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        tokenize_clip_prompts(tokenizer, [case["prompt"] for case in CASES if case not in LONG_CASES])
    assert not _warnings(caplog)


def test_small_context(tokenizer):
    hello = next(case for case in CASES if case["prompt"] == "hello world")
    ids, mask = tokenize_clip_prompts(tokenizer, ["hello world", ""], 3)
    assert ids.tolist() == [[START, hello["clip_ids"][0], END], [START, END, 0]]
    assert mask.tolist() == [[True, True, True], [True, True, False]]


def test_save_pretrained_round_trip(tokenizer, saved_dir):
    config = json.loads((saved_dir / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "CLIPTokenizer" and config["model_max_length"] == CLIP_CONTEXT_LENGTH
    prompts = [case["prompt"] for case in CASES]
    expected = [case["clip_padded_tokens"] for case in CASES]
    for loaded in (
        build_clip_tokenizer(saved_dir),
        CLIPTokenizer.from_pretrained(saved_dir),
        AutoTokenizer.from_pretrained(saved_dir),
    ):
        assert isinstance(loaded, CLIPTokenizer)
        assert loaded.model_max_length == CLIP_CONTEXT_LENGTH
        assert tokenize_clip_prompts(loaded, prompts)[0].tolist() == expected
        for prompt in prompts:
            text = clean_clip_prompt(prompt)
            assert loaded.encode(text) == tokenizer.encode(text)
        # the added-token trap: "!" (id 0) is not a pad token, so "!!!" stays one BPE token
        assert loaded.encode("!!!", add_special_tokens=False) == tokenizer.encode("!!!", add_special_tokens=False)
        assert len(loaded.encode("!!!", add_special_tokens=False)) == 1


def test_diffusers_pipeline_round_trip(tokenizer, tmp_path):
    from diffusers import DiffusionPipeline

    class _TokenizerOnlyPipeline(DiffusionPipeline):
        def __init__(self, tokenizer):
            super().__init__()
            self.register_modules(tokenizer=tokenizer)

    _TokenizerOnlyPipeline(tokenizer).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["tokenizer"] == ["transformers", "CLIPTokenizer"]
    loaded = _TokenizerOnlyPipeline.from_pretrained(tmp_path).tokenizer
    ids, _ = tokenize_clip_prompts(loaded, [case["prompt"] for case in CASES])
    assert ids.tolist() == [case["clip_padded_tokens"] for case in CASES]


# --- without ftfy ---


def test_ftfy_changes_exactly_the_ftfy_cases():
    import ftfy

    assert [case["prompt"] for case in CASES if ftfy.fix_text(case["prompt"]) != case["prompt"]] == FTFY_PROMPTS


def test_without_ftfy_only_the_ftfy_cases_differ(tokenizer, without_ftfy, caplog):
    prompts = [case["prompt"] for case in CASES]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ids, mask = tokenize_clip_prompts(tokenizer, prompts)
    for row, length, case in zip(ids.tolist(), mask.sum(1).tolist(), CASES, strict=True):
        if case["prompt"] in FTFY_PROMPTS:
            assert row != case["clip_padded_tokens"]
        else:  # every ASCII prompt, and the non-ASCII ones ftfy leaves alone
            assert row == case["clip_padded_tokens"]
            assert length == case["clip_len"]
    ftfy_warnings = [m for m in _warnings(caplog) if "ftfy" in m]
    assert len(ftfy_warnings) == 1  # one per call
    non_ascii = [i for i, prompt in enumerate(prompts) if not prompt.isascii()]
    assert str(non_ascii) in ftfy_warnings[0]
    assert "pip install ftfy" in ftfy_warnings[0] and "`clip` extra" in ftfy_warnings[0]
    assert "differently from the reference" in ftfy_warnings[0]


def test_without_ftfy_ascii_prompts_do_not_warn(tokenizer, without_ftfy, caplog):
    ascii_cases = [case for case in CASES if case["prompt"].isascii() and case not in LONG_CASES]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ids, _ = tokenize_clip_prompts(tokenizer, [case["prompt"] for case in ascii_cases])
    assert ids.tolist() == [case["clip_padded_tokens"] for case in ascii_cases]
    assert not _warnings(caplog)


def test_without_ftfy_clean_clip_prompt(without_ftfy, caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert clean_clip_prompt("  salt &amp;amp; pepper ") == "salt & pepper"
    assert not _warnings(caplog)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert clean_clip_prompt(" it’s cafÃ© ") == "it’s cafÃ©"  # not repaired
    messages = _warnings(caplog)
    assert len(messages) == 1 and "ftfy is not installed" in messages[0]


def test_clean_clip_prompt_with_ftfy():
    assert clean_clip_prompt(" it’s cafÃ© &amp;amp; more ") == "it's café & more"


# --- errors ---


def test_empty_list_raises(tokenizer):
    with pytest.raises(ValueError, match="`prompts` is an empty list"):
        tokenize_clip_prompts(tokenizer, [])


@pytest.mark.parametrize("prompts", [["a cat", 3], [None], b"a cat", 42, ["ok", ["nested"]]])
def test_non_string_prompt_raises(tokenizer, prompts):
    with pytest.raises(TypeError, match="string"):
        tokenize_clip_prompts(tokenizer, prompts)


def test_lone_surrogate_raises(tokenizer):
    with pytest.raises(
        ValueError, match=r"`prompts\[1\]` is not valid text: '\\udcff' at position 2 is a lone surrogate"
    ):
        tokenize_clip_prompts(tokenizer, ["a cat", "a \udcff dog"])


def test_non_string_prompt_message_names_the_prompt(tokenizer):
    with pytest.raises(TypeError, match=r"`prompts\[1\]` is a int: 3"):
        tokenize_clip_prompts(tokenizer, ["a cat", 3])
    with pytest.raises(TypeError, match="`text` must be a string"):
        clean_clip_prompt(None)


@pytest.mark.parametrize("context_length", [2, 0, -1, 7.5, True])
def test_bad_context_length_raises(tokenizer, context_length):
    with pytest.raises(ValueError, match=rf"`context_length` must be an integer >= 3.*got {context_length!r}"):
        tokenize_clip_prompts(tokenizer, "a cat", context_length)


def test_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.*does not exist"):
        build_clip_tokenizer(tmp_path / "nope")


def test_missing_vocab_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError) as excinfo:
        build_clip_tokenizer(tmp_path)
    message = str(excinfo.value)
    assert str(tmp_path) in message
    assert f"missing {CLIP_VOCAB_FILE}[.gz]" in message and "tokenizer.json" in message


def _write_vocab(folder, lines):
    (folder / CLIP_VOCAB_FILE).write_text("\n".join(lines), encoding="utf-8")


@pytest.fixture(scope="module")
def vocab_lines():
    with gzip.open(TOKENIZERS_DIR / f"{CLIP_VOCAB_FILE}.gz", "rt", encoding="utf-8") as f:
        return f.read().split("\n")


def test_truncated_vocab_raises(tmp_path, vocab_lines):
    _write_vocab(tmp_path, vocab_lines[:1001])
    with pytest.raises(ValueError, match=r"truncated: it holds 1000 merge lines.*first 48894"):
        build_clip_tokenizer(tmp_path)


def test_vocab_without_header_raises(tmp_path, vocab_lines):
    _write_vocab(tmp_path, vocab_lines[1:])
    with pytest.raises(ValueError, match=r"#version. header"):
        build_clip_tokenizer(tmp_path)


def test_malformed_merge_raises(tmp_path, vocab_lines):
    lines = list(vocab_lines)
    lines[10] = "a b c"
    _write_vocab(tmp_path, lines)
    with pytest.raises(ValueError, match=r"line 10: expected a merge `left right`, got 'a b c'"):
        build_clip_tokenizer(tmp_path)


def test_duplicate_merge_raises(tmp_path, vocab_lines):
    lines = list(vocab_lines)
    lines[2] = lines[1]
    _write_vocab(tmp_path, lines)
    with pytest.raises(ValueError, match="1 duplicate vocabulary entries"):
        build_clip_tokenizer(tmp_path)


def test_merge_of_unknown_tokens_raises(tmp_path, vocab_lines):
    lines = list(vocab_lines)
    lines[1] = "zzzz qqqq"  # neither side is a byte symbol or an earlier merge
    _write_vocab(tmp_path, lines)
    with pytest.raises(ValueError, match="does not form a valid BPE model"):
        build_clip_tokenizer(tmp_path)


def test_corrupt_gzip_raises(tmp_path):
    (tmp_path / f"{CLIP_VOCAB_FILE}.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="Could not read the CLIP BPE vocabulary"):
        build_clip_tokenizer(tmp_path)


def test_saved_gpt2_tokenizer_is_rejected(tmp_path):
    from diffusers_glide.tokenization import build_glide_tokenizer

    build_glide_tokenizer(TOKENIZERS_DIR).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="is not a CLIP BPE tokenizer"):
        build_clip_tokenizer(tmp_path)
