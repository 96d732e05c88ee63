"""TDYConv2d against a direct per-time-bin evaluation, and the temperature schedule."""
import pytest
import torch
import torch.nn.functional as F

from speechbrain_tdy.nnet import TDYConv2d, TemperatureScheduler, forms_of, set_temperature
from speechbrain_tdy.nnet.temperature import temperature_at_epoch


def direct_tdy(layer, x):
    """y(f, t) = sum_k pi_k(t) (W_k * x + b_k)(f, t), one output time bin at a time."""
    pi = layer.attention_weights(x)
    (_, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    padded = F.pad(x, (pw, pw, ph, ph))
    columns = []
    for t in range(pi.shape[-1]):
        window = padded[..., t * sw : t * sw + kw]
        kernel = torch.einsum("bk,kcihw->bcihw", pi[:, :, t], layer.weight)
        out = torch.stack([F.conv2d(window[b : b + 1], kernel[b], stride=(sh, 1)) for b in range(x.shape[0])])
        out = out[:, 0, :, :, 0]
        if layer.bias is not None:
            out = out + (pi[:, :, t] @ layer.bias)[:, :, None]
        columns.append(out)
    return torch.stack(columns, dim=-1)


CASES = [
    dict(kernel_size=3, stride=1, padding=1, bias=False, freq=8, time=11),
    dict(kernel_size=3, stride=2, padding=1, bias=True, freq=9, time=13),
    dict(kernel_size=1, stride=2, padding=0, bias=False, freq=8, time=7),
    dict(kernel_size=(5, 5), stride=(2, 2), padding=(1, 1), bias=True, freq=11, time=12),
    dict(kernel_size=(7, 1), stride=1, padding=0, bias=False, freq=7, time=5),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_direct_evaluation_outputs_and_gradients(case):
    torch.manual_seed(0)
    layer = TDYConv2d(3, 4, case["kernel_size"], freq_size=case["freq"], stride=case["stride"],
                      padding=case["padding"], bias=case["bias"], temperature=4.0).double()
    if layer.bias is not None:
        torch.nn.init.normal_(layer.bias)
    layer.eval()
    x = torch.randn(2, 3, case["freq"], case["time"], dtype=torch.float64, requires_grad=True)
    fast, direct = layer(x), direct_tdy(layer, x)
    torch.testing.assert_close(fast, direct, rtol=1e-9, atol=1e-9)
    upstream = torch.randn_like(fast)
    params = [x] + [p for p in layer.parameters() if p.requires_grad]
    grads_fast = torch.autograd.grad(fast, params, upstream)
    grads_direct = torch.autograd.grad(direct, params, upstream)
    for got, want in zip(grads_fast, grads_direct):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize(
    "kernel,stride,padding,time", [(3, 1, 1, 9), (3, 2, 1, 9), (1, 2, 0, 7), (1, 2, 0, 8), (1, 3, 0, 10)]
)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=str)
def test_attention_equals_its_conv1d_over_flattened_features(kernel, stride, padding, time, layout, first_conv):
    """The first Conv1d runs as a conv2d spanning all frequency bins, in x's
    layout (CPU), or on a flattened copy of x made again in backward (GPU)."""
    torch.manual_seed(0)
    layer = TDYConv2d(3, 4, kernel, stride=stride, padding=padding, freq_size=5, temperature=2.0).double().eval()
    attention = layer.attention
    x = torch.randn(2, 3, 5, time, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    pi = layer.attention_weights(x)
    hidden = F.relu(attention.bn(attention.fc1(x.reshape(2, 15, time))))  # the nn.Conv1d itself
    expected = torch.softmax(attention.fc2(hidden) / 2.0, dim=1)
    assert pi.shape == (2, layer.n_kernels, (time + 2 * padding - kernel) // stride + 1)
    torch.testing.assert_close(pi, expected, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(pi)
    params = [x, attention.fc1.weight]
    for got, want in zip(torch.autograd.grad(pi, params, upstream), torch.autograd.grad(expected, params, upstream)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.fixture(params=["conv2d", "flattened copy"])
def first_conv(request):
    """Both forms of the attention's first Conv1d, here both on CPU: a conv2d over
    all frequency bins (what CPUs run), on a flattened copy of x (what GPUs run)."""
    with forms_of("cuda" if request.param == "flattened copy" else "cpu"):
        yield request.param


@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "bf16 autocast"])
def test_attention_on_a_flattened_copy_keeps_x_for_backward_not_the_copy(autocast):
    """The GPU's form (forced here on CPU): nn.Conv1d's numbers on the flattened
    x, in the autocast dtype, with float32 gradients; autograd keeps x and the
    weight, not a copy of x."""
    torch.manual_seed(0)
    attention = TDYConv2d(4, 8, 3, stride=(1, 2), padding=1, freq_size=6).attention
    x = torch.randn(2, 4, 6, 15).contiguous(memory_format=torch.channels_last).requires_grad_()
    saved = []
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t), forms_of("cuda"):
            hidden = attention._first_conv(x)
        expected = attention.fc1(x.flatten(1, 2))
    assert hidden.dtype == expected.dtype == (torch.bfloat16 if autocast else torch.float32)
    torch.testing.assert_close(hidden, expected, rtol=0, atol=0)
    kept = {t.untyped_storage().data_ptr() for t in saved}
    assert kept == {x.untyped_storage().data_ptr(), attention.fc1.weight.untyped_storage().data_ptr()}
    upstream = torch.randn_like(hidden)
    params = [x, attention.fc1.weight]
    for got, want in zip(torch.autograd.grad(hidden, params, upstream), torch.autograd.grad(expected, params, upstream)):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=1e-2 if autocast else 1e-6, atol=1e-2 if autocast else 1e-6)


def test_attention_is_a_distribution_over_kernels_per_time_bin():
    layer = TDYConv2d(2, 3, 3, freq_size=6, stride=2, padding=1).eval()
    pi = layer.attention_weights(torch.randn(3, 2, 6, 15))
    assert pi.shape == (3, 6, 8)
    torch.testing.assert_close(pi.sum(dim=1), torch.ones(3, 8))


def test_temperature_flattens_the_attention():
    torch.manual_seed(0)
    layer = TDYConv2d(2, 3, 3, freq_size=6, padding=1).eval()
    x = torch.randn(1, 2, 6, 20)
    set_temperature(layer, 1.0)
    sharp = layer.attention_weights(x)
    set_temperature(layer, 31.0)
    flat = layer.attention_weights(x)
    assert (flat.max(dim=1).values - flat.min(dim=1).values).mean() < (
        sharp.max(dim=1).values - sharp.min(dim=1).values
    ).mean()


def test_temperature_schedule_goes_31_to_1_by_3():
    assert [temperature_at_epoch(e) for e in range(1, 13)] == [31, 28, 25, 22, 19, 16, 13, 10, 7, 4, 1, 1]


def test_per_step_schedule_follows_the_per_epoch_line_without_jumps():
    scheduler, steps = TemperatureScheduler(), 40
    curve = [scheduler.at(epoch, step, steps) for epoch in range(1, 13) for step in range(steps)]
    # the paper's value at the start of every epoch, then down by 3 / steps per step, 1 from epoch 11 on
    assert curve[::steps] == [temperature_at_epoch(epoch) for epoch in range(1, 13)]
    assert curve[:3] == [31.0, 31.0 - 3 / steps, 31.0 - 6 / steps]
    assert curve[10 * steps - 1] == pytest.approx(1 + 3 / steps) and set(curve[10 * steps:]) == {1.0}
    assert max(a - b for a, b in zip(curve, curve[1:])) == pytest.approx(3 / steps)
    staircase = TemperatureScheduler(per_step=False)
    assert [staircase.at(epoch, step, steps) for epoch in range(1, 13) for step in range(steps)] == [
        temperature_at_epoch(epoch) for epoch in range(1, 13) for _ in range(steps)]
    with pytest.raises(ValueError, match=r"step must be in \[0, 40\), got 40"):
        scheduler.at(1, 40, 40)


def test_the_scheduler_reaches_every_layer():
    from speechbrain_tdy.lobes import tdy_resnet34_quarter

    model = tdy_resnet34_quarter(n_mels=40)
    layers = [m for m in model.modules() if isinstance(m, TDYConv2d)]
    assert len(layers) == (3 + 4 + 6 + 3) * 2 + 3  # two convs per block + 3 downsamples
    assert {layer.temperature for layer in layers} == {1.0}  # a built model is at the inference temperature
    scheduler = TemperatureScheduler()
    assert scheduler(model, epoch=4) == 22.0
    assert {layer.temperature for layer in layers} == {22.0}


def test_scheduler_state_survives_a_checkpoint(tmp_path):
    from speechbrain.utils.checkpoints import Checkpointer

    scheduler = TemperatureScheduler()
    scheduler(torch.nn.Identity(), epoch=5)
    Checkpointer(tmp_path, {"temperature": scheduler}).save_checkpoint()
    restored = TemperatureScheduler()
    Checkpointer(tmp_path, {"temperature": restored}).recover_if_possible()
    assert restored.current == 19.0


def test_attention_without_input_gradient_gives_the_same_outputs_and_the_constant_attention_gradient():
    from speechbrain_tdy.nnet import set_attention_input_grad
    from speechbrain_tdy.nnet.tdy_functional import tdy_conv2d

    torch.manual_seed(0)
    layer = TDYConv2d(3, 4, 3, freq_size=6, padding=1, temperature=1.0).double()
    x = torch.randn(2, 3, 6, 9, dtype=torch.float64, requires_grad=True)
    grad_y = torch.randn(2, 4, 6, 9, dtype=torch.float64)
    full_y = layer(x)
    (full,) = torch.autograd.grad(full_y, x, grad_y)
    assert set_attention_input_grad(layer, False) == 1
    y = layer(x)
    torch.testing.assert_close(y, full_y, rtol=0, atol=0)
    y.backward(grad_y)
    pi = layer.attention_weights(x).detach()  # the attention as a constant: the main path only
    (main_path,) = torch.autograd.grad(tdy_conv2d(x, layer.weight, None, pi, (1, 1), (1, 1)), x, grad_y)
    torch.testing.assert_close(x.grad, main_path)
    assert (x.grad - full).abs().max() > 1e-3  # the attention path carries gradient when enabled
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.attention.parameters())


def test_wrong_input_shape_is_a_clear_error():
    layer = TDYConv2d(4, 8, 3, freq_size=10, padding=1)
    with pytest.raises(ValueError, match=r"expected input \(batch, 4, 10, time\), got \(2, 4, 12, 30\)"):
        layer(torch.randn(2, 4, 12, 30))
