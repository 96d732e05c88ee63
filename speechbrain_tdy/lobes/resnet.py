"""ResNet-34 speaker embedding models with static, TDY or DTDY convolutions.

The authors' "ResNet-34" for speaker verification: a 7x7 stem with stride
(2, 1) (freq, time), four stages of basic blocks [3, 4, 6, 3] with strides
1, 2, 2, 1, then the (channels, freq) axes flattened and pooled over time, and
a linear layer to the embedding. In the TDY and DTDY variants every 3x3 conv of
every block and every 1x1 downsample conv is dynamic; the stem stays static.
"""
from torch import nn

from speechbrain_tdy.lobes.checks import check_features
from speechbrain_tdy.nnet.dtdy_conv import DTDYConv2d
from speechbrain_tdy.nnet.geometry import conv_output_size
from speechbrain_tdy.nnet.layout import Conv2d
from speechbrain_tdy.nnet.masking import conv_output_lengths, mask_time, relative_to_absolute
from speechbrain_tdy.nnet.pooling import build_pooling
from speechbrain_tdy.nnet.tdy_conv import INFERENCE_TEMPERATURE, StaticConv2d, TDYConv2d

QUARTER_CHANNELS = (16, 32, 64, 128)
HALF_CHANNELS = (32, 64, 128, 256)
CONVS = ("static", "tdy", "dtdy")


def make_conv(conv, in_channels, out_channels, kernel_size, *, freq_size, stride, padding, n_kernels, temperature):
    """One convolution of a residual block: ``conv`` is "static", "tdy" or "dtdy"."""
    if conv == "tdy":
        return TDYConv2d(in_channels, out_channels, kernel_size, freq_size=freq_size, stride=stride, padding=padding,
                         n_kernels=n_kernels, temperature=temperature)
    if conv == "dtdy":
        return DTDYConv2d(in_channels, out_channels, kernel_size, freq_size=freq_size, stride=stride, padding=padding)
    return StaticConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)


class Downsample(nn.Module):
    """1x1 convolution (strided) and batch norm on the shortcut of a block."""

    def __init__(self, conv, channels):
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x, lengths=None):
        """x: (batch, in_channels, freq, time) -> (batch, channels, freq_out, time_out)."""
        return self.bn(self.conv(x, lengths))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection.

    Arguments
    ---------
    in_channels, out_channels : int
        Channels of input and output.
    freq_size : int
        Frequency bins of the input.
    stride : int
        Stride of the first convolution and the shortcut, on both axes.
    conv : str
        "static", "tdy" or "dtdy".
    """

    def __init__(self, in_channels, out_channels, *, freq_size, stride=1, conv="tdy", n_kernels=6,
                 temperature=INFERENCE_TEMPERATURE):
        super().__init__()
        conv_args = dict(conv=conv, n_kernels=n_kernels, temperature=temperature)
        out_freq = conv_output_size(freq_size, 3, stride, 1)
        self.stride = stride
        self.conv1 = make_conv(in_channels=in_channels, out_channels=out_channels, kernel_size=3,
                               freq_size=freq_size, stride=stride, padding=1, **conv_args)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = make_conv(in_channels=out_channels, out_channels=out_channels, kernel_size=3,
                               freq_size=out_freq, stride=1, padding=1, **conv_args)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            shortcut = make_conv(in_channels=in_channels, out_channels=out_channels, kernel_size=1,
                                 freq_size=freq_size, stride=stride, padding=0, **conv_args)
            self.downsample = Downsample(shortcut, out_channels)

    def forward(self, x, lengths=None):
        """x: (batch, in_channels, freq, time), lengths (batch,) or None.
        Returns the output and its valid lengths."""
        out_lengths = conv_output_lengths(lengths, 3, self.stride, 1)
        out = self.relu(self.bn1(self.conv1(x, lengths)))
        out = self.bn2(self.conv2(out, out_lengths))
        shortcut = x if self.downsample is None else self.downsample(x, lengths)
        return self.relu(out + shortcut), out_lengths


class ResNet(nn.Module):
    """ResNet speaker embedding model (static, TDY-CNN or DTDY-CNN): ResNet-34
    with the default ``layers``, other depths with others.

    Arguments
    ---------
    n_mels : int
        Mel bins of the input features (fixes the width of the dynamic layers'
        attention branches and of the pooled vector).
    channels : sequence of 4 ints
        Channels of the four stages: (16, 32, 64, 128) is "x0.25",
        (32, 64, 128, 256) "x0.5".
    conv : str
        "static", "tdy" or "dtdy".
    pooling : str
        "AVG", "SAP" or "ASP" (the DTDY models use channel-wise attention for
        SAP and ASP, as in the authors' code).
    lin_neurons : int
        Embedding size.
    layers : sequence of 4 ints
        Blocks per stage ((3, 4, 6, 3): ResNet-34).
    n_kernels, temperature : int, float
        Basis kernels and softmax temperature of the TDY layers (1, the
        inference value; the recipe anneals it from 31 during training).
    zero_init_residual : bool
        Initialise the last batch-norm scale of every residual block to 0, so
        that each block starts as the identity (Goyal et al., 2017; torchvision's
        option of the same name). Initialisation only: not in the authors' code,
        and it changes nothing in a trained model. Short trainings on little
        data need it: it removes a plateau near chance in the first epochs
        (the demo, ``recipes/VoxCeleb/SpeakerRec/README.md``).

    Example
    -------
    >>> import torch
    >>> model = ResNet(n_mels=40, channels=QUARTER_CHANNELS, conv="tdy")
    >>> feats = torch.randn(2, 120, 40)
    >>> model(feats, torch.tensor([1.0, 0.6])).shape
    torch.Size([2, 1, 512])
    """

    def __init__(
        self,
        n_mels=64,
        channels=HALF_CHANNELS,
        conv="tdy",
        pooling="AVG",
        lin_neurons=512,
        layers=(3, 4, 6, 3),
        n_kernels=6,
        temperature=INFERENCE_TEMPERATURE,
        zero_init_residual=False,
    ):
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"Unknown conv {conv!r}; expected one of {', '.join(CONVS)}")
        if len(channels) != 4 or len(layers) != 4:
            raise ValueError(f"ResNet needs 4 stages, got channels={channels}, layers={layers}")
        self.n_mels, self.conv = n_mels, conv
        self.conv1 = Conv2d(1, channels[0], kernel_size=7, stride=(2, 1), padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.relu = nn.ReLU(inplace=True)
        freq = conv_output_size(n_mels, 7, 2, 3)
        in_channels = channels[0]
        block_args = dict(conv=conv, n_kernels=n_kernels, temperature=temperature)
        for index, (width, depth, stride) in enumerate(zip(channels, layers, (1, 2, 2, 1)), start=1):
            blocks = []
            for position in range(depth):
                block_stride = stride if position == 0 else 1
                blocks.append(BasicBlock(in_channels, width, freq_size=freq, stride=block_stride, **block_args))
                freq = conv_output_size(freq, 3, block_stride, 1)
                in_channels = width
            setattr(self, f"layer{index}", nn.ModuleList(blocks))
        self.out_freq = freq
        self.time_stride = 4  # input frames per output frame (stages 2 and 3 have stride 2)
        self.pooling = build_pooling(pooling, in_channels * freq, channel_attention=conv == "dtdy")
        self.fc = nn.Linear(self.pooling.out_channels, lin_neurons)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif zero_init_residual and isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def stages(self):
        """The convolutional stages in order: the stem (first conv and its batch
        norm), then the 4 residual stages (what ``train.py --freeze=N`` freezes)."""
        return [nn.ModuleList([self.conv1, self.bn1]), self.layer1, self.layer2, self.layer3, self.layer4]

    def frame_embeddings(self, x, lengths=None):
        """Frame-level output of the last stage, before pooling.

        x: (batch, time, n_mels), lengths: (batch,) relative or None.
        Returns (batch, channels * freq, time_out) and absolute lengths (or None).
        """
        check_features(x, self.n_mels, type(self).__name__)
        lengths = relative_to_absolute(lengths, x.shape[1])
        out = mask_time(x.transpose(1, 2).unsqueeze(1), lengths)
        out = self.relu(self.bn1(self.conv1(out)))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                out, lengths = block(out, lengths)
        return out.flatten(1, 2), lengths

    def forward(self, x, lengths=None):
        """x: (batch, time, n_mels); lengths: (batch,) relative lengths.
        Returns embeddings (batch, 1, lin_neurons)."""
        frames, lengths = self.frame_embeddings(x, lengths)
        return self.fc(self.pooling(frames, lengths)).unsqueeze(1)
