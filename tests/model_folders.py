"""Small model folders and test signals, shared by the tests of the embedding
command, the gallery and the ONNX export."""
import numpy as np
import soundfile as sf
import torch

from speechbrain_tdy.architectures import get_architecture
from speechbrain_tdy.model_folder import write_model_folder

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
