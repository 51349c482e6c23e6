"""The guides hold together: in README.md, CONTRIBUTING.md and docs/*.md every relative link names a file of this
repository (and a `#anchor` a heading of the Markdown file it points into, by GitHub's slug rules), and every
```python / ```py code block compiles (doctest-style blocks once their `>>>` / `...` prompts are stripped)."""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
PYTHON_INFO = {"python", "py"}

# an opening or closing code fence: up to 3 spaces (or a list item's indentation), then ``` or ~~~ and an info string
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
# [text](destination "title") and ![alt](destination); the text may hold one level of brackets and line breaks
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(?:<([^>\n]*)>|([^)\s]*))(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^>\s]+)>?", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass
class Block:
    info: str  # the fence's info string, lower-cased
    line: int  # 1-based line of the first code line
    code: str


def split_fences(text: str) -> tuple[str, list[Block]]:
    """`text` with every fenced code block blanked out (line numbers kept), and the blocks."""
    lines = text.split("\n")
    prose, blocks = [], []
    opening = None  # (fence, info, first code line index, code lines)
    for index, line in enumerate(lines):
        match = FENCE.match(line)
        if opening is None:
            if match and not (match["fence"][0] == "`" and "`" in match["info"]):
                opening = (match["fence"], match["info"].strip().lower(), index + 1, [])
                prose.append("")
            else:
                prose.append(line)
            continue
        fence, info, first, code = opening
        if match and match["fence"][0] == fence[0] and len(match["fence"]) >= len(fence) and not match["info"].strip():
            blocks.append(Block(info, first + 1, "\n".join(code)))
            opening = None
        else:
            code.append(line)
        prose.append("")
    if opening is not None:  # an unclosed fence runs to the end of the document, as in CommonMark
        fence, info, first, code = opening
        blocks.append(Block(info, first + 1, "\n".join(code)))
    return "\n".join(prose), blocks


def blank_code_spans(prose: str) -> str:
    """`prose` with inline code spans replaced by spaces (newlines kept), so that code is never read as a link."""
    return CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m[0]), prose)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: the rendered text, lower-cased, without punctuation, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")  # code and emphasis markers (underscores in words stay)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # Python's \w: unicode letters, digits and "_", as GitHub keeps them
    return text.replace(" ", "-")


def heading_anchors(text: str) -> set[str]:
    """Every anchor of a Markdown document: its ATX headings' slugs (repeats get -1, -2, ...) and HTML ids."""
    prose, _ = split_fences(text)
    anchors, seen = set(), Counter()
    for line in prose.split("\n"):
        match = ATX_HEADING.match(line)
        if match:
            slug = github_slug(match[2] or "")
            anchors.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
            seen[slug] += 1
    anchors.update(HTML_ANCHOR.findall(prose))
    return anchors


def links(text: str) -> list[tuple[int, str]]:
    """(line, destination) of every inline link, image and reference definition outside code."""
    prose = blank_code_spans(split_fences(text)[0])
    found = [(m.start(), m[1] if m[1] is not None else m[2]) for m in INLINE_LINK.finditer(prose)]
    found += [(m.start(1), m[1]) for m in REFERENCE_DEFINITION.finditer(prose)]
    return sorted((prose.count("\n", 0, start) + 1, destination) for start, destination in found)


def link_problems(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """What is wrong with the relative links of the Markdown file `path` (a link must stay inside `root`)."""
    problems = []
    name = path.relative_to(root).as_posix()
    anchors_of: dict[Path, set[str]] = {}
    for line, destination in links(path.read_text(encoding="utf-8")):
        where = f"{name}:{line}: link {destination!r}"
        if not destination:
            problems.append(f"{where}: empty destination")
            continue
        if URL_SCHEME.match(destination) or destination.startswith("//"):
            continue  # a URL: not checked offline
        target_part, _, anchor = destination.partition("#")
        target_part = unquote(target_part)
        if not target_part:
            target = path
        elif target_part.startswith("/"):  # GitHub reads /x as the repository's x
            target = root / target_part.lstrip("/")
        else:
            target = path.parent / target_part
        target = target.resolve()
        if not target.is_relative_to(root.resolve()):
            problems.append(f"{where}: points outside the repository ({target})")
            continue
        if not target.exists():
            problems.append(f"{where}: no such file or folder ({target.relative_to(root.resolve()).as_posix()})")
            continue
        if anchor and target.suffix.lower() == ".md" and target.is_file():
            if target not in anchors_of:
                anchors_of[target] = heading_anchors(target.read_text(encoding="utf-8"))
            if unquote(anchor).lower() not in anchors_of[target]:
                problems.append(f"{where}: no heading with the anchor #{anchor} in {target.name}")
    return problems


def python_code(block: Block) -> str:
    """The code of a Python block; a doctest-style one keeps only its `>>>` / `...` lines, without the prompts."""
    code = textwrap.dedent(block.code)
    lines = code.split("\n")
    if not any(line.lstrip().startswith(">>>") for line in lines):
        return code
    kept = []
    for line in lines:
        stripped = line.lstrip()
        for prompt in (">>>", "..."):
            if stripped == prompt or stripped.startswith(prompt + " "):
                kept.append(stripped[len(prompt) + 1 :])
                break
        else:
            kept.append("")  # expected output: a blank line keeps the line numbers
    return textwrap.dedent("\n".join(kept))


def code_problems(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """The Python code blocks of the Markdown file `path` that do not compile."""
    problems = []
    name = path.relative_to(root).as_posix()
    _, blocks = split_fences(path.read_text(encoding="utf-8"))
    for block in blocks:
        language = block.info.split()[0] if block.info.split() else ""
        if language not in PYTHON_INFO:
            continue
        try:
            compile(python_code(block), f"{name}:{block.line}", "exec")
        except SyntaxError as error:
            line = block.line + (error.lineno or 1) - 1
            snippet = (error.text or "").strip()
            problems.append(f"{name}:{line}: Python block does not compile: {error.msg}: {snippet!r}")
    return problems


def doc_id(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def test_the_guides_are_there():
    names = [doc_id(path) for path in DOC_FILES]
    assert all(path.is_file() for path in DOC_FILES), names
    assert len(names) >= 12, names  # README, CONTRIBUTING and at least the ten docs pages


@pytest.mark.parametrize("path", DOC_FILES, ids=doc_id)
def test_relative_links_resolve(path):
    problems = link_problems(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", DOC_FILES, ids=doc_id)
def test_python_blocks_compile(path):
    problems = code_problems(path)
    assert not problems, "\n".join(problems)


def test_github_slugs():
    assert github_slug("The cascade: `diffusers_glide.cascade`") == "the-cascade-diffusers_glidecascade"
    assert github_slug("Inpainting (64x64), then inpainting while upsampling") == (
        "inpainting-64x64-then-inpainting-while-upsampling"
    )
    assert github_slug("The command line: start-up, threads, half precision") == (
        "the-command-line-start-up-threads-half-precision"
    )
    assert github_slug("Text -> base") == "text---base"
    assert heading_anchors("# A\n\n```\n# not a heading\n```\n\n## A\n") == {"a", "a-1"}


def test_the_checks_catch_broken_links_and_code(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## A section\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md#a-section) [fine too](#page) `[code](missing.md)` [web](https://example.com/x)\n"
        "[missing file](missing.md)\n"
        "[missing anchor](other.md#no-such-section)\n"
        "[outside](../../elsewhere.md)\n"
        "\n```python\nx = 1\n```\n\n```py\n>>> y = [\n...     1]\n[1]\n```\n\n```python\ndef broken(:\n```\n"
    )
    problems = link_problems(page, root=tmp_path)
    assert len(problems) == 3, problems
    assert problems[0].startswith("docs/page.md:4: link 'missing.md': no such file")
    assert problems[1].startswith("docs/page.md:5: link 'other.md#no-such-section': no heading")
    assert problems[2].startswith("docs/page.md:6: link '../../elsewhere.md': points outside")
    problems = code_problems(page, root=tmp_path)
    assert len(problems) == 1 and problems[0].startswith("docs/page.md:19: Python block does not compile"), problems
