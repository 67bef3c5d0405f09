#!/usr/bin/env bash
# The edge of stability on MNIST-5k (issue 36): Cohen et al.'s fc-tanh (784-200-200-10), full-batch
# gradient descent, float32, one thread each; ≈ 50 min for each MSE store and 10 min for CE on a
# 2-core CPU. Needs the mnist extra: pip install "landscape[mnist]".
set -euo pipefail
out=${1:-runs/mnist}
mkdir -p "$out"
COMMON="--data mnist5k --width 200 --depth 2 --activation tanh --no-hessian-pairs --top-k 2 --ggn-k 2 --seeds 1
        --eval-every 100 --save-params-every 500 --chunk-steps 500 --threads 1 --dtype float32 -q"
landscape record $COMMON --loss mse --eta 0.05,0.04,0.0333,0.025 --steps 4000 --hessian-every 50 -o "$out/mse.zarr"
landscape record $COMMON --loss mse --eta 0.045,0.0357 --steps 4000 --hessian-every 50 -o "$out/mse2.zarr"
landscape record $COMMON --loss ce --eta 2.0,1.0,0.5,0.1 --steps 1000 --hessian-every 25 -o "$out/ce.zarr"
landscape analyze sharpening "$out/mse.zarr" "$out/mse2.zarr" "$out/ce.zarr" --fig sharpening.png > sharpening.txt
landscape analyze sharpening "$out/mse.zarr" "$out/mse2.zarr" --reach 0.99 > sharpening_reach099.txt

# Fig. 3's claim on MNIST (issue 36): CE vs DCE, widths 2–512, 5 seeds, 1,000 training digits; ≈ 55 min on one core
COMMON_W="--loss ce,dce --eta 0.5 -A 70 -T 500 --seeds 5 --steps 2000 --data mnist5k:1000 --static-last --step eager
          --hessian-every 1000 --eval-every 100 --threads 1 --workers 1"
landscape sweep $COMMON_W --width 16,32,64,128,256,512 --out "$out/widths.zarr"
landscape sweep $COMMON_W --width 2,4,8 --out "$out/widths_small.zarr"
landscape analyze generalization "$out/widths_small.zarr" "$out/widths.zarr" --fig widths.png > widths.txt
