"""VGG-M speaker embedding model (VoxCeleb's VGGVox), static or TDY.

Five conv layers with batch norm and ReLU, max pooling after the 1st, 2nd and
5th, then a (7, 1) convolution that collapses the 64 mel bins to one, and
temporal pooling. In TDY-VGG-M layers 2 to 6 are TDY convolutions.
"""
from torch import nn

from speechbrain_tdy.lobes.checks import check_features
from speechbrain_tdy.nnet.geometry import conv_output_size, pair
from speechbrain_tdy.nnet.masking import conv_output_lengths, mask_time, relative_to_absolute
from speechbrain_tdy.nnet.pooling import build_pooling
from speechbrain_tdy.nnet.tdy_conv import INFERENCE_TEMPERATURE, StaticConv2d, TDYConv2d

# (out_channels, kernel (freq, time), stride, padding, max pool (kernel, stride) or None)
VGGM_LAYERS = (
    (96, (5, 7), (1, 2), (2, 2), ((1, 3), (1, 2))),
    (256, (5, 5), (2, 2), (1, 1), ((3, 3), (2, 2))),
    (384, (3, 3), (1, 1), (1, 1), None),
    (256, (3, 3), (1, 1), (1, 1), None),
    (256, (3, 3), (1, 1), (1, 1), ((3, 3), (2, 2))),
    (512, (7, 1), (1, 1), (0, 0), None),
)


def _min_frames():
    """Fewest input frames for which every layer of VGG-M has an output."""
    frames = 1
    while True:
        time = frames
        for _, kernel, stride, padding, pool in VGGM_LAYERS:
            time = conv_output_size(time, kernel[1], stride[1], padding[1])
            if pool is not None:
                time = conv_output_size(time, pool[0][1], pool[1][1])
        if time >= 1:
            return frames
        frames += 1


#: Convolution types of VGG-M's layers.
CONVS = ("static", "tdy")


class VGGMLayer(nn.Module):
    """Convolution -> batch norm -> ReLU -> optional max pooling.

    Arguments
    ---------
    conv : nn.Module
        A StaticConv2d or TDYConv2d taking (x, lengths).
    channels : int
        Output channels of ``conv``.
    pool : tuple or None
        (kernel, stride) of the max pooling, each (freq, time).
    time_geometry : tuple
        (kernel, stride, padding) of ``conv`` along time, to track lengths.
    """

    def __init__(self, conv, channels, pool, time_geometry):
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.pool = None if pool is None else nn.MaxPool2d(kernel_size=pool[0], stride=pool[1])
        self.time_geometry = time_geometry

    def forward(self, x, lengths=None):
        """x: (batch, in_channels, freq, time) -> output and its valid lengths."""
        out = self.relu(self.bn(self.conv(x, lengths)))
        lengths = conv_output_lengths(lengths, *self.time_geometry)
        if self.pool is not None:
            out = self.pool(out)
            lengths = conv_output_lengths(lengths, self.pool.kernel_size[1], self.pool.stride[1])
        return out, lengths


class VGGM(nn.Module):
    """VGG-M (VGGVox) speaker embedding model, static or with TDY layers 2-6.

    Arguments
    ---------
    conv : str
        "tdy": TDY convolutions in layers 2 to 6 (TDY-VGG-M); "static": plain ones.
    pooling : str
        "AVG" or "SAP".
    lin_neurons : int
        Size of the embedding.
    n_mels : int
        Mel bins; the architecture needs 64 (the (7, 1) layer reduces frequency to 1).
    n_kernels, temperature : int, float
        As in :class:`~speechbrain_tdy.lobes.resnet.ResNet`.

    Example
    -------
    >>> import torch
    >>> model = VGGM(conv="tdy", pooling="SAP", lin_neurons=256)
    >>> model(torch.randn(2, 200, 64)).shape
    torch.Size([2, 1, 256])
    """

    def __init__(self, conv="tdy", pooling="AVG", lin_neurons=512, n_mels=64, n_kernels=6,
                 temperature=INFERENCE_TEMPERATURE):
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"Unknown conv {conv!r}; VGGM has 'static' or 'tdy' layers")
        if pooling not in ("AVG", "SAP"):
            raise ValueError(f"VGGM supports pooling 'AVG' or 'SAP', got {pooling!r}")
        self.n_mels = n_mels
        freq, in_channels = n_mels, 1
        for index, (channels, kernel, stride, padding, pool) in enumerate(VGGM_LAYERS, start=1):
            if conv == "tdy" and index > 1:
                layer_conv = TDYConv2d(in_channels, channels, kernel, freq_size=freq, stride=stride, padding=padding,
                                       n_kernels=n_kernels, temperature=temperature)
            else:
                layer_conv = StaticConv2d(in_channels, channels, kernel, stride, padding)
            freq = conv_output_size(freq, kernel[0], stride[0], padding[0])
            if pool is not None:
                freq = conv_output_size(freq, pool[0][0], pool[1][0])
            time_geometry = (pair(kernel)[1], pair(stride)[1], pair(padding)[1])
            setattr(self, f"layer{index}", VGGMLayer(layer_conv, channels, pool, time_geometry))
            in_channels = channels
        if freq != 1:
            raise ValueError(f"VGGM needs n_mels that reduce to 1 frequency bin (e.g. 64), got n_mels={n_mels}")
        self.min_frames = _min_frames()
        # Input frames per output frame: a shift of the input by this many
        # frames shifts the frame-level output by one (used to embed long
        # recordings in chunks).
        self.time_stride = 1
        for _, _, stride, _, pool in VGGM_LAYERS:
            self.time_stride *= stride[1] * (1 if pool is None else pool[1][1])
        self.pooling = build_pooling(pooling, in_channels)
        self.fc = nn.Linear(self.pooling.out_channels, lin_neurons)

    def stages(self):
        """The 5 convolutional layers in order (what ``train.py --freeze=N`` freezes)."""
        return [getattr(self, f"layer{index}") for index in range(1, len(VGGM_LAYERS) + 1)]

    def frame_embeddings(self, x, lengths=None):
        """x: (batch, time, n_mels) -> (batch, 512, time_out) and absolute lengths (or None)."""
        check_features(x, self.n_mels, type(self).__name__)
        if x.shape[1] < self.min_frames:
            raise ValueError(
                f"VGGM needs at least {self.min_frames} frames ({self.min_frames / 100:.2f} s) of input, "
                f"got {x.shape[1]}"
            )
        lengths = relative_to_absolute(lengths, x.shape[1])
        out = mask_time(x.transpose(1, 2).unsqueeze(1), lengths)
        for index in range(1, len(VGGM_LAYERS) + 1):
            out, lengths = getattr(self, f"layer{index}")(out, lengths)
        return out.squeeze(2), lengths

    def forward(self, x, lengths=None):
        """x: (batch, time, n_mels); lengths: (batch,) relative lengths.
        Returns embeddings (batch, 1, lin_neurons)."""
        frames, lengths = self.frame_embeddings(x, lengths)
        return self.fc(self.pooling(frames, lengths)).unsqueeze(1)
