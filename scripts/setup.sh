#!/usr/bin/env bash
# Create .venv and install the project with its test and Ray extras (dev brings the torch and openvino extras;
# torch from the pinned release). The image's locks constrain the closure, so a fresh venv runs the very versions
# the images ship (a newer transitive release on the index would otherwise make the venv and the images differ).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
pip install -q torch==2.14.1 torchvision==0.29.1
pip install -q -c docker/requirements.lock -c docker/requirements-torch.lock -e '.[dev,ray]'
