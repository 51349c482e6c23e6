"""The BPE tokenizer of GLIDE's noised CLIP model as a Hugging Face [`~transformers.CLIPTokenizer`].

GLIDE's CLIP guidance tokenizes prompts with OpenAI CLIP's byte-level BPE (``bpe_simple_vocab_16e6.txt``):

* Vocabulary: the file's first line is a ``#version`` header and lines ``1 .. 49152 - 256 - 2`` are merges
  ``left right`` (the rest of the file is unused). Ids, in order: the 256 byte-level symbols of GPT-2's
  ``bytes_to_unicode()``, the same 256 symbols with ``</w>`` appended, ``left + right`` for every merge, then
  ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407): 49408 ids.
* Text cleaning: ``ftfy.fix_text`` (un-curls quotes, repairs mojibake, NFC-normalizes, drops control
  characters...), ``html.unescape`` twice, strip, whitespace runs collapsed to one space, Python ``str.lower``.
  BPE then runs on the words of CLIP's regex (letter runs, single digits, punctuation runs, contractions); a word
  ``<|startoftext|>`` / ``<|endoftext|>`` of that regex maps to the special id.
* One prompt becomes ``[49406] + ids[:context_length - 2] + [49407]`` right-padded with id **0** to the context
  (77); its length counts the start and end tokens (the empty prompt has length 2).

[`build_clip_tokenizer`] builds a stock [`~transformers.CLIPTokenizer`] from the vocabulary file (its normalizer
collapses whitespace and lower-cases, its pre-tokenizer is CLIP's regex), which saves and reloads with
``save_pretrained`` / ``from_pretrained``. [`clean_clip_prompt`] is the cleaning step the tokenizer does not do,
and [`tokenize_clip_prompts`] reproduces the reference id for id: besides cleaning, padding with 0 and the
length mask, it lower-cases with ``str.lower`` (the tokenizer's ``Lowercase`` normalizer maps a word-final
``Σ`` to ``σ`` where Python gives ``ς``, and runs after special tokens are matched, so ``<|ENDOFTEXT|>`` would
stay text) and maps a literal ``<|startoftext|>`` / ``<|endoftext|>`` to its special id only where CLIP's
regex makes it a word of its own (in ``"!<|endoftext|>"`` the reference reads ``!<|``, ``endoftext``, ``|>``,
while the tokenizer's added-token matching would cut the literal out anywhere).

ftfy is optional (``pip install ftfy`` or the ``clip`` extra). Without it prompts are not repaired, so prompts
with typographic quotes, mojibake, control characters and the like tokenize differently from the reference (a
warning says so); plain ASCII prompts are unaffected. ftfy's output can change between its versions; the
reference fixtures were generated with ftfy 6.3.1.
"""

from __future__ import annotations

import gzip
import html
import os
import re
from collections.abc import Sequence

import torch
from diffusers.utils import logging
from tokenizers import Regex, pre_tokenizers
from transformers import CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from .tokenization import encode_plain_text, prompt_list, warn_truncated

logger = logging.get_logger(__name__)

CLIP_CONTEXT_LENGTH = 77
CLIP_VOCAB_FILE = "bpe_simple_vocab_16e6.txt"
CLIP_VOCAB_SIZE = 49408
CLIP_NUM_MERGES = 49152 - 256 - 2  # merges used from the vocabulary file: 48894
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
START_OF_TEXT_ID = 49406
END_OF_TEXT_ID = 49407
CLIP_PAD_ID = 0  # the reference pads with 0 (which is also the id of "!")

SAVED_TOKENIZER_FILE = "tokenizer.json"

# CLIP's word regex (the reference compiles it with IGNORECASE, which does not matter on lower-cased text); also
# the `Split` pre-tokenizer of `transformers.CLIPTokenizer`. Leftmost-first alternation: at a "<" the special
# literals are tried before the punctuation run, but a punctuation run that starts earlier swallows the "<|".
_CLIP_WORD_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_CLIP_WORDS = pre_tokenizers.Split(Regex(_CLIP_WORD_PATTERN), behavior="removed", invert=True)

# What ftfy could change: anything but printable ASCII and ordinary whitespace, or an HTML entity left after the
# two `html.unescape` passes (ftfy unescapes entities too, repeatedly).
_FTFY_SENSITIVE = re.compile(r"[^\x20-\x7e\t\n\r]|&#?\w+;")


def _import_ftfy():
    """The ftfy module, or None when it is not installed (imported lazily: ftfy is an optional dependency)."""
    try:
        import ftfy
    except ImportError:
        return None
    return ftfy


def _clean(text: str, ftfy) -> str:
    if ftfy is not None:
        text = ftfy.fix_text(text)
    return html.unescape(html.unescape(text)).strip()


def _warn_without_ftfy(prompts: Sequence[str]) -> None:
    sensitive = [i for i, prompt in enumerate(prompts) if _FTFY_SENSITIVE.search(html.unescape(html.unescape(prompt)))]
    if sensitive:
        logger.warning(
            f"ftfy is not installed, so prompts are not repaired with `ftfy.fix_text` as GLIDE's CLIP tokenizer does "
            f"(typographic quotes, mojibake, control characters, ...). Prompt(s) {sensitive} have non-ASCII "
            "characters, control characters or HTML entities and may tokenize differently from the reference. "
            "Install ftfy (`pip install ftfy`, or the `clip` extra of diffusers-glide) to fix this."
        )


def clean_clip_prompt(text: str) -> str:
    """Clean a prompt the way GLIDE's CLIP tokenizer does before BPE.

    ``ftfy.fix_text`` (skipped, with a warning for prompts it could change, when ftfy is not installed), then
    ``html.unescape`` twice, then ``strip``. Collapsing whitespace and lower-casing are left to the tokenizer's
    normalizer (and to [`tokenize_clip_prompts`]).

    Args:
        text (`str`): The prompt.

    Returns:
        `str`: The cleaned prompt.

    Raises:
        TypeError: if ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a string, got a {type(text).__name__}: {text!r}.")
    ftfy = _import_ftfy()
    if ftfy is None:
        _warn_without_ftfy([text])
    return _clean(text, ftfy)


def _read_lines(path: str) -> list[str]:
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
        return data.decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ValueError(f"Could not read the CLIP BPE vocabulary {path}: {e}") from e


def _load_merges(path: str) -> list[tuple[str, str]]:
    lines = _read_lines(path)
    if "#version" not in lines[0]:
        raise ValueError(
            f"{path} does not start with a `#version` header line (got {lines[0][:80]!r}); it is not CLIP's "
            f"{CLIP_VOCAB_FILE}, whose first line the reference skips as a header."
        )
    merge_lines = lines[1 : CLIP_NUM_MERGES + 1]
    if len(merge_lines) < CLIP_NUM_MERGES or not merge_lines[-1].strip():
        available = sum(1 for line in merge_lines if line.strip())
        raise ValueError(
            f"{path} is truncated: it holds {available} merge lines after the header, but CLIP's BPE uses the "
            f"first {CLIP_NUM_MERGES} (lines 1..{CLIP_NUM_MERGES} of {CLIP_VOCAB_FILE})."
        )
    merges = []
    for line_number, line in enumerate(merge_lines, start=1):
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}, line {line_number}: expected a merge `left right`, got {line!r}.")
        merges.append((parts[0], parts[1]))
    return merges


def _build_vocab(merges: list[tuple[str, str]], path: str) -> dict[str, int]:
    byte_symbols = list(bytes_to_unicode().values())
    tokens = byte_symbols + [symbol + "</w>" for symbol in byte_symbols]
    tokens += ["".join(merge) for merge in merges]
    tokens += [START_OF_TEXT, END_OF_TEXT]
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        seen, duplicates = set(), []
        for token in tokens:
            if token in seen:
                duplicates.append(token)
            seen.add(token)
        raise ValueError(
            f"{path}: the merges produce {len(tokens) - len(vocab)} duplicate vocabulary entries (e.g. "
            f"{duplicates[:5]}); CLIP's vocabulary has {CLIP_VOCAB_SIZE} distinct tokens."
        )
    return vocab


def _build_from_vocab_file(path: str) -> CLIPTokenizer:
    merges = _load_merges(path)
    vocab = _build_vocab(merges, path)
    try:
        # Default special tokens (<|startoftext|>, <|endoftext|>). Do not make "!" (id 0) the pad token: it would
        # become an added token and "!!!" would tokenize as three pad tokens. tokenize_clip_prompts pads with 0.
        return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_CONTEXT_LENGTH)
    except Exception as e:  # the Rust side raises a bare Exception on merges whose tokens are not in the vocab
        raise ValueError(f"{path} does not form a valid BPE model: {e}") from e


def _find_vocab_file(folder: str) -> str | None:
    for name in (CLIP_VOCAB_FILE, CLIP_VOCAB_FILE + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def build_clip_tokenizer(vocab_dir: str | os.PathLike) -> CLIPTokenizer:
    """Build (or load) the BPE tokenizer of GLIDE's noised CLIP model.

    The result is a stock [`~transformers.CLIPTokenizer`] (transformers v5, `tokenizers`-backed) with
    ``model_max_length`` 77 and the default special tokens; it round-trips through ``save_pretrained`` and
    ``CLIPTokenizer.from_pretrained`` / ``AutoTokenizer.from_pretrained``. Use [`tokenize_clip_prompts`] to
    encode prompts exactly as the reference does (cleaning, 0-padding, length mask).

    Args:
        vocab_dir (`str` or `os.PathLike`):
            Either a folder holding CLIP's ``bpe_simple_vocab_16e6.txt`` or ``bpe_simple_vocab_16e6.txt.gz``, or a
            folder written by the tokenizer's ``save_pretrained`` (``tokenizer.json`` + ``tokenizer_config.json``),
            which is then loaded.

    Returns:
        [`~transformers.CLIPTokenizer`]: the tokenizer.

    Raises:
        FileNotFoundError: if ``vocab_dir`` is not a folder or holds neither layout.
        ValueError: if the vocabulary file is malformed or truncated, or a saved folder is not a CLIP tokenizer.
    """
    folder = os.fspath(vocab_dir)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"CLIP tokenizer folder {folder!r} does not exist or is not a directory.")

    if os.path.isfile(os.path.join(folder, SAVED_TOKENIZER_FILE)):
        tokenizer = CLIPTokenizer.from_pretrained(folder)
        model = tokenizer.backend_tokenizer.model
        if model.token_to_id(START_OF_TEXT) is None or model.token_to_id(END_OF_TEXT) is None:
            raise ValueError(
                f"{os.path.join(folder, SAVED_TOKENIZER_FILE)} is not a CLIP BPE tokenizer: its vocabulary lacks "
                f"{START_OF_TEXT!r} and/or {END_OF_TEXT!r}."
            )
        return tokenizer

    path = _find_vocab_file(folder)
    if path is None:
        raise FileNotFoundError(
            f"CLIP tokenizer folder {folder!r} is missing {CLIP_VOCAB_FILE}[.gz]. Expected either CLIP's BPE "
            f"vocabulary {CLIP_VOCAB_FILE} (optionally gzipped) or a folder written by the tokenizer's "
            f"save_pretrained ({SAVED_TOKENIZER_FILE} + tokenizer_config.json)."
        )
    return _build_from_vocab_file(path)


def build_small_clip_tokenizer(words: Sequence[str], context_length: int = CLIP_CONTEXT_LENGTH) -> CLIPTokenizer:
    """Build a CLIP BPE tokenizer whose merges spell out `words` and nothing else, for a small noised CLIP trained
    from scratch on a closed vocabulary (the 49408-row table of OpenAI's would outweigh such a model).

    The vocabulary is laid out like OpenAI's (the 256 byte symbols, the same with ``</w>``, one token per merge,
    then ``<|startoftext|>`` and ``<|endoftext|>``), so every text still tokenizes: a word of `words` becomes one
    token, any other word falls back to smaller pieces. Each word gets the merges that join it left to right.
    Prompts are encoded with [`tokenize_clip_prompts`], as with OpenAI's vocabulary.

    Args:
        words (`list[str]`): The words to keep whole (lower-cased; letters and digits).
        context_length (`int`, *optional*, defaults to 77): The CLIP text context (the `model_max_length`).
    """
    merges: list[tuple[str, str]] = []
    unique = list(dict.fromkeys(word.lower() for word in words))
    for word in unique:
        if not word or not word.isalnum() or not word.isascii():
            raise ValueError(f"Vocabulary entries must be single words of ASCII letters and digits, got {word!r}.")
    # longer words' merges rank first: a shorter word's merge (e.g. "t o" of "top") would otherwise split a longer
    # word containing it ("bottom") before that word's own chain completes
    for word in sorted(unique, key=len, reverse=True):
        symbols = [*word[:-1], word[-1] + "</w>"]
        joined = symbols[0]
        for symbol in symbols[1:]:
            merges.append((joined, symbol))
            joined += symbol
    merges = list(dict.fromkeys(merges))
    vocab = _build_vocab(merges, "the word list")
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=context_length)


def _split_at_special_words(text: str, specials: dict[str, int]) -> tuple[list[str], list[int | None]]:
    """Cut `text` at the special literals that CLIP's regex reads as words of their own.

    Returns the text segments and, after each segment but the last, the id of the special word that followed it.
    """
    segments, separators, start = [], [], 0
    for word, (begin, end) in _CLIP_WORDS.pre_tokenize_str(text):
        if word in specials:
            segments.append(text[start:begin])
            separators.append(specials[word])
            start = end
    segments.append(text[start:])
    return segments, separators


def tokenize_clip_prompts(
    tokenizer: CLIPTokenizer, prompts: str | Sequence[str], context_length: int = CLIP_CONTEXT_LENGTH
) -> tuple[torch.LongTensor, torch.BoolTensor]:
    """Tokenize prompts the way GLIDE's noised CLIP model does.

    Each prompt is cleaned ([`clean_clip_prompt`]) and lower-cased with ``str.lower``, BPE-encoded, truncated to
    ``context_length - 2`` tokens (a warning names what was dropped) and becomes ``<|startoftext|>`` + tokens +
    ``<|endoftext|>``, right-padded with id 0. A literal ``<|startoftext|>`` / ``<|endoftext|>`` that CLIP's regex
    reads as a word maps to its special id, as in the reference.

    Args:
        tokenizer ([`~transformers.CLIPTokenizer`]):
            The tokenizer from [`build_clip_tokenizer`].
        prompts (`str` or `list[str]`):
            One prompt or a non-empty list of prompts.
        context_length (`int`, *optional*, defaults to 77):
            Length of the CLIP text context, start and end tokens included.

    Returns:
        `tuple[torch.LongTensor, torch.BoolTensor]`: ``input_ids`` (int64, padded with 0) and ``attention_mask``
        (True on the start token, the prompt tokens and the end token, so ``attention_mask.sum(1)`` is the
        reference's length), both of shape ``(len(prompts), context_length)``.

    Raises:
        TypeError: if a prompt is not a string.
        ValueError: if ``prompts`` is empty, ``context_length`` is not an integer >= 3 or the tokenizer has no
            ``<|startoftext|>`` / ``<|endoftext|>`` token.
    """
    prompts = prompt_list(prompts)
    if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 3:
        raise ValueError(
            f"`context_length` must be an integer >= 3 (start token, at least one prompt token, end token), "
            f"got {context_length!r}."
        )
    specials = {}
    for literal in (START_OF_TEXT, END_OF_TEXT):
        token_id = tokenizer.convert_tokens_to_ids(literal)
        if token_id is None or (token_id == tokenizer.unk_token_id and literal != tokenizer.unk_token):
            raise ValueError(f"The tokenizer has no {literal!r} token; build it with build_clip_tokenizer.")
        specials[literal] = token_id

    ftfy = _import_ftfy()
    if ftfy is None:
        _warn_without_ftfy(prompts)
    # `str.lower` before the tokenizer: its Lowercase normalizer is then a no-op (see the module docstring).
    texts = [_clean(prompt, ftfy).lower() for prompt in prompts]
    split = [_split_at_special_words(text, specials) for text in texts]
    # the special literals were handled above; elsewhere they are text, as in the reference
    encoded_segments = encode_plain_text(tokenizer, [segment for segments, _ in split for segment in segments])

    max_tokens = context_length - 2
    ids = torch.full((len(prompts), context_length), CLIP_PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(prompts), context_length), dtype=torch.bool)
    position = 0
    for i, (segments, separators) in enumerate(split):
        tokens = []
        for j in range(len(segments)):
            tokens += encoded_segments[position + j]
            if j < len(separators):
                tokens.append(separators[j])
        position += len(segments)
        if len(tokens) > max_tokens:
            removed = tokenizer.decode(tokens[max_tokens:])
            warn_truncated(
                logger, i, len(tokens), max_tokens, removed, "the CLIP text context (besides its start and end tokens)"
            )
            tokens = tokens[:max_tokens]
        row = [specials[START_OF_TEXT], *tokens, specials[END_OF_TEXT]]
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
    return ids, mask
