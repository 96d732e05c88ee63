"""The TDY convolution, a TDY model and the recipe's training step on a CUDA
device (skipped without one).

References are computed on the CPU in float64. The layer is checked exactly
in float64 on the device; in float32, cuDNN convolves with TF32 by default
(10-bit mantissa products): a float32 layer agrees to about 3e-4, a whole
model to 2e-3. The recipe's step runs in bf16 and in fp16 (with its
GradScaler) with each waveform transform, the configured augmenter and
gradient accumulation.
"""
import pytest
import torch
from helpers import (
    GEOMETRIES,
    TRANSFORMS,
    check_configured_augmenter,
    check_forced_transform,
    inputs,
    plain_tdy_conv2d,
    recipe_brain,
    step_gradients,
)
from speechbrain.utils.autocast import TorchAutocast

from speechbrain_tdy.embedding.pipeline import EmbeddingPipeline
from speechbrain_tdy.lobes import LogMelInstanceNorm, tdy_resnet34_quarter
from speechbrain_tdy.nnet.tdy_functional import tdy_conv2d

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


def relative_error(got, expected):
    got, expected = got.double().cpu(), expected.double().cpu()
    return ((got - expected).norm() / expected.norm()).item()


def run_on_cuda(args, dtype, input_layout, grad):
    """tdy_conv2d on CUDA copies of ``args`` (float64 CPU inputs): output and gradients."""
    cuda_args = [t.to(CUDA, dtype) if isinstance(t, torch.Tensor) else t for t in args]
    cuda_args[0] = cuda_args[0].contiguous(memory_format=input_layout)
    tensors = [t.requires_grad_() for t in cuda_args[:4] if t is not None]
    out = tdy_conv2d(*cuda_args)
    return out, torch.autograd.grad(out, tensors, grad.to(CUDA, out.dtype))


def plain_reference(args):
    """The plain formulation on the CPU: output, an output gradient drawn for
    it, and the gradients of the inputs under that output gradient."""
    tensors = [t.requires_grad_() for t in args[:4] if t is not None]
    out = plain_tdy_conv2d(*args)
    grad = torch.randn_like(out)
    return out, grad, torch.autograd.grad(out, tensors, grad)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("input_layout", [torch.contiguous_format, torch.channels_last], ids=str)
def test_float64_outputs_and_gradients_equal_the_plain_formulation(geometry, input_layout):
    """Whatever the input's layout, the output is channels-last, as on CPU."""
    args = inputs(**geometry)
    expected, grad, expected_grads = plain_reference(list(args))
    out, grads = run_on_cuda(list(args), torch.float64, input_layout, grad)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert relative_error(out, expected) < 1e-10
    for got, reference in zip(grads, expected_grads):
        assert relative_error(got, reference) < 1e-10


@pytest.mark.parametrize("autocast_dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_autocast_computes_in_half_precision_and_returns_float32_gradients(geometry, autocast_dtype):
    args = inputs(**geometry)
    expected, grad, expected_grads = plain_reference(list(args))
    with torch.autocast("cuda", dtype=autocast_dtype):
        out, grads = run_on_cuda(list(args), torch.float32, torch.channels_last, grad)
    assert out.dtype == autocast_dtype
    tolerance = 2e-2 if autocast_dtype == torch.bfloat16 else 4e-3  # 8 and 11 mantissa bits
    assert relative_error(out, expected) < tolerance
    for got, reference in zip(grads, expected_grads):
        assert got.dtype == torch.float32 and relative_error(got, reference) < tolerance


def test_a_model_gives_the_cpu_embeddings_and_trains_under_autocast():
    torch.manual_seed(0)
    model, front = tdy_resnet34_quarter(n_mels=40).eval(), LogMelInstanceNorm(n_mels=40)
    wavs = torch.randn(3, 16000)
    with torch.no_grad():
        expected = model(front(wavs))
        got = model.to(CUDA)(front.to(CUDA)(wavs.to(CUDA)))
    assert relative_error(got, expected) < 2e-3

    model.train()
    head = torch.nn.Linear(512, 10).to(CUDA)
    with torch.autocast("cuda", dtype=torch.float16):
        logits = head(model(front(torch.randn(4, 16000, device=CUDA))).squeeze(1))
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3], device=CUDA))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0


def test_compiled_model_with_cuda_graphs_gives_eager_embeddings_and_gradients():
    """The interface's inference path (torch.compile, mode="reduce-overhead":
    CUDA graphs, padded to length buckets) and a compiled training step: eager's
    numbers to 1e-4 in float32 (TF32 off on both sides)."""
    torch.manual_seed(0)
    pipeline = EmbeddingPipeline(LogMelInstanceNorm(n_mels=40), tdy_resnet34_quarter(n_mels=40)).to(CUDA).eval()
    wavs = [torch.randn(1, 32000, device=CUDA), torch.randn(1, 33000, device=CUDA), torch.randn(3, 20000, device=CUDA)]
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        expected = [pipeline.embed(w) for w in wavs]
        pipeline.compile_inference(mode="reduce-overhead", dynamic=True)
        for _ in range(3):  # CUDA graph trees warm up, record, then replay
            got = [pipeline.embed(w) for w in wavs]
        assert pipeline.compiled_forward.error is None
        for g, e in zip(got, expected):
            assert relative_error(g, e) < 1e-4

        model = pipeline.embedding_model.train()
        feats = torch.randn(4, 200, 40, device=CUDA)
        model(feats).square().sum().backward()
        expected_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        torch.compile(model, fullgraph=True)(feats).square().sum().backward()
        for g, e in zip([p.grad for p in model.parameters()], expected_grads):
            assert relative_error(g, e) < 1e-4
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


@pytest.fixture(scope="module", params=["bf16", "fp16"])
def cuda_brain(request, tiny_corpus, tmp_path_factory):
    """The recipe's Brain training on the GPU at this precision, and a batch."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield recipe_brain(monkeypatch, tiny_corpus, tmp_path_factory.mktemp(request.param), "--device=cuda:0",
                           f"--precision={request.param}", batch_speakers=3)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_recipe_step_with_each_transform_augments_in_float32_on_the_gpu(transform, cuda_brain):
    brain, batch = cuda_brain
    assert brain.scaler.is_enabled() == (brain.precision == "fp16")
    assert check_forced_transform(brain, batch, transform).device.type == "cuda"


def test_recipe_steps_with_the_configured_augmenter_on_the_gpu(cuda_brain):
    check_configured_augmenter(*cuda_brain, steps=6)


def test_grad_accumulation_gives_the_whole_batch_gradients_on_the_gpu(cuda_brain):
    """Batch norm on running statistics (eval mode), no augmentation, micro-batches
    of 2, 2, 1, 1. Without autocast the gradients are the whole batch's up to TF32
    rounding. Under autocast (fp16: with the GradScaler) both the whole batch's
    and the micro-batches' gradients differ from those by half-precision rounding,
    which the batch size changes (other kernels): on CPU bf16, 8-9% each from
    float32 and from each other; so the micro-batches must be about as close to
    float32 as the whole batch is."""
    brain, batch = cuda_brain
    if brain.scaler.is_enabled():  # a loss scale at which this model's fp16 gradients cannot overflow
        brain.scaler.scale(torch.ones((), device=brain.device))  # creates the scale tensor
        brain.scaler.update(128.0)
    autocast = brain.training_ctx
    brain.modules.eval()
    brain.hparams.augment = False  # the same waveforms for every step
    grads = {}
    try:
        for precision, context in (("fp32", TorchAutocast(device_type="cuda", dtype=torch.float32)), ("half", autocast)):
            brain.training_ctx = context
            for factor in (1, 4):
                _, grads[precision, factor] = step_gradients(brain, batch, factor)
    finally:
        brain.training_ctx, brain.grad_accumulation_factor, brain.hparams.augment = autocast, 1, True
        brain.modules.train()
    assert all(g.keys() == grads["fp32", 1].keys() for g in grads.values())
    assert len(grads["fp32", 1]) == len(list(brain.modules.parameters()))
    flat = {key: torch.cat([g.flatten().float() for g in named.values()]) for key, named in grads.items()}
    assert relative_error(flat["fp32", 4], flat["fp32", 1]) < 5e-2  # TF32 (SpeechBrain enables it): ~1e-3 per layer
    assert relative_error(flat["half", 4], flat["fp32", 1]) < 2 * relative_error(flat["half", 1], flat["fp32", 1]) + 2e-2
