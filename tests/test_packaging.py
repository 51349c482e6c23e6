"""The wheel and the sdist carry every embedded model and the shipped vocabularies, and an installed (not editable)
package finds them."""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "src" / "diffusers_glide" / "embedded"
VOCABULARIES = REPO / "src" / "diffusers_glide" / "vocabularies"
FIXTURE_TOKENIZERS = REPO / "tests" / "fixtures" / "tokenizers"
VOCABULARY_FILES = ["LICENSE", "README.md", "bpe_simple_vocab_16e6.txt.gz", "encoder.json.gz", "vocab.bpe.gz"]
BUILD_OUTPUTS = (".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache")


@pytest.fixture(scope="module")
def distributions(tmp_path_factory):
    """A wheel and an sdist built from a copy of the working tree (nothing is written into the repo)."""
    root = tmp_path_factory.mktemp("packaging")
    copy = root / "repo"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(*BUILD_OUTPUTS))
    out = root / "dist"
    code = f"from setuptools import build_meta as b; b.build_wheel({str(out)!r}); b.build_sdist({str(out)!r})"
    result = subprocess.run([sys.executable, "-c", code], cwd=copy, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return root, wheel, sdist


def embedded_files() -> list[str]:
    files = [p.relative_to(EMBEDDED).as_posix() for p in EMBEDDED.rglob("*") if p.is_file()]
    return sorted(f for f in files if "__pycache__" not in f)


def test_wheel_and_sdist_hold_every_embedded_file(distributions):
    _, wheel, sdist = distributions
    files = embedded_files()
    assert len([f for f in files if f.endswith(".safetensors")]) >= 9  # base + 3 stages x 2 models + CLIP x 2
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = {
            name.split("diffusers_glide/embedded/", 1)[1] for name in archive.namelist() if "/embedded/" in name
        }
    with tarfile.open(sdist) as archive:
        in_sdist = {
            name.split("diffusers_glide/embedded/", 1)[1] for name in archive.getnames() if "/embedded/" in name
        }
    assert not set(files) - in_wheel, sorted(set(files) - in_wheel)
    assert not set(files) - in_sdist, sorted(set(files) - in_sdist)


def test_the_vocabularies_are_the_fixture_files_and_ship_in_the_wheel_and_sdist(distributions):
    _, wheel, sdist = distributions
    for name in ("encoder.json.gz", "vocab.bpe.gz", "bpe_simple_vocab_16e6.txt.gz"):  # copied byte for byte
        assert (VOCABULARIES / name).read_bytes() == (FIXTURE_TOKENIZERS / name).read_bytes(), name
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = {
            name.split("diffusers_glide/vocabularies/", 1)[1]: archive.read(name)
            for name in archive.namelist()
            if "diffusers_glide/vocabularies/" in name
        }
    with tarfile.open(sdist) as archive:
        in_sdist = {
            name.split("diffusers_glide/vocabularies/", 1)[1]: archive.extractfile(name).read()
            for name in archive.getnames()
            if "diffusers_glide/vocabularies/" in name and archive.getmember(name).isfile()
        }
    for files in (in_wheel, in_sdist):
        assert sorted(name for name in files if "__pycache__" not in name) == sorted(
            [*VOCABULARY_FILES, "__init__.py"]
        )
        for name in VOCABULARY_FILES:
            assert files[name] == (VOCABULARIES / name).read_bytes(), name


@pytest.fixture(scope="module")
def installed_site(distributions):
    """The wheel installed (without its dependencies) into a folder of its own."""
    root, wheel, _ = distributions
    site = root / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)]
    result = subprocess.run(install, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return site


def _run_installed(root: Path, site: Path, code: str) -> subprocess.CompletedProcess:
    # run from an empty folder, with only the installed copy on the path (not the src/ of the editable install)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_an_installed_wheel_builds_both_tokenizers_from_its_vocabularies(distributions, installed_site):
    code = """
from diffusers_glide import build_glide_tokenizer
from diffusers_glide.clip_tokenization import build_clip_tokenizer
from diffusers_glide.vocabularies import vocabulary_dir
print(vocabulary_dir())
print(len(build_glide_tokenizer(vocabulary_dir())), len(build_clip_tokenizer(vocabulary_dir())))
"""
    lines = _run_installed(distributions[0], installed_site, code).stdout.splitlines()
    assert lines == [str(installed_site / "diffusers_glide" / "vocabularies"), "50257 49408"]


def test_an_installed_wheel_loads_every_embedded_model(distributions, installed_site):
    root, site = distributions[0], installed_site
    code = """
import diffusers_glide
from diffusers_glide import GlideInpaintPipeline, GlidePipeline, GlideUpsamplePipeline
from diffusers_glide.embedded import EMBEDDED_MODEL_KINDS, embedded_model_path
print(diffusers_glide.__file__)
classes = {"base": GlidePipeline, "base-inpaint": GlideInpaintPipeline, "upsample": GlideUpsamplePipeline,
           "upsample-inpaint": GlideUpsamplePipeline}
pipe = GlidePipeline.from_pretrained(embedded_model_path("base"))
for kind in EMBEDDED_MODEL_KINDS:
    path = embedded_model_path(kind)
    if kind == "clip":
        pipe.load_clip_guidance(path)
    else:
        classes[kind].from_pretrained(path)
    print(path)
"""
    lines = _run_installed(root, site, code).stdout.split()
    assert lines[0] == str(site / "diffusers_glide" / "__init__.py")
    assert lines[1:] == [
        str(site / "diffusers_glide" / "embedded" / name)
        for name in (
            "glide-shapes-32",
            "glide-shapes-inpaint-32",
            "glide-shapes-upsample-128",
            "glide-shapes-upsample-inpaint-128",
            "glide-shapes-clip-32",
        )
    ]
