#!/bin/bash
# issue 37: λ1/(2/η) at the first instability by activation (Fig. 4 subset: each loss, two η, 10 seeds);
# ReLU and tanh on the fused step, softplus on the eager one; about 45 min on one core of a 2-core CPU
L=landscape
declare -A ETAS=([dce]=0.7,1 [dmse1]=0.2,0.3 [dmse2]=0.12,0.2)
for act in relu tanh softplus:1 softplus:5 softplus:20; do
  name=${act/:/_b}; a=${act%%:*}; extra=""
  [[ $act == softplus:* ]] && extra="--softplus-beta ${act#*:}"
  step=fused; [[ $a == softplus ]] && step=eager
  for loss in dce dmse1 dmse2; do
    out=${loss}_${name}.zarr
    [ -d $out ] && continue
    $L record -q --loss $loss --eta ${ETAS[$loss]} -A 50 -T 5000 --seeds 10 --steps 5000 --activation $a $extra \
      --step $step --until first-instability --threads 1 --out $out
  done
done
landscape analyze onset *.zarr --out onset.nc > onset.txt   # the table of README.md
