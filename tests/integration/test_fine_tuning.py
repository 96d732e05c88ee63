"""``train.py --init_from=MODEL``: fine-tuning starts from a model folder's parameters."""
import re

import pytest
import torch
from helpers import TINY, recipe_brain, run_script, train_log_lines, write_tiny_model_folder
from safetensors.torch import load_file

from speechbrain_tdy.nnet.tdy_conv import tdy_layers

SIZES = {key: TINY[key] for key in ("n_mels", "emb_dim", "channels")}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A model folder of the recipe's architecture and TINY sizes (all stages of depth 3, 4, 6, 3)."""
    return write_tiny_model_folder(tmp_path_factory.mktemp("init") / "model", "tdy_resnet34_quarter", seed=5,
                                   layers=[3, 4, 6, 3], **SIZES)


def folder_parameters(folder):
    return load_file(folder / "embedding_model.safetensors")


def test_the_model_starts_from_the_folders_parameters_bit_for_bit(folder, tiny_corpus, tmp_path, monkeypatch):
    brain, _ = recipe_brain(monkeypatch, tiny_corpus, tmp_path, init_from=folder)
    state = brain.modules.embedding_model.state_dict()
    expected = folder_parameters(folder)
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[key], expected[key]) for key in expected)
    assert brain.hparams.temperature_scheduler.at(epoch=1) == 1.0  # a trained model is not annealed again
    assert {layer.temperature for layer in tdy_layers(brain.modules.embedding_model)} == {1.0}


def test_reanneal_anneals_from_the_recipes_start(folder, tiny_corpus, tmp_path, monkeypatch):
    brain, _ = recipe_brain(monkeypatch, tiny_corpus, tmp_path, init_from=folder, reanneal=True)
    assert brain.hparams.temperature_scheduler.at(epoch=1) == 31.0


@pytest.mark.parametrize("architecture, sizes, message", [
    ("resnet34_quarter", SIZES, r"its model is resnet34_quarter, the recipe trains tdy_resnet34_quarter"),
    ("tdy_resnet34_quarter", dict(SIZES, emb_dim=8), r"its emb_dim is 8, the recipe's is 16"),
    ("tdy_resnet34_quarter", dict(SIZES, layers=[1, 1, 1, 1]), r"its layers is \[1, 1, 1, 1\], the recipe's is"),
])
def test_another_architecture_or_size_is_refused_naming_the_difference(architecture, sizes, message, tmp_path):
    other = write_tiny_model_folder(tmp_path / "other", architecture, **sizes)
    result = run_script("train.py", "hparams/tdy_resnet34_quarter.yaml",
                        dict(TINY, data_folder=tmp_path / "no_corpus_needed", output_folder=tmp_path / "out",
                             init_from=other), check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"error: --init_from {other}: " in result.stderr
    assert re.search(message, result.stderr)


def test_frozen_stages_keep_their_parameters_and_statistics(folder, tiny_corpus, tmp_path, monkeypatch):
    brain, batch = recipe_brain(monkeypatch, tiny_corpus, tmp_path, init_from=folder, freeze=2, augment=False)
    model = brain.modules.embedding_model
    before = {key: value.clone() for key, value in model.state_dict().items()}
    brain.on_fit_batch_start(batch, True)
    brain.fit_batch(batch)
    after = model.state_dict()
    frozen = ("conv1.", "bn1.", "layer1.")
    assert all(torch.equal(before[key], after[key]) for key in before if key.startswith(frozen))
    changed = [key for key in before if key.startswith("layer2.") and not torch.equal(before[key], after[key])]
    assert changed, "the stages after the frozen ones train"


def test_a_fine_tuning_run_resumes_from_its_checkpoint(folder, tiny_corpus, tmp_path):
    overrides = dict(TINY, data_folder=tiny_corpus, output_folder=tmp_path, init_from=folder, augment=False)
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", overrides)
    (checkpoint,) = (tmp_path / "save").glob("CKPT+*")
    trained = torch.load(checkpoint / "embedding_model.ckpt", weights_only=True)
    assert not all(torch.equal(trained[k], v) for k, v in folder_parameters(folder).items())
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml", dict(overrides, number_of_epochs=2))
    lines = train_log_lines(tmp_path)
    assert len(lines) == 2 and "epoch: 2" in lines[1]  # epoch 1 was not trained again


def test_the_large_margin_stage_starts_from_a_stage_one_run(folder, tiny_corpus, tmp_path, monkeypatch):
    stage_one = tmp_path / "stage1"
    run_script("train.py", "hparams/tdy_resnet34_quarter.yaml",
               dict(TINY, data_folder=tiny_corpus, output_folder=stage_one, init_from=folder, augment=False))
    (checkpoint,) = (stage_one / "save").glob("CKPT+*")
    trained = torch.load(checkpoint / "embedding_model.ckpt", weights_only=True)
    brain, _ = recipe_brain(monkeypatch, tiny_corpus, tmp_path / "stage2", hparams="tdy_lm.yaml",
                            architecture="tdy_resnet34_quarter", init_from=stage_one, augment=False)
    state = brain.modules.embedding_model.state_dict()
    assert all(torch.equal(state[key], trained[key]) for key in trained)
    assert brain.hparams.loss == "aam" and brain.modules.loss_head.cost.loss_fn.margin == 0.5
