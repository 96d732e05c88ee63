"""The ``speechbrain-tdy`` command: one entry point, every tool a subcommand, old module paths kept."""
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from speechbrain_tdy.cli import SUBCOMMANDS, main


def test_pip_install_puts_the_command_on_path():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts["speechbrain-tdy"] == "speechbrain_tdy.cli:main"


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_has_its_help(name, capsys):
    with pytest.raises(SystemExit) as stop:
        main([name, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: speechbrain-tdy {name} ")


def test_without_a_subcommand_it_lists_them_and_an_unknown_one_is_an_error(capsys):
    main([])
    listing = capsys.readouterr().out
    assert all(f"  {name} " in listing for name in SUBCOMMANDS)
    with pytest.raises(SystemExit) as stop:
        main(["enrol"])
    assert "unknown subcommand 'enrol'" in str(stop.value.code)


@pytest.mark.parametrize("module", ["embed", "gallery", "convert", "export", "analysis", "cli"])
def test_python_dash_m_entry_points_still_run(module):
    args = ["embed", "--help"] if module == "cli" else ["--help"]
    result = subprocess.run([sys.executable, "-m", f"speechbrain_tdy.{module}", *args], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: speechbrain-tdy ")
