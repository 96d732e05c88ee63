"""Models built from the layers: ResNet-34 family, VGG-M, the front end."""
from speechbrain_tdy.lobes.features import LogMelInstanceNorm, vggm_front_end
from speechbrain_tdy.lobes.resnet import (
    HALF_CHANNELS,
    QUARTER_CHANNELS,
    ResNet,
    dtdy_resnet34_half,
    dtdy_resnet34_quarter,
    resnet34_half,
    resnet34_quarter,
    tdy_resnet34_half,
    tdy_resnet34_quarter,
)
from speechbrain_tdy.lobes.vggm import VGGM, tdy_vggm, vggm

__all__ = [
    "HALF_CHANNELS",
    "LogMelInstanceNorm",
    "QUARTER_CHANNELS",
    "ResNet",
    "VGGM",
    "dtdy_resnet34_half",
    "dtdy_resnet34_quarter",
    "resnet34_half",
    "resnet34_quarter",
    "tdy_resnet34_half",
    "tdy_resnet34_quarter",
    "tdy_vggm",
    "vggm_front_end",
    "vggm",
]
