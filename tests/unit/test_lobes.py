"""The lobes: the authors' architectures, padding invariance, front end, YAML, bad input."""
import pytest
import torch
import torchaudio
from helpers import OFFICIAL_BLOCKS
from hyperpyyaml import load_hyperpyyaml

from speechbrain_tdy.embedding.pipeline import EmbeddingPipeline
from speechbrain_tdy.export.authors_checkpoint import build_official_model, official_to_package_key
from speechbrain_tdy.lobes import VGGM, LogMelInstanceNorm, ResNet, get_architecture

PAPER_TABLE = [  # (model, encoder_type, trainable parameters) at 64 mels, counted with the authors' code
    ("TDy_ResNet34_quarter", "AVG", 13_271_682),
    ("TDy_ResNet34_half", "AVG", 51_923_506),
    ("TDy_VGGVox", "AVG", 71_165_470),
    ("DTDY_ResNet34_half", "AVG", 11_991_232),
    ("DTDY_ResNet34_half", "ASP", 13_566_528),
]


def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("model,encoder_type,count", PAPER_TABLE)
def test_paper_table_parameter_counts(model, encoder_type, count):
    _, encoder = build_official_model(model, encoder_type, n_mels=64)
    assert trainable(encoder) == count


@pytest.mark.parametrize("block", OFFICIAL_BLOCKS, ids=lambda b: f"{b['model']}-{b['encoder_type']}-{b['n_mels']}")
def test_every_official_key_and_shape_has_its_counterpart(block):
    _, encoder = build_official_model(block["model"], block["encoder_type"], block["n_mels"])
    assert trainable(encoder) == block["trainable_params"]
    ours = {name: tuple(t.shape) for name, t in encoder.state_dict().items()}
    theirs = {
        official_to_package_key(name, block["model"]): shape
        for name, (shape, _) in block["keys"].items()
        if not name.startswith(("torchfb", "instancenorm"))
    }
    assert ours == theirs


def small_resnet(block, pooling):
    return ResNet(n_mels=24, channels=(4, 8, 8, 16), conv=block, pooling=pooling, lin_neurons=32, temperature=4)


PADDING_MODELS = [(b, p) for b in ("static", "tdy", "dtdy") for p in ("AVG", "SAP", "ASP")] + [
    ("vggm", "AVG"),
    ("vggm", "SAP"),
]


def randomise_norm_statistics(model):
    """Give batch norms non-trivial running statistics, as after training."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_(0, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.normal_(0, 0.3, generator=generator)


@pytest.mark.parametrize("block,pooling", PADDING_MODELS)
def test_padding_does_not_change_an_embedding(block, pooling):
    torch.manual_seed(0)
    if block == "vggm":
        model, n_mels, lengths = VGGM(conv="tdy", pooling=pooling, lin_neurons=32, temperature=4), 64, (150, 131, 117)
    else:
        model, n_mels, lengths = small_resnet(block, pooling), 24, (37, 30, 23)
    randomise_norm_statistics(model)
    model.eval().double()  # float64: masking must be exact, not merely within float32 noise
    longest = max(lengths)
    feats = torch.randn(len(lengths), longest, n_mels, dtype=torch.float64)
    relative = torch.tensor(lengths, dtype=torch.float) / longest
    with torch.no_grad():
        batched = model(feats, relative)
        for i, length in enumerate(lengths):
            alone = model(feats[i : i + 1, :length])
            torch.testing.assert_close(batched[i], alone[0], rtol=1e-10, atol=1e-10)


def test_front_end_matches_melspectrogram_log_instancenorm():
    wavs = torch.rand(2, 16000) * 2 - 1
    reference = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=512, win_length=400, hop_length=160, window_fn=torch.hamming_window, n_mels=40
    )
    expected = torch.nn.InstanceNorm1d(40)(torch.log(reference(wavs) + 1e-6)).transpose(1, 2)
    torch.testing.assert_close(LogMelInstanceNorm(40)(wavs), expected, rtol=1e-5, atol=1e-5)


def test_front_end_items_are_computed_on_their_own_samples():
    wavs = torch.rand(2, 16000) * 2 - 1
    front_end = get_architecture("tdy_vggm").front_end()
    batched = front_end(wavs, torch.tensor([1.0, 0.55]))
    alone = front_end(wavs[1:, :8800])
    torch.testing.assert_close(batched[1, : alone.shape[1]], alone[0])
    assert torch.all(batched[1, alone.shape[1] :] == 0)


def test_waveform_padding_does_not_change_an_embedding():
    torch.manual_seed(0)
    embedder = EmbeddingPipeline(LogMelInstanceNorm(24), small_resnet("tdy", "ASP")).eval()
    wavs = torch.rand(3, 12000) * 2 - 1
    samples = (12000, 9001, 4567)
    with torch.no_grad():
        batched = embedder(wavs, torch.tensor(samples) / 12000)
        for i, n in enumerate(samples):
            torch.testing.assert_close(batched[i], embedder(wavs[i : i + 1, :n])[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("block", ["static", "tdy", "dtdy"])
def test_zero_init_residual_starts_every_block_as_the_identity(block):
    torch.manual_seed(0)
    model = ResNet(n_mels=24, channels=(4, 8, 8, 16), conv=block, zero_init_residual=True)
    x = torch.rand(2, 4, 12, 30)  # non-negative, as the output of the stem
    out, _ = model.layer1[1](x, torch.tensor([30.0, 21.0]))
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    blocks = [b for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for b in stage]
    assert all(bool((b.bn2.weight == 0).all()) for b in blocks)
    assert all(bool((b.bn1.weight == 1).all()) for b in blocks)  # only the last scale of a block
    default = ResNet(n_mels=24, channels=(4, 8, 8, 16), conv=block)  # the authors' initialisation
    assert all(bool((b.bn2.weight == 1).all()) for b in (default.layer1[0], default.layer4[-1]))


def test_lobes_build_from_hyperpyyaml():
    hparams = load_hyperpyyaml(
        """
        n_mels: 40
        compute_features: !new:speechbrain_tdy.lobes.LogMelInstanceNorm
            n_mels: !ref <n_mels>
        embedding_model: !new:speechbrain_tdy.lobes.ResNet
            n_mels: !ref <n_mels>
            channels: [16, 32, 64, 128]
            conv: tdy
            pooling: ASP
            lin_neurons: 192
        baseline: !apply:speechbrain_tdy.lobes.resnet34_quarter
            n_mels: !ref <n_mels>
        vggm: !new:speechbrain_tdy.lobes.VGGM
            conv: tdy
            pooling: SAP
        """
    )
    feats = hparams["compute_features"](torch.randn(2, 8000))
    assert hparams["embedding_model"](feats).shape == (2, 1, 192)
    assert hparams["baseline"](feats).shape == (2, 1, 512)
    assert hparams["vggm"].layer2.conv.n_kernels == 6


@pytest.mark.parametrize(
    "tensor,message",
    [
        (torch.randn(2, 50), r"expects features of shape \(batch, time, 24\), got a tensor of rank 2"),
        (torch.randn(1, 2, 50, 24), r"got a tensor of rank 4"),
        (torch.randn(2, 50, 40), r"built for n_mels=24, got features with 40 mel bins"),
    ],
)
def test_bad_feature_shapes_are_clear_errors(tensor, message):
    with pytest.raises(ValueError, match=message):
        small_resnet("tdy", "AVG")(tensor)


def test_too_short_input_for_vggm_is_a_clear_error():
    with pytest.raises(ValueError, match=r"VGGM needs at least 63 frames .* got 40"):
        VGGM()(torch.randn(1, 40, 64))


def test_bad_waveform_rank_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Expected waveforms of shape \(batch, samples\), got \(16000,\)"):
        LogMelInstanceNorm(40)(torch.randn(16000))


def test_unknown_choices_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown conv 'conformer'"):
        ResNet(conv="conformer")
    with pytest.raises(ValueError, match="Unknown pooling 'MAX'"):
        ResNet(pooling="MAX")
    with pytest.raises(ValueError, match="n_mels that reduce to 1 frequency bin"):
        VGGM(n_mels=40)


def test_the_front_end_computes_a_padded_batch_at_once_each_item_as_alone():
    """One batched computation, no loop over items: traced on a batch of 2, the
    same graph gives a batch of 3 of other lengths each item's features alone."""
    front_end = LogMelInstanceNorm(n_mels=24)
    generator = torch.Generator().manual_seed(0)
    traced = torch.jit.trace(front_end, (torch.randn(2, 8000, generator=generator), torch.tensor([1.0, 0.6])),
                             check_trace=False)
    lengths = [16000, 5000, 401]
    wavs = torch.zeros(3, 16000)
    for row, length in enumerate(lengths):
        wavs[row, :length] = torch.randn(length, generator=generator)
    batch = traced(wavs, torch.tensor(lengths) / 16000)
    for row, length in enumerate(lengths):
        alone = front_end(wavs[row : row + 1, :length])[0]
        torch.testing.assert_close(batch[row, : alone.shape[0]], alone, rtol=0, atol=1e-4)
        assert not batch[row, alone.shape[0]:].any()
