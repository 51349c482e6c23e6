import numpy as np
import pytest
import torch

from diffusers_glide.shapes import (
    COLORS,
    HELD_OUT_COMBINATIONS,
    POSITIONS,
    SHAPES,
    ShapesDataset,
    caption_vocabulary,
    combinations_for_split,
    scene_from_caption,
)
from diffusers_glide.shapes.dataset import ShapeScene, render_scene
from diffusers_glide.shapes.scoring import evaluation_scenes, read_image, score_image


def test_items_are_reproducible_images_with_their_captions():
    dataset = ShapesDataset(50, resolution=32, seed=1)
    first, again = dataset[7], ShapesDataset(50, resolution=32, seed=1)[7]
    assert torch.equal(first["pixel_values"], again["pixel_values"]) and first["caption"] == again["caption"]
    assert not torch.equal(first["pixel_values"], ShapesDataset(50, resolution=32, seed=2)[7]["pixel_values"])
    assert first["pixel_values"].shape == (3, 32, 32)
    assert -1 <= first["pixel_values"].min() and first["pixel_values"].max() <= 1
    scene = first["scene"]
    assert first["caption"].startswith(f"a {scene.color} {scene.shape}")
    assert f"{scene.shape} on a {scene.background} background" in first["caption"]
    assert first["caption"].endswith(scene.position or "background")
    with pytest.raises(IndexError):
        dataset[50]


def test_held_out_combinations_never_appear_in_training_but_their_parts_do():
    train = combinations_for_split("train")
    assert not set(HELD_OUT_COMBINATIONS) & set(train)
    assert len(train) + len(HELD_OUT_COMBINATIONS) == len(combinations_for_split("all")) == 6 * 3 * 5
    for color, shape, background in HELD_OUT_COMBINATIONS:
        assert any(c == color and s == shape for c, s, _ in train)
        assert any(c == color and b == background for c, _, b in train)
        assert any(s == shape and b == background for _, s, b in train)
    scenes = [ShapesDataset(2000, split="train").scene(i) for i in range(2000)]
    assert not {(s.color, s.shape, s.background) for s in scenes} & set(HELD_OUT_COMBINATIONS)
    named = [s for s in scenes if s.position]
    assert 0.4 < len(named) / len(scenes) < 0.6
    assert {s.position for s in named} == set(POSITIONS)


def test_vocabulary_covers_every_caption():
    vocabulary = set(caption_vocabulary())
    dataset = ShapesDataset(300, split="all")
    assert all(set(dataset.scene(i).caption.split()) <= vocabulary for i in range(300))
    assert set(COLORS) | set(SHAPES) <= vocabulary


def test_scorer_reads_drawn_scenes():
    # ground-truth renders at the model's size, quantised to 8 bits like generated PNGs
    dataset = ShapesDataset(400, resolution=32, split="all", seed=5)
    results = []
    for i in range(len(dataset)):
        item = dataset[i]
        pixels = (item["pixel_values"].permute(1, 2, 0).numpy() + 1) / 2
        results.append(score_image(np.round(pixels * 255) / 255, item["scene"]))
    accuracy = np.mean([np.mean(list(r.values())) for r in results])
    assert accuracy >= 0.995, accuracy


def test_scorer_on_hand_made_images():
    image = np.zeros((32, 32, 3), dtype=np.float32)
    image[:] = np.array(COLORS["blue"]) / 255
    assert read_image(image).color is None  # no shape at all
    image[4:14, 11:21] = np.array(COLORS["red"]) / 255  # a square at the top
    reading = read_image(image)
    assert (reading.background, reading.color, reading.shape, reading.position) == (
        "blue",
        "red",
        "square",
        "at the top",
    )
    scene = ShapeScene("red", "circle", "blue", "on the right", (0.7, 0.5), 0.18)
    assert score_image(image, scene) == {"background": True, "color": True, "shape": False, "position": False}
    with pytest.raises(ValueError, match=r"Expected an RGB image of shape \(H, W, 3\)"):
        read_image(np.zeros((32, 32)))


def test_held_out_evaluation_prompts():
    scenes = evaluation_scenes()
    assert len(scenes) == 2 * len(HELD_OUT_COMBINATIONS)
    seen = evaluation_scenes("train")
    assert len(seen) == len(scenes) and not {(s.color, s.shape, s.background) for s in seen} & set(
        HELD_OUT_COMBINATIONS
    )
    assert all((s.color, s.shape, s.background) in HELD_OUT_COMBINATIONS for s in scenes)
    assert scenes[0].caption == "a red circle on a blue background"
    assert scenes[1].caption == "a red circle on a blue background in the middle"
    rendered = render_scene(scenes[3], 32)
    assert rendered.shape == (3, 32, 32)


def test_scene_from_caption_reads_back_every_caption():
    for color in COLORS:
        for shape in SHAPES:
            for background in COLORS:
                for position in [None, *POSITIONS]:
                    center = POSITIONS[position or "in the middle"]
                    scene = ShapeScene(color, shape, background, position, center, 0.18)
                    assert scene_from_caption(scene.caption) == scene
    # case and surrounding whitespace do not matter
    expected = ShapeScene("red", "circle", "blue", "on the left", POSITIONS["on the left"], 0.18)
    assert scene_from_caption("  A Red CIRCLE on a Blue background ON THE LEFT\n") == expected
    # the dataset's own captions (jittered centres, other radii) give back their words
    for item in (ShapesDataset(20, seed=3)[i] for i in range(20)):
        read = scene_from_caption(item["caption"])
        scene = item["scene"]
        assert (read.color, read.shape, read.background, read.position) == (
            scene.color,
            scene.shape,
            scene.background,
            scene.position,
        )


@pytest.mark.parametrize(
    "caption",
    [
        "",
        "a red circle",
        "a red circle on a blue",
        "a purple circle on a blue background",
        "a red hexagon on a blue background",
        "a red circle on a purple background",
        "a red circle on a blue background in the corner",
        "a red circle on a blue background on the",
        "a red circle on a blue background on the left please",
        "the red circle on a blue background",
        "a red circle in a blue background",
        "a red circle on a blue sky",
        "a red  circle on a blue background",
        "an oil painting of a corgi",
    ],
)
def test_scene_from_caption_refuses_other_text(caption):
    with pytest.raises(ValueError, match="Cannot read the caption") as error:
        scene_from_caption(caption)
    assert repr(caption) in str(error.value)
