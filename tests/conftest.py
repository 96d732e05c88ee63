"""Shared fixtures: the authors' key listing and recorded outputs."""
import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "official_fixture_tdy_resnet34_quarter_avg40.pt"
KEY_LISTING = DATA / "official_state_dict_keys.txt"

# Two cores: two threads in one process, or one each under `pytest -n 2`.
torch.set_num_threads(max(1, 2 // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


def _load_fill():
    spec = importlib.util.spec_from_file_location("fill_weights", DATA / "fill_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fill


fill_weights = _load_fill()


def read_key_listing(path=KEY_LISTING):
    """Blocks of the authors' listing: [{model, encoder_type, n_mels, trainable_params, keys}],
    keys being {name without '__S__.': (shape, kind)}."""
    blocks, current = [], None
    header = re.compile(r"^## (\S+) encoder_type=(\S+) n_mels=(\d+) trainable_params=(\d+)")
    for line in path.read_text().splitlines():
        match = header.match(line)
        if match:
            model, encoder, n_mels, params = match.groups()
            current = dict(model=model, encoder_type=encoder, n_mels=int(n_mels),
                           trainable_params=int(params), keys={})
            blocks.append(current)
        elif line.startswith("## "):
            current = None
        elif current is not None and line.startswith("__S__."):
            name, shape, kind = line.split("\t")
            current["keys"][name[len("__S__."):]] = (tuple(int(s) for s in re.findall(r"\d+", shape)), kind)
    return blocks


OFFICIAL_BLOCKS = read_key_listing()


def official_state_dict(block, gain=1.0):
    """Deterministic weights for a block of the listing, with the authors' key names."""
    zeros = {name: torch.zeros(shape) for name, (shape, _) in block["keys"].items()}
    return fill_weights(zeros, gain)


def hide_unimportable_lazy_modules():
    """SpeechBrain registers lazy modules for optional integrations (k2, ...) that
    raise ImportError on attribute access; hypothesis inspects every module in
    sys.modules, so drop the ones that cannot be imported here."""
    for name, module in list(sys.modules.items()):
        try:
            getattr(module, "__file__", None)
        except ImportError:
            del sys.modules[name]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems():
    hide_unimportable_lazy_modules()


@pytest.fixture(autouse=True)
def _hide_lazy_modules_before_each_test():
    hide_unimportable_lazy_modules()


@pytest.fixture(scope="session")
def reference_fixture():
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A small mini corpus (6 train, 2 dev, 2 test speakers) with noise and RIR folders."""
    from speechbrain_tdy.dataio.augmentation_files import write_synthetic_noise_and_rirs
    from mini_corpus import generate_corpus

    root = tmp_path_factory.mktemp("tiny_corpus")
    generate_corpus(root, n_speakers=10, n_utterances=8, seed=3, durations=(1.2, 2.0))
    write_synthetic_noise_and_rirs(root, n_noises=2, n_rirs=2)
    return root
