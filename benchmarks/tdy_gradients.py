#!/usr/bin/env python3
"""Why TDY training can fall over as the temperature reaches 1: gradient norms
by temperature, with and without the attention's gradient to its input.

    python benchmarks/tdy_gradients.py CORPUS [--run TRAIN_OUTPUT_FOLDER] [--batch 16]

CORPUS is a mini corpus (``tools/mini_corpus.py``; the demo writes one to
``demo_output/corpus``). The model is TDY-ResNet-34 x0.25 at 24 mels with
128-d embeddings (the demo's sizes until 2026-11-27, when the numbers in
``benchmarks/README.md`` were taken), randomly initialised, or the last
checkpoint of a ``train.py`` run (``--run``). For one fixed batch of 0.8-s
crops (the demo's) and a fixed random projection of the embeddings as the
loss, it prints, at each temperature, the gradient norm of the first TDY
layer, of the last one and of all parameters, once with the attention's
gradient flowing back to its layer's input (the authors' training,
``attention_input_grad=True``) and once without (the recipe's default).
The model is in training mode (batch statistics), as in a training step.
The last line is JSON.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

from speechbrain_tdy.lobes.registry import get_architecture
from speechbrain_tdy.dataio.audio import read_segment
from speechbrain_tdy.nnet import set_attention_input_grad, set_temperature
from speechbrain_tdy.nnet.tdy_conv import tdy_layers
from speechbrain_tdy.embedding.pipeline import EmbeddingPipeline
from speechbrain_tdy.storage.run_folder import load_training_run

TEMPERATURES = (31.0, 13.0, 7.0, 3.0, 1.0)
CROP_SAMPLES = 80 * 160 + 240  # the demo's 0.8-s crops


def random_pipeline():
    """A randomly initialised TDY-ResNet-34 x0.25, 24 mels, 128-d embeddings."""
    architecture = get_architecture("tdy_resnet34_quarter")
    return EmbeddingPipeline(*architecture.build(architecture.model_values(n_mels=24, emb_dim=128)))


def first_crops(corpus, batch):
    """The first 0.8 s of the first ``batch`` training wavs of the corpus (batch, samples)."""
    test_speakers = set(json.loads((Path(corpus) / "corpus.json").read_text())["speakers"]["test"])
    wavs = [p for p in sorted((Path(corpus) / "wav").rglob("*.wav")) if p.parts[-3] not in test_speakers]
    if len(wavs) < batch:
        sys.exit(f"{corpus}: {len(wavs)} wav files, fewer than --batch {batch}")
    return torch.stack([read_segment(str(p), 0, CROP_SAMPLES) for p in wavs[:batch]])


def gradient_norms(pipeline, wavs, direction, temperature, attention_input_grad):
    """Gradient norms (first TDY layer, last TDY layer, all parameters) of one backward pass."""
    model = pipeline.embedding_model
    set_temperature(model, temperature)
    set_attention_input_grad(model, attention_input_grad)
    pipeline.zero_grad()
    (pipeline(wavs).reshape(len(wavs), -1) @ direction).sum().backward()
    layers = tdy_layers(model)

    def norm(parameters):
        return float(torch.stack([p.grad.norm() for p in parameters if p.grad is not None]).norm())

    return norm(layers[0].parameters()), norm(layers[-1].parameters()), norm(pipeline.parameters())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--run", help="a train.py output folder: its last checkpoint instead of a random model")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    pipeline = load_training_run(args.run).pipeline if args.run else random_pipeline()
    pipeline.train()
    wavs = first_crops(args.corpus, args.batch)
    with torch.no_grad():
        emb_dim = pipeline(wavs[:1]).numel()
    direction = torch.nn.functional.normalize(torch.randn(emb_dim), dim=0)

    print(f"{'temperature':>11} | {'attention input gradient on':^35} | {'off (recipe default)':^35}")
    print(f"{'':>11} | {'first':>11} {'last':>11} {'all':>11} | {'first':>11} {'last':>11} {'all':>11}")
    rows = []
    for temperature in TEMPERATURES:
        on = gradient_norms(pipeline, wavs, direction, temperature, True)
        off = gradient_norms(pipeline, wavs, direction, temperature, False)
        rows.append({"temperature": temperature, "on": on, "off": off})
        print(f"{temperature:11.0f} | " + " ".join(f"{v:11.3g}" for v in on) + " | " + " ".join(f"{v:11.3g}" for v in off))
    first, last = rows[0], rows[-1]
    print(f"growth of the first TDY layer's gradient from temperature {first['temperature']:.0f} to "
          f"{last['temperature']:.0f}: {last['on'][0] / first['on'][0]:.1f}x with the attention's input "
          f"gradient, {last['off'][0] / first['off'][0]:.1f}x without")
    print(json.dumps({"model": args.run or "random tdy_resnet34_quarter (24 mels)", "batch": args.batch, "rows": rows}))


if __name__ == "__main__":
    main()
