"""Two-process data-parallel training through torch.distributed (gloo on CPU), as `accelerate launch` runs it."""

import json
import os
import subprocess
import sys

from diffusers_glide import GlidePipeline

TINY = [
    "--shapes", "--num_shape_images", "16", "--train_batch_size", "2", "--resolution", "16",
    "--unet_config",
    '{"block_out_channels": [16, 32], "attention_levels": [false, true], "norm_num_groups": 8, "attention_head_dim": 16}',
    "--text_encoder_config", '{"hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1}',
    "--sample_steps", "2", "--sample_respacing", "2", "--checkpointing_steps", "2", "--no_progress_bar",
]  # fmt: skip


def test_two_processes_train_one_model(tmp_path):
    # without a GPU, accelerate joins the torchrun processes only when told to use the CPU
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "true"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        "-m", "diffusers_glide.training", "--output_dir", str(tmp_path), "--max_train_steps", "3", *TINY,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Saved the trained pipeline") == 2  # each rank reports, rank 0 writes
    # one checkpoint holding both ranks' random states, one sample grid, one pipeline
    checkpoint = tmp_path / "checkpoints" / "checkpoint-2"
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in checkpoint.iterdir()}
    assert json.loads((checkpoint / "training_state.json").read_text()) == {"global_step": 2}
    assert [p.name for p in (tmp_path / "samples").iterdir()] == ["step-0000002.png"]
    assert "2 process(es)" in (tmp_path / "pipeline" / "README.md").read_text()
    pipe = GlidePipeline.from_pretrained(tmp_path / "pipeline")
    assert pipe("a red circle", num_inference_steps=2, output_type="np").images.shape == (1, 16, 16, 3)
