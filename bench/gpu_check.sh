set -e
ls .whl; python3 -m pip install --no-deps .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 - <<'PY'
import torch, numpy as np, time
from landscape.config.run import RunConfig
from landscape.recorders import record
import xarray as xr
cfg = RunConfig(loss="dce", etas=(1.0, 0.5), seeds=(0, 1), steps=1000, chunk_steps=500, save_params_every=500)
a = xr.open_zarr(record(cfg, "/tmp/cpu.zarr"))
from dataclasses import replace
b = xr.open_zarr(record(replace(cfg, device="cuda"), "/tmp/gpu.zarr"))
print("loss max rel diff cpu/gpu", float(abs(a.loss - b.loss).max() / abs(a.loss).max()))
print("eigval max rel diff cpu/gpu", float(abs(a.eigval - b.eigval).max() / abs(a.eigval).max()), "conv", bool(b.eigconv.all()))
# dense check on GPU engine
from tests.reference import dense_hessian
eng = replace(cfg, device="cuda").engine(cfg.dataset())
th = eng.advance(eng.spec.init([0, 1, 2, 3], device="cuda"), 0, 300)
from landscape.curvature.spectrum import top_k
res = top_k(eng, th, 300, 2, tol=1e-3, seeds=[0, 1, 2, 3])
for r in range(4):
    w = np.linalg.eigvalsh(dense_hessian(eng, th, 300, r))[::-1][:2]
    print("gpu solver vs dense", r, res.eigvals[r].cpu().numpy(), w)
PY
python3 bench/bench_hessian.py --device cuda --replicas 1 64 1024 4096 16384 --repeats 3
python3 bench/bench_sweep.py --device cuda --dtype float64 float32 --replicas 64 1024 4096 16384 2>&1 | tail -12
