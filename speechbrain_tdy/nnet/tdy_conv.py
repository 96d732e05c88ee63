"""Temporal dynamic convolution (TDY-CNN, Kim et al., ICASSP 2022).

K basis kernels are mixed separately for every output time bin, with weights
pi_k(t) from a small attention branch that looks at all channels and frequency
bins of the input around time t:

    y(f, t) = sum_k pi_k(t) * (W_k * x + b_k)(f, t)

The convolution work itself lives in :mod:`speechbrain_tdy.nnet.tdy_functional`.
"""
import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_tdy.nnet.forms import runs_cpu_forms
from speechbrain_tdy.nnet.geometry import check_feature_map, pair
from speechbrain_tdy.nnet.layout import Conv2d, safe_conv_layout
from speechbrain_tdy.nnet.masking import conv_output_lengths, mask_time
from speechbrain_tdy.nnet.tdy_functional import tdy_conv2d


#: With ``set_recompute(model, "selective")`` a TDY layer recomputes its
#: per-kernel outputs in backward when that costs at most this many
#: multiply-adds per kept value (in_channels * kh * kw): in TDY-ResNet-34 x0.5
#: its first two stages and its 1x1 shortcuts.
SELECTIVE_RECOMPUTE_MAX_MACS = 576

#: The temperature of a trained model's TDY layers (plain softmax attention):
#: what inference runs at and where training's annealing ends.
INFERENCE_TEMPERATURE = 1.0


class StaticConv2d(Conv2d):
    """A plain convolution (:class:`speechbrain_tdy.nnet.layout.Conv2d`) that
    takes the same ``(x, lengths)`` call as the dynamic convolutions, so that
    model code treats all three alike.

    Example
    -------
    >>> conv = StaticConv2d(4, 8, 3, padding=1)
    >>> conv(torch.randn(2, 4, 10, 20), torch.tensor([20, 11])).shape
    torch.Size([2, 8, 10, 20])
    """

    def forward(self, x, lengths=None):
        """x: (batch, in_channels, freq, time); lengths: (batch,) valid time steps."""
        return super().forward(mask_time(x, lengths))


class TDYAttention(nn.Module):
    """Per-time-bin softmax attention over K kernels.

    Conv1d over (in_channels * freq) features -> BatchNorm -> ReLU -> Conv1d to K
    logits (kernel 3) -> softmax over K of logits / temperature. The first
    Conv1d has the main convolution's time kernel, stride and padding, so the
    attention has one value per output time bin.

    Arguments
    ---------
    in_channels : int
        Channels of the layer input.
    freq_size : int
        Frequency bins of the layer input (the "map size").
    kernel_size, stride, padding : int
        Time kernel, stride and padding of the main convolution.
    n_kernels : int
        Number of basis kernels K.
    reduction : int
        Width reduction of the hidden layer.
    """

    def __init__(self, in_channels, freq_size, kernel_size, stride, padding, n_kernels, reduction=8):
        super().__init__()
        width = in_channels * freq_size
        hidden = width // reduction
        self.fc1 = nn.Conv1d(width, hidden, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Conv1d(hidden, n_kernels, 3, padding=1)
        self.in_channels, self.freq_size = in_channels, freq_size
        self.time_kernel, self.time_stride, self.time_padding = kernel_size, stride, padding
        for conv in (self.fc1, self.fc2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x, temperature, lengths=None):
        """Return pi: (batch, K, time_out) for x: (batch, in_channels, freq, time)
        whose time steps beyond ``lengths`` are already zero."""
        hidden = F.relu(self.bn(self._first_conv(x)))
        out_lengths = conv_output_lengths(lengths, self.time_kernel, self.time_stride, self.time_padding)
        logits = self.fc2(mask_time(hidden, out_lengths))
        return torch.softmax(logits / temperature, dim=1)

    def _first_conv(self, x):
        """``fc1``, a Conv1d over the (in_channels * freq) features of x
        (batch, in_channels, freq, time): (batch, hidden, time_out).

        On CPU it runs as the same-numbers conv2d whose kernel spans all
        frequency bins. That reads x in its layout, so a channels-last x (see
        :mod:`speechbrain_tdy.nnet.tdy_functional`) is neither copied nor kept
        twice for backward (except where oneDNN's channels-last backward is
        unsafe, :mod:`speechbrain_tdy.nnet.layout`), and it is as fast as or
        faster than the Conv1d on most of TDY-ResNet-34's shapes. cuDNN runs
        that conv2d slower on a channels-last x than on a (batch, channels,
        freq, time) one (``benchmarks/README.md``), so elsewhere the Conv1d runs on a
        flattened copy of x, made again in backward rather than kept
        (:class:`_FlattenedConv1d`). The kernel's shape comes from the layer,
        not from x, so that it stays constant in an ONNX export."""
        if not runs_cpu_forms(x):  # accelerators: a Conv1d on a flattened copy of x
            if torch.compiler.is_compiling():
                return self.fc1(x.flatten(1, 2))
            return _FlattenedConv1d.apply(x, self.fc1.weight, self.time_stride, self.time_padding)
        weight = self.fc1.weight.view(self.fc1.out_channels, self.in_channels, self.freq_size, self.time_kernel)
        x, weight = safe_conv_layout(x, weight)
        hidden = F.conv2d(x, weight, stride=(1, self.time_stride), padding=(0, self.time_padding))
        return hidden.squeeze(2)


class _FlattenedConv1d(torch.autograd.Function):
    """conv1d(x.flatten(1, 2), weight) for x (batch, channels, freq, time) that
    keeps x for backward instead of the flattened copy, and copies again there.

    The TDY convolution reading x keeps it, and in the ResNets so does the
    ReLU that made it (in float32 under autocast), so this saves one copy of
    every TDY layer's input, (batch, channels, freq, time), per training step
    (``benchmarks/README.md`` has what the copy cost). Under autocast it computes in the
    autocast dtype and returns gradients in the inputs' dtypes.
    """

    @staticmethod
    def forward(ctx, x, weight, stride, padding):
        device_type = x.device.type
        ctx.dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else x.dtype
        ctx.stride, ctx.padding = stride, padding
        ctx.save_for_backward(x, weight)
        with torch.autocast(device_type, enabled=False):
            return F.conv1d(x.flatten(1, 2).to(ctx.dtype), weight.to(ctx.dtype), stride=stride, padding=padding)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
            grad.to(ctx.dtype), x.flatten(1, 2).to(ctx.dtype), weight.to(ctx.dtype), None, [ctx.stride],
            [ctx.padding], [1], False, [0], 1, [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False],
        )
        if grad_x is not None:
            grad_x = grad_x.view(x.shape).to(x.dtype)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_x, grad_weight, None, None


class TDYConv2d(nn.Module):
    """Temporal dynamic 2-D convolution over (freq, time) feature maps.

    Arguments
    ---------
    in_channels, out_channels : int
        Channels of input and output.
    kernel_size, stride, padding : int or tuple
        As for ``nn.Conv2d``; tuples are (freq, time).
    freq_size : int
        Frequency bins of the input; the attention branch's width depends on it.
    bias : bool
        Give each basis kernel a bias.
    n_kernels : int
        Number of basis kernels K (6 in the paper).
    temperature : float
        Softmax temperature of the attention: 1, the inference value, unless
        set (training anneals it from 31 to 1; see
        :mod:`speechbrain_tdy.nnet.temperature`).

    The attribute ``recompute`` trades training time for memory (see
    :func:`set_recompute`): False (default) keeps the per-kernel outputs from
    forward for backward, True recomputes them in backward, "selective" only
    where that is cheap (:attr:`recomputes`). The attribute
    ``attention_input_grad`` (see :func:`set_attention_input_grad`) says
    whether the attention passes gradients back to the layer's input (True,
    the default, as the authors train) or only to its own parameters; the
    outputs are the same either way.

    Example
    -------
    >>> conv = TDYConv2d(16, 32, kernel_size=3, freq_size=20, stride=2, padding=1)
    >>> x = torch.randn(4, 16, 20, 101)
    >>> conv(x).shape
    torch.Size([4, 32, 10, 51])
    >>> conv.attention_weights(x).shape
    torch.Size([4, 6, 51])
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        *,
        freq_size,
        stride=1,
        padding=0,
        bias=False,
        n_kernels=6,
        temperature=INFERENCE_TEMPERATURE,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = pair(kernel_size), pair(stride), pair(padding)
        self.freq_size, self.n_kernels = freq_size, n_kernels
        # A buffer (not saved), not a Python float: torch.compile reads it as an input, where a float
        # would be a constant of the graph and every step of the annealing would recompile the model.
        self.register_buffer("temperature_tensor", torch.tensor(float(temperature)), persistent=False)
        self._recompute = False
        self.attention_input_grad = True
        self.attention = TDYAttention(
            in_channels, freq_size, self.kernel_size[1], self.stride[1], self.padding[1], n_kernels
        )
        self.weight = nn.Parameter(torch.empty(n_kernels, out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(n_kernels, out_channels)) if bias else None
        for kernel in self.weight.data:
            nn.init.kaiming_normal_(kernel)

    def attention_weights(self, x, lengths=None):
        """Mixing weights pi: (batch, K, time_out) for x: (batch, in_channels, freq, time)."""
        check_feature_map(x, self.in_channels, self.freq_size, type(self).__name__)
        return self.attention(mask_time(x, lengths), self.temperature_tensor, lengths)

    def forward(self, x, lengths=None):
        """x: (batch, in_channels, freq, time); lengths: (batch,) valid time steps
        or None. Returns (batch, out_channels, freq_out, time_out)."""
        check_feature_map(x, self.in_channels, self.freq_size, type(self).__name__)
        x = mask_time(x, lengths)
        pi = self.attention(x if self.attention_input_grad else x.detach(), self.temperature_tensor, lengths)
        return tdy_conv2d(x, self.weight, self.bias, pi, self.stride, self.padding, self.recomputes)

    @property
    def temperature(self):
        """The attention's softmax temperature (a float; set it with a number)."""
        return float(self.temperature_tensor)

    @temperature.setter
    def temperature(self, value):
        with torch.no_grad():
            self.temperature_tensor.fill_(float(value))

    @property
    def recompute(self):
        """The layer's recomputation setting: True, False or "selective"."""
        return self._recompute

    @recompute.setter
    def recompute(self, value):
        self._recompute = _checked_recompute(value)

    @property
    def recomputes(self):
        """Whether backward recomputes the K per-kernel outputs instead of
        keeping them from forward. With ``recompute="selective"``, a layer
        recomputes when that costs at most ``SELECTIVE_RECOMPUTE_MAX_MACS``
        multiply-adds per kept value, ``in_channels * kh * kw``."""
        if self.recompute == "selective":
            return self.in_channels * self.kernel_size[0] * self.kernel_size[1] <= SELECTIVE_RECOMPUTE_MAX_MACS
        return bool(self.recompute)

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, freq_size={self.freq_size}, "
            f"n_kernels={self.n_kernels}, temperature={self.temperature:g}, bias={self.bias is not None}"
        )


def set_recompute(model, enabled=True):
    """Make every TDY layer of ``model`` recompute its K per-kernel outputs in
    backward instead of keeping them from forward (``enabled=True``), keep
    them again (False, the default), or recompute them only where that is
    cheapest for the memory it frees ("selective").

    Those outputs, K times the size of the layer's output, bound a TDY
    network's training memory; recomputing them costs one more basis
    convolution per layer, and results are identical. In TDY-ResNet-34,
    "selective" recomputes the first two stages and the 1x1 shortcuts, which
    hold two thirds of those outputs for 30% of the convolution work (the
    layers of at most :data:`SELECTIVE_RECOMPUTE_MAX_MACS` multiply-adds per
    kept value). What each setting saves and costs is measured in
    ``benchmarks/README.md``. Returns the number of layers set.

    >>> set_recompute(nn.Sequential(TDYConv2d(2, 2, 3, freq_size=4), TDYConv2d(2, 2, 3, freq_size=4)))
    2
    """
    _checked_recompute(enabled)  # also for a model without TDY layers
    layers = tdy_layers(model)
    for layer in layers:
        layer.recompute = enabled
    return len(layers)


def set_attention_input_grad(model, enabled):
    """Let the attention of every TDY layer of ``model`` pass gradients back
    to the layer's input (``enabled=True``, the default, as the authors train)
    or not (False: its own parameters still learn from the loss, and forward
    outputs are unchanged).

    The attention's sensitivity to its input grows as 1 / temperature; at
    temperature 1 that path multiplies the gradient at every TDY layer, so
    in TDY-ResNet-34 (35 TDY layers) the gradients of the first layers
    explode by orders of magnitude as the temperature reaches 1
    (``benchmarks/tdy_gradients.py``; results in ``benchmarks/README.md``).
    Returns the number of layers set.

    >>> set_attention_input_grad(nn.Sequential(TDYConv2d(8, 8, 3, freq_size=4), TDYConv2d(8, 8, 3, freq_size=4)), False)
    2
    """
    layers = tdy_layers(model)
    for layer in layers:
        layer.attention_input_grad = bool(enabled)
    return len(layers)


def _checked_recompute(value):
    """``value`` if it is a recomputation setting (True, False or "selective")."""
    if value not in (True, False, "selective"):
        raise ValueError(f"TDYConv2d.recompute must be True, False or 'selective', got {value!r}")
    return value


def tdy_layers(model):
    """All :class:`TDYConv2d` layers of ``model``."""
    return [module for module in model.modules() if isinstance(module, TDYConv2d)]
