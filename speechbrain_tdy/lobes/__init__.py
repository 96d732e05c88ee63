"""Models built from the layers: ResNet-34 family, VGG-M, the front end, and
the registry of released architectures (:mod:`speechbrain_tdy.lobes.registry`)
from which the named factories below are derived."""
from speechbrain_tdy.lobes.features import LogMelInstanceNorm
from speechbrain_tdy.lobes.registry import (
    ARCHITECTURES,
    dtdy_resnet34_half,
    dtdy_resnet34_quarter,
    get_architecture,
    resnet34_half,
    resnet34_quarter,
    tdy_resnet34_half,
    tdy_resnet34_quarter,
    tdy_vggm,
    vggm,
)
from speechbrain_tdy.lobes.resnet import HALF_CHANNELS, QUARTER_CHANNELS, ResNet
from speechbrain_tdy.lobes.vggm import VGGM

__all__ = [
    "ARCHITECTURES",
    "HALF_CHANNELS",
    "LogMelInstanceNorm",
    "QUARTER_CHANNELS",
    "ResNet",
    "VGGM",
    "dtdy_resnet34_half",
    "dtdy_resnet34_quarter",
    "get_architecture",
    "resnet34_half",
    "resnet34_quarter",
    "tdy_resnet34_half",
    "tdy_resnet34_quarter",
    "tdy_vggm",
    "vggm",
]
