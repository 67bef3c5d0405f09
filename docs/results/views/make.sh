#!/usr/bin/env bash
# The landscape views and spectra of docs/results/views/README.md, from the repository root:
#   bash docs/results/views/make.sh [WORKDIR]     (stores go to WORKDIR, default /tmp/views)
set -euo pipefail
W=${1:-/tmp/views}
D=docs/results/views
mkdir -p "$W"
cp -r data/dce_w100_A70_T5000.zarr "$W/shipped.zarr"   # results are written into the store

# 1. the shipped run (DCE, width 100, η = 0.5, A = 70, T = 5000): random filter-normalised
#    surface, the path's PCA plane with the path, the line from θ_0 to θ_9000, all at t = 9000
landscape analyze surface "$W/shipped.zarr" --at-step 9000 --fig $D/mlp_surface_random.png
landscape analyze pca "$W/shipped.zarr"
landscape analyze surface "$W/shipped.zarr" --at-step 9000 --directions pca --fig $D/mlp_surface_pca.png
landscape analyze interpolate "$W/shipped.zarr" --from-step 0 --to-step 9000 --fig $D/mlp_interpolate.png

# 2. the quick start's run with the density recorded: ρ(λ, t) through training
landscape record --loss dmse1 --eta 0.05 --step fused --hessian-every 100 --density-steps 40 \
    --density-vectors 4 --bottom-k 1 --out "$W/dmse1.zarr" --overwrite
landscape analyze density "$W/dmse1.zarr" --fig $D/mlp_density_dmse1.png

# 3. your own model: the digits CNN (examples/cnn.py), DCE at η = 0.5, density recorded
landscape record --model examples/cnn.py:make --data data/digits.npz --loss dce --eta 0.5 -A 10 -T 400 \
    --steps 1600 --hessian-every 20 --save-params-every 100 --chunk-steps 200 --density-steps 30 \
    --density-vectors 4 --bottom-k 1 --out "$W/cnn.zarr" --overwrite
landscape analyze surface "$W/cnn.zarr" --at-step 600 --fig $D/cnn_surface_random.png
landscape analyze pca "$W/cnn.zarr"
landscape analyze surface "$W/cnn.zarr" --at-step 1500 --directions pca --fig $D/cnn_surface_pca.png
landscape analyze interpolate "$W/cnn.zarr" --from-step 0 --to-step 1500 --fig $D/cnn_interpolate.png
landscape analyze density "$W/cnn.zarr" --fig $D/cnn_density.png
