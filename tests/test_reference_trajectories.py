"""Replay the reference's recorded sampling loops through our tokenizer, models and scheduler.

Each file records the initial noise, every per-step noise draw and x after every step of OpenAI's
`p_sample_loop` / `ddim_sample_loop`. We run the same loop (classifier-free guidance and the inpainting
x0 replacement written out here as the notebooks do them) and compare every step. Only the conditional
rows are tracked: the reference's unconditional rows follow a path that never influences the samples.
"""

import pytest
import torch
from conftest import load_reference, max_abs_diff

from diffusers_glide import (
    GlideCLIPImageEncoder,
    GlideCLIPTextEncoder,
    GlideScheduler,
    GlideTextEncoder,
    GlideUNet2DModel,
    build_clip_tokenizer,
    build_glide_tokenizer,
    tokenize_clip_prompts,
    tokenize_prompts,
)
from diffusers_glide.pipelines.clip_guidance import clip_guidance_gradient, normalize_embeddings

TRAJECTORIES = [
    "base.sample_p10",
    "base.sample_ddim10",
    "upsample.sample_ddim_fast27",
    "base-inpaint.sample_p10",
    "upsample-inpaint.sample_p_fast27",
    "upsample-inpaint.sample_ddim_fast27",
    # CLIP guidance: our noised CLIP's gradient goes through the scheduler's `guidance_gradient` hook.
    "base.sample_clip",
]
FINAL_TOLERANCE = 1e-3


@pytest.mark.parametrize("name", TRAJECTORIES)
def test_trajectory_replays_step_by_step(converted_folders, converted_clip_folder, name):
    ref, info = load_reference(name)
    spec = info["spec"]
    folder = converted_folders[spec["model_type"]]
    unet = GlideUNet2DModel.from_pretrained(folder, subfolder="unet")
    text_encoder = GlideTextEncoder.from_pretrained(folder, subfolder="text_encoder")
    tokenizer = build_glide_tokenizer(folder / "tokenizer")
    is_ddim = spec["sampler"] == "ddim_sample_loop"
    scheduler = GlideScheduler.from_pretrained(folder, subfolder="scheduler", sampler="ddim" if is_ddim else "ddpm")

    timesteps = scheduler.set_timesteps(respacing=spec["respacing"])
    assert timesteps.tolist() == ref["timesteps"].tolist()

    # The recorded prompts through our tokenizer give exactly the recorded model tokens.
    tokens, mask = tokenize_prompts(tokenizer, spec["text_prompts"], spec["text_ctx"])
    assert torch.equal(tokens, ref["tokens"]) and torch.equal(mask, ref["mask"])

    batch = spec["batch_size"]
    guided = spec["guidance"] == "classifier_free"
    with torch.no_grad():
        text_states = text_encoder(tokens, attention_mask=mask).last_hidden_state  # once per loop
    conditioning = {}
    if "low_res" in ref:
        conditioning["low_res"] = ref["low_res"]
    replace_known = None
    if "inpaint_image" in ref:
        conditioning.update(inpaint_image=ref["inpaint_image"], inpaint_mask=ref["inpaint_mask"])
        known, keep = ref["inpaint_image"][:batch], ref["inpaint_mask"][:batch]

        def replace_known(x0):
            return x0 * (1 - keep) + known * keep

    def model_output(x, t):
        model_input = torch.cat([x, x]) if guided else x
        out = unet(model_input, t, text_states, **conditioning).sample
        if not guided:
            return out
        eps_cond, eps_uncond = out[:batch, :3], out[batch:, :3]
        eps = eps_uncond + spec["guidance_scale"] * (eps_cond - eps_uncond)
        return torch.cat([eps, out[:batch, 3:]], dim=1)  # variance from the conditional rows

    clip_gradient = None
    if spec["guidance"] == "clip":
        clip_image_encoder = GlideCLIPImageEncoder.from_pretrained(
            converted_clip_folder, subfolder="clip_image_encoder"
        )
        clip_text_encoder = GlideCLIPTextEncoder.from_pretrained(converted_clip_folder, subfolder="clip_text_encoder")
        clip_tokens, clip_mask = tokenize_clip_prompts(
            build_clip_tokenizer(converted_clip_folder / "clip_tokenizer"), spec["prompts"]
        )
        assert torch.equal(clip_tokens, ref["clip_tokens"]) and torch.equal(clip_mask.sum(1), ref["clip_lens"])
        with torch.no_grad():
            clip_text = normalize_embeddings(clip_text_encoder(clip_tokens, attention_mask=clip_mask).text_embeds)

        def clip_gradient(x, t):
            return clip_guidance_gradient(clip_image_encoder, x, t, clip_text, spec["guidance_scale"])

    x = ref["init_noise"][:batch]
    step_diffs = []
    with torch.no_grad():
        for k, t in enumerate(timesteps):
            noise = None if is_ddim else ref["step_noise"][k][:batch]
            gradient = clip_gradient(x, t) if clip_gradient is not None else None
            out = scheduler.step(
                model_output(x, t),
                t,
                x,
                variance_noise=noise,
                pred_original_sample_fn=replace_known,
                guidance_gradient=gradient,
            )
            x = out.prev_sample
            step_diffs.append(max_abs_diff(x, ref["trajectory"][k][:batch]))
            if "pred_xstart" in ref:
                x0_diff = max_abs_diff(out.pred_original_sample, ref["pred_xstart"][k][:batch])
                assert x0_diff <= FINAL_TOLERANCE, f"{name}: pred_xstart diverges at step {k} (t={t}): {x0_diff}"

    report = ", ".join(
        f"{k}(t={t}): {d:.2e}" for k, (t, d) in enumerate(zip(timesteps.tolist(), step_diffs, strict=True))
    )
    diverged = [k for k, d in enumerate(step_diffs) if d > FINAL_TOLERANCE]
    assert not diverged, f"{name}: first diverging step {diverged[0]}; max abs diff per step: {report}"
    final = max_abs_diff(x, ref["samples"])
    assert final <= FINAL_TOLERANCE, f"{name}: samples max abs diff {final}; per step: {report}"
