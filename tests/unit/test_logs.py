"""Logs a person can read: no spurious third-party warnings."""
import subprocess
import sys

from speechbrain_tdy import TORCHVISION_FIGURE_WARNING


def test_speechbrains_torchvision_warning_is_dropped_and_nothing_else():
    code = ("import logging, speechbrain_tdy, speechbrain.utils.train_logger\n"
            "logging.getLogger('speechbrain.utils.train_logger').warning('another warning')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert TORCHVISION_FIGURE_WARNING not in result.stderr
    assert "another warning" in result.stderr
