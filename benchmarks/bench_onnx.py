#!/usr/bin/env python3
"""Latency of the ONNX export under onnxruntime against PyTorch eager.

    OMP_NUM_THREADS=2 python benchmarks/bench_onnx.py MODEL [--reps 5]

Exports the model folder MODEL, a trained one (a TDY-ResNet-34 with random
weights is chaotic in float32: its export fails the onnxruntime check, see
``bench_embed.py``), with ``speechbrain-tdy onnx``, then times
``TDYSpeakerRecognition.encode_batch`` with the PyTorch backend ("eager") and
the ONNX one ("onnxruntime"), both on ``--threads`` threads, on one 20-s
utterance and on a batch of 16 x 4 s, interleaved, medians of ``--reps``.
Prints milliseconds, the ratio and the largest difference between the two
backends' embeddings. The last line is JSON.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from speechbrain_tdy.inference import TDYSpeakerRecognition
from speechbrain_tdy.cli.onnx_export import main as export

CASES = {"one 20-s utterance": (1, 20.0), "batch of 16 x 4 s": (16, 4.0)}


def signals(batch, seconds, seed=0):
    """(batch, seconds * 16000) harmonic signals with noise."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 16000)) / 16000
    pitch = 90 + 160 * torch.rand(batch, 1, generator=generator)
    harmonics = sum(torch.sin(2 * torch.pi * k * pitch * t) / k for k in range(1, 8))
    return 0.05 * harmonics + 0.01 * torch.randn(batch, t.shape[0], generator=generator)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a trained model folder")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = Path(args.model)
    onnx_file = Path(tempfile.mkdtemp(prefix="bench_onnx_")) / "embedding_model.onnx"
    export([str(folder), str(onnx_file)])
    backends = {
        "eager": TDYSpeakerRecognition.from_hparams(source=str(folder), run_opts={"device": "cpu"}),
        "onnxruntime": TDYSpeakerRecognition.from_hparams(source=str(folder), run_opts={"device": "cpu"},
                                                          backend="onnx", onnx_file=onnx_file),
    }
    result = {"threads": args.threads, "reps": args.reps}
    for case, (batch, seconds) in CASES.items():
        wavs = signals(batch, seconds)
        outputs = {name: model.encode_batch(wavs) for name, model in backends.items()}  # warm-up
        times = {name: [] for name in backends}
        for _ in range(args.reps):
            for name, model in backends.items():
                start = time.perf_counter()
                model.encode_batch(wavs)
                times[name].append(1000 * (time.perf_counter() - start))
        median = {name: statistics.median(values) for name, values in times.items()}
        difference = float((outputs["eager"] - outputs["onnxruntime"]).abs().max())
        result[case] = {"eager_ms": round(median["eager"], 1), "onnxruntime_ms": round(median["onnxruntime"], 1),
                        "eager_over_onnxruntime": round(median["eager"] / median["onnxruntime"], 2),
                        "max_abs_difference": difference}
        print(f"{case}: eager {median['eager']:.1f} ms, onnxruntime {median['onnxruntime']:.1f} ms, "
              f"eager / onnxruntime {median['eager'] / median['onnxruntime']:.2f}, max abs difference {difference:.1e}")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
