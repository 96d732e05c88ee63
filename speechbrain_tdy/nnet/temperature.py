"""Temperature of the TDY attention softmax and its annealing schedule.

Training starts at temperature 31 (nearly uniform mixing of the K kernels) and
lowers it by 3 per epoch until it reaches 1; inference uses 1. The authors
lower it in one step after every epoch; :class:`TemperatureScheduler` by
default follows the same line per training step (31 at the start of epoch 1,
28 at the start of epoch 2, ..., 1 from the start of epoch 11), so that the
attention, and the batch-norm statistics that follow it, never jump.
"""
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)

from speechbrain_tdy.nnet.tdy_conv import tdy_layers

INITIAL_TEMPERATURE = 31.0
TEMPERATURE_STEP = 3.0
FINAL_TEMPERATURE = 1.0


def set_temperature(model, temperature):
    """Set the attention temperature of every TDY layer of ``model``.

    Returns the number of layers changed (0 for a model without TDY layers).

    >>> from speechbrain_tdy.nnet.tdy_conv import TDYConv2d
    >>> set_temperature(TDYConv2d(2, 2, 3, freq_size=4), 1.0)
    1
    """
    layers = tdy_layers(model)
    for layer in layers:
        layer.temperature = float(temperature)
    return len(layers)


def temperature_at_epoch(
    epoch, initial=INITIAL_TEMPERATURE, step=TEMPERATURE_STEP, final=FINAL_TEMPERATURE
):
    """Temperature used during training epoch ``epoch`` (1-based).

    >>> [temperature_at_epoch(e) for e in (1, 2, 10, 11, 50)]
    [31.0, 28.0, 4.0, 1.0, 1.0]
    """
    return max(float(final), float(initial) - float(step) * (epoch - 1))


def temperature_at_progress(
    progress, initial=INITIAL_TEMPERATURE, step=TEMPERATURE_STEP, final=FINAL_TEMPERATURE
):
    """Temperature after ``progress`` epochs of training (a float: 0 at the
    first step, 1.5 halfway through epoch 2); at whole numbers it is the
    temperature of epoch ``progress + 1`` in :func:`temperature_at_epoch`.

    >>> [temperature_at_progress(p) for p in (0, 0.5, 1, 9.5, 10, 12.25)]
    [31.0, 29.5, 28.0, 2.5, 1.0, 1.0]
    """
    return max(float(final), float(initial) - float(step) * float(progress))


@register_checkpoint_hooks
class TemperatureScheduler:
    """Temperature schedule of training, saved in SpeechBrain checkpoints.

    The temperature of epoch ``e`` (1-based) starts at ``initial - step * (e - 1)``
    (not below ``final``). With ``per_step`` it falls linearly within the
    epoch, so that step ``i`` of ``n`` (0-based) of epoch ``e`` uses
    :func:`temperature_at_progress` ``(e - 1 + i / n)``; without it the whole
    epoch keeps its start temperature (the authors' staircase). Either way
    the temperature is a function of (epoch, step), so a resumed run continues
    the schedule; ``current`` (the last one set) is saved for the record.

    Arguments
    ---------
    initial, step, final : float
        Temperature at the start of epoch 1, decrease per epoch, and floor.
    per_step : bool
        Anneal at every training step (default) or once per epoch.

    Example
    -------
    >>> from speechbrain_tdy.nnet.tdy_conv import TDYConv2d
    >>> layer = TDYConv2d(2, 2, 3, freq_size=4)
    >>> scheduler = TemperatureScheduler()
    >>> scheduler(layer, epoch=3)
    25.0
    >>> scheduler(layer, epoch=3, step=50, steps_per_epoch=100)
    23.5
    >>> layer.temperature
    23.5
    >>> TemperatureScheduler(per_step=False)(layer, epoch=3, step=50, steps_per_epoch=100)
    25.0
    """

    def __init__(self, initial=INITIAL_TEMPERATURE, step=TEMPERATURE_STEP, final=FINAL_TEMPERATURE, per_step=True):
        self.initial, self.step, self.final = float(initial), float(step), float(final)
        self.per_step = bool(per_step)
        self.current = self.initial

    def at(self, epoch, step=0, steps_per_epoch=1):
        """Temperature of training step ``step`` (0-based) of ``steps_per_epoch``
        in epoch ``epoch`` (1-based)."""
        if not 0 <= step < steps_per_epoch:
            raise ValueError(f"step must be in [0, {steps_per_epoch}), got {step}")
        progress = epoch - 1 + (step / steps_per_epoch if self.per_step else 0.0)
        return temperature_at_progress(progress, self.initial, self.step, self.final)

    def __call__(self, model, epoch, step=0, steps_per_epoch=1):
        """Set ``model``'s TDY layers to the temperature of :meth:`at` ``(epoch, step, steps_per_epoch)``.

        Returns that temperature, or None if ``model`` has no TDY layer.
        """
        self.current = self.at(epoch, step, steps_per_epoch)
        return self.current if set_temperature(model, self.current) else None

    @mark_as_saver
    def _save(self, path):
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(repr(self.current))

    @mark_as_loader
    def _recover(self, path, end_of_epoch=True):
        with open(path, encoding="utf-8") as stream:
            self.current = float(stream.read())
