"""torch.compile: every model traces to one graph, compiled inference gives eager's embeddings."""
import copy
import warnings

import pytest
import torch
from helpers import voice
from torch._dynamo.utils import counters

from speechbrain_tdy.embedding.compiled import CompiledForward
from speechbrain_tdy.embedding.pipeline import EmbeddingPipeline
from speechbrain_tdy.inference import TDYSpeakerRecognition
from speechbrain_tdy.lobes import LogMelInstanceNorm
from speechbrain_tdy.lobes.resnet import ResNet
from speechbrain_tdy.lobes.vggm import VGGM
from speechbrain_tdy.nnet.temperature import set_temperature

# 8 channels: layers that run NCHW on CPU (speechbrain_tdy.nnet.layout), beside channels-last ones at 16.
MODELS = {
    "tdy": lambda: ResNet(n_mels=24, channels=(8, 8, 16, 16), conv="tdy", lin_neurons=16, layers=(1, 1, 1, 1),
                          temperature=4),
    "dtdy": lambda: ResNet(n_mels=24, channels=(8, 8, 16, 16), conv="dtdy", lin_neurons=16, layers=(1, 1, 1, 1)),
    "static": lambda: ResNet(n_mels=24, channels=(8, 8, 16, 16), conv="static", lin_neurons=16, layers=(1, 1, 1, 1)),
    "vggm": lambda: VGGM(conv="tdy", lin_neurons=16, temperature=4),
}


@pytest.fixture(autouse=True)
def _fresh_compiler_caches():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def relative_error(actual, expected):
    return float((actual - expected).abs().max() / expected.abs().max())


@pytest.mark.parametrize("name", [
    "tdy", pytest.param("dtdy", marks=pytest.mark.slow), pytest.param("static", marks=pytest.mark.slow),
    pytest.param("vggm", marks=pytest.mark.slow)])
def test_model_traces_to_one_graph_with_eager_outputs_and_gradients(name):
    """fullgraph=True raises at any graph break; the TDY layers then run as plain
    differentiable ops, whose autograd must match the eager layers' own backward.
    The annealed temperature is a buffer, an input of the graph: changing it
    does not recompile (TorchInductor would recompile at every new float)."""
    torch.manual_seed(0)
    model = MODELS[name]()
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    n_mels = 64 if name == "vggm" else 24
    feats, lengths = torch.randn(3, 120, n_mels), torch.tensor([1.0, 0.8, 0.55])
    for temperature in (4.0, 3.5, 3.25):
        set_temperature(model, temperature), set_temperature(eager, temperature)
        model.zero_grad(), eager.zero_grad()
        compiled(feats, lengths).square().sum().backward()
        eager(feats, lengths).square().sum().backward()
        for (param_name, param), expected in zip(model.named_parameters(), eager.parameters()):
            assert relative_error(param.grad, expected.grad) < 1e-5, (temperature, param_name)
    assert counters["stats"]["unique_graphs"] == 1
    model.eval(), eager.eval()
    with torch.no_grad():
        assert relative_error(compiled(feats[:1]), eager(feats[:1])) < 1e-6


def test_interface_compiled_embeddings_equal_eager_for_any_length(model_folder):
    """Lengths padded to buckets of 64 frames, batches with padding and long
    recordings (embedded in chunks, eagerly) give eager's embeddings. One
    dynamic graph serves every length, one more every batch size above 1 (the
    compiler specialises size 1). The backend is Dynamo's eager one: the graph
    capture without minutes of code generation (see the slow test with
    TorchInductor)."""
    overrides = {"chunk_frames": 500}
    eager = TDYSpeakerRecognition.from_hparams(model_folder, overrides=overrides)
    assert eager.pipeline.compiled_forward is None  # compile="auto" on a CPU
    compiled = TDYSpeakerRecognition.from_hparams(model_folder, overrides=overrides,
                                                  compile={"backend": "eager", "dynamic": True})
    wavs = torch.from_numpy(voice(3.0, 1)).repeat(3, 1)
    cases = [(wavs[:1, :16000], None), (wavs[:1, :16600], None), (wavs[:, :24000], [1.0, 0.7, 0.5]),
             (wavs[:2, :32000], [0.9, 1.0]), (torch.from_numpy(voice(6.0, 2)), None)]
    for w, lens in cases:
        assert relative_error(compiled.encode_batch(w, lens), eager.encode_batch(w, lens)) < 1e-5
    assert counters["stats"]["unique_graphs"] == 2
    assert compiled.pipeline.compiled_forward.error is None
    with pytest.raises(ValueError, match="compile must be 'auto', True, False or a dict"):
        TDYSpeakerRecognition.from_hparams(model_folder, compile="yes")


def test_failing_compiler_warns_once_and_embeds_eagerly():
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no C++ compiler on this machine")

    torch.manual_seed(0)
    pipeline = EmbeddingPipeline(LogMelInstanceNorm(24), MODELS["tdy"]()).eval()
    wav = torch.from_numpy(voice(1.5, 3))[None]
    expected = pipeline.embed(wav)
    pipeline.compile_inference(backend=broken_backend)
    with pytest.warns(UserWarning, match="(?s)runs eagerly from now on.*no C\\+\\+ compiler"):
        first = pipeline.embed(wav)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = pipeline.embed(wav)
    assert torch.equal(first, expected) and torch.equal(second, expected)


def test_bucket_size_is_checked():
    with pytest.raises(ValueError, match="bucket_frames must be at least 1"):
        CompiledForward(MODELS["static"](), bucket_frames=0)


@pytest.mark.slow
def test_interface_with_inductor_gives_eager_embeddings_within_1e4(model_folder):
    """compile=True: TorchInductor's C++ kernels on a CPU (about a minute to compile)."""
    wavs = torch.from_numpy(voice(2.0, 5)).repeat(2, 1)
    lens = torch.tensor([1.0, 0.8])
    eager = TDYSpeakerRecognition.from_hparams(model_folder, compile=False).encode_batch(wavs, lens)
    compiled = TDYSpeakerRecognition.from_hparams(model_folder, compile=True)
    assert relative_error(compiled.encode_batch(wavs, lens), eager) < 1e-4
    assert compiled.pipeline.compiled_forward.error is None
