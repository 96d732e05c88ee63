"""Layers: temporal dynamic convolutions, masking helpers and pooling."""
from speechbrain_tdy.nnet.dtdy_conv import DTDYConv2d
from speechbrain_tdy.nnet.forms import forms_of
from speechbrain_tdy.nnet.pooling import (
    AttentiveStatisticsPooling,
    ChannelAttentivePooling,
    SelfAttentivePooling,
    TemporalAveragePooling,
    build_pooling,
)
from speechbrain_tdy.nnet.tdy_conv import StaticConv2d, TDYConv2d, set_attention_input_grad, set_recompute
from speechbrain_tdy.nnet.temperature import (
    TemperatureScheduler,
    set_temperature,
    temperature_at_epoch,
    temperature_at_progress,
)

__all__ = [
    "AttentiveStatisticsPooling",
    "ChannelAttentivePooling",
    "DTDYConv2d",
    "SelfAttentivePooling",
    "StaticConv2d",
    "TDYConv2d",
    "TemperatureScheduler",
    "TemporalAveragePooling",
    "build_pooling",
    "forms_of",
    "set_attention_input_grad",
    "set_recompute",
    "set_temperature",
    "temperature_at_epoch",
    "temperature_at_progress",
]
