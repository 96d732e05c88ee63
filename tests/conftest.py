"""Shared fixtures: the authors' key listing and recorded outputs, a tiny model folder, a tiny corpus."""
import os
import sys

import pytest
import torch
from helpers import FIXTURE, write_tiny_model_folder

# Two cores: two threads in one process, or one each under `pytest -n 2`.
torch.set_num_threads(max(1, 2 // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))












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


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A tiny TDY-ResNet-34 (x0.25 layout) model folder, one per test module
    (modules that need another model define their own ``model_folder``)."""
    return write_tiny_model_folder(tmp_path_factory.mktemp("models") / "tdy", "tdy_resnet34_quarter")


@pytest.fixture(scope="session")
def reference_fixture():
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A small mini corpus (6 train, 2 dev, 2 test speakers) with noise and RIR folders."""
    from mini_corpus import generate_corpus

    from speechbrain_tdy.dataio.augmentation_files import write_synthetic_noise_and_rirs

    root = tmp_path_factory.mktemp("tiny_corpus")
    generate_corpus(root, n_speakers=10, n_utterances=8, seed=3, durations=(1.2, 2.0))
    write_synthetic_noise_and_rirs(root, n_noises=2, n_rirs=2)
    return root
