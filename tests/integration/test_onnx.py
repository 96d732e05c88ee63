"""ONNX export: onnxruntime against PyTorch for every architecture, and the ONNX backend."""
import copy

import pytest
import torch

pytest.importorskip("onnxruntime")

from helpers import fill_weights, voice, write_tiny_model_folder, write_voice  # noqa: E402

from speechbrain_tdy.cli import onnx_export  # noqa: E402
from speechbrain_tdy.export import onnx_graph  # noqa: E402
from speechbrain_tdy.export.authors_checkpoint import convert_to_folder  # noqa: E402
from speechbrain_tdy.inference import TDYSpeakerRecognition  # noqa: E402
from speechbrain_tdy.inference.onnx_backend import OnnxEmbeddingModel  # noqa: E402

#: (architecture, pooling) covering TDY, DTDY, static ResNets and VGG-M and every pooling.
ARCHITECTURES = [
    ("tdy_resnet34_quarter", "ASP"),
    ("dtdy_resnet34_half", "SAP"),
    ("resnet34_quarter", "AVG"),
    ("vggm", "SAP"),
    pytest.param("tdy_vggm", "AVG", marks=pytest.mark.slow),  # 71M parameters
]
MAX_ABS_ERROR = 1e-4


def padded_batch(seconds, n_items=3, seed=0):
    """Waveforms (n_items, seconds * 16000) with relative lengths 1, 0.5, 0.77, ..."""
    lens = torch.tensor([1.0, 0.5, 0.77, 0.9][:n_items])
    wavs = torch.zeros(n_items, int(seconds * 16000))
    for row, length in enumerate(lens):
        samples = int(round(float(length) * wavs.shape[1]))
        wavs[row, :samples] = torch.from_numpy(voice(samples / 16000, seed=seed + row))
    return wavs, lens


def pytorch_whole(folder):
    """The PyTorch model of ``folder``, running whole inputs (no chunking) as the ONNX graph does."""
    return TDYSpeakerRecognition.from_hparams(source=str(folder), overrides={"chunk_frames": 10**6})


def float64_embeddings(model, wavs, lens):
    """(batch, dim) embeddings of the model's float32 features by a float64 copy of its embedding model."""
    front_end = model.mods.compute_features
    with torch.no_grad():
        encoder = copy.deepcopy(model.mods.embedding_model).double()
        return encoder(front_end(wavs, lens).double(), front_end.frame_lengths(lens, wavs.shape[1])).float()[:, 0]


@pytest.mark.parametrize("architecture, pooling", ARCHITECTURES)
def test_onnxruntime_matches_pytorch_on_1_10_30_s_padded_batches(architecture, pooling, tmp_path):
    folder = write_tiny_model_folder(tmp_path / architecture, architecture, pooling=pooling)
    onnx_export.main([str(folder)])
    session = OnnxEmbeddingModel(folder / "embedding_model.onnx")
    model = pytorch_whole(folder)
    for seconds, n_items in ((1, 3), (10, 3), (30, 2)):
        wavs, lens = padded_batch(seconds, n_items)
        expected = model.encode_batch(wavs, lens)[:, 0]
        got = session(wavs, lens)
        assert got.shape == expected.shape == (n_items, 16)
        if architecture == "tdy_vggm":
            # This random TDY-VGG-M is so sensitive that PyTorch's own float32
            # result is 0.7-1.7e-4 from the float64 one: onnxruntime must be as
            # close to float64 as PyTorch is.
            exact = float64_embeddings(model, wavs, lens)
            limit = max(MAX_ABS_ERROR, 2 * float((expected - exact).abs().max()))
            assert float((got - exact).abs().max()) <= limit
        else:
            assert float((got - expected).abs().max()) <= MAX_ABS_ERROR, (seconds, got, expected)
        if seconds == 10:  # the padded item is embedded as alone
            alone = session(wavs[1:2, : int(0.5 * wavs.shape[1])], torch.ones(1))
            assert float((alone - got[1]).abs().max()) <= MAX_ABS_ERROR


@pytest.fixture(scope="module")
def fixture_folder(reference_fixture, tmp_path_factory):
    """The converter's folder for the authors' recorded fixture (TDY-ResNet-34 x0.25, 40 mels)."""
    state = fill_weights({name: torch.zeros(shape) for name, shape in reference_fixture["keys"]},
                         reference_fixture["gain"])
    checkpoint = tmp_path_factory.mktemp("authors") / "model000000100.model"
    torch.save({f"__S__.{key}": value for key, value in state.items()}, checkpoint)
    folder = convert_to_folder(checkpoint, tmp_path_factory.mktemp("models") / "fixture",
                               model="TDy_ResNet34_quarter", encoder_type="AVG", n_mels=40)
    onnx_export.main([str(folder)])
    return folder


@pytest.mark.slow  # exporting the full-depth model takes 20-50 s on 2 CPU cores
def test_onnxruntime_reproduces_the_recorded_fixture(fixture_folder, reference_fixture):
    session = OnnxEmbeddingModel(fixture_folder / "embedding_model.onnx")
    for name in ("short", "long"):
        wavs = reference_fixture[f"x_{name}"]
        got = session(wavs, torch.ones(wavs.shape[0]))
        assert float((got - reference_fixture[f"y_{name}"]).abs().max()) <= MAX_ABS_ERROR
    long, short = reference_fixture["x_long"][0], reference_fixture["x_short"][1]
    batch = torch.zeros(2, long.shape[0])
    batch[0], batch[1, : short.shape[0]] = long, short
    got = session(batch, torch.tensor([1.0, short.shape[0] / long.shape[0]]))
    assert float((got[0] - reference_fixture["y_long"][0]).abs().max()) <= MAX_ABS_ERROR
    assert float((got[1] - reference_fixture["y_short"][1]).abs().max()) <= MAX_ABS_ERROR


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = write_tiny_model_folder(tmp_path_factory.mktemp("models") / "tdy", "tdy_resnet34_quarter")
    onnx_export.main([str(folder)])
    return folder


def test_the_onnx_backend_gives_the_same_results(tiny_folder, tmp_path):
    torch_model = TDYSpeakerRecognition.from_hparams(source=str(tiny_folder))
    onnx_model = TDYSpeakerRecognition.from_hparams(source=str(tiny_folder), backend="onnx",
                                                    onnx_file=tiny_folder / "embedding_model.onnx")
    assert onnx_model.onnx_model is not None and torch_model.onnx_model is None
    wavs, lens = padded_batch(3.0)
    torch.testing.assert_close(onnx_model.encode_batch(wavs, lens), torch_model.encode_batch(wavs, lens),
                               rtol=0, atol=MAX_ABS_ERROR)
    a, b = write_voice(tmp_path / "a.wav", 0.7, seed=1), write_voice(tmp_path / "b.wav", 2.0, seed=2)
    assert float(onnx_model.verify_files(a, b, threshold=0.5)[0]) == pytest.approx(
        float(torch_model.verify_files(a, b, threshold=0.5)[0]), abs=MAX_ABS_ERROR)
    onnx_model.enroll("a", a)
    torch_model.gallery = onnx_model.gallery  # same fingerprint: the backends are one model
    assert torch_model.identify(b, threshold=0.5)[1].tolist() == pytest.approx(
        onnx_model.identify(b, threshold=0.5)[1].tolist(), abs=1e-4)


def test_from_hparams_finds_the_folders_onnx_file(tiny_folder):
    model = TDYSpeakerRecognition.from_hparams(source=str(tiny_folder), backend="onnx")
    assert model.onnx_model is not None


def test_backend_errors(tiny_folder, tmp_path):
    with pytest.raises(ValueError, match="Unknown backend 'tensorrt'"):
        TDYSpeakerRecognition.from_hparams(source=str(tiny_folder), backend="tensorrt")
    with pytest.raises(ValueError, match="backend='onnx' needs onnx_file="):
        TDYSpeakerRecognition(modules=None, hparams={}, backend="onnx")
    with pytest.raises(FileNotFoundError, match=r"none.onnx: no ONNX model; write it with `speechbrain-tdy onnx"):
        TDYSpeakerRecognition.from_hparams(source=str(tiny_folder), backend="onnx", onnx_file=tmp_path / "none.onnx")
    (tmp_path / "bad.onnx").write_text("not onnx")
    with pytest.raises(ValueError, match="bad.onnx: not an ONNX model"):
        TDYSpeakerRecognition.from_hparams(source=str(tiny_folder), backend="onnx", onnx_file=tmp_path / "bad.onnx")


def test_an_export_that_fails_its_check_leaves_no_file(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_graph, "TOLERANCE", -1.0)
    with pytest.raises(SystemExit, match=r"out.onnx: onnxruntime does not reproduce the PyTorch model"):
        onnx_export.main([str(tiny_folder), str(tmp_path / "out.onnx")])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SystemExit, match="nowhere: no such model folder"):
        onnx_export.main([str(tmp_path / "nowhere")])
