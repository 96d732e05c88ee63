#!/usr/bin/env python3
"""The front end on a padded batch: one batched computation against a loop over items.

    python benchmarks/bench_front_end.py [--batch 32] [--min-seconds 2] [--max-seconds 8] [--repeats 5]

``LogMelInstanceNorm`` computes a padded batch at once, each item as if alone
(reflect padding gathered at each item's end, normalisation over its own
frames). The loop is what it replaced: each item's features computed on its
own samples, one call per item. Prints the median time of each and their
ratio, measured in this run, and the largest difference between the two.
"""
import argparse
import statistics
import time

import torch

from speechbrain_tdy.lobes import LogMelInstanceNorm


def item_by_item(front_end, wavs, samples):
    """The features of each item computed alone, in a (batch, frames, n_mels) tensor."""
    feats = wavs.new_zeros(wavs.shape[0], int(front_end.num_frames(wavs.shape[1])), front_end.n_mels)
    for row, length in enumerate(samples.tolist()):
        item = front_end(wavs[row : row + 1, :length])[0]
        feats[row, : item.shape[0]] = item
    return feats


def median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--max-seconds", type=float, default=8.0)
    parser.add_argument("--n-mels", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    generator = torch.Generator().manual_seed(0)
    seconds = args.min_seconds + (args.max_seconds - args.min_seconds) * torch.rand(args.batch, generator=generator)
    samples = (seconds * 16000).long()
    wavs = 0.1 * torch.randn(args.batch, int(samples.max()), generator=generator)
    wavs *= torch.arange(wavs.shape[1]) < samples[:, None]
    lengths = samples / wavs.shape[1]
    front_end = LogMelInstanceNorm(n_mels=args.n_mels)
    batched = median_seconds(lambda: front_end(wavs, lengths), args.repeats)
    looped = median_seconds(lambda: item_by_item(front_end, wavs, samples), args.repeats)
    difference = float((front_end(wavs, lengths) - item_by_item(front_end, wavs, samples)).abs().max())
    print(f"{args.batch} items of {args.min_seconds:g}-{args.max_seconds:g} s, {args.n_mels} mels, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"batched    {batched * 1000:8.1f} ms")
    print(f"item loop  {looped * 1000:8.1f} ms")
    print(f"loop / batched: {looped / batched:.2f}x; max abs difference {difference:.1e}")


if __name__ == "__main__":
    main()
