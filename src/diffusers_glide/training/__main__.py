"""`python -m diffusers_glide.training ...` / `accelerate launch -m diffusers_glide.training ...`."""

import shlex
import sys

from .arguments import parse_training_args
from .trainer import train


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_training_args(argv)
    path = train(args, command=shlex.join(["python", "-m", "diffusers_glide.training", *argv]))
    print(f"Saved the trained pipeline to {path}")


if __name__ == "__main__":
    main()
