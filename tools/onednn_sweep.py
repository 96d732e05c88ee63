"""Sweep oneDNN's channels-last convolution backward on this CPU, one instruction set at a time.

PyTorch 2.14.1's oneDNN (v3.12) corrupts memory in the backward of some strided
channels-last convolutions on CPU ("double free or corruption", a process abort);
docs/onednn_channels_last.md has the details. This script measures which
configurations go wrong, so the package's guard
(:func:`speechbrain_tdy.nnet.layout.channels_last_is_safe`) can be derived and checked.

For every configuration (input channels, kernel, stride, batch) it runs
``aten.convolution_backward`` with input, weight and output gradient in
channels-last and compares the gradients with NCHW's. A configuration that
kills the process is recorded as a crash and the sweep goes on in a fresh
process; every crash is then confirmed by running that configuration alone.

    python tools/onednn_sweep.py                       # every configuration, each ISA this CPU has
    python tools/onednn_sweep.py --isa AVX2 --guarded  # only what the guard lets run channels-last

``--isa`` sets ``ONEDNN_MAX_CPU_ISA`` in the worker processes (``native``: not
set). With ``--guarded`` the exit status is 1 if any configuration the guard
allows crashes or gives wrong gradients.
"""
import argparse
import itertools
import json
import os
import subprocess
import sys

#: Instruction sets swept by default (names of ONEDNN_MAX_CPU_ISA; "native" leaves it unset).
ISAS = ("AVX2", "AVX512_CORE", "native")

#: CPU flags (/proc/cpuinfo) an instruction set needs; an ISA the CPU lacks is skipped.
ISA_FLAGS = {
    "AVX2": {"avx2", "fma"},
    "AVX512_CORE": {"avx512f", "avx512bw", "avx512vl", "avx512dq"},
    "native": set(),
}

IN_CHANNELS = range(1, 65)
KERNELS = (1, 3)
STRIDES = (1, 2)
BATCHES = (1, 2, 3, 4, 8, 16)
OUT_CHANNELS = 48  # a TDY layer's K * C_out for K = 6, C_out = 8: the shape of the first report
FREQ, TIME = 12, 30
TOLERANCE = 1e-4  # relative, float32


def configurations(guarded):
    """(in_channels, kernel, stride, batch) in sweep order; with ``guarded``
    only those the package runs channels-last."""
    configs = itertools.product(IN_CHANNELS, KERNELS, STRIDES, BATCHES)
    if not guarded:
        return list(configs)
    from speechbrain_tdy.nnet.layout import channels_last_is_safe

    return [c for c in configs if channels_last_is_safe(c[0], "cpu")]


def cpu_flags():
    """The CPU's feature flags, empty where /proc/cpuinfo cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has(isa):
    """Whether this CPU can run oneDNN's kernels for ``isa``."""
    return ISA_FLAGS[isa] <= cpu_flags()


def check(config):
    """Channels-last gradients of one configuration against NCHW's:
    the largest relative difference over the input and weight gradients."""
    import torch

    in_channels, kernel, stride, batch = config
    generator = torch.Generator().manual_seed(sum(config))
    x = torch.randn(batch, in_channels, FREQ, TIME, generator=generator)
    weight = torch.randn(OUT_CHANNELS, in_channels, kernel, kernel, generator=generator)
    out_shape = torch.nn.functional.conv2d(x, weight, stride=stride, padding=kernel // 2).shape
    grad = torch.randn(out_shape, generator=generator)

    def gradients(layout):
        return torch.ops.aten.convolution_backward(
            grad.contiguous(memory_format=layout), x.contiguous(memory_format=layout),
            weight.contiguous(memory_format=layout), None, [stride, stride], [kernel // 2] * 2, [1, 1], False,
            [0, 0], 1, [True, True, False])[:2]

    reference = gradients(torch.contiguous_format)
    channels_last = gradients(torch.channels_last)
    return max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-12)) for a, b in zip(channels_last, reference))


def work(configs, start):
    """Worker: check configurations from ``start`` on, one JSON line before and after each."""
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    for index in range(start, len(configs)):
        print(json.dumps({"start": index}), flush=True)
        print(json.dumps({"done": index, "error": check(configs[index])}), flush=True)


def run_worker(isa, args, timeout=600):
    """Run this script as a worker under ``isa``; returns (return code, JSON lines)."""
    env = dict(os.environ)
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa != "native":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, lines


def sweep(isa, guarded):
    """Check every configuration under ``isa``; returns {config: "crash" or relative error}."""
    configs = configurations(guarded)
    results, start = {}, 0
    while start < len(configs):
        code, lines = run_worker(isa, ["--start", str(start)] + (["--guarded"] if guarded else []))
        started = None
        for line in lines:
            if "done" in line:
                results[configs[line["done"]]] = line["error"]
            else:
                started = line["start"]
        if code == 0:
            break
        if started is None:
            raise RuntimeError(f"the worker under {isa} exited with {code} before its first configuration")
        results[configs[started]] = "crash"
        start = started + 1
    for config, result in results.items():  # a corruption may abort later than where it happened
        if result == "crash":
            code, _ = run_worker(isa, ["--only", json.dumps(config)])
            if code == 0:
                results[config] = "crash (not alone)"
    return results


def failures(results):
    """The configurations that crashed or whose gradients differ."""
    return {config: result for config, result in results.items()
            if isinstance(result, str) or result > TOLERANCE}


#: How a failed configuration is marked in the summary.
MARKS = {"crash": "!", "crash (not alone)": "*"}


def summary(failed):
    """One line per (kernel, stride): each input channel count that failed,
    with its batches marked ! (crashed alone), * (crashed only after other
    configurations) or ~ (wrong gradients)."""
    lines = []
    for kernel, stride in itertools.product(KERNELS, STRIDES):
        channels = {}
        for (c, k, s, b), result in sorted(failed.items()):
            if (k, s) == (kernel, stride):
                channels.setdefault(c, []).append(f"{b}{MARKS.get(result, '~')}")
        listed = "; ".join(f"{c} channels: batch {' '.join(batches)}" for c, batches in channels.items())
        lines.append(f"  kernel {kernel}, stride {stride}: {listed or 'none'}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--isa", action="append", choices=ISAS, help="instruction set(s) to sweep (default: all)")
    parser.add_argument("--guarded", action="store_true", help="only configurations the package runs channels-last")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        return print(check(tuple(json.loads(args.only))))
    if args.worker:
        return work(configurations(args.guarded), args.start)
    import torch

    onednn = [line.strip() for line in torch.__config__.show().splitlines() if "MKL-DNN" in line]
    print(f"torch {torch.__version__}; {onednn[0] if onednn else 'no oneDNN'}; CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    bad = False
    for isa in args.isa or ISAS:
        if not cpu_has(isa):
            print(f"{isa}: skipped, this CPU lacks {' '.join(sorted(ISA_FLAGS[isa] - cpu_flags()))}")
            continue
        results = sweep(isa, args.guarded)
        failed = failures(results)
        bad = bad or bool(failed)
        print(f"{isa}: {len(results)} configurations, {len(failed)} failed "
              "(! crashed, * crashed only after others, ~ wrong gradients)")
        print(summary(failed))
    if args.guarded and bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
