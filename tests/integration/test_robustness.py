"""Failure handling of long runs: a dying DDP worker fails the job quickly."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import RECIPE, TINY


def children(pid):
    """PIDs of the direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_killed_ddp_worker_fails_the_job_within_a_minute(tiny_corpus, tmp_path):
    overrides = dict(TINY, data_folder=tiny_corpus, output_folder=tmp_path, augment=False, number_of_epochs=50)
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
            "train.py", "hparams/tdy_resnet34_quarter.yaml", *[f"--{k}={v}" for k, v in overrides.items()],
            "--distributed_backend=gloo"]
    launcher = subprocess.Popen(args, cwd=RECIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not list((tmp_path / "save").glob("CKPT+*")):
            assert launcher.poll() is None, launcher.stdout.read()[-3000:]
            time.sleep(0.5)
        assert list((tmp_path / "save").glob("CKPT+*")), "training never reached its first checkpoint"
        workers = children(launcher.pid)
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)
        killed_at = time.time()
        output, _ = launcher.communicate(timeout=60)
        assert time.time() - killed_at < 60
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert "Signal 9 (SIGKILL)" in output or "exitcode  : -9" in output, output[-3000:]
