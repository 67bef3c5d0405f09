#!/usr/bin/env bash
# The CPU-sized Fig. 4 sweep of docs/history.md: 3 losses × 3–4 η × 3 seeds, width 100,
# A = 50, T = 5000, one period (the first instability comes within it). About 4 minutes on 2 cores.
set -euo pipefail
out=${1:-fig4_sweep}
mkdir -p "$out"
landscape record --loss dce   --eta 0.5,0.7,1,1.4 -A 50 -T 5000 --seeds 3 --steps 5000 -q --overwrite -o "$out/dce.zarr"
landscape record --loss dmse1 --eta 0.2,0.3,0.4  -A 50 -T 5000 --seeds 3 --steps 5000 -q --overwrite -o "$out/dmse1.zarr"
landscape record --loss dmse2 --eta 0.12,0.2,0.3 -A 50 -T 5000 --seeds 3 --steps 5000 -q --overwrite -o "$out/dmse2.zarr"
landscape analyze instability "$out"/dce.zarr "$out"/dmse1.zarr "$out"/dmse2.zarr --fig "$out/fig4.png" --out "$out/fig4_results.zarr"
