"""The guard against oneDNN's channels-last backward bug on CPU (speechbrain_tdy.nnet.layout).

Two halves: no convolution the package builds runs channels-last on CPU where
the rule forbids it (any model, any input layout, eager or compiled), and the
rule itself holds on this CPU: every configuration it allows gives the
gradients of NCHW, swept in a subprocess per instruction set so that an abort
fails the test instead of killing pytest.
"""
import subprocess
import sys

import pytest
import torch
from torch._prims_common import suggest_memory_format
from torch.utils._python_dispatch import TorchDispatchMode

from helpers import TOOLS
from speechbrain_tdy.lobes.registry import ARCHITECTURES
from speechbrain_tdy.lobes.resnet import ResNet
from speechbrain_tdy.nnet import layout
from speechbrain_tdy.nnet.layout import Conv2d

SWEEP = TOOLS / "onednn_sweep.py"
from onednn_sweep import ISA_FLAGS, cpu_flags  # noqa: E402  (tools/ is on the tests' path, pytest.ini)

CONVOLUTIONS = {torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default}


class ConvolutionLayouts(TorchDispatchMode):
    """Records (op, input channels, stride, channels-last?) of every 2-d
    convolution and convolution backward that runs under it."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in CONVOLUTIONS:
            x, weight = args[:2] if func is torch.ops.aten.convolution.default else args[1:3]
            if x.dim() == 4:
                channels_last = torch.channels_last in (suggest_memory_format(x), suggest_memory_format(weight))
                stride = args[3] if func is torch.ops.aten.convolution.default else args[4]
                self.calls.append((func._opname, x.shape[1], tuple(stride), channels_last))
        return func(*args, **(kwargs or {}))


def unsafe(calls):
    """Channels-last calls with input channels neither one nor a multiple of 16."""
    return [call for call in calls if call[3] and call[1] != 1 and call[1] % 16]


# Stages 8 and 12 wide: the strided first blocks of stages 2 and 3 and their 1x1 shortcuts see 8 and 12
# input channels, which crashed on AVX-512 and gave wrong gradients on AVX2 (2 to 7).
TINY_CHANNELS = (8, 12, 24, 16)


@pytest.mark.parametrize("conv", ["tdy", "dtdy", "static"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
@pytest.mark.parametrize("backend", [None, "aot_eager"])
def test_no_convolution_runs_channels_last_where_onednn_is_unsafe(conv, memory_format, backend):
    """A training step of a tiny ResNet (also converted to channels-last, as a
    user may): every convolution forward and backward whose input channels are
    not a multiple of 16 runs NCHW, and those that are run channels-last in the
    TDY model (the guard costs the released models nothing). ``aot_eager``
    runs the backward that the compiler derives."""
    torch.manual_seed(0)
    model = ResNet(n_mels=24, channels=TINY_CHANNELS, conv=conv, lin_neurons=8, layers=(1, 1, 1, 1))
    for module in model.modules():  # the 4-d weights (a TDY layer's 5-d kernels have no channels-last)
        if isinstance(module, torch.nn.Conv2d):
            module.to(memory_format=memory_format)
    forward = model if backend is None else torch.compile(model, backend=backend)
    feats, lengths = torch.randn(3, 40, 24), torch.tensor([1.0, 0.8, 0.6])
    with ConvolutionLayouts() as layouts:
        forward(feats, lengths).square().sum().backward()
    ops = {call[0] for call in layouts.calls}
    assert ops == {"convolution", "convolution_backward"}, ops
    assert unsafe(layouts.calls) == []
    strided = [call for call in layouts.calls if max(call[2]) > 1 and call[1] % 16]
    assert strided, "the tiny model has strided convolutions with 8 and 12 input channels"
    if conv == "tdy":
        assert any(call[3] for call in layouts.calls if call[1] % 16 == 0)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_guarded_conv_keeps_nn_conv2d_parameters_and_results():
    """layout.Conv2d is nn.Conv2d with the guard: same state-dict keys, same
    outputs and gradients (NCHW for 8 input channels, as nn.Conv2d in NCHW)."""
    torch.manual_seed(0)
    plain = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
    guarded = Conv2d(8, 16, 3, stride=2, padding=1)
    guarded.load_state_dict(plain.state_dict())
    x = torch.randn(2, 8, 10, 20, requires_grad=True)
    with ConvolutionLayouts() as layouts:
        out = guarded.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        (grad_x,) = torch.autograd.grad(out.square().sum(), x)
    assert [call[3] for call in layouts.calls] == [False, False]
    torch.testing.assert_close(out, plain(x))
    torch.testing.assert_close(grad_x, torch.autograd.grad(plain(x).square().sum(), x)[0])
    with pytest.raises(ValueError, match="pads with zeros only"):
        Conv2d(8, 16, 3, padding=1, padding_mode="reflect")


@pytest.mark.parametrize("isa", ["AVX2", "AVX512_CORE", "native"])
def test_every_configuration_the_guard_allows_matches_nchw(isa):
    """tools/onednn_sweep.py --guarded under ONEDNN_MAX_CPU_ISA=isa: input
    channels 1-64, kernels 1 and 3, strides 1 and 2, batches 1-16, every one
    the guard runs channels-last gives NCHW's gradients. The sweep runs in its
    own processes: an abort there is a failure here, naming the configuration."""
    missing = ISA_FLAGS[isa] - cpu_flags()
    if missing:
        pytest.skip(f"this CPU lacks {' '.join(sorted(missing))}")
    proc = subprocess.run([sys.executable, str(SWEEP), "--isa", isa, "--guarded"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{isa}: " in proc.stdout and " 0 failed" in proc.stdout, proc.stdout


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_released_models_convolve_in_the_same_layouts_with_and_without_the_guard(name, monkeypatch):
    """The guard costs the released models nothing: every convolution of each
    (stems with one input channel, the rest multiples of 16) runs in the layout
    it runs in when every convolution may be channels-last."""
    architecture = ARCHITECTURES[name]
    front_end, model = architecture.build(architecture.model_values())
    feats = torch.randn(1, 160, 64)

    def layouts():
        with torch.no_grad(), ConvolutionLayouts() as recorder:
            model.eval()(feats)
        return recorder.calls

    guarded = layouts()
    monkeypatch.setattr(layout, "ONEDNN_CHANNEL_BLOCK", 1)
    assert guarded == layouts() and len(guarded) > 5
