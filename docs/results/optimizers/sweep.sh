#!/usr/bin/env bash
# Fig. 4 for every optimizer: λ at the first instability against each optimizer's own threshold,
# on the paper's spiral and network (width 100), DCE and DMSE1, A = 50, T = 5000, 10 seeds, each
# run until its first instability + 200 steps (at most 20 000 steps). The learning rates put every
# optimizer's threshold where gradient descent's is at η = 0.7, 1, 1.4 (DCE) and 0.2, 0.3, 0.4
# (DMSE1): momentum (2 + 2β)/η, Nesterov (2 + 2β)/((1 + 2β)η). Adam's threshold 38/η applies to
# λ(P⁻¹H), recorded with --precond-k. Two runs at a time: `sweep.sh DIR [JOBS]`.
set -euo pipefail
out=${1:-optimizers}
jobs=${2:-2}
mkdir -p "$out"
common="-A 50 -T 5000 --seeds 10 --width 100 --steps 20000 --until first-instability -q"
{
  echo "gd_dce       --loss dce   --optimizer gd       --eta 0.7,1,1.4"
  echo "gd_dmse1     --loss dmse1 --optimizer gd       --eta 0.2,0.3,0.4"
  echo "hb05_dce     --loss dce   --optimizer momentum --beta 0.5 --eta 1.05,1.5,2.1"
  echo "hb05_dmse1   --loss dmse1 --optimizer momentum --beta 0.5 --eta 0.3,0.45,0.6"
  echo "hb09_dce     --loss dce   --optimizer momentum --beta 0.9 --eta 1.33,1.9,2.66"
  echo "hb09_dmse1   --loss dmse1 --optimizer momentum --beta 0.9 --eta 0.38,0.57,0.76"
  echo "nag09_dce    --loss dce   --optimizer nesterov --beta 0.9 --eta 0.475,0.679,0.95"
  echo "nag09_dmse1  --loss dmse1 --optimizer nesterov --beta 0.9 --eta 0.136,0.204,0.271"
  echo "adam_dce     --loss dce   --optimizer adam     --eta 0.001,0.003,0.01 --precond-k 2"
  echo "adam_dmse1   --loss dmse1 --optimizer adam     --eta 0.001,0.003,0.01 --precond-k 2"
} | xargs -P "$jobs" -L 1 bash -c 'name=$0; if [ -e "'"$out"'/$name.zarr" ]; then landscape record --resume "'"$out"'/$name.zarr" -q || true; else landscape record "$@" '"$common"' --out "'"$out"'/$name.zarr"; fi'
landscape analyze instability "$out"/*.zarr --fig "$out/fig4_optimizers.png" --out "$out/fig4_optimizers_results.zarr"
