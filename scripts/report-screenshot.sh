#!/usr/bin/env bash
# Regenerates docs/report-screenshot.png: the README's stories run, its `attnspec report`, and a
# headless-Chromium screenshot (1400 px wide, empty bottom cropped, 256-colour PNG).
# Needs attnspec installed, ../shared beside the repository, and chromium (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
attnspec analyze --model "$REPO/../shared/models/stories260K-hf" --token-ids "$REPO/examples/stories260K_story.json" \
  --ctx 256 --out runs/stories --save-spectra --quiet
attnspec report runs/stories --quiet
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$WORK/shot.png" \
  --window-size=1400,4000 --virtual-time-budget=10000 "file://$WORK/runs/stories/report/report.html" 2>/dev/null
python3 - "$WORK/shot.png" "$REPO/docs/report-screenshot.png" <<'PY'
import sys
import numpy as np
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
a = np.asarray(im).astype(int)
used = np.where((np.abs(a - a[-1:]).sum(axis=2) > 10).any(axis=1))[0]
im = im.crop((0, 0, im.width, min(im.height, int(used.max()) + 40)))
im.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(sys.argv[2], optimize=True)
print(f"wrote {sys.argv[2]} ({im.width}x{im.height})")
PY
