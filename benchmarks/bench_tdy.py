#!/usr/bin/env python3
"""Speed and memory of the TDY layer and of whole models, in one run.

    python benchmarks/bench_tdy.py                 # everything (about 6-9 min on 2 CPU threads)
    python benchmarks/bench_tdy.py --only layers   # or: models, data
    python benchmarks/bench_tdy.py --threads 2 --reps 3 --json-out results.json
    python benchmarks/bench_tdy.py --device cuda --autocast bf16 --batch 128
    python benchmarks/bench_tdy.py --device cuda --only models --compile   # + torch.compile / CUDA graphs
    bash benchmarks/gpu.sh                         # the GPU table of benchmarks/README.md

Every comparison is a ratio measured within this run, on the same inputs, with
the variants interleaved (A, B, C, A, B, C, ...) and the median of the repeats
taken, so that the noise of a shared machine hits all variants alike.

Sections
--------
layers
    Every distinct TDY layer shape of TDY-ResNet-34 (x0.5) at 64 mels, batch 16,
    200 frames: forward + backward time and peak memory of the package's
    ``TDYConv2d`` ("fast"), of the same layer recomputing its per-kernel
    outputs in backward ("recomp", ``set_recompute``), of the same layer with
    the authors' formulation ("ref", :mod:`reference_tdy`), and of one static
    ``nn.Conv2d`` with K * C_out outputs ("floor": the unavoidable convolution
    work), in PyTorch's default layout and in channels-last ("floor_cl": on
    CPU the faster one, and the layout ``TDYConv2d`` convolves in). The
    attention branch alone ("attn") is shown too. Each gets the same input
    in the layout it has inside a model: channels-last for the
    package's layers (every TDY layer but the first gets it so from the layer
    before) and floor_cl, PyTorch's default for ref and floor.
models
    Training step (forward, backward, Adam) on 16 (``--batch``) x 200 frames
    and inference on one 20 s utterance (front end included) for TDY-ResNet-34 x0.5 / x0.25,
    DTDY-ResNet-34 x0.5, static ResNet-34 x0.5 (also converted to
    channels-last, its fastest layout on CPU), the TDY models again with the
    reference formulation, TDY-ResNet-34 x0.5 recomputing its per-kernel
    outputs in backward (``set_recompute(model, True)``: less memory, more
    time) or recomputing them in the layers where that is cheapest
    (``"selective"``), the TDY and DTDY models without the guard against
    oneDNN's channels-last backward bug ("[unguarded]", what the guard costs:
    ``docs/onednn_channels_last.md``), and SpeechBrain's ECAPA-TDNN (C=1024). With
    ``--compile``, also the TDY models through ``torch.compile`` (on a GPU
    with CUDA graphs, as the pretrained interface runs them; inference padded
    to length buckets), "[compiled]": their first calls compile and are not
    timed.
data
    The recipe's training dataloader (its dataset, crops and batch sampler)
    on a small synthetic corpus: samples per second against the model's
    training samples per second at ``--batch``.

``--autocast bf16`` / ``fp16`` runs every variant under ``torch.autocast``
(with a ``GradScaler`` for fp16 training steps).

Peak memory is the high-water mark of the CPU (or CUDA) caching allocator
during the measured call, read from the PyTorch profiler's allocation events
on CPU: "peak" counts everything alive (parameters, optimizer state, inputs),
"+peak" only what the call added on top of what was alive before it.
"""
import argparse
import contextlib
import copy
import gc
import json
import os
import statistics
import sys
import time

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from reference_tdy import reference_formulation  # noqa: E402

from speechbrain_tdy.nnet import layout  # noqa: E402
from speechbrain_tdy.nnet.tdy_conv import TDYConv2d  # noqa: E402

N_MELS, FRAMES, K = 64, 200, 6
LOADER_BATCH = 16


# ----------------------------------------------------------------------------
# Measuring
# ----------------------------------------------------------------------------
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_times(fns, reps, warmup=1, device=torch.device("cpu")):
    """Median seconds of each callable in ``fns`` (a dict), run round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_memory(fn, device=torch.device("cpu")):
    """(peak, added peak) in bytes of the allocator while ``fn()`` runs."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return peak, peak - before
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    allocations, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        if event.tag == _EventType.Allocation:
            fields = event.extra_fields
            allocations.append((event.start_time_ns, fields.alloc_size, fields.total_allocated))
        stack.extend(event.children)
    if not allocations:
        return 0, 0
    allocations.sort()
    before = allocations[0][2] - allocations[0][1]
    peak = max(total for _, _, total in allocations)
    return peak, peak - before


@contextlib.contextmanager
def formulation(name):
    """"fast" or "compiled" (the package as is), "ref" (the authors' einsum
    formulation) or "unguarded" (the package without its guard against oneDNN's
    channels-last backward bug: every convolution may run channels-last)."""
    if name == "ref":
        with reference_formulation():
            yield
    elif name == "unguarded":
        guarded_block, layout.ONEDNN_CHANNEL_BLOCK = layout.ONEDNN_CHANNEL_BLOCK, 1
        try:
            yield
        finally:
            layout.ONEDNN_CHANNEL_BLOCK = guarded_block
    else:
        yield


AUTOCAST_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def precision(device, name):
    """Context of the run's precision: float32, or autocast to bf16 / fp16."""
    dtype = AUTOCAST_DTYPES[name]
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def mib(n_bytes):
    return n_bytes / 2**20


# ----------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------
def tdy_layer_shapes(n_mels=N_MELS, frames=FRAMES):
    """Distinct TDY layer configurations of TDY-ResNet-34 x0.5 with their counts:
    list of (dict(in, out, kernel, stride, padding, freq, time), count)."""
    from speechbrain_tdy.lobes import tdy_resnet34_half

    model = tdy_resnet34_half(n_mels=n_mels).eval()
    seen, order = {}, []

    def hook(module, args, _output):
        x = args[0]
        key = (module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
               x.shape[2], x.shape[3])
        if key not in seen:
            seen[key] = 0
            order.append(key)
        seen[key] += 1

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, TDYConv2d)]
    with torch.no_grad():
        model(torch.randn(1, frames, n_mels))
    for handle in handles:
        handle.remove()
    names = ("in", "out", "kernel", "stride", "padding", "freq", "time")
    return [(dict(zip(names, key)), seen[key]) for key in order]


def bench_layers(args, device):
    rows = []
    for shape, count in tdy_layer_shapes():
        torch.manual_seed(0)
        layer = TDYConv2d(shape["in"], shape["out"], shape["kernel"], freq_size=shape["freq"], stride=shape["stride"],
                          padding=shape["padding"], n_kernels=K, temperature=31.0).to(device).train()
        floor = nn.Conv2d(shape["in"], K * shape["out"], shape["kernel"], shape["stride"], shape["padding"],
                          bias=False).to(device)
        floor_cl = copy.deepcopy(floor).to(memory_format=torch.channels_last)
        x = torch.randn(args.batch, shape["in"], shape["freq"], shape["time"], device=device, requires_grad=True)
        x_cl = x.detach().to(memory_format=torch.channels_last).requires_grad_()
        with torch.no_grad():
            y_shape = layer(x).shape
            floor_shape = floor(x).shape
        grad_y = torch.randn(y_shape, device=device)
        grad_floor = torch.randn(floor_shape, device=device)
        grad_floor_cl = grad_floor.to(memory_format=torch.channels_last)
        grad_pi = torch.randn(args.batch, K, y_shape[-1], device=device)

        # Each variant gets its input in the layout it has inside a model: the
        # package's layers pass on channels-last activations, the authors'
        # formulation and a plain Conv2d keep PyTorch's default layout.

        def run_tdy(name, recompute=False):
            def step():
                layer.recompute = recompute
                with formulation(name), precision(device, args.autocast):
                    y = layer(x if name == "ref" else x_cl)
                y.backward(grad_y.to(y.dtype))
            return step

        def run_static(conv, inputs, grad):
            def step():
                with precision(device, args.autocast):
                    y = conv(inputs)
                y.backward(grad.to(y.dtype))
            return step

        def run_attn():
            with precision(device, args.autocast):
                pi = layer.attention(x_cl, layer.temperature)
            pi.backward(grad_pi.to(pi.dtype))

        fns = {"fast": run_tdy("fast"), "recomp": run_tdy("fast", recompute=True), "ref": run_tdy("ref"),
               "floor": run_static(floor, x, grad_floor), "floor_cl": run_static(floor_cl, x_cl, grad_floor_cl),
               "attn": run_attn}
        times = interleaved_times(fns, args.layer_reps, device=device)
        mems = {name: peak_memory(fn, device)[1] for name, fn in fns.items() if name != "attn"}
        layer.zero_grad(set_to_none=True)
        floor.zero_grad(set_to_none=True)
        floor_cl.zero_grad(set_to_none=True)
        row = dict(shape=shape, count=count, time=times, added_peak=mems)
        rows.append(row)
        label = "{in}->{out} k{kernel[0]}x{kernel[1]} s{stride[0]} F{freq} T{time}".format(**shape)
        print(
            f"  {label:<32} x{count:<3} fast {times['fast'] * 1e3:7.1f} ms  recomp {times['recomp'] * 1e3:7.1f} ms  "
            f"ref {times['ref'] * 1e3:7.1f} ms  floor {times['floor'] * 1e3:7.1f} ms  "
            f"floor_cl {times['floor_cl'] * 1e3:7.1f} ms  attn {times['attn'] * 1e3:6.1f} ms"
            f" | floor/fast {times['floor'] / times['fast']:.2f}  floor_cl/fast {times['floor_cl'] / times['fast']:.2f}"
            f"  floor/recomp {times['floor'] / times['recomp']:.2f}  "
            f"ref/fast {times['ref'] / times['fast']:.2f} | "
            f"+peak MiB fast {mib(mems['fast']):6.1f} ref {mib(mems['ref']):6.1f} floor {mib(mems['floor']):6.1f}",
            flush=True,
        )
    efficiency = [r["time"]["floor"] / r["time"]["fast"] for r in rows]
    efficiency_recomp = [r["time"]["floor"] / r["time"]["recomp"] for r in rows]
    speedup = [r["time"]["ref"] / r["time"]["fast"] for r in rows]
    weights = [r["count"] for r in rows]
    summary = dict(
        efficiency_mean=statistics.mean(efficiency),
        efficiency_weighted=sum(e * w for e, w in zip(efficiency, weights)) / sum(weights),
        efficiency_total=total_time_ratio(rows, "floor", "fast"),
        efficiency_cl_mean=statistics.mean(r["time"]["floor_cl"] / r["time"]["fast"] for r in rows),
        efficiency_cl_total=total_time_ratio(rows, "floor_cl", "fast"),
        efficiency_recomp_mean=statistics.mean(efficiency_recomp),
        efficiency_recomp_total=total_time_ratio(rows, "floor", "recomp"),
        speedup_vs_ref_mean=statistics.mean(speedup),
        memory_vs_ref_mean=statistics.mean(r["added_peak"]["fast"] / r["added_peak"]["ref"] for r in rows),
    )
    print(
        "  layer efficiency floor/fast: mean over shapes {efficiency_mean:.3f}, weighted by layer count "
        "{efficiency_weighted:.3f}, total time {efficiency_total:.3f}; floor_cl/fast: mean {efficiency_cl_mean:.3f}, "
        "total time {efficiency_cl_total:.3f}; floor/recomp: mean {efficiency_recomp_mean:.3f}, "
        "total time {efficiency_recomp_total:.3f}; ref/fast mean {speedup_vs_ref_mean:.2f}; "
        "fast/ref +peak mean {memory_vs_ref_mean:.2f}".format(**summary),
        flush=True,
    )
    return dict(rows=rows, summary=summary)


def total_time_ratio(rows, numerator, denominator):
    """Ratio of two variants' times summed over the network's layers (each shape times its count)."""
    return (sum(r["time"][numerator] * r["count"] for r in rows)
            / sum(r["time"][denominator] * r["count"] for r in rows))


# ----------------------------------------------------------------------------
# Whole models
# ----------------------------------------------------------------------------
def build_models(n_mels=N_MELS):
    """name -> (formulation, model factory, front end factory, n_mels)."""
    from speechbrain_tdy.lobes import LogMelInstanceNorm
    from speechbrain_tdy.nnet import set_recompute
    from speechbrain_tdy.lobes import dtdy_resnet34_half, resnet34_half, tdy_resnet34_half, tdy_resnet34_quarter

    def ecapa():
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

        return ECAPA_TDNN(80, channels=[1024, 1024, 1024, 1024, 3072], lin_neurons=192)

    def fbank80():
        from speechbrain.lobes.features import Fbank

        return Fbank(n_mels=80)

    def recomputing(model, enabled=True):
        set_recompute(model, enabled)
        return model

    ours = lambda: LogMelInstanceNorm(n_mels=n_mels)  # noqa: E731
    return {
        "tdy_resnet34_half": ("fast", lambda: tdy_resnet34_half(n_mels=n_mels), ours, n_mels),
        "tdy_resnet34_half[ref]": ("ref", lambda: tdy_resnet34_half(n_mels=n_mels), ours, n_mels),
        "tdy_resnet34_half[recompute]": ("fast", lambda: recomputing(tdy_resnet34_half(n_mels=n_mels)), ours, n_mels),
        "tdy_resnet34_half[selective]": (
            "fast", lambda: recomputing(tdy_resnet34_half(n_mels=n_mels), "selective"), ours, n_mels),
        "tdy_resnet34_quarter": ("fast", lambda: tdy_resnet34_quarter(n_mels=n_mels), ours, n_mels),
        "tdy_resnet34_quarter[ref]": ("ref", lambda: tdy_resnet34_quarter(n_mels=n_mels), ours, n_mels),
        "tdy_resnet34_half[compiled]": ("compiled", lambda: tdy_resnet34_half(n_mels=n_mels), ours, n_mels),
        "tdy_resnet34_quarter[compiled]": ("compiled", lambda: tdy_resnet34_quarter(n_mels=n_mels), ours, n_mels),
        "dtdy_resnet34_half": ("fast", lambda: dtdy_resnet34_half(n_mels=n_mels), ours, n_mels),
        "resnet34_half": ("fast", lambda: resnet34_half(n_mels=n_mels), ours, n_mels),
        "resnet34_half[channels_last]": (
            "fast", lambda: resnet34_half(n_mels=n_mels).to(memory_format=torch.channels_last), ours, n_mels),
        "tdy_resnet34_half[unguarded]": ("unguarded", lambda: tdy_resnet34_half(n_mels=n_mels), ours, n_mels),
        "tdy_resnet34_quarter[unguarded]": ("unguarded", lambda: tdy_resnet34_quarter(n_mels=n_mels), ours, n_mels),
        "dtdy_resnet34_half[unguarded]": ("unguarded", lambda: dtdy_resnet34_half(n_mels=n_mels), ours, n_mels),
        "ecapa_tdnn_c1024": ("fast", ecapa, fbank80, 80),
    }


def bench_models(args, device):
    from speechbrain_tdy.embedding.compiled import CompiledForward, compile_options

    torch.manual_seed(0)
    entries = {}
    for name, (form, make_model, make_front, n_mels) in build_models().items():
        if args.models and name.split("[")[0] not in args.models or form == "compiled" and not args.compile:
            continue
        model = make_model().to(device)
        train_model = infer_model = model
        if form == "compiled":
            options = compile_options(True, device)
            # Static shapes, as train.py's --compile: dynamic ones failed in TorchInductor's backward (torch 2.14.1)
            train_model = torch.compile(model, **dict(options, dynamic=False))
            infer_model = CompiledForward(model, **options)
        head = nn.Linear(512 if "ecapa" not in name else 192, 1000).to(device)
        params = list(model.parameters()) + list(head.parameters())
        optimizer = torch.optim.Adam(params, lr=1e-3, weight_decay=5e-5)
        feats = torch.randn(args.batch, FRAMES, n_mels, device=device)
        labels = torch.randint(0, 1000, (args.batch,), device=device)
        wav = torch.randn(1, args.utterance_seconds * 16000, device=device)
        front = make_front().to(device).eval()
        scaler = torch.amp.GradScaler(device.type, enabled=args.autocast == "fp16")

        def train_step(model=model, train_model=train_model, head=head, optimizer=optimizer, feats=feats,
                       labels=labels, form=form, scaler=scaler):
            model.train()
            torch.compiler.cudagraph_mark_step_begin()  # a new step for CUDA graphs; nothing otherwise
            with formulation(form):
                with precision(device, args.autocast):
                    loss = nn.functional.cross_entropy(head(train_model(feats).squeeze(1)), labels)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()

        def infer(model=model, infer_model=infer_model, front=front, wav=wav, form=form):
            model.eval()
            with formulation(form), torch.inference_mode(), precision(device, args.autocast):
                return infer_model(front(wav))

        n_params = sum(p.numel() for p in model.parameters())
        entries[name] = dict(train=train_step, infer=infer, params=n_params)

    print(f"  training steps (batch {args.batch} x {FRAMES} frames, forward + backward + Adam), {args.reps} repeats",
          flush=True)
    warmup = 3 if args.compile else 1  # compiling, then CUDA graph trees warm up and record
    train_times = interleaved_times({n: e["train"] for n, e in entries.items()}, args.reps, warmup, device)
    print(f"  inference on one {args.utterance_seconds} s utterance (front end included)", flush=True)
    infer_times = interleaved_times({n: e["infer"] for n, e in entries.items()}, args.reps, warmup, device)
    rows = {}
    for name, entry in entries.items():
        train_peak, train_added = peak_memory(entry["train"], device)
        infer_peak, infer_added = peak_memory(entry["infer"], device)
        rows[name] = dict(params=entry["params"], train_s=train_times[name], infer_s=infer_times[name],
                          train_peak=train_peak, train_added_peak=train_added,
                          infer_peak=infer_peak, infer_added_peak=infer_added)
    base = rows.get("resnet34_half")
    print(f"  {'model':<27} {'params':>7} {'train s':>8} {'x static':>8} {'peak MiB':>9} {'+peak':>7} "
          f"{'infer s':>8} {'x static':>8} {'peak MiB':>9}")
    for name, row in rows.items():
        rel_train = row["train_s"] / base["train_s"] if base else float("nan")
        rel_infer = row["infer_s"] / base["infer_s"] if base else float("nan")
        print(f"  {name:<27} {row['params'] / 1e6:6.1f}M {row['train_s']:8.3f} {rel_train:8.2f} "
              f"{mib(row['train_peak']):9.0f} {mib(row['train_added_peak']):7.0f} {row['infer_s']:8.3f} "
              f"{rel_infer:8.2f} {mib(row['infer_peak']):9.0f}")
    summary = {}
    for name in ("tdy_resnet34_half", "tdy_resnet34_half[recompute]", "tdy_resnet34_half[selective]",
                 "tdy_resnet34_half[compiled]", "tdy_resnet34_quarter", "tdy_resnet34_quarter[compiled]"):
        ours, ref = rows.get(name), rows.get(name.split("[")[0] + "[ref]")
        if ours and ref:
            summary[name] = dict(
                train_speedup=ref["train_s"] / ours["train_s"],
                infer_speedup=ref["infer_s"] / ours["infer_s"],
                train_peak_ratio=ours["train_peak"] / ref["train_peak"],
                train_added_peak_ratio=ours["train_added_peak"] / ref["train_added_peak"],
                infer_peak_ratio=ours["infer_peak"] / ref["infer_peak"],
            )
            print("  {}: ref/ours training {train_speedup:.2f}x, inference {infer_speedup:.2f}x; ours/ref training "
                  "peak {train_peak_ratio:.2f} (+peak {train_added_peak_ratio:.2f}), inference peak "
                  "{infer_peak_ratio:.2f}".format(name, **summary[name]), flush=True)
    for name in ("tdy_resnet34_half", "tdy_resnet34_quarter", "dtdy_resnet34_half"):
        guarded, unguarded = rows.get(name), rows.get(name + "[unguarded]")
        if guarded and unguarded:
            summary[name + "[guard]"] = dict(train_cost=guarded["train_s"] / unguarded["train_s"],
                                             infer_cost=guarded["infer_s"] / unguarded["infer_s"])
            print("  {}: guarded/unguarded (nnet.layout) training {train_cost:.3f}x, inference {infer_cost:.3f}x"
                  .format(name, **summary[name + "[guard]"]), flush=True)
    return dict(rows=rows, summary=summary)


# ----------------------------------------------------------------------------
# Data pipeline
# ----------------------------------------------------------------------------
def bench_data(args, device, model_samples_per_s):
    """Samples per second from the recipe's training dataloader (its dataset,
    random crops and speaker-balanced batch sampler, tdy.yaml settings) on a
    synthetic corpus, against the model's training samples per second; and the
    time the recipe's waveform augmentation (run in the training process,
    SpeechBrain-style) adds to a training step."""
    import tempfile

    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.dataio.dataloader import make_dataloader

    from speechbrain_tdy.dataio.augmentation_files import write_synthetic_noise_and_rirs
    from speechbrain_tdy.dataio.sampler import SpeakerBalancedBatchSampler

    recipe = os.path.join(ROOT, "recipes", "VoxCeleb", "SpeakerRec")
    sys.path[:0] = [recipe, os.path.join(ROOT, "tools")]
    from mini_corpus import generate_corpus
    from train import dataio_prep, prepare_augmentation
    from voxceleb_prepare import prepare_voxceleb

    workdir = tempfile.mkdtemp(prefix="bench_data_")
    corpus = os.path.join(workdir, "corpus")
    generate_corpus(corpus, n_speakers=24, n_utterances=8, n_dev=2, n_test=2, durations=(4.0, 8.0))
    write_synthetic_noise_and_rirs(corpus)
    with open(os.path.join(recipe, "hparams", "tdy.yaml"), encoding="utf-8") as stream:
        # A larger dev share than VoxCeleb's 2%, so that each split of the small corpus has utterances.
        overrides = {"data_folder": corpus, "output_folder": os.path.join(workdir, "out"), "split_ratio": [90, 10]}
        hparams = load_hyperpyyaml(stream, overrides)
    prepare_voxceleb(**hparams["prepare_kwargs"])
    train_data, _, _ = dataio_prep(hparams)
    speakers = [row["spk_id"] for row in train_data.data.values()]
    # Loader batches of 16 whatever --batch is (the corpus has 24 speakers); rates are per sample.
    sampler = SpeakerBalancedBatchSampler(speakers, LOADER_BATCH // hparams["n_per_speaker"], hparams["n_per_speaker"])
    workers = min(hparams["num_workers"], args.threads)
    # The small corpus's epochs are short: run them back to back through one
    # loader, so that the workers start once, as they do per (long) epoch of
    # VoxCeleb, and stay busy with batches queued ahead.
    epochs = 10 * args.reps
    loader = make_dataloader(train_data, batch_sampler=ConsecutiveEpochs(sampler, epochs), num_workers=workers)
    samples, start = 0, time.perf_counter()
    for batch in loader:
        samples += batch.sig.data.shape[0]
    loader_samples_per_s = samples / (time.perf_counter() - start)
    ratio = loader_samples_per_s / model_samples_per_s
    print(f"  dataloader ({workers} workers, crops of {hparams['crop_frames']} frames, {samples} samples): "
          f"{loader_samples_per_s:.0f} samples/s; TDY-ResNet-34 x0.5 training: {model_samples_per_s:.1f} samples/s; "
          f"loader/model {ratio:.1f} ({'model' if ratio > 1 else 'data'}-bound)", flush=True)

    prepare_augmentation(hparams)
    augment, batch = hparams["wav_augment"], next(iter(loader))
    wavs, lengths = batch.sig.data.to(device), batch.sig.lengths.to(device)
    augment_s = interleaved_times({"augment": lambda: augment(wavs, lengths)}, max(3, args.reps), device=device)
    augment_s = augment_s["augment"]
    augment_over_step = augment_s / (LOADER_BATCH / model_samples_per_s)
    print(f"  augmentation of a batch of {LOADER_BATCH} (in the training process): {augment_s:.3f} s = "
          f"{augment_over_step:.3f} of a TDY-ResNet-34 x0.5 training step on as many samples", flush=True)
    return dict(loader_samples_per_s=loader_samples_per_s, model_samples_per_s=model_samples_per_s, ratio=ratio,
                augment_s=augment_s, augment_over_step=augment_over_step)


class ConsecutiveEpochs:
    """The batches of ``n_epochs`` epochs of a batch sampler with ``set_epoch``, one after another."""

    def __init__(self, sampler, n_epochs):
        self.sampler, self.n_epochs = sampler, n_epochs

    def __iter__(self):
        for epoch in range(self.n_epochs):
            self.sampler.set_epoch(epoch)
            yield from self.sampler

    def __len__(self):
        return self.n_epochs * len(self.sampler)


# ----------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16, help="batch size of the layers and training steps")
    parser.add_argument("--autocast", choices=tuple(AUTOCAST_DTYPES), default="off",
                        help="run every variant under torch.autocast in this dtype")
    parser.add_argument("--only", choices=("layers", "models", "data"), action="append")
    parser.add_argument("--layer-reps", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3, help="repeats of each model measurement")
    parser.add_argument("--utterance-seconds", type=int, default=20)
    parser.add_argument("--models", nargs="*", default=None, help="subset of model names (default: all)")
    parser.add_argument("--compile", action="store_true",
                        help="also time the TDY models through torch.compile (CUDA graphs on a GPU)")
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sections = args.only or ["layers", "models", "data"]
    if "models" not in sections and not args.models:  # the data section needs this model's training step
        args.models = ["tdy_resnet34_half"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, autocast "
          f"{args.autocast}", flush=True)
    config = dict(threads=args.threads, device=str(device), batch=args.batch, frames=FRAMES, n_mels=N_MELS,
                  autocast=args.autocast)
    results = dict(config=config)
    if "layers" in sections:
        print(f"== TDY layers of TDY-ResNet-34 x0.5 (batch {args.batch}, {FRAMES} frames), forward + backward",
              flush=True)
        results["layers"] = bench_layers(args, device)
    if "models" in sections or "data" in sections:
        print("== Whole models", flush=True)
        results["models"] = bench_models(args, device)
    if "data" in sections:
        print("== Recipe data pipeline", flush=True)
        train_s = results["models"]["rows"]["tdy_resnet34_half"]["train_s"]
        results["data"] = bench_data(args, device, args.batch / train_s)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as stream:
            json.dump(results, stream, indent=1, default=str)
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
