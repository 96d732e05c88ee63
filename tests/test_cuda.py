"""The TDY convolution and a TDY model on a CUDA device (skipped without one).

References are computed on the CPU in float64. The layer is checked exactly
in float64 on the device; in float32, cuDNN convolves with TF32 by default
(10-bit mantissa products): a float32 layer agrees to about 3e-4, a whole
model to 2e-3.
"""
import pytest
import torch

from speechbrain_tdy.lobes import LogMelInstanceNorm, tdy_resnet34_quarter
from speechbrain_tdy.nnet.tdy_functional import tdy_conv2d
from test_tdy_fast import GEOMETRIES, inputs, plain_tdy_conv2d

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
