"""Functional form of the temporal dynamic convolution.

The layer :class:`speechbrain_tdy.nnet.tdy_conv.TDYConv2d` computes its
attention weights and calls :func:`tdy_conv2d`; everything that makes the
aggregation fast or memory-lean lives here, behind one function.

How it is computed
------------------
The K basis convolutions run as one ``conv2d`` with K * C_out output channels
(the unavoidable work). What the authors' formulation adds on top of that,
``einsum('bkcft,bkt->bcft')``, permutes and copies the (B, K, C_out, F, T)
output and its gradient into batched matrix products; here the mixing is K
fused multiply-adds over contiguous slices instead, and the backward pass is
written by hand (:class:`_TDYConv2dFunction`):

* forward keeps x, the basis kernels, the attention and the per-kernel outputs
  (these are needed for the attention's gradient);
* backward computes the attention gradient from the per-kernel outputs *in
  place* and then overwrites the same buffer with the per-kernel output
  gradients ``g * pi_k``, so no tensor of K times the output size is allocated
  in backward, and one ``convolution_backward`` call gives the gradients of x,
  the kernels and the biases;
* on CPU the mixing and its backward go kernel by kernel, over contiguous
  slices (batched over K was no faster there: ``benchmarks/README.md``); on a GPU, where a layer's
  time at small batches is mostly kernel launches, they run batched over all
  K (:func:`_mix_batched`, :func:`_mix_backward`): 5 launches instead of 4K;
* with ``recompute=True`` (``speechbrain_tdy.nnet.set_recompute``) forward
  does not keep the per-kernel outputs and backward recomputes them: the
  (B, K * C_out, F, T) buffer, which bounds the training memory, then lives
  one layer at a time, for one more basis convolution per layer;
* without autograd (``torch.no_grad``, ``torch.inference_mode`` or no input
  requiring a gradient) nothing is kept at all;
* everything runs channels-last, and the output comes back channels-last,
  which the next layer takes as it is; on CPU, layers whose input channels
  oneDNN's channels-last backward gets wrong run NCHW instead
  (:func:`speechbrain_tdy.nnet.layout.to_conv_layout`);
* while ``torch.compile`` traces it, the layer is the basis convolution and
  the mixing in plain differentiable ops: the compiler fuses them and derives
  their backward (the hand-written one, which works in place in buffers kept
  on ``ctx``, would split the graph). ``recompute`` has no effect there.

Under ``torch.autocast`` the convolution runs in the autocast dtype (as
``conv2d`` would) and so does the mixing; gradients come back in the dtypes of
the inputs.
"""
import torch
import torch.nn.functional as F

from speechbrain_tdy.nnet.geometry import pair
from speechbrain_tdy.nnet.forms import runs_cpu_forms
from speechbrain_tdy.nnet.layout import to_conv_layout

__all__ = ["tdy_conv2d"]


def tdy_conv2d(x, weight, bias, attention, stride, padding, recompute=False):
    """Mix K convolutions per output time bin.

    y[b, c, f, t] = sum_k attention[b, k, t] * (conv2d(x, weight[k]) + bias[k])[b, c, f, t]

    Arguments
    ---------
    x : torch.Tensor
        Input, shape (batch, in_channels, freq, time).
    weight : torch.Tensor
        Basis kernels, shape (K, out_channels, in_channels, kh, kw).
    bias : torch.Tensor or None
        Basis biases, shape (K, out_channels).
    attention : torch.Tensor
        Mixing weights, shape (batch, K, time_out).
    stride, padding : tuple of int
        (freq, time) stride and zero padding of the convolution.
    recompute : bool
        Recompute the per-kernel outputs in backward instead of keeping them
        from forward: less memory, more time. Same results.

    Returns
    -------
    torch.Tensor
        Shape (batch, out_channels, freq_out, time_out).

    Example
    -------
    >>> x = torch.randn(2, 3, 8, 10)
    >>> w = torch.randn(4, 5, 3, 3, 3)
    >>> pi = torch.softmax(torch.randn(2, 4, 10), dim=1)
    >>> tdy_conv2d(x, w, None, pi, (1, 1), (1, 1)).shape
    torch.Size([2, 5, 8, 10])
    """
    stride, padding = pair(stride), pair(padding)
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        # Run as conv2d would under autocast, then keep autocast out of the way.
        dtype = torch.get_autocast_dtype(device_type)
        x, weight, attention = x.to(dtype), weight.to(dtype), attention.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        with torch.autocast(device_type, enabled=False):
            return _dispatch(x, weight, bias, attention, stride, padding, recompute)
    return _dispatch(x, weight, bias, attention, stride, padding, recompute)


def _dispatch(x, weight, bias, attention, stride, padding, recompute):
    x = to_conv_layout(x, x)
    attention = attention.to(x.dtype)
    if torch.compiler.is_compiling():  # plain differentiable ops: the compiler fuses them and derives backward
        return _mix(_basis_conv(x, weight, bias, stride, padding), attention, weight.shape[0])
    inputs = (x, weight, attention) if bias is None else (x, weight, attention, bias)
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        return _TDYConv2dFunction.apply(x, weight, bias, attention, stride, padding, recompute)
    with torch.no_grad():
        return _mix(_basis_conv(x, weight, bias, stride, padding), attention, weight.shape[0])


def _basis_conv(x, weight, bias, stride, padding):
    """All K basis convolutions as one conv2d: (B, K * C_out, F_out, T_out),
    dense in x's layout (channels-last or, where that is unsafe, NCHW)."""
    out = F.conv2d(x, _flat_weight(weight, x), _flat_bias(bias), stride=stride, padding=padding)
    return to_conv_layout(out, x)


def _flat_weight(weight, x):
    """(K, C_out, C_in, kh, kw) kernels as one (K * C_out, C_in, kh, kw) conv
    weight, in the layout of x's convolution."""
    n_kernels, out_channels = weight.shape[:2]
    flat = weight.reshape(n_kernels * out_channels, *weight.shape[2:])
    return to_conv_layout(flat, x)


def _flat_bias(bias):
    return None if bias is None else bias.reshape(-1)


def _mix(out, attention, n_kernels):
    """sum_k attention[:, k] * out_k for out (B, K * C, F, T), channels-last:
    (B, C, F, T), channels-last."""
    if not runs_cpu_forms(out):
        return _mix_batched(out, attention, n_kernels)
    batch, channels, freq, time = out.shape
    out = out.view(batch, n_kernels, channels // n_kernels, freq, time)
    pi = attention.view(batch, n_kernels, 1, 1, time)
    y = torch.mul(out[:, 0], pi[:, 0])  # K fused multiply-adds over slices
    for k in range(1, n_kernels):
        y.addcmul_(out[:, k], pi[:, k])
    return y


def _mix_batched(out, attention, n_kernels):
    """:func:`_mix` as one batched matrix-vector product per (b, f, t): the
    channels-last out holds, for each (b, f, t), a (K, C) block, and
    y[b, :, f, t] = block^T @ attention[b, :, t]."""
    batch, channels, freq, time = out.shape
    blocks = out.permute(0, 2, 3, 1).reshape(batch * freq * time, n_kernels, channels // n_kernels)
    pi = attention.transpose(1, 2).unsqueeze(1).expand(batch, freq, time, n_kernels)
    y = torch.bmm(blocks.transpose(1, 2), pi.reshape(batch * freq * time, n_kernels, 1))
    return y.view(batch, freq, time, -1).permute(0, 3, 1, 2)


def _mix_backward(per_kernel, grad_y, attention, need_attention_grad):
    """Gradients of :func:`_mix`, consuming its input: overwrites ``per_kernel``
    (B, K, C, F, T), the per-kernel outputs, with their gradients g * pi_k and
    returns the attention gradient (B, K, T) (None unless asked for), computed
    from them first. g: (B, C, F, T); attention: (B, K, T)."""
    batch, n_kernels, _, _, time = per_kernel.shape
    pi = attention.view(batch, n_kernels, 1, 1, time)
    if need_attention_grad and runs_cpu_forms(per_kernel):
        grad_attention = torch.empty(batch, n_kernels, time, dtype=per_kernel.dtype, device=per_kernel.device)
        for k in range(n_kernels):  # d y / d pi_k = out_k, summed over (channel, freq)
            slice_k = per_kernel[:, k]
            slice_k.mul_(grad_y)
            torch.sum(slice_k, dim=(1, 2), out=grad_attention[:, k])
            torch.mul(grad_y, pi[:, k], out=slice_k)
        return grad_attention
    grad_attention = None
    if need_attention_grad:
        grad_attention = per_kernel.mul_(grad_y.unsqueeze(1)).sum(dim=(2, 3))
    torch.mul(grad_y.unsqueeze(1), pi, out=per_kernel)
    return grad_attention


class _TDYConv2dFunction(torch.autograd.Function):
    """Autograd for :func:`tdy_conv2d` (first-order gradients only)."""

    @staticmethod
    def forward(ctx, x, weight, bias, attention, stride, padding, recompute):
        out = _basis_conv(x, weight, bias, stride, padding)
        n_kernels = weight.shape[0]
        y = _mix(out, attention, n_kernels)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        if bias is None:
            ctx.save_for_backward(x, weight, attention)
        else:
            ctx.save_for_backward(x, weight, attention, bias)
        # The per-kernel outputs are an intermediate, not an input or output: they
        # may live on ctx. Backward consumes (overwrites) them, so a second backward
        # through the same graph (retain_graph=True) recomputes them.
        ctx.out = None if recompute else out
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        x, weight, attention = ctx.saved_tensors[:3]
        bias = ctx.saved_tensors[3] if ctx.has_bias else None
        out, ctx.out = ctx.out, None
        if out is None:
            with torch.no_grad():
                out = _basis_conv(x, weight, bias, ctx.stride, ctx.padding)
        n_kernels, out_channels = weight.shape[:2]
        batch, _, freq, time = out.shape
        g = to_conv_layout(grad_y.to(out.dtype), x)
        per_kernel = out.view(batch, n_kernels, out_channels, freq, time)
        grad_attention = _mix_backward(per_kernel, g, attention, ctx.needs_input_grad[3])
        grad_out = out  # now (B, K * C_out, F, T): g * pi_k per kernel

        grad_x = grad_weight = grad_bias = None
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        if any(mask):
            grad_x, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
                grad_out,
                x,
                _flat_weight(weight, x),
                [n_kernels * out_channels] if ctx.has_bias else None,
                list(ctx.stride),
                list(ctx.padding),
                [1, 1],
                False,
                [0, 0],
                1,
                mask,
            )
            if grad_weight is not None:
                grad_weight = grad_weight.reshape(weight.shape)
            if grad_bias is not None:
                grad_bias = grad_bias.view(bias.shape)
        if grad_attention is not None:
            grad_attention = grad_attention.to(attention.dtype)
        return grad_x, grad_weight, grad_bias, grad_attention, None, None, None
