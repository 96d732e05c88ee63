"""Installation script of speechbrain-tdy."""
from setuptools import find_packages, setup

setup(
    name="speechbrain-tdy",
    version="0.1.0",
    description="Temporal Dynamic CNNs (TDY-CNN, DTDY-CNN) for speaker verification in SpeechBrain",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["speechbrain_tdy", "speechbrain_tdy.*"]),
    python_requires=">=3.9",
    install_requires=[
        "speechbrain>=1.0,<1.2",
        "torch<=2.14.1",
        "torchaudio==2.11.0",
        "hyperpyyaml",
        "numpy",
        "scikit-learn",
        "soundfile",
        "matplotlib",
        "huggingface_hub",
        "safetensors>=0.4",
    ],
    extras_require={
        "dev": ["pytest", "pytest-timeout", "pytest-xdist", "hypothesis"],
        "onnx": ["onnx", "onnxruntime"],  # speechbrain-tdy onnx, backend="onnx"
    },
    entry_points={"console_scripts": ["speechbrain-tdy = speechbrain_tdy.cli:main"]},
)
