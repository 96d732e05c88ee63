#!/usr/bin/env python3
"""Throughput of ``python -m speechbrain_tdy.embed``: batched against one file at a time.

    OMP_NUM_THREADS=2 python benchmarks/bench_embed.py MODEL [--files 64] [--reps 2]

Both ways embed the same files (durations spread evenly over 2-8 s) with the
model folder MODEL, a trained one (e.g. the demo's ``exported_model``,
TDY-ResNet-34 x0.25): a TDY-ResNet-34 with random weights is chaotic in
float32, so the two ways' embeddings of it differ by about 1e-2 although
they agree to 1e-10 in float64. "single" calls ``TDYSpeakerRecognition.embed_file`` on each
file in turn; "batched" runs :func:`speechbrain_tdy.embedding.batch.embed_utterances`
(DataLoader workers decode, batches of similar durations) into a fresh
output. Repeats are interleaved and the median taken. Prints files per
second, the ratio, how long the batched run waited for audio, and the largest
difference between the two ways' embeddings. The last line is JSON.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechbrain_tdy.embedding.batch import embed_utterances
from speechbrain_tdy.storage.embeddings_file import read_embeddings
from speechbrain_tdy.dataio.inputs import read_inputs
from speechbrain_tdy.inference import TDYSpeakerRecognition


def write_files(folder, count, shortest=2.0, longest=8.0, seed=0):
    """``count`` 16-kHz wav files of noisy harmonic signals, durations spread evenly."""
    rng = np.random.default_rng(seed)
    for i, seconds in enumerate(np.linspace(shortest, longest, count)):
        t = np.arange(int(seconds * 16000)) / 16000
        signal = sum(np.sin(2 * np.pi * k * rng.uniform(90, 250) * t) / k for k in range(1, 8))
        sf.write(folder / f"{i:04d}.wav", (0.05 * signal + 0.01 * rng.standard_normal(t.shape)).astype(np.float32),
                 16000, subtype="PCM_16")
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a trained model folder")
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_embed_"))
    model = TDYSpeakerRecognition.from_hparams(source=args.model, run_opts={"device": "cpu"})
    (work / "audio").mkdir()
    utterances = read_inputs(write_files(work / "audio", args.files))
    seconds = sum(sf.info(u.path).duration for u in utterances)

    times = {"single": [], "batched": []}
    waits = []
    for rep in range(args.reps):
        start = time.perf_counter()
        single = {u.id: model.embed_file(u.path).numpy() for u in utterances}
        times["single"].append(time.perf_counter() - start)
        out = work / f"batched{rep}.npz"
        start = time.perf_counter()
        summary = embed_utterances(model, utterances, out, args.batch_size, args.num_workers, progress=False)
        times["batched"].append(time.perf_counter() - start)
        waits.append(summary.loader_wait_seconds)
    batched = read_embeddings(out)
    difference = max(float(np.abs(batched[key] - value).max()) for key, value in single.items())
    median = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "files": len(utterances), "audio_seconds": round(seconds, 1), "threads": args.threads,
        "batch_size": args.batch_size, "num_workers": args.num_workers,
        "single_files_per_s": round(len(utterances) / median["single"], 2),
        "batched_files_per_s": round(len(utterances) / median["batched"], 2),
        "batched_over_single": round(median["single"] / median["batched"], 2),
        "batched_waiting_for_audio_s": round(statistics.median(waits), 2),
        "batched_total_s": round(median["batched"], 2),
        "max_abs_difference": difference,
    }
    print(f"{len(utterances)} files, {seconds:.0f} s of audio, {args.threads} threads, batch {args.batch_size}, "
          f"{args.num_workers} decoding worker(s)")
    print(f"one file at a time: {result['single_files_per_s']} files/s; batched: {result['batched_files_per_s']} "
          f"files/s; ratio {result['batched_over_single']}x")
    print(f"batched run waited {result['batched_waiting_for_audio_s']} s of {result['batched_total_s']} s for audio; "
          f"max abs difference between the two ways' embeddings {difference:.1e}")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
