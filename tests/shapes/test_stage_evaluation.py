"""The evaluation of the other GLIDE stages on the shapes data, run on tiny random pipelines (meaningless images,
but the edits, masks, kept pixels, PSNR arithmetic and command line are checked)."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import clip_tokenizer, tiny_components, tiny_text_encoder

import diffusers_glide
from diffusers_glide import GlideScheduler
from diffusers_glide.shapes.dataset import COLORS, SHAPES, caption_vocabulary, render_scene, shape_mask
from diffusers_glide.shapes.evaluate import main
from diffusers_glide.shapes.scoring import evaluation_scenes, score_image
from diffusers_glide.shapes.stage_evaluation import (
    DEFAULT_SAMPLERS,
    SAMPLER_NAMES,
    InpaintingCase,
    Sampler,
    edited_scene,
    evaluate_clip_guidance,
    evaluate_inpainting,
    evaluate_upsample_inpainting,
    evaluate_upsampler,
    inpainting_cases,
    kept_pixels,
    psnr,
    stage_table,
)
from diffusers_glide.tokenization import build_word_level_tokenizer
from diffusers_glide.variants import get_variant


def shapes_pipeline(variant: str, **extra_components):
    """A tiny random pipeline of `variant` whose tokenizer knows every caption word (no truncation warnings)."""
    components = tiny_components(variant)
    tokenizer = build_word_level_tokenizer(caption_vocabulary(), context_length=16)
    components.update(
        tokenizer=tokenizer, text_encoder=tiny_text_encoder(vocab_size=len(tokenizer), context_length=16)
    )
    pipe = getattr(diffusers_glide, get_variant(variant).pipeline_class)(**components, **extra_components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def inpaint_pipe():
    return shapes_pipeline("base-inpaint")


@pytest.fixture(scope="module")
def upsample_pipe():
    return shapes_pipeline("upsample")


@pytest.fixture(scope="module")
def upsample_inpaint_pipe():
    return shapes_pipeline("upsample-inpaint")


# ---------------------------------------------------------------------------------------------------------------
# Edits and masks


def test_edits_change_shape_and_colour_only():
    for scene in evaluation_scenes("held_out") + evaluation_scenes("train"):
        target = edited_scene(scene)
        assert target.shape != scene.shape and target.shape in SHAPES
        assert target.color not in (scene.color, scene.background) and target.color in COLORS
        assert (target.background, target.center, target.radius, target.position) == (
            scene.background,
            scene.center,
            scene.radius,
            scene.position,
        )
    first = evaluation_scenes()[0]  # a red circle on a blue background: the next shape, the next free colour
    assert (first.color, first.shape, first.background) == ("red", "circle", "blue")
    assert (edited_scene(first).color, edited_scene(first).shape) == ("green", "square")


def test_shape_masks_cover_both_shapes_dilated():
    cases = inpainting_cases(32, "shape", limit=4)
    assert len(cases) == 4 and all(isinstance(c, InpaintingCase) for c in cases)
    for case, scene in zip(cases, evaluation_scenes()[:4], strict=True):
        assert case.original == scene and case.caption == case.target.caption == edited_scene(scene).caption
        assert case.image.shape == (3, 32, 32) and case.mask.shape == (32, 32)
        assert torch.equal(case.image, (render_scene(scene, 32) * 255).round() / 255)  # on the uint8 grid
        assert set(case.mask.unique().tolist()) <= {0.0, 1.0}
        covered = (shape_mask(case.original, 32) > 0) | (shape_mask(case.target, 32) > 0)
        assert case.mask[covered].eq(1).all()
        # exactly one pixel of dilation: every masked pixel touches a covered one, and nothing farther is masked
        dilated = F.max_pool2d(covered.float()[None, None], 3, stride=1, padding=1)[0, 0]
        assert torch.equal(case.mask, dilated) and case.mask.sum() > covered.sum()
        # outside the mask, the original and the target are the same picture (the background)
        keep = case.mask == 0
        assert torch.equal(render_scene(case.original, 32)[:, keep], render_scene(case.target, 32)[:, keep])


def test_rectangle_masks_contain_the_shape_region_and_follow_the_seed():
    shapes = inpainting_cases(64, "shape", limit=6)
    rectangles = inpainting_cases(64, "rectangle", seed=0, limit=6)
    assert [r.mask.tolist() for r in rectangles] == [
        r.mask.tolist() for r in inpainting_cases(64, "rectangle", limit=6)
    ]
    other_seed = inpainting_cases(64, "rectangle", seed=1, limit=6)
    assert any(not torch.equal(a.mask, b.mask) for a, b in zip(rectangles, other_seed, strict=True))
    # slicing the full list gives the same cases as `limit`
    assert torch.equal(inpainting_cases(64, "rectangle")[5].mask, rectangles[5].mask)
    grew = 0
    for shape, rectangle in zip(shapes, rectangles, strict=True):
        region, mask = shape.mask, rectangle.mask
        assert mask[region == 1].eq(1).all()
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert mask.sum() == len(rows) * len(cols)  # one solid axis-aligned rectangle
        ys, xs = torch.nonzero(region, as_tuple=True)
        for inner, outer in ((ys.min(), rows.min()), (xs.min(), cols.min())):
            assert 0 <= inner - outer <= 16  # each side moved out by 0..25% of 64, clipped at the border
        for inner, outer in ((ys.max(), rows.max()), (xs.max(), cols.max())):
            assert 0 <= outer - inner <= 16
        grew += int(mask.sum() > region.sum())
    assert grew >= 5
    with pytest.raises(ValueError, match="region"):
        inpainting_cases(32, "circle")


def test_free_form_masks_are_brush_strokes_over_the_shape_region():
    shapes = inpainting_cases(32, "shape")
    strokes = inpainting_cases(32, "free_form")
    assert [c.mask.tolist() for c in strokes] == [c.mask.tolist() for c in inpainting_cases(32, "free_form")]
    for shape, stroke in zip(shapes, strokes, strict=True):
        region, mask = shape.mask, stroke.mask
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert mask[region == 1].eq(1).all()  # the old and the new shape are painted over
        assert mask.sum() > region.sum() + 10  # strokes reach beyond the shapes
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert mask.sum() < len(rows) * len(cols)  # not a rectangle
        assert 0.1 < float(mask.mean()) < 0.45
        keep = mask == 0
        assert torch.equal(render_scene(stroke.original, 32)[:, keep], render_scene(stroke.target, 32)[:, keep])


def test_large_masks_are_strips_or_big_rectangles_holding_the_shape_region():
    shapes = inpainting_cases(32, "shape")
    larges = inpainting_cases(32, "large")
    kinds = []
    for index, (shape, large) in enumerate(zip(shapes, larges, strict=True)):
        region, mask = shape.mask, large.mask
        assert mask[region == 1].eq(1).all()
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert mask.sum() == len(rows) * len(cols)  # one solid rectangle
        assert 0.45 <= float(mask.mean()) <= 0.75, float(mask.mean())  # about 1/2 to 3/4, never more
        kind = index % 3
        if kind == 0:
            assert len(cols) == 32  # a full-width strip
        elif kind == 1:
            assert len(rows) == 32  # a full-height strip
        else:
            assert len(rows) < 32 and len(cols) < 32
        kinds.append(kind)
    assert sorted(set(kinds)) == [0, 1, 2]


# ---------------------------------------------------------------------------------------------------------------
# PSNR and the tables


def test_psnr_matches_hand_computed_values():
    a = np.full((4, 4, 3), 128 / 255)
    b = a + 10 / 255  # every pixel 10 levels apart: MSE = (10 / 255)^2, PSNR = 20 log10(25.5) = 28.13 dB
    assert psnr(a, b) == pytest.approx(28.1308, abs=1e-4)
    assert psnr(torch.zeros(3, 2, 2), torch.full((3, 2, 2), 0.1)) == pytest.approx(20.0)
    half = np.zeros((2, 2, 3))
    half[0] = 0.5  # half the values off by 0.5: MSE = 0.125
    assert psnr(half, np.zeros((2, 2, 3))) == pytest.approx(10 * math.log10(8))
    assert psnr(a, a) == math.inf
    with pytest.raises(ValueError, match="shape"):
        psnr(a, a[:2])


def test_kept_pixel_measure_catches_a_changed_pixel():
    cases = inpainting_cases(8, "shape", limit=2)
    images = np.stack([np.rint(c.image.permute(1, 2, 0).numpy() * 255).astype(np.uint8) for c in cases])
    assert kept_pixels(images, cases, 1) == {"kept_exact": 1.0, "kept_max_diff": 0.0}
    keep_y, keep_x = (cases[1].mask == 0).nonzero()[0].tolist()
    images[1, keep_y, keep_x, 0] ^= 3
    assert kept_pixels(images, cases, 1) == {"kept_exact": 0.5, "kept_max_diff": 3.0}


# ---------------------------------------------------------------------------------------------------------------
# The stages on tiny random pipelines


@pytest.mark.parametrize("region", ["shape", "rectangle"])
def test_inpainting_keeps_the_known_pixels_exactly(inpaint_pipe, region):
    results = evaluate_inpainting(inpaint_pipe, (1.0, 5.0), region, num_samples=2, limit=3)
    names = [r.name for r in results]
    assert names == [
        f"{region} region, unchanged input (baseline)",
        f"{region} region, no guidance",
        f"{region} region, guidance 5",
    ]
    for result in results:
        assert result.extra["kept_exact"] == 1.0 and result.extra["kept_max_diff"] == 0, result
    assert [r.result.num_samples for r in results] == [3, 6, 6]
    table = stage_table(results)
    assert table.count("\n") == 4 and "| kept exact |" in table and f"| {region} region, guidance 5 | 1.000 |" in table


def test_inpainting_scores_against_the_target_and_does_not_depend_on_the_batch(inpaint_pipe):
    cases = inpainting_cases(8, "shape", limit=3)
    baseline = evaluate_inpainting(inpaint_pipe, (), limit=3)[0].result
    expected = [score_image(c.image.permute(1, 2, 0).numpy(), c.target) for c in cases]
    assert baseline.accuracy == pytest.approx(np.mean([np.mean(list(e.values())) for e in expected]))
    whole = evaluate_inpainting(inpaint_pipe, (3.0,), num_samples=2, limit=3, include_baseline=False)
    chunked = evaluate_inpainting(inpaint_pipe, (3.0,), num_samples=2, limit=3, batch_size=2, include_baseline=False)
    assert whole == chunked


def test_upsampler_rows_and_bicubic_baseline(upsample_pipe):
    scheduler = upsample_pipe.scheduler
    dpm = next(s for s in DEFAULT_SAMPLERS if s.name == "dpm++-5")
    glide4 = Sampler("glide ddim 4", lambda c: GlideScheduler.from_config(c, sampler="ddim"), {"respacing": "4"})
    results = evaluate_upsampler(upsample_pipe, [dpm, glide4], num_samples=2, limit=2)
    assert upsample_pipe.scheduler is scheduler  # restored
    assert [r.name for r in results] == ["bicubic", "dpm++-5", "glide ddim 4"]
    assert [r.extra["steps"] for r in results] == [0, 5, 4]
    assert [r.result.num_samples for r in results] == [2, 4, 4]
    for r in results:
        assert np.isfinite(r.extra["psnr_db"]) and r.extra["seconds"] >= 0

    # the bicubic row, computed independently: 4x4 renders on the uint8 grid -> 16x16, against the 16x16 renders
    expected = []
    for scene in evaluation_scenes()[:2]:
        low = (render_scene(scene, 4) * 255).round() / 255
        up = F.interpolate(low[None], size=(16, 16), mode="bicubic", align_corners=False).clamp(0, 1)[0]
        up_levels, truth_levels = (up * 255).round().long(), (render_scene(scene, 16) * 255).round().long()
        mse = ((up_levels - truth_levels) ** 2).double().mean().item() / 255**2
        expected.append(10 * math.log10(1 / mse))
    assert results[0].extra["psnr_db"] == pytest.approx(np.mean(expected), rel=1e-12)
    assert "| bicubic | 0 |" in stage_table(results)


def test_default_samplers_are_the_readme_table():
    assert SAMPLER_NAMES == ("ddim-fast27", "ddpm-50", "ddpm-100", "dpm++-5", "dpm++-10", "dpm++-15", "dpm++-20")
    config = GlideScheduler(timestep_respacing="100").config
    made = {s.name: s.make_scheduler(config) for s in DEFAULT_SAMPLERS}
    assert made["ddim-fast27"].config.sampler == "ddim" and made["ddpm-100"].config.sampler == "ddpm"
    assert made["dpm++-15"].config.algorithm_type == "dpmsolver++"
    assert made["dpm++-15"].config.variance_type == "learned_range" and made["dpm++-15"].config.thresholding
    assert [s.call_kwargs for s in DEFAULT_SAMPLERS][:3] == [{"respacing": r} for r in ("fast27", "50", "100")]


def test_upsample_inpainting_keeps_the_known_pixels_exactly(upsample_inpaint_pipe):
    for region in ("shape", "rectangle"):
        results = evaluate_upsample_inpainting(upsample_inpaint_pipe, region, num_samples=2, limit=2)
        assert [r.name for r in results] == [f"{region} region, bicubic in the mask (baseline)", f"{region} region"]
        for result in results:
            assert result.extra["kept_exact"] == 1.0 and result.extra["kept_max_diff"] == 0, result
            assert np.isfinite(result.extra["psnr_db"])


def test_stage_functions_refuse_the_wrong_pipeline(inpaint_pipe, upsample_pipe, upsample_inpaint_pipe):
    with pytest.raises(ValueError, match="'upsample' pipeline"):
        evaluate_upsampler(upsample_inpaint_pipe, limit=1)
    with pytest.raises(ValueError, match="'upsample-inpaint' pipeline"):
        evaluate_upsample_inpainting(upsample_pipe, limit=1)
    with pytest.raises(ValueError, match="'base-inpaint' pipeline"):
        evaluate_inpainting(upsample_pipe, limit=1)
    with pytest.raises(ValueError, match="'base' pipeline"):
        evaluate_clip_guidance(inpaint_pipe, limit=1)


def tiny_clip_components():
    from diffusers_glide import GlideCLIPImageEncoder, GlideCLIPTextEncoder

    torch.manual_seed(1)
    image_encoder = GlideCLIPImageEncoder(
        image_size=8, patch_size=4, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, projection_dim=8
    )
    text_encoder = GlideCLIPTextEncoder(
        vocab_size=49408, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, projection_dim=8
    )
    return {
        "clip_image_encoder": image_encoder.eval(),
        "clip_text_encoder": text_encoder.eval(),
        "clip_tokenizer": clip_tokenizer(),
    }


def test_clip_guidance_evaluation_runs():
    pipe = shapes_pipeline("base", **tiny_clip_components())
    results = evaluate_clip_guidance(pipe, (3.0, 50.0), guidance_scale=3.0, num_samples=1, limit=2)
    assert [r.name for r in results] == [
        "unconditional (empty prompt)",
        "CLIP guidance 3 (empty prompt)",
        "CLIP guidance 50 (empty prompt)",
        "classifier-free guidance 3",
        "classifier-free guidance 3 + CLIP guidance 3",
        "classifier-free guidance 3 + CLIP guidance 50",
    ]
    assert [r.guidance_scale for r in results] == [1.0, 1.0, 1.0, 3.0, 3.0, 3.0]
    assert all(r.num_samples == 2 and 0 <= r.accuracy <= 1 for r in results)
    with pytest.raises(ValueError, match="load_clip_guidance"):
        evaluate_clip_guidance(shapes_pipeline("base"), limit=1)


# ---------------------------------------------------------------------------------------------------------------
# Command line


def test_command_line_tasks(tmp_path, capsys, inpaint_pipe, upsample_pipe):
    inpaint_pipe.save_pretrained(tmp_path / "inpaint")
    upsample_pipe.save_pretrained(tmp_path / "upsample")
    out = tmp_path / "inpaint.json"
    common = ["--num_samples", "1", "--limit", "2"]
    assert main(["--task", "inpaint", "--model", str(tmp_path / "inpaint"), *common, "--output_json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| shape region, guidance 5 | 1.000 | 0 |" in table and "no guidance" in table
    rows = json.loads(out.read_text())
    assert [row["extra"]["kept_exact"] for row in rows] == [1.0, 1.0, 1.0]
    assert rows[1]["result"]["name"] == "shape region, no guidance"

    argv = ["--task", "inpaint", "--model", str(tmp_path / "inpaint"), *common, "--regions", "shape", "rectangle"]
    assert main([*argv, "--guidance_scales", "2"]) == 0
    table = capsys.readouterr().out
    assert "| shape region, guidance 2 |" in table and "| rectangle region, guidance 2 |" in table

    assert main(["--task", "upsample", "--model", str(tmp_path / "upsample"), *common, "--samplers", "dpm++-5"]) == 0
    table = capsys.readouterr().out
    assert "| bicubic | 0 |" in table and "| dpm++-5 | 5 |" in table and "ddpm-50" not in table

    for bad in (
        ["--task", "upscale"],
        ["--task", "upsample", "--samplers", "euler"],
        ["--task", "upsample", "--steps", "4"],
    ):
        with pytest.raises(SystemExit):
            main([*bad, "--model", str(tmp_path / "upsample")])
    capsys.readouterr()


def test_command_line_text_task_is_unchanged(tmp_path, capsys):
    base = shapes_pipeline("base")
    base.save_pretrained(tmp_path / "base")
    assert main(["--model", str(tmp_path / "base"), "--num_samples", "1"]) == 0  # --task text, the default
    table = capsys.readouterr().out
    assert table.startswith("| sampling |") and "| no guidance (scale 1) |" in table and "| guidance 3 |" in table
    assert "| unconditional (empty prompt) |" in table and "| 24 |" in table
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path / "base"), "--limit", "2"])


def test_command_line_clip_task(tmp_path, capsys):
    shapes_pipeline("base").save_pretrained(tmp_path / "base")
    # a base folder saved with the CLIP components: --task clip uses them; --clip loads them from a folder
    with_clip = shapes_pipeline("base", **tiny_clip_components())
    with_clip.save_pretrained(tmp_path / "clip")
    for argv in (
        ["--model", str(tmp_path / "clip")],
        ["--model", str(tmp_path / "base"), "--clip", str(tmp_path / "clip")],
    ):
        argv += ["--task", "clip", "--limit", "1", "--num_samples", "1", "--clip_guidance_scales", "2"]
        assert main(argv) == 0
        table = capsys.readouterr().out
        assert (
            "| CLIP guidance 2 (empty prompt) |" in table
            and "| classifier-free guidance 3 + CLIP guidance 2 |" in table
        )
    with pytest.raises(SystemExit):
        main(["--task", "clip", "--model", str(tmp_path / "clip"), "--guidance_scales", "1", "3"])
