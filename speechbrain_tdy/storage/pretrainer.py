"""The parameter loader to name in a model folder's ``hyperparams.yaml``.

SpeechBrain's generic interfaces (``EncoderClassifier.from_hparams``,
``SpeakerRecognition.from_hparams``) build the modules of ``hyperparams.yaml``
and then call ``pretrainer.load_collected()``. They cannot run these models
(no ``mean_var_norm`` or ``classifier`` modules, and their ``encode_batch``
would not keep padded items exact), so they would fail later, deep inside
``encode_batch``. :class:`TDYSpeakerRecognition.from_hparams
<speechbrain_tdy.inference.TDYSpeakerRecognition>` collects files with the
same pretrainer but loads the parameters itself (``weights_only``, with key
checks) and never calls ``load_collected``; so with :class:`TDYPretrainer` a
generic interface stops at once, with an error saying what to use instead.
"""
from speechbrain.utils.parameter_transfer import Pretrainer

USE_TDY_INTERFACE = (
    "This is a speechbrain-tdy (TDY-CNN) model folder, which SpeechBrain's EncoderClassifier and "
    "SpeakerRecognition cannot run. Load it with "
    "`from speechbrain_tdy.inference import TDYSpeakerRecognition; "
    "model = TDYSpeakerRecognition.from_hparams(source=...)` (pip install speechbrain-tdy): "
    "it has the same encode_batch/verify_files/verify_batch methods."
)


class WrongInterfaceError(RuntimeError):
    """A model folder loaded through an interface that cannot run it."""


class TDYPretrainer(Pretrainer):
    """SpeechBrain's ``Pretrainer`` whose ``load_collected`` raises
    :class:`WrongInterfaceError` (see the module docstring).

    >>> TDYPretrainer().load_collected()
    Traceback (most recent call last):
    ...
    speechbrain_tdy.storage.pretrainer.WrongInterfaceError: This is a speechbrain-tdy (TDY-CNN) model folder, ...
    """

    def load_collected(self):
        """Refuse: only a generic SpeechBrain interface calls this."""
        raise WrongInterfaceError(USE_TDY_INTERFACE)
