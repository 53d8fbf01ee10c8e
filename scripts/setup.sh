#!/usr/bin/env bash
# Everything a fresh machine needs for audiotok: Debian tools for the offline corpus, the CPU build
# of torch (pinned through a constraint so no CUDA build is ever pulled), the package with all its
# extras, and the reference implementations used by the parity tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

missing=()
for tool in flite espeak-ng sox; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq flite espeak-ng sox >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq flite espeak-ng sox >/dev/null; fi
fi

PIP="python -m pip install -q -c .ci/constraints.txt"
$PIP torch==2.13.0
$PIP -e ".[all,dev]"  # [all] includes [ray]: ray[data] for tokenize-dataset --engine ray and its tests
python -c "import ray.data; print('ray', ray.__version__)"
# Parity references: speechtokenizer imports its trainer (beartype, accelerate, lion-pytorch);
# moshi pins an old torch, so it goes in without its dependencies.
$PIP beartype accelerate lion-pytorch sentencepiece sphn
$PIP --no-deps speechtokenizer==1.0.1 moshi==0.2.13
# xcodec2 pins torch 2.5, torchaudio and torchao: without its dependencies, plus what its model code
# uses (vector-quantize-pytorch's FSQ with einx; torchtune's RoPE module, loaded on its own).
$PIP einx
$PIP --no-deps xcodec2==0.1.5 vector-quantize-pytorch==1.17.8 torchtune==0.6.1
# encodec would pull torchaudio (a torch-matched binary); its model needs only torch, numpy and einops.
$PIP --no-deps encodec==0.1.1
python -c "import torch; assert '+cpu' in torch.__version__ or not torch.cuda.is_available(); print('torch', torch.__version__)"
