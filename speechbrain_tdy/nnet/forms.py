"""Which of its two forms a TDY layer runs: the CPU form or the accelerator form.

A TDY layer computes the same numbers in two forms, chosen by the device of
its input: on CPUs the K per-kernel outputs are mixed kernel by kernel and the
attention's first convolution reads x in place (a conv2d over all frequency
bins); on accelerators the mixing is one batched product over K and the
attention convolves a flattened copy of x. :func:`forms_of` runs either form
on any device, so that tests (and benchmarks) check on a CPU that both forms
give the same numbers and gradients.
"""
import contextlib

_forced_device_type = None


@contextlib.contextmanager
def forms_of(device_type):
    """Within the block, TDY layers run the forms chosen for ``device_type``
    (``"cpu"``, or e.g. ``"cuda"`` for the accelerator forms) whatever device
    their inputs are on.

    >>> import torch
    >>> with forms_of("cuda"):
    ...     runs_cpu_forms(torch.zeros(1))
    False
    >>> runs_cpu_forms(torch.zeros(1))
    True
    """
    global _forced_device_type
    previous, _forced_device_type = _forced_device_type, device_type
    try:
        yield
    finally:
        _forced_device_type = previous


def runs_cpu_forms(tensor):
    """Whether a TDY computation on ``tensor`` takes the CPU forms."""
    return (_forced_device_type or tensor.device.type) == "cpu"
