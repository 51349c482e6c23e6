"""The editing evaluation (img2img strength sweep, sketch-guided inpainting) on tiny random pipelines: the cases,
the measures and the command line are checked (the images are meaningless); the trained models' numbers are in
test_embedded_stages.py and docs/pipelines.md."""

import json

import pytest
import torch
from conftest import tiny_components, tiny_text_encoder
from test_stage_evaluation import shapes_pipeline

from diffusers_glide import GlideImg2ImgPipeline
from diffusers_glide.shapes.dataset import SHAPES, caption_vocabulary, render_scene, shape_mask
from diffusers_glide.shapes.editing_evaluation import (
    evaluate_img2img,
    evaluate_sketch_inpainting,
    recolored_scene,
    sketch_cases,
)
from diffusers_glide.shapes.evaluate import main
from diffusers_glide.shapes.scoring import evaluation_scenes, foreground_mask, read_image
from diffusers_glide.shapes.stage_evaluation import inpainting_cases
from diffusers_glide.tokenization import build_word_level_tokenizer


@pytest.fixture(scope="module")
def img2img_pipe():
    components = tiny_components("base")
    tokenizer = build_word_level_tokenizer(caption_vocabulary(), context_length=16)
    components.update(
        tokenizer=tokenizer, text_encoder=tiny_text_encoder(vocab_size=len(tokenizer), context_length=16)
    )
    pipe = GlideImg2ImgPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_recoloured_scenes_swap_the_two_colours_only():
    scene = evaluation_scenes()[0]
    assert scene.caption == "a red circle on a blue background"
    source = recolored_scene(scene)
    assert source.caption == "a blue circle on a red background"
    assert (source.shape, source.center, source.radius, source.position) == (
        scene.shape,
        scene.center,
        scene.radius,
        scene.position,
    )


def test_foreground_mask_is_the_scorers_shape():
    scene = evaluation_scenes()[3]
    image = render_scene(scene, 32).permute(1, 2, 0).numpy()
    truth = shape_mask(scene, 32).numpy()
    mask = foreground_mask(image)
    assert mask[truth == 1].all() and not mask[truth == 0].any()  # partial edge pixels are either
    assert read_image(image).shape == scene.shape


def test_sketch_cases_paint_a_blob_of_the_third_shape_in_the_target_colour():
    cases = sketch_cases(32, limit=6)
    plain = inpainting_cases(32, "rectangle", limit=6)
    for case, edit in zip(cases, plain, strict=True):
        assert case.sketch_shape not in (case.original.shape, case.target.shape) and case.sketch_shape in SHAPES
        keep = case.mask == 0
        assert torch.equal(case.image[:, keep], edit.image[:, keep])  # outside the mask: the original
        # the old shape is painted over: the scorer sees the blob, in the target's colour and the third shape
        reading = read_image(case.image.permute(1, 2, 0).numpy())
        assert (reading.color, reading.shape) == (case.target.color, case.sketch_shape)
        assert case.caption == case.target.caption


def test_img2img_rows_and_measures(img2img_pipe):
    results = evaluate_img2img(img2img_pipe, strengths=(0.5, 1.0), limit=3, num_inference_steps=4)
    assert [r.name for r in results] == ["unchanged input (strength 0)", "strength 0.5", "strength 1"]
    unchanged = results[0]
    # the input is the scene with its colours swapped: its place is the scene's exactly, its colours never right
    assert unchanged.extra["iou"] == pytest.approx(1.0, abs=0.05) and unchanged.extra["place_kept"] == 1.0
    assert unchanged.extra["colors"] == 0.0 and unchanged.extra["distance"] == 0.0
    assert results[1].extra["strength"] == 0.5 and results[1].result.num_samples == 3
    for row in results[1:]:
        assert 0 <= row.extra["iou"] <= 1 and row.extra["distance"] > 0


def test_img2img_does_not_depend_on_the_batch(img2img_pipe):
    whole = evaluate_img2img(img2img_pipe, strengths=(0.75,), limit=3, num_inference_steps=4)
    split = evaluate_img2img(img2img_pipe, strengths=(0.75,), limit=3, num_inference_steps=4, batch_size=1)
    assert whole[1].extra == split[1].extra


def test_sketch_rows_keep_the_pixels_exactly():
    pipe = shapes_pipeline("base-inpaint")
    results = evaluate_sketch_inpainting(pipe, strengths=(0.5, 1.0), limit=3, num_inference_steps=4)
    assert [r.name for r in results] == ["the sketches (no model)", "strength 0.5", "strength 1 (plain inpainting)"]
    sketches = results[0]
    # the sketch shows the target's colour (its shapes are checked at 32x32 above: 8x8 is too coarse to read them)
    assert sketches.result.per_attribute["color"] == 1.0
    for row in results:
        assert row.extra["kept_exact"] == 1.0 and row.extra["kept_max_diff"] == 0


def test_editing_functions_refuse_the_wrong_pipeline(img2img_pipe):
    with pytest.raises(ValueError, match="evaluate_sketch_inpainting needs a GLIDE 'base-inpaint' pipeline"):
        evaluate_sketch_inpainting(img2img_pipe, limit=1)
    with pytest.raises(ValueError, match="evaluate_img2img needs a GLIDE 'base' pipeline"):
        evaluate_img2img(shapes_pipeline("base-inpaint"), limit=1)


def test_command_line_editing_tasks(tmp_path, capsys, img2img_pipe):
    img2img_pipe.save_pretrained(tmp_path / "base")
    shapes_pipeline("base-inpaint").save_pretrained(tmp_path / "inpaint")
    common = ["--num_samples", "1", "--limit", "2", "--steps", "4"]
    out = tmp_path / "img2img.json"
    assert main(["--task", "img2img", "--model", str(tmp_path / "base"), "--strengths", "0.6", *common,
                 "--output_json", str(out)]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "| strength 0.6 |" in table and "colors" in table and "place_kept" in table
    rows = json.loads(out.read_text())
    assert [row["result"]["name"] for row in rows] == ["unchanged input (strength 0)", "strength 0.6"]
    assert rows[1]["extra"]["strength"] == 0.6
    assert main(["--task", "sketch", "--model", str(tmp_path / "inpaint"), "--strengths", "0.7", "1", *common]) == 0
    assert "shape_and_color" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--task", "inpaint", "--strengths", "0.5"])
    assert "--strengths is only available for --task img2img and --task sketch" in capsys.readouterr().err
