"""The suite's own set-up (pytest.ini): a test that crashes its process fails by name, and the suite goes on."""
import subprocess
import sys

from helpers import ROOT

PYTEST_INI = ROOT / "pytest.ini"

CRASHING_TESTS = '''
import os


def test_aborts_like_a_corrupted_heap():
    os.abort()


def test_runs_after_the_crash():
    pass
'''


def test_an_abort_fails_that_test_by_name_and_the_rest_still_runs(tmp_path):
    """What oneDNN's heap corruption did to `make test`: with the project's
    pytest options, the abort is one failed test named in the summary, not
    the end of the run."""
    (tmp_path / "test_crashing.py").write_text(CRASHING_TESTS)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-c", str(PYTEST_INI), "-p", "no:cacheprovider",
                           str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "crashed while running 'test_crashing.py::test_aborts_like_a_corrupted_heap'" in proc.stdout, proc.stdout
    assert "1 failed, 1 passed" in proc.stdout.splitlines()[-1], proc.stdout[-3000:]
