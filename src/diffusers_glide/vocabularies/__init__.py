"""The tokenizer vocabularies of OpenAI's GLIDE, shipped inside the package so that converting the released
checkpoints needs nothing but the checkpoints:

| file | what | read by |
|---|---|---|
| `encoder.json.gz` | GLIDE's GPT-2 BPE vocabulary (50257 tokens) | `build_glide_tokenizer` |
| `vocab.bpe.gz` | GLIDE's GPT-2 BPE merges (50000) | `build_glide_tokenizer` |
| `bpe_simple_vocab_16e6.txt.gz` | the noised CLIP's BPE (CLIP's vocabulary) | `build_clip_tokenizer` |

They are byte-identical copies of the files OpenAI's glide-text2im ships in `glide_text2im/tokenizer/` (MIT
licence, Copyright (c) 2021 OpenAI); README.md and LICENSE in this folder say where they come from.
`vocabulary_dir()` is the folder, for `build_glide_tokenizer`, `build_clip_tokenizer` or `--vocab_dir`.
"""

from __future__ import annotations

from pathlib import Path

VOCABULARY_ROOT = Path(__file__).resolve().parent
GPT2_VOCABULARY_FILES: tuple[str, ...] = ("encoder.json.gz", "vocab.bpe.gz")
CLIP_VOCABULARY_FILES: tuple[str, ...] = ("bpe_simple_vocab_16e6.txt.gz",)
VOCABULARY_FILES: tuple[str, ...] = GPT2_VOCABULARY_FILES + CLIP_VOCABULARY_FILES


def vocabulary_dir() -> Path:
    """
    The folder of the shipped vocabularies: GLIDE's GPT-2 BPE (`encoder.json.gz`, `vocab.bpe.gz`) and CLIP's BPE
    (`bpe_simple_vocab_16e6.txt.gz`). Raises `FileNotFoundError` when the package was installed without them.
    """
    missing = [name for name in VOCABULARY_FILES if not (VOCABULARY_ROOT / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"The shipped vocabularies {', '.join(missing)} are missing from {VOCABULARY_ROOT}: the package was "
            "installed without its data files. Reinstall diffusers-glide, or give the folder of GLIDE's tokenizer "
            "files explicitly (--vocab_dir)."
        )
    return VOCABULARY_ROOT
