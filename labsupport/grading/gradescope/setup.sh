#!/usr/bin/env bash
# Gradescope autograder setup: runs once when the autograder image is built.
# The autograder zip holds this file, run_autograder, and the course repository (pyproject.toml and
# labsupport/ at the top level, weights included); Gradescope unpacks it into /autograder/source.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-pip python3-venv bubblewrap >/dev/null

# System-wide install on purpose: the unprivileged user that runs student code must be able to
# import the package, which it cannot from a virtual environment under /root.
PIP="python3 -m pip install --quiet"
if python3 -m pip install --help | grep -q -- --break-system-packages; then PIP="$PIP --break-system-packages"; fi
$PIP torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu
$PIP /autograder/source

# The course secret (hidden inputs) must be in the zip: labsupport grade --init-secret grading-secret
test -s /autograder/source/grading-secret || { echo "grading-secret missing from the autograder zip"; exit 1; }
chmod 600 /autograder/source/grading-secret

# Check once which sandbox runs student code here (bubblewrap, or the subreaper and user nobody).
python3 -c "from labsupport.grading.sandbox.backend import choose_backend; print(choose_backend().note)"
