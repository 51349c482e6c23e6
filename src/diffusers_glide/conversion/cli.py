"""Convert an OpenAI GLIDE checkpoint into a diffusers-glide pipeline folder.

Run as `diffusers-glide convert ...` or `python convert_scripts/convert_glide_to_diffusers.py ...` (same flags).

Examples (the released checkpoints; GLIDE's GPT-2 vocabulary ships with diffusers-glide, so no `--vocab_dir`):

    diffusers-glide convert --checkpoint_path base.pt --model_type base --dump_path glide-base
    diffusers-glide convert --checkpoint_path upsample.pt --model_type upsample --dump_path glide-upsample \\
        --dtype float16
    diffusers-glide convert --checkpoint_path base_inpaint.pt --model_type base-inpaint \\
        --dump_path glide-base-inpaint --push_to_hub --repo_id you/glide-base-inpaint

The noised CLIP of CLIP guidance is two files, given in either order (CLIP's BPE vocabulary ships too):

    diffusers-glide convert --model_type clip --checkpoint_path clip_image_enc.pt clip_text_enc.pt \\
        --dump_path glide-clip

`--vocab_dir path/to/folder` takes the vocabulary from another folder instead: `encoder.json(.gz)` +
`vocab.bpe(.gz)`, for `clip` `bpe_simple_vocab_16e6.txt(.gz)`, or a saved tokenizer.

A checkpoint trained with non-default options needs them: `--options_json my_options.json` holding the
kwargs given to OpenAI's `create_model_and_diffusion`, or for `clip` the keys of its CLIP `config.yaml` (only the
ones that differ from the released model's are needed).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ..output_folders import OutputFolder
from ..variants import MODEL_TYPES
from ..vocabularies import vocabulary_dir
from .clip import CLIP_MODEL_TYPE, convert_clip_checkpoints
from .convert import DTYPES, convert_glide_checkpoint, push_folder_to_hub, write_pipeline_folder


def add_convert_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the converter's flags to `parser` (the script's parser, or the `diffusers-glide convert` subparser)."""
    parser.add_argument(
        "--checkpoint_path",
        required=True,
        nargs="+",
        help="OpenAI .pt state dict, e.g. base.pt; for --model_type clip both clip_image_enc.pt and clip_text_enc.pt",
    )
    parser.add_argument("--model_type", required=True, choices=(*MODEL_TYPES, CLIP_MODEL_TYPE))
    parser.add_argument("--options_json", help="JSON file of OpenAI options overriding the model type's defaults")
    parser.add_argument(
        "--vocab_dir",
        help="folder with encoder.json(.gz) + vocab.bpe(.gz) (clip: bpe_simple_vocab_16e6.txt(.gz)), or a saved "
        "tokenizer (default: GLIDE's vocabularies, shipped with diffusers-glide)",
    )
    parser.add_argument("--dump_path", help="output folder (required unless --push_to_hub)")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="dtype of the saved weights")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier output in --dump_path (a GLIDE pipeline or noised-CLIP folder); no other non-empty "
        "folder, nor one that holds the inputs, is ever replaced",
    )
    parser.add_argument("--push_to_hub", action="store_true", help="upload the folder to the Hub as --repo_id")
    parser.add_argument("--repo_id", help="Hub repository, e.g. your-name/glide-base")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    return parser


def check_convert_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The checks argparse cannot express; exits through `parser.error` (exit code 2)."""
    expected = 2 if args.model_type == CLIP_MODEL_TYPE else 1
    if len(args.checkpoint_path) != expected:
        what = "clip_image_enc.pt and clip_text_enc.pt" if expected == 2 else "one checkpoint"
        parser.error(
            f"--model_type {args.model_type} takes {what} as --checkpoint_path, got {len(args.checkpoint_path)} "
            f"path(s): {' '.join(args.checkpoint_path)}"
        )
    if args.push_to_hub and not args.repo_id:
        parser.error("--push_to_hub needs --repo_id")
    if not args.dump_path and not args.push_to_hub:
        parser.error("--dump_path is required (or --push_to_hub with --repo_id)")
    return args


def read_options_json(path: str) -> dict:
    """The `--options_json` file as a dict, with errors that name the file and what is wrong with it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"--options_json file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"Cannot read --options_json {path}: {error}") from error
    try:
        options = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--options_json {path} is not valid JSON: {error}") from None
    if not isinstance(options, dict):
        raise ValueError(
            f"--options_json {path} must hold a JSON object of option names and values, got a JSON "
            f"{type(options).__name__}."
        )
    return options


def run_conversion(args: argparse.Namespace) -> int:
    """Convert (and optionally upload) as `args` says; returns the exit code (0)."""
    vocab_dir = args.vocab_dir or vocabulary_dir()
    inputs = [*args.checkpoint_path, args.options_json, vocab_dir]
    if args.dump_path:  # fail before a conversion that may take minutes
        OutputFolder(args.dump_path, overwrite=args.overwrite, inputs=inputs).check()
    options = read_options_json(args.options_json) if args.options_json else None
    if args.model_type == CLIP_MODEL_TYPE:
        converted = convert_clip_checkpoints(args.checkpoint_path, vocab_dir, options)
    else:
        converted = convert_glide_checkpoint(args.checkpoint_path[0], args.model_type, vocab_dir, options)

    with tempfile.TemporaryDirectory() as scratch:
        dump_path = args.dump_path or f"{scratch}/glide-{args.model_type}"
        folder = write_pipeline_folder(converted, dump_path, args.dtype, args.overwrite, args.repo_id, inputs)
        counts = " + ".join(f"{name} {count:,}" for name, count in converted.parameter_counts().items())
        print(
            f"Converted {' + '.join(args.checkpoint_path)} ({args.model_type}): {counts} parameters, {args.dtype} -> "
            f"{folder if args.dump_path else '(temporary folder)'}"
        )
        if args.push_to_hub:
            push_folder_to_hub(folder, args.repo_id, private=args.private)
            print(f"Uploaded to https://huggingface.co/{args.repo_id}")
    return 0
