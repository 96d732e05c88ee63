"""Helpers to run the recipe's scripts as a user would, on a tiny corpus."""
import os
import subprocess
import sys
from pathlib import Path

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "VoxCeleb" / "SpeakerRec"

# Small enough for seconds per epoch on 2 CPU cores.
TINY = {
    "n_mels": 24,
    "channels": [8, 8, 8, 16],  # a 4-channel input to a strided 1x1 channels-last conv crashes torch 2.14.1 on AVX2 CPUs
    "emb_dim": 16,
    "crop_frames": 64,
    "batch_speakers": 2,
    "n_per_speaker": 2,
    "number_of_epochs": 1,
    "num_workers": 0,
    "split_ratio": [75, 25],
}


def run_script(script, hparams, overrides, extra_args=(), launcher=(sys.executable,), check=True, timeout=600):
    """Run ``script`` of the recipe with ``--key=value`` overrides; return the CompletedProcess."""
    args = [*launcher, script, hparams, *[f"--{k}={v}" for k, v in overrides.items()], *extra_args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    result = subprocess.run(args, cwd=RECIPE, capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def train_log_lines(output_folder):
    return [line for line in (Path(output_folder) / "train_log.txt").read_text().splitlines() if line.startswith("epoch")]
