#!/usr/bin/env bash
# Wheels of what benchmarks/gpu.sh needs beyond the bare GPU image's torch,
# torchaudio, numpy, scipy, scikit-learn, huggingface_hub and pytest, for its
# CPython 3.12: SpeechBrain, HyperPyYAML, soundfile, pytest-timeout
# (pytest.ini), matplotlib (verify.py's DET curve) and everything they import,
# so that pip can resolve them offline whatever the image already has (31 MB).
# The versions are those of the tested .venv (ruamel.yaml < 0.19: 0.19 fails
# in HyperPyYAML). Carry the folder to the GPU machine; gpu.sh installs what
# is missing from it.
#
#   bash benchmarks/gpu_wheels.sh [folder]      # default: wheels (git-ignored)
set -euo pipefail
dest=${1:-wheels}
python3 -m pip download --quiet --dest "$dest" --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 \
    speechbrain==1.1.2 hyperpyyaml==1.2.3 ruamel.yaml==0.18.17 ruamel.yaml.clib==0.2.15 soundfile==0.14.0 \
    cffi==2.1.1 pycparser==3.12 sentencepiece==0.2.3 joblib==1.6.0 tqdm==4.70.1 packaging==26.4 pyyaml==6.0.4 \
    typing_extensions==4.16.0 requests==2.34.2 urllib3==2.8.0 idna==3.20 charset-normalizer==3.5.3 \
    certifi==2026.10.19.post1 matplotlib==3.11.2 contourpy==1.3.3 cycler==0.12.1 fonttools==4.68.0 \
    kiwisolver==1.5.1 pillow==13.0.0 pyparsing==3.3.3 python-dateutil==4.0.0 pytest-timeout==2.4.0
ls -l "$dest"
