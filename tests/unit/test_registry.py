"""One definition of each released model: the registry. Factories, the inference
``hparams/*.yaml`` and the recipe's YAML files derive from it."""
import pytest
import yaml
from helpers import RECIPE
from hyperpyyaml import load_hyperpyyaml

from speechbrain_tdy import lobes
from speechbrain_tdy.lobes.registry import ARCHITECTURES
from speechbrain_tdy.nnet import TDYConv2d

RECIPE_HPARAMS = sorted(path for path in (RECIPE / "hparams").glob("*.yaml") if path.stem != "verification")
#: Keys that only the registry may set: what makes an architecture what it is.
FIXED_BY_THE_REGISTRY = {"conv", "layers", "window", "f_max", "n_kernels"}


def mapping_keys(node):
    """Every key of every mapping under a composed YAML node."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key.value
            yield from mapping_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from mapping_keys(item)


def top_level(node):
    return {key.value: value for key, value in node.value}


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("path", RECIPE_HPARAMS, ids=lambda p: p.stem)
def test_a_recipe_names_its_architecture_once_and_restates_nothing(path):
    root = yaml.compose(path.read_text())
    restated = FIXED_BY_THE_REGISTRY & set(mapping_keys(root))
    assert not restated, f"{path.name} restates {sorted(restated)}, which the registry fixes"
    top = top_level(root)
    assert top["architecture"].value in ARCHITECTURES
    assert top["embedding_model"].tag == "!apply:speechbrain_tdy.lobes.registry.build_embedding_model"
    assert top["compute_features"].tag == "!apply:speechbrain_tdy.lobes.registry.build_front_end"
    assert "channels" not in top or top["channels"].value == "null"


@pytest.mark.parametrize("path", RECIPE_HPARAMS, ids=lambda p: p.stem)
def test_a_recipe_trains_the_registrys_model(path):
    hparams = load_hyperpyyaml(path.read_text(), {"data_folder": "unused", "init_from": None})
    arch = ARCHITECTURES[hparams["architecture"]]
    values = arch.model_values(pooling=hparams["pooling"])
    _, expected = arch.build(values)
    model = hparams["embedding_model"]
    assert type(model) is type(expected)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in expected.state_dict().items()}
    assert hparams["modules"]["embedding_model"] is model  # one object, trained and checkpointed
    assert repr(hparams["compute_features"]) == repr(arch.front_end(values["n_mels"]))


def test_the_projects_entry_point_is_the_papers_model():
    top = top_level(yaml.compose((RECIPE / "hparams" / "tdy.yaml").read_text()))
    assert top["architecture"].value == "tdy_resnet34_half"


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_each_factory_and_entry_give_the_authors_parameter_count(name):
    arch = ARCHITECTURES[name]
    assert trainable(getattr(lobes, name)()) == arch.n_parameters
    _, built = arch.build(arch.model_values())
    assert trainable(built) == arch.n_parameters


def test_recipe_options_change_sizes_not_the_architecture():
    hparams = load_hyperpyyaml((RECIPE / "hparams" / "tdy_resnet34_quarter.yaml").read_text(),
                               {"data_folder": "unused", "n_mels": 24, "channels": [4, 8, 8, 16], "emb_dim": 16})
    model = hparams["embedding_model"]
    assert model.conv1.out_channels == 4 and model.fc.out_features == 16
    assert any(isinstance(module, TDYConv2d) for module in model.modules())
