"""The installed package stands alone: built as a wheel and installed in a fresh
environment, used from another folder, it converts and exports."""
import ast
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from importlib.metadata import packages_distributions
from pathlib import Path

import torch
from helpers import ROOT, fake_run, fill_weights


def test_a_wheel_installed_without_the_checkout_converts_and_exports(reference_fixture, tmp_path):
    source = shutil.copytree(ROOT, tmp_path / "source", ignore=shutil.ignore_patterns(
        ".*", "build", "*.egg-info", "results", "demo_output", "__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(source)], check=True, cwd=tmp_path, capture_output=True)
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    # The dependencies come from this environment, read as a plain folder: its
    # .pth files (among them the editable install of the checkout) are not run.
    (purelib / "dependencies.pth").write_text("\n".join([*site.getsitepackages(), sysconfig.get_paths()["purelib"]]))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(purelib),
                    *map(str, wheels.glob("*.whl"))], check=True, capture_output=True)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    located = subprocess.run([python, "-c", "import speechbrain_tdy; print(speechbrain_tdy.__file__)"], cwd=work,
                             env=env, check=True, capture_output=True, text=True).stdout
    assert located.startswith(str(purelib))

    state = fill_weights({name: torch.zeros(shape) for name, shape in reference_fixture["keys"]},
                         reference_fixture["gain"])
    torch.save({f"__S__.{key}": value for key, value in state.items()}, work / "ck.model")
    subprocess.run([python, "-m", "speechbrain_tdy.convert", "ck.model", "converted", "--model", "TDy_ResNet34_quarter",
                    "--encoder-type", "AVG", "--n-mels", "40"], cwd=work, env=env, check=True, capture_output=True)
    fake_run(work / "run")
    subprocess.run([python, "-m", "speechbrain_tdy.export", "run", "exported"], cwd=work, env=env, check=True,
                   capture_output=True)
    for folder in ("converted", "exported"):
        assert {"hyperparams.yaml", "embedding_model.safetensors", "README.md"} <= \
            {p.name for p in (work / folder).iterdir()}


def package_imports():
    """module -> the package's modules it imports anywhere (inside functions too)."""
    package = ROOT / "speechbrain_tdy"
    modules = {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
               for path in package.rglob("*.py")}
    graph = {}
    for module, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            imported.update(name for name in names if name in modules and name != module)
        graph[module] = imported
    return graph


def test_the_package_has_no_import_cycles():
    graph = package_imports()
    assert "speechbrain_tdy.nnet.layout" in graph["speechbrain_tdy.nnet.tdy_conv"]  # the graph is read
    state = {}

    def visit(module, path):
        state[module] = "open"
        for name in sorted(graph[module]):
            if state.get(name) == "open":
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(name):] + [name]))
            if name not in state:
                visit(name, path + [name])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_no_module_is_named_after_an_installed_package():
    """``speechbrain_tdy/onnx.py`` once shadowed the ``onnx`` package for anyone reading or importing relatively."""
    installed = {name.lower() for name in packages_distributions()} - {"speechbrain_tdy"}
    assert {"onnx", "torch", "numpy"} <= installed  # the list is read
    names = {path.stem.lower() for path in (ROOT / "speechbrain_tdy").rglob("*.py")}
    names |= {path.name.lower() for path in (ROOT / "speechbrain_tdy").rglob("*") if path.is_dir()}
    assert not names & installed
