"""GLIDE's text tokenizer as a Hugging Face fast tokenizer.

GLIDE encodes prompts with GPT-2's byte-level BPE (50257 ids, ``<|endoftext|>`` = 50256) with three
differences from the stock GPT-2 tokenizer:

* the prompt is lower-cased before BPE (Python ``str.lower``);
* no start/end tokens are added, and a literal ``<|endoftext|>`` inside a prompt is tokenized as ordinary
  text (``<``, ``|``, ``end``, ...), never as id 50256;
* prompts are truncated to the text context (128 for the released models) and right-padded with
  ``<|endoftext|>``, with a boolean mask that is True on real tokens.

[`build_glide_tokenizer`] builds a [`~transformers.PreTrainedTokenizerFast`] whose saved files carry all of
that: the lower-casing is the ``normalizer`` of ``tokenizer.json`` and the "special tokens are plain text"
rule is ``"split_special_tokens": true`` in ``tokenizer_config.json``. [`tokenize_prompts`] reproduces the
reference's padding/truncation and mask.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence

import torch
from diffusers.utils import logging
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, WordLevel
from transformers import PreTrainedTokenizerFast

logger = logging.get_logger(__name__)

END_OF_TEXT = "<|endoftext|>"
END_OF_TEXT_ID = 50256
VOCAB_SIZE = 50257
TEXT_CONTEXT_LENGTH = 128

ENCODER_FILE = "encoder.json"
MERGES_FILE = "vocab.bpe"
SAVED_TOKENIZER_FILE = "tokenizer.json"

# Python's `str.lower` maps a capital sigma to the final form `ς` when it ends a word (Unicode's Final_Sigma
# context: preceded by a cased letter and not followed by one, case-ignorable characters being skipped on both
# sides), while the `Lowercase` normalizer maps every `Σ` to `σ`. This rewrite runs before `Lowercase` so the
# normalizer agrees with `str.lower` (`\K` drops the context before the sigma from the replaced span).
_FINAL_SIGMA_PATTERN = (
    r"[\p{Cased}&&\P{Case_Ignorable}]\p{Case_Ignorable}*\K\x{03A3}"
    r"(?!\p{Case_Ignorable}*[\p{Cased}&&\P{Case_Ignorable}])"
)


def _read_text(path: str) -> str:
    if path.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return f.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def _find_file(folder: str, name: str) -> str | None:
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _load_vocab(path: str) -> dict[str, int]:
    try:
        vocab = json.loads(_read_text(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"Could not read the GPT-2 vocabulary {path}: {e}") from e
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and type(v) is int for k, v in vocab.items()):
        raise ValueError(f"{path} must be a JSON object mapping BPE tokens to integer ids (a GPT-2 vocab.json).")
    if vocab.get(END_OF_TEXT) is None:
        raise ValueError(f"{path} has no {END_OF_TEXT!r} entry; it is not GLIDE's GPT-2 vocabulary.")
    missing = [symbol for symbol in pre_tokenizers.ByteLevel.alphabet() if symbol not in vocab]
    if missing:
        raise ValueError(
            f"{path} lacks {len(missing)} of the 256 byte-level symbols (e.g. {missing[:5]}); "
            "a byte-level BPE vocabulary must contain all of them."
        )
    return vocab


def _load_merges(path: str) -> list[tuple[str, str]]:
    try:
        lines = _read_text(path).split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"Could not read the GPT-2 merges {path}: {e}") from e
    merges = []
    for line_number, line in enumerate(lines, start=1):
        if line.startswith("#version") or not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}, line {line_number}: expected a merge `left right`, got {line!r}.")
        merges.append((parts[0], parts[1]))
    if not merges:
        raise ValueError(f"{path} holds no BPE merges.")
    return merges


def _build_from_bpe_files(encoder_path: str, merges_path: str) -> PreTrainedTokenizerFast:
    vocab = _load_vocab(encoder_path)
    merges = _load_merges(merges_path)
    try:
        model = BPE(vocab=vocab, merges=merges, dropout=None, fuse_unk=False)
    except Exception as e:  # the Rust side raises a bare Exception on merges whose tokens are not in the vocab
        raise ValueError(f"{encoder_path} and {merges_path} do not form a valid BPE model: {e}") from e

    backend = Tokenizer(model)
    backend.normalizer = normalizers.Sequence(
        [normalizers.Replace(Regex(_FINAL_SIGMA_PATTERN), "\u03c2"), normalizers.Lowercase()]
    )
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    # An explicit post-processor (offsets only, no tokens added) stops transformers from installing a template.
    backend.post_processor = processors.ByteLevel(trim_offsets=False)

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        # GLIDE tokenizes a literal "<|endoftext|>" in a prompt as text; saved in tokenizer_config.json.
        split_special_tokens=True,
        model_max_length=TEXT_CONTEXT_LENGTH,
        padding_side="right",
        truncation_side="right",
        clean_up_tokenization_spaces=False,
    )


def build_glide_tokenizer(vocab_dir: str | os.PathLike) -> PreTrainedTokenizerFast:
    """Build (or load) GLIDE's GPT-2 byte-level BPE tokenizer.

    The tokenizer lower-cases its input (a `tokenizers` normalizer, so it is part of ``tokenizer.json``), adds
    no special tokens, pads with ``<|endoftext|>`` (id 50256) and treats a literal ``<|endoftext|>`` in the
    text as ordinary text (``split_special_tokens=True``). With transformers v5 the returned object is a
    ``TokenizersBackend`` (which ``PreTrainedTokenizerFast`` aliases); it round-trips through
    ``save_pretrained`` and ``AutoTokenizer.from_pretrained``.

    Args:
        vocab_dir (`str` or `os.PathLike`):
            Either a folder holding GLIDE's ``encoder.json`` (a GPT-2 ``vocab.json``) and ``vocab.bpe`` (GPT-2
            merges with a ``#version`` header), each optionally gzipped (``encoder.json.gz``,
            ``vocab.bpe.gz``), or a folder written by the tokenizer's ``save_pretrained``
            (``tokenizer.json`` + ``tokenizer_config.json``), which is then loaded.

    Returns:
        [`~transformers.PreTrainedTokenizerFast`]: the tokenizer.

    Raises:
        FileNotFoundError: if ``vocab_dir`` is not a folder or holds neither layout.
        ValueError: if the vocabulary or merges files are malformed.
    """
    folder = os.fspath(vocab_dir)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"GLIDE tokenizer folder {folder!r} does not exist or is not a directory.")

    if os.path.isfile(os.path.join(folder, SAVED_TOKENIZER_FILE)):
        return PreTrainedTokenizerFast.from_pretrained(folder)

    encoder_path = _find_file(folder, ENCODER_FILE)
    merges_path = _find_file(folder, MERGES_FILE)
    if encoder_path is None or merges_path is None:
        missing = [name for name, path in ((ENCODER_FILE, encoder_path), (MERGES_FILE, merges_path)) if path is None]
        raise FileNotFoundError(
            f"GLIDE tokenizer folder {folder!r} is missing {' and '.join(f'{m}[.gz]' for m in missing)}. Expected "
            f"either {ENCODER_FILE}[.gz] + {MERGES_FILE}[.gz] (GLIDE's GPT-2 BPE files) or a folder written by "
            f"the tokenizer's save_pretrained ({SAVED_TOKENIZER_FILE} + tokenizer_config.json)."
        )
    return _build_from_bpe_files(encoder_path, merges_path)


def prompt_list(prompts: str | Sequence[str], name: str = "prompts") -> list[str]:
    """`prompts` as a non-empty list of strings (one string becomes a list of one), else a clear error naming `name`.

    Prompts must be encodable as UTF-8: a lone surrogate (e.g. from undecodable bytes in a command line) is refused.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    elif isinstance(prompts, Sequence):
        prompts = list(prompts)
    else:
        raise TypeError(f"`{name}` must be a string or a list of strings, got {type(prompts).__name__}.")
    if not prompts:
        raise ValueError(f"`{name}` is an empty list; pass at least one prompt (use '' for an empty prompt).")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise TypeError(
                f"Every prompt must be a string, but `{name}[{i}]` is a {type(prompt).__name__}: {prompt!r}."
            )
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"`{name}[{i}]` is not valid text: {error.object[error.start]!r} at position {error.start} is a lone "
                "surrogate (often undecodable bytes in a file name or command line); remove it or decode the text "
                "with the right encoding."
            ) from None
    return prompts


def warn_truncated(log, index: int, num_tokens: int, kept: int, removed_text: str, context: str) -> None:
    """Log that prompt `index` lost its last `num_tokens - kept` tokens, showing the start of the removed text."""
    shown = removed_text if len(removed_text) <= 60 else f"{removed_text[:60]}... ({len(removed_text)} characters)"
    log.warning(
        f"Prompt {index} is {num_tokens} tokens long but {context} holds {kept}: the last {num_tokens - kept} "
        f"tokens were truncated, starting with {shown!r}."
    )


def encode_plain_text(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, with no special token added and special-token literals read as plain text."""
    return tokenizer(
        texts,
        add_special_tokens=False,
        padding=False,
        truncation=False,
        split_special_tokens=True,
        return_attention_mask=False,
        verbose=False,
    )["input_ids"]


def _unknown_token_id(tokenizer: PreTrainedTokenizerFast) -> int | None:
    """The id of the token that `tokenizer` maps unknown words to, None when it has none to report.

    A word-level tokenizer maps unknown words to its unk token; GPT-2's byte-level BPE never does (its unk is its
    pad token), so only an unk token distinct from the pad (or else eos) token counts."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    unk_id = tokenizer.unk_token_id
    return unk_id if unk_id not in (None, pad_id) else None


def unknown_words(tokenizer: PreTrainedTokenizerFast, prompt: str) -> list[str]:
    """The words of `prompt` that `tokenizer` does not know (it reads each as its unk token), as written in the
    prompt, each once (ignoring case), in order of first appearance.

    Only a tokenizer with an unk token of its own has unknown words: the word-level tokenizer of the tiny embedded
    models ([`build_word_level_tokenizer`]) has; GPT-2's byte-level BPE (GLIDE's) encodes any text and has none, so
    the list is always empty for it.

    Example: with the embedded model's tokenizer, `unknown_words(tokenizer, "a red cat, on a Photo")` is
    `["cat", "Photo"]`.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"`prompt` must be a string, got {type(prompt).__name__}.")
    unk_id = _unknown_token_id(tokenizer)
    if unk_id is None or not prompt:
        return []
    encoding = tokenizer(
        prompt,
        add_special_tokens=False,
        split_special_tokens=True,
        return_offsets_mapping=True,
        return_attention_mask=False,
        verbose=False,
    )
    words: dict[str, str] = {}  # lower-cased word -> its first spelling (the tokenizers lower-case their input)
    for token_id, (start, end) in zip(encoding["input_ids"], encoding["offset_mapping"], strict=True):
        if token_id == unk_id:
            words.setdefault(prompt[start:end].lower(), prompt[start:end])
    return list(words.values())


SMALL_VOCABULARY = 100  # a word-level vocabulary up to this many words is listed in full in the warnings


def is_word_level(tokenizer) -> bool:
    """Whether `tokenizer` is a word-level one (a closed vocabulary, unknown words read as its unk token)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and type(backend.model).__name__ == "WordLevel"


def small_vocabulary(tokenizer) -> list[str] | None:
    """Every word a small word-level `tokenizer` knows (at most [`SMALL_VOCABULARY`], special tokens left out), in
    the order of their ids; None for any other tokenizer (GPT-2's BPE, CLIP's)."""
    if not is_word_level(tokenizer):
        return None
    special = set(tokenizer.all_special_tokens)
    words = [
        word for word, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]) if word not in special
    ]
    return words if len(words) <= SMALL_VOCABULARY else None


def unknown_words_message(tokenizer, words: Sequence[str]) -> str:
    """The sentence that names `words` (unknown to `tokenizer`) and, for a small word-level vocabulary, lists it."""
    message = f"words outside the tokenizer's vocabulary: {', '.join(repr(word) for word in words)}"
    vocabulary = small_vocabulary(tokenizer)
    if vocabulary is not None:
        message += f" (this model knows only these {len(vocabulary)} words: {' '.join(vocabulary)})"
    return message


def tokenize_prompts(
    tokenizer: PreTrainedTokenizerFast, prompts: str | Sequence[str], context_length: int
) -> tuple[torch.LongTensor, torch.BoolTensor]:
    """Tokenize prompts the way GLIDE does: truncate to the context, right-pad with ``<|endoftext|>``.

    This is the reference's ``encode`` followed by ``padded_tokens_and_mask``: no special tokens are added, a
    literal ``<|endoftext|>`` in a prompt is encoded as text, prompts longer than ``context_length`` tokens keep
    their first ``context_length`` tokens (a warning names what was dropped), and the mask is True on real
    tokens and False on padding. An empty prompt gives only padding and an all-False mask.

    Args:
        tokenizer ([`~transformers.PreTrainedTokenizerFast`]):
            The tokenizer from [`build_glide_tokenizer`]. Its pad token (or else its eos token) pads.
        prompts (`str` or `list[str]`):
            One prompt or a non-empty list of prompts.
        context_length (`int`):
            Length of the text context (128 for the released GLIDE models).

    Returns:
        `tuple[torch.LongTensor, torch.BoolTensor]`: token ids and mask, both of shape
        ``(len(prompts), context_length)``.

    Raises:
        TypeError: if a prompt is not a string.
        ValueError: if ``prompts`` is empty, ``context_length`` is not a positive integer or the tokenizer has
            no pad/eos token.
    """
    prompts = prompt_list(prompts)
    if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 1:
        raise ValueError(f"`context_length` must be a positive integer, got {context_length!r}.")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError("The tokenizer has neither a pad token nor an eos token to pad prompts with.")

    encoded = encode_plain_text(tokenizer, prompts)

    ids = torch.full((len(prompts), context_length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), context_length), dtype=torch.bool)
    unk_id = _unknown_token_id(tokenizer)
    for i, tokens in enumerate(encoded):
        if unk_id is not None and unk_id in tokens:
            message = unknown_words_message(tokenizer, unknown_words(tokenizer, prompts[i]))
            logger.warning(
                f"Prompt {i} ({prompts[i]!r}) has {message}; the model sees them as {tokenizer.unk_token!r}."
            )
        if len(tokens) > context_length:
            removed = tokenizer.decode(tokens[context_length:], clean_up_tokenization_spaces=False)
            warn_truncated(logger, i, len(tokens), context_length, removed, "the text context")
            tokens = tokens[:context_length]
        ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[i, : len(tokens)] = True
    return ids, mask


PAD_TOKEN = "<pad>"
UNKNOWN_TOKEN = "<unk>"


def build_word_level_tokenizer(words: Sequence[str], context_length: int) -> PreTrainedTokenizerFast:
    """Build a small lower-casing word-level tokenizer, for tiny models trained from scratch on a closed vocabulary.

    Ids: ``<pad>`` = 0, ``<unk>`` = 1, then `words` in order (lower-cased, duplicates dropped). Text is lower-cased,
    punctuation is dropped and words are split on whitespace; words outside the vocabulary become ``<unk>``:
    [`unknown_words`] lists them and [`tokenize_prompts`] names them in a warning. It pads and truncates like the GPT-2 tokenizer through
    [`tokenize_prompts`] and saves / loads with `save_pretrained` / `from_pretrained`.

    Args:
        words (`list[str]`): The vocabulary.
        context_length (`int`): The text context of the model (the tokenizer's `model_max_length`).
    """
    vocab = {PAD_TOKEN: 0, UNKNOWN_TOKEN: 1}
    for word in words:
        if not isinstance(word, str) or not word.strip() or any(c.isspace() for c in word):
            raise ValueError(f"Vocabulary entries must be single non-empty words, got {word!r}.")
        vocab.setdefault(word.lower(), len(vocab))
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token=UNKNOWN_TOKEN))
    # punctuation is dropped: "a red circle, on a blue background" reads as the caption without the comma
    backend.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(Regex(r"[^\w\s]"), " ")])
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=UNKNOWN_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=context_length,
        padding_side="right",
        truncation_side="right",
        clean_up_tokenization_spaces=False,
    )
