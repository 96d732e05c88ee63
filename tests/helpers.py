"""What the tests share: paths, tiny model folders and run folders, test signals, the
authors' key listing, and running the recipe's scripts as a user would."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.time_domain import SpeedPerturb

from speechbrain_tdy.embedding.pipeline import EmbeddingPipeline
from speechbrain_tdy.export.model_folder import write_model_folder
from speechbrain_tdy.lobes.registry import ARCHITECTURES, get_architecture

#: A ResNet small enough for fast tests (TDY, DTDY or static by architecture).
TINY_RESNET = {"n_mels": 24, "emb_dim": 16, "channels": [4, 8, 8, 16], "layers": [1, 1, 1, 1]}
#: VGG-M's layers are fixed; only the embedding is small.
TINY_VGGM = {"emb_dim": 16}


def voice(seconds, seed, rate=16000):
    """A voiced test signal (samples,) float32 whose pitch, harmonics and
    modulation depend on ``seed``, so that models embed seeds differently."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = rng.uniform(80, 300) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.3, 2) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    harmonics = sum(rng.uniform(0.2, 1) * np.sin(k * phase + rng.uniform(0, 6)) / k for k in range(1, 20))
    envelope = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 5) * t)
    return (0.05 * harmonics * envelope + 0.005 * rng.standard_normal(t.shape)).astype(np.float32)


def write_voice(path, seconds, seed, rate=16000):
    """A :func:`voice` as a 16-bit wav file; returns its path as a string."""
    sf.write(path, voice(seconds, seed, rate), rate, subtype="PCM_16")
    return str(path)


def write_tiny_model_folder(out_dir, architecture, seed=0, **values):
    """A model folder of ``architecture`` (a name of the registry) with small
    layers, random weights and batch-norm statistics measured on test
    signals, so that embeddings are of order 1 and differ between signals."""
    arch = get_architecture(architecture)
    values = arch.model_values(**dict(TINY_VGGM if arch.is_vggm else TINY_RESNET, **values))
    torch.manual_seed(seed)
    front_end, encoder = arch.build(values)
    for module in encoder.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # running statistics = plain averages over the batches seen
    with torch.no_grad():
        encoder.train()(front_end(torch.from_numpy(np.stack([voice(2.0, 1000 + i) for i in range(8)]))))
    encoder.eval()

    def reference(wavs):
        return encoder(front_end(wavs)).squeeze(1)

    return write_model_folder(out_dir, arch, values, encoder, reference, "A test model.\n")


# Running the recipe's scripts as a user would, on a tiny corpus.



ROOT = Path(__file__).resolve().parent.parent  # the checkout
RECIPE = ROOT / "recipes" / "VoxCeleb" / "SpeakerRec"
TOOLS = ROOT / "tools"  # the mini corpus and the demo

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


DATA = Path(__file__).parent / "data"


FIXTURE = DATA / "official_fixture_tdy_resnet34_quarter_avg40.pt"


KEY_LISTING = DATA / "official_state_dict_keys.txt"


def _load_fill():
    spec = importlib.util.spec_from_file_location("fill_weights", DATA / "fill_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fill


fill_weights = _load_fill()


def read_key_listing(path=KEY_LISTING):
    """Blocks of the authors' listing: [{model, encoder_type, n_mels, trainable_params, keys}],
    keys being {name without '__S__.': (shape, kind)}."""
    blocks, current = [], None
    header = re.compile(r"^## (\S+) encoder_type=(\S+) n_mels=(\d+) trainable_params=(\d+)")
    for line in path.read_text().splitlines():
        match = header.match(line)
        if match:
            model, encoder, n_mels, params = match.groups()
            current = dict(model=model, encoder_type=encoder, n_mels=int(n_mels),
                           trainable_params=int(params), keys={})
            blocks.append(current)
        elif line.startswith("## "):
            current = None
        elif current is not None and line.startswith("__S__."):
            name, shape, kind = line.split("\t")
            current["keys"][name[len("__S__."):]] = (tuple(int(s) for s in re.findall(r"\d+", shape)), kind)
    return blocks


OFFICIAL_BLOCKS = read_key_listing()


def official_state_dict(block, gain=1.0):
    """Deterministic weights for a block of the listing, with the authors' key names."""
    zeros = {name: torch.zeros(shape) for name, (shape, _) in block["keys"].items()}
    return fill_weights(zeros, gain)


ARCH = ARCHITECTURES["tdy_resnet34_quarter"]


VALUES = ARCH.model_values(n_mels=TINY["n_mels"], emb_dim=TINY["emb_dim"], channels=TINY["channels"])


RUN_HPARAMS = f"""architecture: tdy_resnet34_quarter
n_mels: {TINY["n_mels"]}
emb_dim: {TINY["emb_dim"]}
channels: {TINY["channels"]}
pooling: AVG
loss: softmaxproto
crop_frames: 64
number_of_epochs: 1
data_folder: /somewhere/else
save_folder: /old/place/of/this/run/save
"""


def tiny_model(seed):
    torch.manual_seed(seed)
    front_end, model = ARCH.build(VALUES)
    return EmbeddingPipeline(front_end, model.eval())


def fake_run(folder, seed=0, checkpoint=True):
    """A train.py output folder with one end-of-epoch checkpoint of a tiny model."""
    folder.mkdir(parents=True)
    (folder / "hyperparams.yaml").write_text(RUN_HPARAMS)
    if checkpoint:
        ckpt = folder / "save" / "CKPT+2026-11-27+00-00-00+00"
        ckpt.mkdir(parents=True)
        (ckpt / "CKPT.yaml").write_text("end-of-epoch: true\nErrorRate: 0.5\ntemperature: 1.0\nunixtime: 1.0\n")
        torch.save(tiny_model(seed).embedding_model.state_dict(), ckpt / "embedding_model.ckpt")
    return folder


def plain_tdy_conv2d(x, weight, bias, attention, stride, padding):
    """All K convolutions, then the attention-weighted sum over K (autograd does the rest)."""
    n_kernels, out_channels = weight.shape[:2]
    flat_bias = None if bias is None else bias.reshape(-1)
    out = F.conv2d(x, weight.reshape(-1, *weight.shape[2:]), flat_bias, stride=stride, padding=padding)
    out = out.view(x.shape[0], n_kernels, out_channels, *out.shape[2:])
    return (out * attention[:, :, None, None, :]).sum(dim=1)


def inputs(batch=2, in_channels=3, out_channels=4, freq=7, time=11, kernel=(3, 3), stride=(1, 1), padding=(1, 1),
           n_kernels=4, bias=True, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_channels, freq, time, generator=generator, dtype=dtype)
    weight = torch.randn(n_kernels, out_channels, in_channels, *kernel, generator=generator, dtype=dtype)
    b = torch.randn(n_kernels, out_channels, generator=generator, dtype=dtype) if bias else None
    time_out = (time + 2 * padding[1] - kernel[1]) // stride[1] + 1
    logits = torch.randn(batch, n_kernels, time_out, generator=generator, dtype=dtype)
    return x, weight, b, torch.softmax(logits, dim=1), stride, padding


GEOMETRIES = [
    dict(),
    dict(bias=False),
    dict(kernel=(1, 1), stride=(2, 2), padding=(0, 0), time=12),
    dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1), time=13, freq=9),
    dict(kernel=(5, 7), stride=(1, 2), padding=(2, 2), time=17, n_kernels=6),
    dict(kernel=(7, 1), stride=(1, 1), padding=(0, 0), freq=7, time=5),
]


def folder_contents(folder):
    """{relative path: bytes, or '-> target' for a link} of everything under ``folder``:
    what a command must leave as it found it."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[name] = path.read_bytes()
    return found


def finishes_within(seconds, function, *args, **kwargs):
    """``function(*args, **kwargs)`` run in a daemon thread: its result, or the
    exception it raised, re-raised here; AssertionError if it is still running
    after ``seconds`` (blocked on a FIFO, say), so that a test fails instead of hanging."""
    import threading

    outcome = {}

    def target():
        try:
            outcome["result"] = function(*args, **kwargs)
        except BaseException as error:  # noqa: B036 - handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{getattr(function, '__name__', function)} still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def release_fifos(folder):
    """Open every FIFO under ``folder`` for writing and close it, so that a reader
    blocked on one (code that opened it) sees its end and returns."""
    for path in Path(folder).rglob("*"):
        if path.is_fifo():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader waiting
                pass


def load_model_folder(folder, **kwargs):
    """TDYSpeakerRecognition.from_hparams of ``folder`` without the warning of a
    folder that has no threshold.json (other warnings still reach the test)."""
    import warnings

    from speechbrain_tdy.inference import TDYSpeakerRecognition

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "^.* has no calibrated decision threshold")
        return TDYSpeakerRecognition.from_hparams(source=str(folder), **kwargs)


def as_written_before_safetensors(folder):
    """Turn the model folder ``folder`` into one as export wrote it before
    safetensors: its parameters in embedding_model.ckpt (a torch file)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    torch.save(load_file(folder / "embedding_model.safetensors"), folder / "embedding_model.ckpt")
    (folder / "embedding_model.safetensors").unlink()
    return folder
