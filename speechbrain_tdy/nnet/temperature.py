"""Temperature of the TDY attention softmax and its annealing schedule.

Training starts at temperature 31 (nearly uniform mixing of the K kernels) and
lowers it by 3 after every epoch until it reaches 1; inference uses 1.
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


def anneal_temperature(model, step=TEMPERATURE_STEP, final=FINAL_TEMPERATURE):
    """Lower every TDY layer's temperature by ``step``, not below ``final``.

    Returns the new temperature, or None if ``model`` has no TDY layer.
    """
    layers = tdy_layers(model)
    for layer in layers:
        layer.temperature = max(float(final), layer.temperature - float(step))
    return layers[0].temperature if layers else None


@register_checkpoint_hooks
class TemperatureScheduler:
    """Epoch-wise temperature schedule that is saved in SpeechBrain checkpoints,
    so that a resumed run continues where it stopped.

    Arguments
    ---------
    initial, step, final : float
        Temperature of the first epoch, decrease per epoch, and floor.

    Example
    -------
    >>> from speechbrain_tdy.nnet.tdy_conv import TDYConv2d
    >>> layer = TDYConv2d(2, 2, 3, freq_size=4)
    >>> scheduler = TemperatureScheduler()
    >>> scheduler(layer, epoch=3)
    25.0
    >>> layer.temperature
    25.0
    """

    def __init__(self, initial=INITIAL_TEMPERATURE, step=TEMPERATURE_STEP, final=FINAL_TEMPERATURE):
        self.initial, self.step, self.final = float(initial), float(step), float(final)
        self.current = self.initial

    def __call__(self, model, epoch):
        """Set ``model``'s TDY layers to the temperature of ``epoch`` (1-based).

        Returns that temperature, or None if ``model`` has no TDY layer.
        """
        self.current = temperature_at_epoch(epoch, self.initial, self.step, self.final)
        return self.current if set_temperature(model, self.current) else None

    @mark_as_saver
    def _save(self, path):
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(repr(self.current))

    @mark_as_loader
    def _recover(self, path, end_of_epoch=True):
        with open(path, encoding="utf-8") as stream:
            self.current = float(stream.read())
