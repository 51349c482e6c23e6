"""`from_pretrained` that refuses weights which do not fit the model exactly, naming what is wrong.

diffusers' `ModelMixin.from_pretrained` only logs a warning for missing and unexpected keys: the missing parameters
stay uninitialised (on the `meta` device by default) and sampling later fails with an unrelated NotImplementedError.
A shape mismatch raises, but names only the first key and suggests `ignore_mismatched_sizes=True`, which would leave
that weight uninitialised as well. The GLIDE models load every weight or nothing: [`StrictLoadingMixin`] asks diffusers
for its loading report (`output_loading_info=True`, with `ignore_mismatched_sizes=True` so that every mismatch is
reported rather than the first raised) and raises one ValueError that names the file, the missing and unexpected keys
and the shape mismatches.
"""

import contextlib
import logging
import os
import re
from pathlib import Path

# diffusers' weight file names: `diffusion_pytorch_model[.<variant>][-00001-of-00002].{safetensors,bin}`.
_WEIGHTS_FILE = re.compile(r"diffusion_pytorch_model(?:\.(?P<variant>[^.-]+))?(?:-\d+-of-\d+)?\.(?:safetensors|bin)")
_SHOWN_KEYS = 5  # keys named per kind of problem; the count says how many more there are
_PLACEMENT_ARGUMENTS = ("device_map", "max_memory", "offload_folder", "offload_state_dict")


class StrictLoadingMixin:
    """Put before `ModelMixin` in a model's bases: its `from_pretrained` raises a ValueError unless the weights
    hold exactly the model's keys, each with the model's shape."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        r"""
        diffusers' `ModelMixin.from_pretrained` (every argument works the same), except that weights that do not
        fit the model are an error: missing keys, unexpected keys and shape mismatches are all named in one
        ValueError. `ignore_mismatched_sizes=True` is refused for that reason.
        """
        if kwargs.get("ignore_mismatched_sizes"):
            raise ValueError(
                f"{cls.__name__}.from_pretrained: `ignore_mismatched_sizes=True` is not supported, got True: a GLIDE "
                "model loads only weights that fit it exactly (it would leave the mismatched weights uninitialised)."
            )
        return_info = kwargs.pop("output_loading_info", False)
        kwargs["ignore_mismatched_sizes"] = True  # report every mismatch instead of raising at the first

        def load(**options):
            with _without_diffusers_weight_warnings():  # the error below says it all
                return super(StrictLoadingMixin, cls).from_pretrained(
                    pretrained_model_name_or_path, output_loading_info=True, **options
                )

        try:
            model, info = load(**kwargs)
        except NotImplementedError:
            if kwargs.get("device_map") is None:
                raise
            # With a device_map, accelerate fails to place the parameters the weights did not fill ("Cannot copy out
            # of meta tensor") before diffusers returns its report: load on the CPU to name what is wrong.
            _, info = load(**{k: v for k, v in kwargs.items() if k not in _PLACEMENT_ARGUMENTS})
            if not _problems(info):
                raise
        problems = _problems(info)
        if problems:
            where = _weights_location(pretrained_model_name_or_path, kwargs.get("subfolder"), kwargs.get("variant"))
            raise ValueError(
                f"{cls.__name__} cannot load {where}: the weights do not fit the model its config describes; "
                + "; ".join(problems)
                + "."
            )
        return (model, info) if return_info else model


class _WeightWarnings(logging.Filter):
    """diffusers' warnings about weights it did not load ("Some weights of ..."): they become the error instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Some weights of")


@contextlib.contextmanager
def _without_diffusers_weight_warnings():
    logger = logging.getLogger("diffusers.models.modeling_utils")
    weight_warnings = _WeightWarnings()
    logger.addFilter(weight_warnings)
    try:
        yield
    finally:
        logger.removeFilter(weight_warnings)


def _listed(keys, one: str, many: str) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_SHOWN_KEYS])
    more = f", ... ({len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
    return f"{len(keys)} {one if len(keys) == 1 else many} ({shown}{more})"


def _problems(info: dict) -> list[str]:
    problems = []
    if info.get("missing_keys"):
        problems.append(_listed(info["missing_keys"], "missing key", "missing keys"))
    if info.get("unexpected_keys"):
        problems.append(_listed(info["unexpected_keys"], "unexpected key", "unexpected keys"))
    if info.get("mismatched_keys"):
        mismatched = info["mismatched_keys"]
        shapes = {f"{key}: file {tuple(found)} vs model {tuple(expected)}" for key, found, expected in mismatched}
        problems.append(_listed(shapes, "shape mismatch", "shape mismatches"))
    return problems  # (diffusers raises for `error_msgs` itself)


def _weights_location(name_or_path, subfolder: str | None, variant: str | None) -> str:
    """`<folder> (<its weight files>)` for a local folder, the repo id and subfolder otherwise."""
    folder = Path(os.fspath(name_or_path), subfolder or "")
    if not folder.is_dir():
        return f"the weights of {os.fspath(name_or_path)}" + (f" (subfolder {subfolder!r})" if subfolder else "")
    files = sorted(
        path.name
        for path in folder.iterdir()
        if (match := _WEIGHTS_FILE.fullmatch(path.name)) and match["variant"] == variant
    )
    return f"{folder}" + (f" ({', '.join(files)})" if files else "")
