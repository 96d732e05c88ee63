"""Converter: the authors' checkpoints give the authors' embeddings."""
import pytest
import torch
from helpers import OFFICIAL_BLOCKS, fill_weights, official_state_dict

from speechbrain_tdy.export.authors_checkpoint import OFFICIAL_MODELS, load_official_checkpoint
from speechbrain_tdy.nnet import TDYConv2d, set_temperature
from speechbrain_tdy.storage.model_files import CheckpointMismatchError


@pytest.fixture(scope="module")
def fixture_checkpoint(reference_fixture):
    zeros = {name: torch.zeros(shape) for name, shape in reference_fixture["keys"]}
    return fill_weights(zeros, reference_fixture["gain"])


@pytest.fixture(scope="module")
def fixture_model(fixture_checkpoint):
    return load_official_checkpoint(fixture_checkpoint, "TDy_ResNet34_quarter", "AVG", n_mels=40)


def test_reproduces_recorded_embeddings(fixture_model, reference_fixture):
    with torch.no_grad():
        for x, y in (("x_short", "y_short"), ("x_long", "y_long")):
            torch.testing.assert_close(fixture_model(reference_fixture[x]), reference_fixture[y], rtol=0, atol=1e-4)


def test_reproduces_recorded_embeddings_at_initial_temperature(fixture_checkpoint, reference_fixture):
    model = load_official_checkpoint(fixture_checkpoint, "TDy_ResNet34_quarter", "AVG", n_mels=40)
    assert set_temperature(model, 31.0) == 35
    with torch.no_grad():
        got = model(reference_fixture["x_short"])
    torch.testing.assert_close(got, reference_fixture["y_short_temp31"], rtol=0, atol=1e-4)


def test_padded_batch_gives_each_item_its_own_embedding(fixture_model, reference_fixture):
    long, short = reference_fixture["x_long"][0], reference_fixture["x_short"][1]
    batch = torch.zeros(2, long.shape[0])
    batch[0], batch[1, : short.shape[0]] = long, short
    with torch.no_grad():
        got = fixture_model(batch, torch.tensor([1.0, short.shape[0] / long.shape[0]]))
    torch.testing.assert_close(got[0], reference_fixture["y_long"][0], rtol=0, atol=1e-5)
    torch.testing.assert_close(got[1], reference_fixture["y_short"][1], rtol=0, atol=1e-5)


def test_converted_model_is_eval_mode_at_temperature_one(fixture_model, reference_fixture):
    assert not fixture_model.training
    assert {m.temperature for m in fixture_model.modules() if isinstance(m, TDYConv2d)} == {1.0}
    assert sum(p.numel() for p in fixture_model.parameters()) == reference_fixture["n_params"]


def test_loads_checkpoint_files_as_the_authors_trainer_saves_them(tmp_path, fixture_checkpoint, reference_fixture):
    wrapped = {f"__S__.{k}": v for k, v in fixture_checkpoint.items()}
    wrapped.update({"__L__.angleproto.w": torch.tensor(10.0), "__L__.softmax.fc.weight": torch.zeros(3, 512)})
    flat, nested = tmp_path / "model000000100.model", tmp_path / "nested.model"
    torch.save(wrapped, flat)
    torch.save({"model_state_dict": wrapped, "optimizer_state_dict": {}}, nested)
    for path in (flat, nested):
        model = load_official_checkpoint(path, "TDy_ResNet34_quarter", "AVG", 40)
        with torch.no_grad():
            torch.testing.assert_close(model(reference_fixture["x_short"]), reference_fixture["y_short"], rtol=0, atol=1e-4)


FAMILIES = {}
for _block in OFFICIAL_BLOCKS:
    FAMILIES.setdefault((_block["model"], _block["encoder_type"]), _block)
SMALL_FAMILIES = [b for b in FAMILIES.values() if "half" not in b["model"] and "VGG" not in b["model"]]


@pytest.mark.parametrize("block", SMALL_FAMILIES, ids=lambda b: f"{b['model']}-{b['encoder_type']}")
def test_other_families_load_and_embed(block):
    checkpoint = official_state_dict(block, gain=0.25)
    model = load_official_checkpoint(checkpoint, block["model"], block["encoder_type"], block["n_mels"])
    with torch.no_grad():
        out = model(torch.rand(2, 16240) - 0.5)
    assert out.shape == (2, 512)
    assert torch.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize(
    "block", [b for b in FAMILIES.values() if b not in SMALL_FAMILIES], ids=lambda b: f"{b['model']}-{b['encoder_type']}"
)
def test_large_families_load_and_embed(block):
    test_other_families_load_and_embed(block)


def test_missing_unexpected_and_misshaped_keys_are_named(fixture_checkpoint):
    broken = dict(fixture_checkpoint)
    del broken["layer1.0.conv1.attention.fc2.bias"]
    broken["layer9.extra"] = torch.zeros(1)
    broken["fc.weight"] = torch.zeros(256, 640)
    with pytest.raises(CheckpointMismatchError) as error:
        load_official_checkpoint(broken, "TDy_ResNet34_quarter", "AVG", 40)
    message = str(error.value)
    assert "missing keys: layer1.0.conv1.attention.fc2.bias" in message
    assert "unexpected keys: layer9.extra" in message
    assert "fc.weight: model (512, 640), checkpoint (256, 640)" in message


def test_model_built_for_other_n_mels_is_refused(fixture_checkpoint):
    with pytest.raises(CheckpointMismatchError, match=r"n_mels=64.*mis-shaped keys"):
        load_official_checkpoint(fixture_checkpoint, "TDy_ResNet34_quarter", "AVG", n_mels=64)


def test_unknown_model_lists_the_known_ones(fixture_checkpoint):
    with pytest.raises(ValueError) as error:
        load_official_checkpoint(fixture_checkpoint, "TDy_ResNet50", "AVG", 40)
    assert all(name in str(error.value) for name in OFFICIAL_MODELS)


def test_file_that_is_not_a_checkpoint_is_named(tmp_path):
    path = tmp_path / "notes.model"
    path.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.model is not a PyTorch checkpoint"):
        load_official_checkpoint(path, "TDy_ResNet34_quarter", "AVG", 40)


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "pickled.model"
    torch.save({"model_state_dict": {"conv1.weight": torch.zeros(1)}, "extra": object()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_official_checkpoint(path, "TDy_ResNet34_quarter", "AVG", 40)
