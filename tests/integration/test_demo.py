"""The README's main command, end to end (slow: about 6 minutes per seed on 2 CPU cores)."""
import json
import os
import subprocess
import sys

import pytest
from helpers import TOOLS

#: The demo's promise (README): a test EER of at most 8% whatever the seed.
MAX_EER = 8.0
DEMO = TOOLS / "demo.py"


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("seed", [1986, 1])
def test_demo_learns_to_verify_speakers(seed, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    result = subprocess.run([sys.executable, str(DEMO), "--seed", str(seed), "--output", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=1500)
    assert result.returncode == 0, result.stderr[-5000:]
    trained = json.loads((tmp_path / "tdy_resnet34_quarter" / "verification" / "results.json").read_text())
    assert (tmp_path / "exported_model" / "hyperparams.yaml").is_file()
    assert "one trial through TDYSpeakerRecognition" in result.stdout
    assert "speakers written" in result.stdout  # corpus progress
    assert "cannot save figures" not in result.stdout + result.stderr
    assert trained["EER"] <= MAX_EER, (seed, trained)
