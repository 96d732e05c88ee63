"""The README's main command, end to end (slow: about 8 minutes on 2 CPU cores)."""
import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_demo_learns_to_verify_speakers(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    result = subprocess.run([sys.executable, "-m", "speechbrain_tdy.demo", "--output", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=1200)
    assert result.returncode == 0, result.stderr[-5000:]
    trained = json.loads((tmp_path / "tdy_resnet34_quarter" / "verification" / "results.json").read_text())
    untrained = json.loads((tmp_path / "untrained" / "verification" / "results.json").read_text())
    assert untrained["EER"] >= 25.0, untrained
    assert trained["EER"] < 20.0 and trained["EER"] < untrained["EER"] - 15.0, (trained, untrained)
    assert (tmp_path / "exported_model" / "hyperparams.yaml").is_file()
    assert "one trial through TDYSpeakerRecognition" in result.stdout
