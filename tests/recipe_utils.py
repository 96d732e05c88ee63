"""Helpers to run the recipe's scripts as a user would, on a tiny corpus."""
import os
import subprocess
import sys
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.time_domain import SpeedPerturb

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "VoxCeleb" / "SpeakerRec"
TOOLS = Path(__file__).resolve().parent.parent / "tools"  # the mini corpus and the demo

# Small enough for seconds per epoch on 2 CPU cores.
TINY = {
    "n_mels": 24,
    "channels": [8, 8, 8, 16],
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


TRANSFORMS = ["add_noise", "add_reverb", "drop_freq", "drop_chunk", "speed_perturb"]  # the recipes' hparams keys


def recipe_brain(monkeypatch, corpus, output, *run_args, hparams="tdy_resnet34_quarter.yaml", **overrides):
    """train.py's SpeakerBrain built in this process on the tiny corpus with
    TINY settings, ``--key=value`` overrides and run options (``"--precision=bf16"``),
    left as ``Brain.fit`` leaves it before calling ``fit_batch`` on the first
    batch of epoch 1; and that batch."""
    monkeypatch.syspath_prepend(str(RECIPE))
    import train

    overrides = dict(TINY, data_folder=corpus, output_folder=output, **overrides)
    argv = [str(RECIPE / "hparams" / hparams), *[f"--{k}={v}" for k, v in overrides.items()], *run_args]
    brain, fit_kwargs = train.setup(argv)
    loader = brain.make_dataloader(fit_kwargs["train_set"], sb.Stage.TRAIN, **fit_kwargs["train_loader_kwargs"])
    brain.on_fit_start()
    brain.on_stage_start(sb.Stage.TRAIN, epoch=1)
    brain.modules.train()
    brain.step = 1  # Brain.fit counts the batch before fit_batch (the temperature of step 1)
    return brain, next(iter(loader))


def forced_augmenter(brain, transform):
    """An Augmenter that always applies the recipe's ``transform`` (a TRANSFORMS key)
    and nothing else; speed perturbation at 105%, never the identity 100%."""
    if transform == "speed_perturb":
        return Augmenter(augmentations=[SpeedPerturb(brain.hparams.sample_rate, speeds=[105])])
    return Augmenter(augmentations=[getattr(brain.hparams, transform)])


def augmented_step(brain, batch, augmenter):
    """One training step (``brain.fit_batch``) with ``augmenter``: its loss, the
    clean waveforms (batch, samples) and the waveforms the front end received."""
    configured, brain.hparams.wav_augment = brain.hparams.wav_augment, augmenter
    clean, seen = batch.sig.data.clone(), []
    hook = brain.modules.compute_features.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        loss = brain.fit_batch(batch)
    finally:
        hook.remove()
        brain.hparams.wav_augment = configured
    assert len(seen) == 1, "one pass through the front end"
    return loss, clean.to(seen[0].device), seen[0]


def check_forced_transform(brain, batch, transform):
    """One training step with ``transform`` alone: a finite loss and float32
    waveforms that the transform changed, which it returns."""
    loss, clean, augmented = augmented_step(brain, batch, forced_augmenter(brain, transform))
    assert torch.isfinite(loss)
    assert augmented.dtype == torch.float32
    assert augmented.shape != clean.shape or not torch.equal(augmented, clean), "the transform was applied"
    return augmented


def check_configured_augmenter(brain, batch, steps):
    """``steps`` training steps with the recipe's Augmenter (it draws 1-2 of
    the 5 transforms, with probability 0.8): finite losses, float32 waveforms."""
    for _ in range(steps):
        loss, _, augmented = augmented_step(brain, batch, brain.hparams.wav_augment)
        assert torch.isfinite(loss) and augmented.dtype == torch.float32


def step_gradients(brain, batch, grad_accumulation_factor):
    """Loss and parameter gradients ({name: tensor}, as the Brain's GradScaler
    leaves them) of one ``brain.fit_batch`` with this factor; no optimizer step."""
    brain.grad_accumulation_factor = grad_accumulation_factor
    brain.zero_grad(set_to_none=True)
    brain.optimizers_step = lambda: None
    try:
        loss = brain.fit_batch(batch)
    finally:
        del brain.optimizers_step  # back to the class's method
    return loss, {name: p.grad.clone() for name, p in brain.modules.named_parameters() if p.grad is not None}
