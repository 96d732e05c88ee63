"""Temporal Dynamic CNNs (TDY-CNN, DTDY-CNN) for speaker verification in SpeechBrain."""
import logging

__version__ = "0.1.0"

#: Logged by SpeechBrain whenever ``speechbrain.utils.train_logger`` is imported
#: without torchvision (for the image format of ``ProgressSampleLogger``, which
#: this package never uses; its DET curves are drawn with matplotlib).
TORCHVISION_FIGURE_WARNING = "torchvision is not available - cannot save figures"


class _DropTorchvisionFigureWarning(logging.Filter):
    """Drops exactly :data:`TORCHVISION_FIGURE_WARNING`, nothing else."""

    def filter(self, record):
        return record.getMessage() != TORCHVISION_FIGURE_WARNING


logging.getLogger("speechbrain.utils.train_logger").addFilter(_DropTorchvisionFigureWarning())
