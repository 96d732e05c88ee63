"""Frame-level embeddings, attention maps and the analysis command."""
import json
import subprocess
import sys

import pytest
import torch

from speechbrain_tdy.analysis.extract import attention_maps, frame_embeddings, frame_labels_at_rate
from speechbrain_tdy.embedding.pipeline import EmbeddingPipeline
from speechbrain_tdy.export.model_folder import write_model_folder
from speechbrain_tdy.lobes import LogMelInstanceNorm, ResNet
from speechbrain_tdy.lobes.registry import ARCHITECTURES
from speechbrain_tdy.nnet import set_temperature

TINY = dict(n_mels=24, channels=[4, 8, 8, 16], lin_neurons=16)


def tiny_model(block):
    torch.manual_seed(0)
    model = ResNet(conv=block, **TINY).eval()
    set_temperature(model, 1.0)
    return model


def test_frame_embeddings_are_the_last_stage_output_per_valid_time_bin():
    model = tiny_model("tdy")
    feats = torch.randn(2, 60, 24)
    frames = frame_embeddings(model, feats, torch.tensor([1.0, 0.5]))
    assert [f.shape for f in frames] == [(15, 16 * model.out_freq), (8, 16 * model.out_freq)]
    with torch.no_grad():
        alone = frame_embeddings(model, feats[1:, :30])[0]
    torch.testing.assert_close(frames[1], alone, rtol=0, atol=1e-5)


def test_attention_maps_give_a_distribution_over_kernels_per_time_bin():
    model = tiny_model("tdy")
    maps = attention_maps(model, torch.randn(1, 40, 24))
    n_tdy_layers = sum(1 for name, _ in model.named_modules() if name.endswith(("conv1", "conv2", "downsample.conv"))
                       and name.startswith("layer"))
    assert len(maps) == n_tdy_layers
    assert maps["layer1.0.conv1"].shape == (1, 6, 40) and maps["layer3.0.conv1"].shape == (1, 6, 10)
    for pi in maps.values():
        torch.testing.assert_close(pi.sum(dim=1), torch.ones_like(pi[:, 0]))
    assert attention_maps(tiny_model("static"), torch.randn(1, 40, 24)) == {}


def test_phone_labels_follow_the_frame_rate_by_majority():
    assert frame_labels_at_rate(["v"] * 5 + ["f"] * 3, 2) == ["v", "f"]
    assert len(frame_labels_at_rate(["v"] * 101, 26)) == 26


@pytest.fixture(scope="module")
def tiny_model_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis_models")
    folders = {}
    for name, block, architecture in (("tdy", "tdy", "tdy_resnet34_quarter"), ("static", "static", "resnet34_quarter")):
        model = tiny_model(block)
        arch = ARCHITECTURES[architecture]
        values = arch.model_values(n_mels=24, channels=TINY["channels"], emb_dim=16)
        folders[name] = write_model_folder(root / name, arch, values, model,
                                           EmbeddingPipeline(LogMelInstanceNorm(24), model), "tiny test model")
    return folders


def test_the_analysis_command_writes_figures_and_silhouettes(tiny_corpus, tiny_model_folders, tmp_path):
    out = tmp_path / "analysis"
    subprocess.run([sys.executable, "-m", "speechbrain_tdy.analysis", "--model", str(tiny_model_folders["tdy"]),
                    "--baseline", str(tiny_model_folders["static"]), "--data", str(tiny_corpus), "--out", str(out),
                    "--speakers", "2", "--utterances", "2"], check=True, capture_output=True)
    results = json.loads((out / "analysis.json").read_text())
    assert set(results) == {"model", "baseline"}
    for scores in results.values():
        assert scores["n_frames"] > 20
        assert -1 <= scores["silhouette_speaker"] <= 1 and -1 <= scores["silhouette_phone_class"] <= 1
    assert (out / "tsne.png").stat().st_size > 10000 and (out / "attention.png").stat().st_size > 5000


def test_the_analysis_command_explains_a_missing_corpus(tiny_model_folders, tmp_path):
    result = subprocess.run([sys.executable, "-m", "speechbrain_tdy.analysis", "--model", str(tiny_model_folders["tdy"]),
                             "--data", str(tmp_path), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode != 0 and "veri_test.txt" in result.stderr and "Traceback" not in result.stderr
