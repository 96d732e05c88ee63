#!/usr/bin/env python3
"""Cost of each waveform transform of the recipe, per call, in one run.

    python benchmarks/bench_augment.py                          # CPU, batch 32
    python benchmarks/bench_augment.py --device cuda --batch 128 --reps 20

Each transform of ``recipes/VoxCeleb/SpeakerRec/hparams/tdy.yaml`` is applied
alone to a batch of ``--batch`` crops of 200 frames (32,240 samples) already
on ``--device``, as the recipe applies it (``augment_waveforms``: float32,
outside autocast), on the synthetic noises and RIRs of the mini corpus (8
noises of 3 s, 8 RIRs). ``AddNoise`` is timed twice: reading a batch of noise
files per call (SpeechBrain's ``AddNoise(csv_file=...)``, what the recipe did
before) and cropping them from memory (``NoiseBank``, what it does now). The
configured ``Augmenter`` draws 1-2 of the 5 transforms with probability 0.8:
its median and mean over the calls are shown. Variants are interleaved and
medians taken, so that the noise of a shared machine hits them alike.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from bench_tdy import _sync, interleaved_times  # noqa: E402

from speechbrain_tdy.dataio.augment import augment_waveforms  # noqa: E402
from speechbrain_tdy.dataio.audio import crop_samples  # noqa: E402
from speechbrain_tdy.dataio.augmentation_files import folder_to_csv, write_synthetic_noise_and_rirs  # noqa: E402

TRANSFORMS = ["add_noise", "add_reverb", "drop_freq", "drop_chunk", "speed_perturb"]


def recipe_augmentation(workdir):
    """tdy.yaml's hparams on synthetic noise and RIR folders, with their CSV files written."""
    from hyperpyyaml import load_hyperpyyaml

    write_synthetic_noise_and_rirs(workdir)
    with open(os.path.join(ROOT, "recipes", "VoxCeleb", "SpeakerRec", "hparams", "tdy.yaml"), encoding="utf-8") as f:
        # (a narrow model: the file builds one, and only its transforms are used)
        hparams = load_hyperpyyaml(f, {"data_folder": workdir, "output_folder": workdir, "channels": [4, 4, 4, 4]})
    for folder, csv_file in (("noise_folder", "noise_annotation"), ("rir_folder", "rir_annotation")):
        folder_to_csv(hparams[folder], hparams[csv_file])
    return hparams


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from speechbrain.augment.augmenter import Augmenter
    from speechbrain.augment.time_domain import AddNoise

    hparams = recipe_augmentation(tempfile.mkdtemp(prefix="bench_augment_"))
    wavs = 0.1 * torch.randn(args.batch, crop_samples(200), device=device)
    lens = torch.ones(args.batch, device=device)
    files_per_call = AddNoise(csv_file=hparams["noise_annotation"], snr_low=0, snr_high=15)
    transforms = {"add_noise (files per call, before)": files_per_call}
    transforms.update({name: hparams[name] for name in TRANSFORMS})
    transforms["add_noise (NoiseBank)"] = transforms.pop("add_noise")
    calls = {name: (lambda a=Augmenter(augmentations=[t]): augment_waveforms(a, wavs, lens))
             for name, t in transforms.items()}

    configured_times = []

    def configured():
        _sync(device)
        start = time.perf_counter()
        augment_waveforms(hparams["wav_augment"], wavs, lens)
        _sync(device)
        configured_times.append(time.perf_counter() - start)

    calls["Augmenter as configured"] = configured
    times = interleaved_times(calls, args.reps, device=device)
    configured_times = configured_times[1:]  # without the warm-up call
    times["Augmenter as configured"] = statistics.median(configured_times)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, batch {args.batch} x "
          f"{crop_samples(200)} samples, median of {args.reps} calls, ms per call:")
    for name, seconds in times.items():
        print(f"  {name:36s} {1000 * seconds:8.1f}")
    mean_ms = 1000 * statistics.mean(configured_times)
    ratio = times["add_noise (files per call, before)"] / times["add_noise (NoiseBank)"]
    print(f"  Augmenter as configured: mean {mean_ms:.1f} ms over {len(configured_times)} calls")
    print(f"  add_noise files-per-call / NoiseBank: {ratio:.1f}x")
    results = dict(device=str(device), batch=args.batch, threads=torch.get_num_threads(), reps=args.reps,
                   ms={name: 1000 * s for name, s in times.items()}, augmenter_mean_ms=mean_ms, add_noise_ratio=ratio)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as stream:
            json.dump(results, stream, indent=1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
