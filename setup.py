"""audiotok: neural audio codecs and speech tokenizers behind one API."""
from setuptools import find_packages, setup

CORE = [
    "torch>=2.1",  # install with a constraint (.ci/constraints.txt) so a CPU build is kept
    "numpy",
    "einops",
    "soundfile",
    "soxr",
    "safetensors",
    "huggingface-hub",
    "pyyaml",
    "rich",
    "tqdm",
]
EXTRAS = {
    "train": ["lightning>=2.2", "jsonargparse[signatures]>=4.39"],
    "hf": ["transformers>=4.40"],
    "data": ["pocketsphinx>=5", "pyarrow", "datasets"],
    "bench": [
        "jiwer", "pystoi", "pesq", "matplotlib", "pocketsphinx>=5",
        "resemblyzer", "setuptools<81", "scipy",
    ],
    "parity": ["beartype", "accelerate", "lion-pytorch", "scipy", "matplotlib", "sentencepiece"],
    "onnx": ["onnx", "onnxruntime"],  # audiotok export onnx; load(..., backend="onnxruntime")
    "ray": ["ray[data]>=2.60"],  # tokenize-dataset --engine ray (tested with 2.60.0)
    "dev": ["pytest", "pytest-timeout", "hypothesis"],
}
EXTRAS["all"] = sorted({d for k, v in EXTRAS.items() if k != "parity" for d in v})

setup(
    name="audiotok",
    version="0.1.0",
    description="Neural audio codecs and speech tokenizers: SpeechTokenizer, Mimi, WavTokenizer "
    "from pluggable parts, one training CLI, streaming and benchmarks.",
    packages=find_packages(include=["audiotok", "audiotok.*"]),
    package_data={"audiotok": ["assets/pretrained/*/*"]},
    python_requires=">=3.10",
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["audiotok=audiotok.cli:main"]},
)
