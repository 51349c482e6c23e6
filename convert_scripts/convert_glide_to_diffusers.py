"""Convert an OpenAI GLIDE checkpoint into a diffusers-glide pipeline folder.

Exactly `diffusers-glide convert ...` (same flags, same one-line `error: ...` and exit code 2 on bad input); run with
`--help` for the flags and examples.
"""

import sys

from diffusers_glide.cli import main as cli_main


def main(argv=None) -> int:
    return cli_main(["convert", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
