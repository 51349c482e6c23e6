"""Convert an OpenAI GLIDE checkpoint into a diffusers-glide pipeline folder.

A thin wrapper around `diffusers_glide.conversion.cli` (also installed as `diffusers-glide convert`); run with
`--help` for the flags and examples.
"""

import sys

from diffusers_glide.conversion.cli import build_parser, main, parse_args

__all__ = ["build_parser", "main", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())
