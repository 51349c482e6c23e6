"""Generation at scale: `diffusers-glide generate --prompts FILE --output_dir DIR`, one image per prompt x seed.

    diffusers-glide generate --prompts captions.txt --output_dir out --num_images 4 --batch_size 8
    accelerate launch --num_processes 8 -m diffusers_glide.cli generate --prompts p.txt --output_dir out --device cuda

The prompt file is plain text, one prompt a line, or (`.jsonl`) one JSON object a line, `{"prompt": "...",
"seed": 3}` or `{"prompt": "...", "seeds": [0, 1, 2]}` (without either, the command line's seeds). Blank lines are
skipped; everything else is checked, with its line number, before a model loads.

- Names: line L of the file with seed S makes `DIR/{L:05d}-seed{S}.png`, stable across runs, batch sizes and
  process counts. `DIR/metadata.jsonl` lists `file_name`, `prompt`, `seed`, `width`, `height` for every image
  (datasets' `imagefolder` reads it; the sizes come from the models' configs); only the main process writes it,
  whole and atomically, from the job list, before any sampling.
- One run per folder: the main process locks the output folders for the whole run (`folder_lock`); a second run
  on one of them refuses at once, in every one of its processes.
- Resume: an image is made again unless its file is complete: a regular file (not a symlink, which this command
  never writes) holding a whole PNG of the expected size. Images are written atomically, so a file is incomplete
  only when something else wrote it. A rerun may add lines or seeds but not change or drop those that
  `metadata.jsonl` lists (that would mix two sets); a metadata.jsonl without sizes (earlier versions) still resumes.
- Seeds: every image draws its noise from its own generator seeded with its seed, so with `--batch_size 1` each
  image equals `generate PROMPT --seed S` pixel for pixel. Batches are cut from the whole job list before it is
  shared between processes, so a given batch size gives the same files on any number of processes. Other batch
  sizes round differently in the model's batched kernels, which moves some pixels (more with DPM-Solver++, whose
  one ODE path carries a difference from the first steps to the end; see docs/command_line.md, "Many prompts").
- Processes: under `accelerate launch`, each process takes its share of the batches still to make
  (`PartialState.split_between_processes`) on its own device (`--device cuda` -> cuda:0, cuda:1, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

    from .cascade import Cascade

METADATA_FILE = "metadata.jsonl"
JSON_KEYS = ("prompt", "seed", "seeds")
SIZE_KEYS = ("width", "height")  # of the metadata records; metadata.jsonl of earlier versions lacks them
SEED_LIMIT = 2**64  # torch.Generator.manual_seed takes seeds below this (and maps negative ones onto them)
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk that closes every PNG (length 0, type, CRC)


@dataclass(frozen=True)
class Job:
    """One image to make: the prompt of line `line` (1-based) of the prompt file, sampled with `seed`."""

    line: int
    prompt: str
    seed: int

    @property
    def file_name(self) -> str:
        return f"{self.line:05d}-seed{self.seed}.png"

    def record(self, size: tuple[int, int]) -> dict:
        """Its `metadata.jsonl` record, for an image of `size` (width, height)."""
        return {
            "file_name": self.file_name,
            "prompt": self.prompt,
            "seed": self.seed,
            **dict(zip(SIZE_KEYS, size, strict=True)),
        }


# ---------------------------------------------------------------------------------------------------------------
# Seeds and the prompt file


def _seed_problem(value) -> str | None:
    """Why `value` is not a seed (None when it is one)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"seeds are integers, got {json.dumps(value)}"
    if not 0 <= value < SEED_LIMIT:
        return f"seeds are integers in [0, 2**64), got {value}"
    return None


def _check_seeds(seeds: list) -> str | None:
    """Why `seeds` is not a list of distinct seeds (None when it is one)."""
    if not seeds:
        return "give at least one seed"
    seen = set()
    for seed in seeds:
        problem = _seed_problem(seed)
        if problem:
            return problem
        if seed in seen:
            return f"seed {seed} is given twice"
        seen.add(seed)
    return None


def seed_number(value: str) -> int:
    """The argparse type of `--seed`: an integer in [0, 2**64), the seeds torch's generators take."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    problem = _seed_problem(number)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return number


def seed_list(value: str) -> list[int]:
    """The argparse type of `--seeds`: comma-separated distinct non-negative integers, e.g. `0,1,2`."""
    try:
        seeds = [int(item) for item in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,1,2, got {value!r}") from None
    problem = _check_seeds(seeds)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return seeds


def command_line_seeds(args) -> list[int]:
    """The seeds of prompts that give none: `--seeds`, else `--seed S` (default 0) to S + `--num_images` - 1."""
    if args.seeds is not None:
        if args.seed is not None or args.num_images != 1:
            raise ValueError("give --seeds, or --seed with --num_images, not both.")
        return args.seeds
    first = 0 if args.seed is None else args.seed  # in [0, 2**64): see `seed_number`
    if first + args.num_images > SEED_LIMIT:
        raise ValueError(
            f"--seed {first} with --num_images {args.num_images}: the last seed, {first + args.num_images - 1}, is "
            "not below 2**64 (seeds are integers in [0, 2**64))."
        )
    return list(range(first, first + args.num_images))


def read_jobs(path: Path, default_seeds: list[int]) -> list[Job]:
    """The jobs of a prompt file, in file order (ValueError naming the line of any bad input)."""
    if not path.is_file():
        raise ValueError(f"--prompts {path}: " + ("not a file." if path.exists() else "file not found."))
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (some Windows editors) is not a prompt
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise ValueError(f"{path} line {line}: not UTF-8 text ({error.reason}).") from None
    read_line = _read_json_line if path.suffix.lower() == ".jsonl" else _read_text_line
    jobs = []
    # split on "\n" only: str.splitlines also breaks at form feeds and other separators, shifting line numbers
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        prompt, seeds = read_line(line, f"{path} line {number}")
        jobs.extend(Job(number, prompt, seed) for seed in (default_seeds if seeds is None else seeds))
    if not jobs:
        raise ValueError(f"{path} holds no prompts (blank lines are skipped).")
    return jobs


def _read_text_line(line: str, where: str) -> tuple[str, None]:
    return line, None


def _read_json_line(line: str, where: str) -> tuple[str, list[int] | None]:
    """The prompt and seeds (None: the command line's) of one JSON line; `where` starts the error messages."""

    def error(problem: str) -> ValueError:
        return ValueError(f"{where}: {problem}")

    try:
        entry = json.loads(line)
    except json.JSONDecodeError as decode_error:
        raise error(f"invalid JSON ({decode_error.msg}, column {decode_error.colno}).") from None
    except RecursionError:  # json's decoder recurses once per nested list or object
        raise error("JSON nested too deeply to read (a prompt line is one flat object).") from None
    if not isinstance(entry, dict):
        raise error(f'expected a JSON object such as {{"prompt": "a red circle", "seed": 0}}, got {line.strip()}')
    unknown = [key for key in entry if key not in JSON_KEYS]
    if unknown:
        raise error(f'unknown key {json.dumps(unknown[0])} (the keys are "prompt", and "seed" or "seeds").')
    if "prompt" not in entry:
        raise error('missing "prompt".')
    if not isinstance(entry["prompt"], str):
        raise error(f'"prompt" must be a string, got {json.dumps(entry["prompt"])}.')
    if "seed" in entry and "seeds" in entry:
        raise error('give "seed" or "seeds", not both.')
    if "seed" in entry:
        seeds = [entry["seed"]]
    elif "seeds" in entry:
        seeds = entry["seeds"]
        if not isinstance(seeds, list):
            raise error(f'"seeds" must be a list of seeds such as [0, 1, 2], got {json.dumps(seeds)}.')
    else:
        return entry["prompt"], None
    problem = _check_seeds(seeds)
    if problem:
        raise error(problem + ".")
    return entry["prompt"], seeds


# ---------------------------------------------------------------------------------------------------------------
# The output folder: metadata, resume, batches


def check_metadata(folder: Path, jobs: list[Job], size: tuple[int, int]) -> None:
    """Refuse a folder whose `metadata.jsonl` lists an image that `jobs` would not make the same way (`size`: the
    images' (width, height); records without sizes, from earlier versions, are compared without them)."""
    path = folder / METADATA_FILE
    if not path.is_file():
        return
    wanted = {job.file_name: job.record(size) for job in jobs}
    try:
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        listed = {record["file_name"]: record for record in records}
    except (ValueError, TypeError, KeyError, RecursionError) as error:
        problem = "nested too deeply" if isinstance(error, RecursionError) else error
        raise ValueError(f"cannot read {path} ({problem}): delete it or give a new --output_dir.") from None
    for name, record in listed.items():
        if name not in wanted:
            raise ValueError(
                f"{path} lists {name}, which the prompt file and seeds no longer make: resume with the same prompts "
                "and seeds (more lines or seeds may be added), or give a new --output_dir."
            )
        if not any(key in record for key in SIZE_KEYS):
            wanted[name] = {key: value for key, value in wanted[name].items() if key not in SIZE_KEYS}
        if record != wanted[name]:
            raise ValueError(
                f"{path} lists {name} as {json.dumps(record)}, but the prompt file and seeds now make it as "
                f"{json.dumps(wanted[name])}: give a new --output_dir."
            )


def write_metadata(folder: Path, jobs: list[Job], size: tuple[int, int]) -> None:
    """`metadata.jsonl` for every job, replaced atomically (a reader sees the old or the new file whole)."""
    from .output_folders import temporary_path

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / METADATA_FILE
    text = "".join(json.dumps(job.record(size), ensure_ascii=False) + "\n" for job in jobs)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return  # a complete folder is left as it is
    temporary = temporary_path(path)
    try:
        with open(temporary, "x", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def cut_batches(jobs: list[Job], batch_size: int) -> list[list[Job]]:
    """Consecutive jobs in batches of `batch_size` (the last may be smaller), the same for any process count."""
    return [jobs[start : start + batch_size] for start in range(0, len(jobs), batch_size)]


def is_done(job: Job, written: list[set[str]]) -> bool:
    """Whether every output of `job` is made (`written`: the complete images of each output folder)."""
    return all(job.file_name in names for names in written)


def complete_images(folder: Path, jobs: list[Job], size: tuple[int, int]) -> set[str]:
    """The file names of the jobs' images that `folder` holds complete ([`is_complete_png`])."""
    names = set(os.listdir(folder)) if folder.is_dir() else set()
    return {job.file_name for job in jobs if job.file_name in names and is_complete_png(folder / job.file_name, size)}


def is_complete_png(path: Path, size: tuple[int, int]) -> bool:
    """Whether `path` is a regular file holding a whole PNG of `size` (width, height), as this command writes them.

    A symlink is not followed: this command never writes one, and a dataset whose files point elsewhere can change
    or lose them; the image is made again, which replaces the link, not its target. No other format is decoded, the
    size is checked on the header before the pixels are decoded, and the file must end with PNG's closing chunk
    (Pillow decodes the pixels of a file cut after them)."""
    from .image_files import ImageFileError, read_image

    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block
    try:
        descriptor = os.open(path, flags)
    except OSError:  # missing, a symlink, unreadable
        return False
    with open(descriptor, "rb") as file:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_size < len(PNG_END):
            return False
        file.seek(-len(PNG_END), os.SEEK_END)
        if file.read() != PNG_END:
            return False
        file.seek(0)
        width, height = size
        try:  # a larger image is refused from its header
            image = read_image(file.read(), f"image {path}", max_pixels=width * height, formats=("PNG",))
        except ImageFileError:
            return False
    return image.size == (width, height)


# ---------------------------------------------------------------------------------------------------------------
# The command


def uses_prompt_file(args) -> bool:
    """Whether `generate` runs on a prompt file (`--prompts`) rather than one PROMPT; checks the mode's flags."""
    if args.prompts is None:
        flags = {"--output_dir": args.output_dir, "--seeds": args.seeds, "--batch_size": args.batch_size}
        given = [
            flag for flag, value in {**flags, "--low_output_dir": args.low_output_dir}.items() if value is not None
        ]
        if given:
            raise ValueError(f"{given[0]} goes with --prompts FILE.")
        if args.prompt is None:
            raise ValueError("give a PROMPT, or --prompts FILE with one prompt a line.")
        return False
    if args.prompt is not None:
        raise ValueError(f"give a PROMPT or --prompts FILE, not both (got the prompt {args.prompt!r}).")
    if args.output_dir is None:
        raise ValueError("--prompts writes one image per prompt and seed: give the folder with --output_dir.")
    if getattr(args, "output_given", False):
        raise ValueError("-o/--output names one image: with --prompts the images go to --output_dir.")
    if args.low_output_dir is not None:
        if args.upsampler is None:
            raise ValueError("--low_output_dir holds the images before upsampling: it needs --upsampler.")
        if args.low_output_dir.resolve() == args.output_dir.resolve():
            raise ValueError("--low_output_dir must differ from --output_dir (the images share their names).")
    return True


def run_batch_generation(args, load_cascade: Callable[[argparse.Namespace, torch.device], Cascade]) -> int:
    """`generate --prompts FILE --output_dir DIR`: every user error before a model loads, then this process's share.
    `load_cascade(args, device)` loads the models (the command line's, with its flags)."""
    from .cascade import torch_device
    from .output_folders import check_output_image_paths

    jobs = read_jobs(args.prompts, command_line_seeds(args))
    folders = {"--output_dir": args.output_dir}
    if args.low_output_dir is not None:
        folders["--low_output_dir"] = args.low_output_dir
    check_output_image_paths(folder / jobs[0].file_name for folder in folders.values())
    try:
        device = torch_device(args.device)
    except ValueError as error:
        raise ValueError(f"--device {args.device}: {error}") from error
    sizes = output_sizes(args)

    from accelerate import PartialState

    state = PartialState(cpu=device.type == "cpu")
    if state.num_processes > 1:
        if device.index is not None or state.device.type != device.type:
            raise ValueError(
                f"--device {args.device}: each of the {state.num_processes} processes takes a device of its own; "
                "give the device type only (e.g. --device cuda)."
            )
        device = state.device

    with ExitStack() as lock:
        # The main process locks and prepares the folders; every process gets what it found, or its error, so that
        # all agree on what is left and none waits at a barrier for a main process that failed.
        written = problem = None
        if state.is_main_process:
            try:
                written = _prepare_folders(lock, folders, sizes, jobs)
            except (ValueError, OSError) as error:
                _from_main_process(state, (None, str(error)))
                raise
        written, problem = _from_main_process(state, (written, problem))
        if problem is not None:
            raise ValueError(problem)

        batch_size = args.batch_size or 1
        todo = [batch for batch in cut_batches(jobs, batch_size) if not all(is_done(job, written) for job in batch)]
        if state.is_main_process:
            left = sum(not is_done(job, written) for job in jobs)
            print(
                f"{len(jobs)} images: {len(jobs) - left} already made, {left} to make in {len(todo)} batch(es) of up "
                f"to {batch_size} on {state.num_processes} process(es).",
                file=sys.stderr,
            )
        with state.split_between_processes(todo) as share:
            made = _make_share(
                share,
                list(folders.values()),
                written,
                args,
                lambda: load_cascade(args, device),
                device,
                state.is_local_main_process,
            )
        who = f"process {state.process_index} of {state.num_processes}: " if state.num_processes > 1 else ""
        print(f"{who}wrote {made} image file(s).", file=sys.stderr)
        state.wait_for_everyone()  # the lock is held until every process is done
    return 0


def output_sizes(args) -> list[tuple[int, int]]:
    """The (width, height) of the images of --output_dir (and --low_output_dir), from the models' configs."""
    from .cascade import model_source
    from .pipelines import GlidePipeline, GlideUpsamplePipeline

    base = _model_image_size(GlidePipeline, model_source(args.model, "base"))
    if args.upsampler is None:
        return [base]
    upsampled = _model_image_size(GlideUpsamplePipeline, model_source(args.upsampler, "upsample"))
    return [upsampled] if args.low_output_dir is None else [upsampled, base]


def _model_image_size(pipeline_class, source: str) -> tuple[int, int]:
    """The size of the images of the pipeline at `source` (folder or Hub repo id): its square UNet's `sample_size`,
    read from `unet/config.json` alone (`ConfigMixin.load_config`), without the weights."""
    import inspect

    from .models import GlideUNet2DModel
    from .pipelines.checks import check_hub_id

    if os.path.isdir(source):
        pipeline_class.check_pipeline_folder(Path(source), passed={})  # the loader's errors for a wrong folder
    else:
        check_hub_id(source, "pipeline folder")
    config = GlideUNet2DModel.load_config(source, subfolder="unet")
    # a config without the key gets the default, as when the model loads
    side = config.get("sample_size", inspect.signature(GlideUNet2DModel).parameters["sample_size"].default)
    return (side, side)


def _prepare_folders(lock: ExitStack, folders: dict[str, Path], sizes, jobs: list[Job]) -> list[set[str]]:
    """The main process's work before sampling: lock the folders (held until `lock` closes), check their metadata,
    find their complete images, remove killed writers' temporary files and write the metadata. Returns the
    complete images of each folder."""
    from .folder_lock import lock_folders
    from .output_folders import remove_stale_temporaries

    lock.enter_context(lock_folders(folders))
    for folder, size in zip(folders.values(), sizes, strict=True):
        check_metadata(folder, jobs, size)
    written = [complete_images(folder, jobs, size) for folder, size in zip(folders.values(), sizes, strict=True)]
    for folder, size in zip(folders.values(), sizes, strict=True):
        remove_stale_temporaries(folder)  # under the lock, no other run writes here: once per run, not per image
        write_metadata(folder, jobs, size)
    return written


def _from_main_process(state, value):
    """`value` as the main process has it, in every process (each process calls this once at the same point)."""
    if state.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def _make_share(share: list[list[Job]], folders, written, args, load_cascade, device, progress: bool) -> int:
    """Sample the batches of `share` and write their missing images; returns how many files were written."""
    if not share:
        return 0  # no model to load
    import torch
    from tqdm.auto import tqdm

    from .output_folders import save_image_atomically
    from .pipelines.memory import BatchTooLargeError

    cascade = load_cascade()
    for pipeline in (cascade.base, cascade.upsampler):
        if pipeline is not None:
            pipeline.set_progress_bar_config(disable=True)  # one bar for the whole share instead
    made = 0
    with tqdm(total=sum(map(len, share)), unit="image", disable=args.no_progress or not progress) as bar:
        for batch in share:
            prompts = [job.prompt for job in batch]
            # one generator per image: its noise depends on its seed only, not on its batch or its process
            generators = [torch.Generator(device).manual_seed(job.seed) for job in batch]
            try:
                output = cascade(prompts, generators)
                images, low = output.images, output.low_images
            except BatchTooLargeError as error:
                raise ValueError(
                    f"--batch_size {len(batch)} is too large: at most {error.max_images} images fit in one call here "
                    f"({error})."
                ) from error
            for index, job in enumerate(batch):
                for folder, names, results in zip(folders, written, (images, low)[: len(folders)], strict=True):
                    if job.file_name not in names:  # a batch is made whole, but complete images stay untouched
                        # the main process removed dead writers' temporary files when it locked the folder
                        save_image_atomically(results[index], folder / job.file_name, clean_folder=False)
                        print(folder / job.file_name, flush=True)
                        made += 1
            bar.update(len(batch))
    return made
