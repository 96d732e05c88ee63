"""The fused TDY convolution against the plain formulation: outputs and gradients."""
import pytest
import torch
from helpers import GEOMETRIES, inputs, plain_tdy_conv2d

from speechbrain_tdy.lobes import tdy_resnet34_quarter
from speechbrain_tdy.nnet import forms_of, set_recompute
from speechbrain_tdy.nnet.tdy_functional import tdy_conv2d


@pytest.fixture(params=["kernel by kernel", "batched over K"])
def mixing(request):
    """Both ways of mixing the K per-kernel outputs, here both on CPU: kernel by
    kernel (what CPUs run) and batched over K (what GPUs run)."""
    with forms_of("cpu" if request.param == "kernel by kernel" else "cuda"):
        yield request.param




@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("input_layout", [torch.contiguous_format, torch.channels_last], ids=str)
@pytest.mark.parametrize("grad_layout", [torch.contiguous_format, torch.channels_last], ids=str)
@pytest.mark.parametrize("in_channels", [3, 16])
def test_outputs_and_gradients_equal_the_plain_formulation(geometry, input_layout, grad_layout, in_channels, mixing):
    """Whatever the layouts it is given, it convolves and answers channels-last;
    on CPU, where oneDNN's channels-last backward is unsafe (3 channels), the
    kernel-by-kernel mixing convolves and answers NCHW."""
    args = list(inputs(**geometry, in_channels=in_channels))
    args[0] = args[0].contiguous(memory_format=input_layout)
    tensors = [t.requires_grad_() for t in args[:4] if t is not None]
    fast = tdy_conv2d(*args)
    if in_channels == 16 or mixing == "batched over K":
        assert fast.is_contiguous(memory_format=torch.channels_last) and not fast.is_contiguous()
    else:
        assert fast.is_contiguous() and not fast.is_contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(fast).contiguous(memory_format=grad_layout)
    fast_grads = torch.autograd.grad(fast, tensors, grad)
    plain = plain_tdy_conv2d(*args)
    plain_grads = torch.autograd.grad(plain, tensors, grad)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-10)
    for got, expected in zip(fast_grads, plain_grads):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_recompute_keeps_no_per_kernel_outputs_and_gives_the_same_gradients(geometry, mixing):
    args = inputs(**geometry)
    tensors = [t.requires_grad_() for t in args[:4] if t is not None]
    kept = tdy_conv2d(*args)
    recomputed = tdy_conv2d(*args, recompute=True)
    assert kept.grad_fn.out is not None and recomputed.grad_fn.out is None
    grad = torch.randn_like(kept)
    for got, expected in zip(torch.autograd.grad(recomputed, tensors, grad), torch.autograd.grad(kept, tensors, grad)):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_set_recompute_switches_every_tdy_layer_of_a_model():
    model = tdy_resnet34_quarter(n_mels=24)
    feats = torch.randn(2, 40, 24)
    first, last = model.layer1[0].conv1, model.layer4[-1].conv2  # 16 -> 16 and 128 -> 128, 3x3

    def keeps_outputs(layer):
        x = torch.randn(2, layer.in_channels, layer.freq_size, 10, requires_grad=True)
        return layer(x).grad_fn.out is not None

    assert keeps_outputs(first) and keeps_outputs(last)
    kept = torch.autograd.grad(model(feats).sum(), list(model.parameters()))
    assert set_recompute(model, "selective") == 35
    assert not keeps_outputs(first) and keeps_outputs(last)  # 16 * 9 <= 576 < 128 * 9 multiply-adds per value
    assert set_recompute(model, True) == 35
    assert not keeps_outputs(first) and not keeps_outputs(last)
    recomputed = torch.autograd.grad(model(feats).sum(), list(model.parameters()))
    for a, b in zip(recomputed, kept):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="True, False or 'selective'"):
        set_recompute(model, "yes")
    with pytest.raises(ValueError, match="True, False or 'selective'"):
        set_recompute(torch.nn.Sequential(), "yes")
    with pytest.raises(ValueError, match="recompute must be True, False or 'selective'"):
        first.recompute = "always"
    assert first.recompute is True  # unchanged


@pytest.mark.parametrize("geometry", GEOMETRIES[:3], ids=str)
def test_gradcheck(geometry, mixing):
    args = inputs(batch=1, in_channels=2, out_channels=2, freq=5, time=6, **{k: v for k, v in geometry.items()
                                                                            if k not in ("time", "freq")})
    x, weight, bias, attention, stride, padding = args
    tensors = tuple(t.requires_grad_() for t in (x, weight, attention) + (() if bias is None else (bias,)))

    def fn(x, weight, attention, bias=None):
        return tdy_conv2d(x, weight, bias, attention, stride, padding)

    assert torch.autograd.gradcheck(fn, tensors)


def test_a_second_backward_through_a_retained_graph_gives_the_same_gradients(mixing):
    x, weight, bias, attention, stride, padding = inputs()
    attention.requires_grad_()
    weight.requires_grad_()
    out = tdy_conv2d(x, weight, bias, attention, stride, padding).square().sum()
    first = torch.autograd.grad(out, (weight, attention), retain_graph=True)
    second = torch.autograd.grad(out, (weight, attention))
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b)


def test_without_autograd_the_output_is_the_same_and_keeps_no_graph(mixing):
    args = inputs(dtype=torch.float32)
    args[1].requires_grad_()
    with torch.no_grad():
        out = tdy_conv2d(*args)
    assert out.grad_fn is None
    torch.testing.assert_close(out, plain_tdy_conv2d(*args).detach(), rtol=1e-5, atol=1e-5)


def test_autocast_runs_in_the_autocast_dtype_and_returns_float32_gradients(mixing):
    x, weight, bias, attention, stride, padding = inputs(dtype=torch.float32)
    weight.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tdy_conv2d(x, weight, bias, attention, stride, padding)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert weight.grad.dtype == torch.float32
    torch.testing.assert_close(out.float(), plain_tdy_conv2d(x, weight, bias, attention, stride, padding),
                               rtol=0.05, atol=0.3)
