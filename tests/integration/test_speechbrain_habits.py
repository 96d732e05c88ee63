"""What SpeechBrain users try first: the generic interfaces and the classifier methods."""
import pytest
import torch
from helpers import voice
from speechbrain.inference.classifiers import EncoderClassifier
from speechbrain.inference.speaker import SpeakerRecognition

from speechbrain_tdy.inference import TDYSpeakerRecognition
from speechbrain_tdy.storage.pretrainer import WrongInterfaceError

SPEECHBRAIN_PRETRAINER = "!new:speechbrain.utils.parameter_transfer.Pretrainer"
TDY_PRETRAINER = "!new:speechbrain_tdy.inference.pretrainer.TDYPretrainer"


@pytest.fixture(scope="module")
def folder_with_speechbrain_pretrainer(model_folder, tmp_path_factory):
    """The model folder as earlier releases wrote it, naming SpeechBrain's Pretrainer."""
    folder = tmp_path_factory.mktemp("models") / "speechbrain_pretrainer"
    folder.mkdir()
    for path in model_folder.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    text = (folder / "hyperparams.yaml").read_text()
    assert TDY_PRETRAINER in text
    (folder / "hyperparams.yaml").write_text(text.replace(TDY_PRETRAINER, SPEECHBRAIN_PRETRAINER))
    return folder


@pytest.mark.parametrize("interface", [EncoderClassifier, SpeakerRecognition])
def test_speechbrains_interfaces_stop_at_once_naming_tdy_speaker_recognition(model_folder, interface):
    with pytest.raises(WrongInterfaceError, match=r"TDYSpeakerRecognition.from_hparams\(source=...\)"):
        interface.from_hparams(source=str(model_folder))


def test_tdy_speaker_recognition_loads_folders_naming_either_pretrainer(model_folder,
                                                                        folder_with_speechbrain_pretrainer):
    loaded = TDYSpeakerRecognition.from_hparams(source=str(folder_with_speechbrain_pretrainer))
    reference = TDYSpeakerRecognition.from_hparams(source=str(model_folder))
    wav = torch.from_numpy(voice(1.5, seed=0))
    torch.testing.assert_close(loaded.encode_batch(wav), reference.encode_batch(wav), rtol=0, atol=0)


def test_classifier_methods_say_what_to_use_instead(model_folder):
    model = TDYSpeakerRecognition.from_hparams(source=str(model_folder))
    with pytest.raises(NotImplementedError, match=r"without a classifier.*encode_batch.*verify_files.*identify"):
        model.classify_batch(torch.zeros(1, 16000))
    with pytest.raises(NotImplementedError, match="without a classifier"):
        model.classify_file("any.wav")
