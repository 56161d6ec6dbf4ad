# %% [markdown]
# # 12. A graph without its Python
#
# An eager program *is* its Python: to run it again you need the code, the classes, the
# imports. A deferred program is data from the moment it is traced, so it can outlive the
# Python that built it. PyTorch's design notes name this as the payoff of TorchScript: a
# model becomes a file that runs where its source does not exist. This lesson traces an
# eager model with a loop in it (a scan), saves it with `f.save`, opens the file with a
# plain safetensors reader to see what is in it, runs it in a fresh process that never
# imports the model's module, goes on training a saved training step there, times the
# loaded copy against the original, and shows what loading refuses.
# The format is described in [Serialization](../concepts/serialization.md).

# %%
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from safetensors import safe_open

import eager as E
import symbolic as S
from common import optim
from compare import lessons, zoo
from symbolic.tracing import name_parameters

lessons.begin()  # `python docs/lessons/12_a_graph_without_its_python.py --check`: exercises
TARGET_MS, REPEATS = lessons.size(10, 5), lessons.size(5, 3)  # ms per sample, samples each
TRAIN_STEPS = lessons.size(20, 5)  # steps trained here, then as many in a fresh process
folder = Path(tempfile.mkdtemp(prefix="lesson12_"))  # the files this lesson writes
ROOT = lessons.LESSONS.parents[1]  # the fresh process imports diptych from here

# %% [markdown]
# ## From eager code to a file
#
# The zoo's `rnn_varlen` is an Elman RNN written for eager use: `forward` calls `F.scan` over
# time, which eagerly is a Python loop. `S.trace(model, *example_inputs)` runs it once on
# symbols; the loop becomes one `scan` node whose body is a small graph of its own.
# `S.save` writes that graph, with the weights, to one file (`f.save(path)` does the same
# for a compiled function).

# %%
spec = zoo.get("rnn_varlen")
model = spec.build(spec.size, seed=0)
name_parameters(model)  # 'cell.w_ih', ...: each weight's name in the file
inputs = spec.make_inputs(spec.batch, spec.size, seed=0)  # xs, mask, y
eager_loss, eager_pred = model(*(E.tensor(v) for v in inputs.values()))

start = time.perf_counter()
graph = S.trace(model, *inputs.values())
path = S.save(graph, folder / "rnn.dip")
save_s = time.perf_counter() - start
print(f"wrote {path.name}: {path.stat().st_size:,} bytes in {1e3 * save_s:.1f} ms (trace + save)")

# %% [markdown]
# ## What is in the file
#
# A `.dip` file is a safetensors file: any safetensors reader opens it. Its metadata holds
# the graph as JSON (ops named as diptych's op registry names them, each node's shape,
# dtype and source line, the compile options); its tensors are the weights and constants.

# %%
with safe_open(str(path), framework="numpy") as reader:
    metadata = reader.metadata()
    stored = {name: reader.get_tensor(name) for name in reader.keys()}
document = json.loads(metadata["graph"])
nodes = document["nodes"]
print(f"format {metadata['format']!r}, version {metadata['version']}; {len(nodes)} nodes")
print("\nops, by how many nodes use each:")
for op, count in Counter(n["op"] for n in nodes).most_common():
    print(f"  {op:<14}{count:>3}")
print(f"\n{'tensor':<26}{'dtype':<9}{'shape':<10}{'bytes':>7}")
for name, array in stored.items():
    print(f"{name:<26}{array.dtype.name:<9}{str(list(array.shape)):<10}{array.nbytes:>7,}")
scan = next(n for n in nodes if n["op"] == "scan")
body = scan["params"]["body"]["body"]
print(
    f"\nthe scan node, as stored: inputs {scan['inputs']}, its body's inputs "
    f"{body['inputs']} and outputs {body['outputs']} (node numbers)"
)
print(f"its source line: {scan['source']}")

# %%
weights = sum(p.data.size for p in model.parameters())
in_file = sum(a.size for n, a in stored.items() if n.startswith("variables/"))
tensor_bytes = sum(a.nbytes for a in stored.values())
lessons.claim(
    f"the file holds the model's {weights:,} weights in "
    f"{sum(n.startswith('variables/') for n in stored)} tensors, and its {tensor_bytes:,} "
    f"bytes of arrays are {100 * tensor_bytes / path.stat().st_size:.0f}% of the file",
    holds=in_file == weights,
)

# %% [markdown]
# ## Run it where the model's code is absent
#
# A fresh Python process loads the file and runs it. It imports diptych, but not the
# module that defines the model (`compare/zoo/rnn_varlen.py`): the file is the whole
# program. `S.load` reads the JSON field by field, rebuilds each node from the op registry
# and compiles the graph again with the passes it was saved with. On the command line the
# same is `diptych run rnn.dip --input xs.npy --input mask.npy --input y.npy -o out.npz`.
#
# The same process goes on training a saved *training step* (the loss, `S.grad` and SGD's
# update, compiled as one graph): its variables start from the saved weights.

# %%
for name, value in inputs.items():
    np.save(folder / f"{name}.npy", value)
params = list(model.parameters())
feeds = [S.placeholder(v.shape, v.dtype, name=k) for k, v in inputs.items()]
loss = spec.loss_and_outputs(model, feeds)[0]
opt = optim.SGD(params, lr=spec.lr, momentum=0.9)
train_step = S.compile(loss, inputs=feeds, updates=S.optimizer_updates(opt, S.grad(loss, params)))
trained_here = [float(train_step(*inputs.values())) for _ in range(TRAIN_STEPS)]
train_step.save(folder / "step.dip")

FRESH = """
import json, sys, numpy as np, symbolic as S
folder, steps = sys.argv[1], int(sys.argv[2])
inputs = [np.load(f"{folder}/{name}.npy") for name in ("xs", "mask", "y")]
loss, pred = S.load(f"{folder}/rnn.dip")(*inputs)
np.save(f"{folder}/pred.npy", pred)
step = S.load(f"{folder}/step.dip")
losses = [float(step(*inputs)) for _ in range(steps)]
print(json.dumps({"losses": losses, "model imported": "compare.zoo.rnn_varlen" in sys.modules}))
"""
start = time.perf_counter()
fresh = subprocess.run(
    [sys.executable, "-c", FRESH, str(folder), str(TRAIN_STEPS)],
    capture_output=True,
    text=True,
    check=True,
    cwd=folder,
    env=dict(os.environ, PYTHONPATH=str(ROOT)),
)
fresh_s = time.perf_counter() - start
there = json.loads(fresh.stdout)
trained_on = [float(train_step(*inputs.values())) for _ in range(TRAIN_STEPS)]
pred_there = np.load(folder / "pred.npy")
print(f"the fresh process took {fresh_s:.2f} s, Python's start and imports included")
print(f"{'step':>6}{'here, continued':>18}{'fresh process':>16}")
for i in range(0, TRAIN_STEPS, max(1, TRAIN_STEPS // 5)):
    print(f"{TRAIN_STEPS + i:>6}{trained_on[i]:>18.6f}{there['losses'][i]:>16.6f}")

# %%
difference = float(np.max(np.abs(pred_there - eager_pred.numpy())))
lessons.claim(
    f"a fresh process ran the file without importing the model's module "
    f"(imported: {there['model imported']}) and its predictions differ from eager's by "
    f"{difference:.2g}",
    holds=not there["model imported"] and difference <= 1e-6,
)
same = sum(a == b for a, b in zip(trained_on, there["losses"]))
lessons.claim(
    f"the saved training step went on training in the fresh process: {same} of its "
    f"{TRAIN_STEPS} losses equal those of training on here, bit for bit",
    holds=same == TRAIN_STEPS,
)

# %% [markdown]
# ## The loaded copy against the original
#
# Loading compiles the same graph with the same passes, so the loaded copy runs the ops a
# graph compiled from the Python runs, and the timings should agree to within the
# machine's noise. Both beat eager, which pays Python for every op at every call.

# %%
start = time.perf_counter()
loaded = S.load(folder / "rnn.dip")
load_s = time.perf_counter() - start
start = time.perf_counter()
original = S.compile(
    lambda *xs: model(*xs),
    inputs=[S.placeholder(v.shape, v.dtype, name=k) for k, v in inputs.items()],
)
compile_s = time.perf_counter() - start
arrays = list(inputs.values())
tensors = [E.tensor(v) for v in arrays]
seconds = lessons.race_seconds(
    {
        "eager": lambda: model(*tensors),
        "compiled": lambda: original(*arrays),
        "loaded": lambda: loaded(*arrays),
    },
    TARGET_MS,
    REPEATS,
)
for mode, s in seconds.items():
    print(f"{mode:<10}{1e3 * s:>8.3f} ms per call")
path_svg = lessons.figure("12_loaded_graph.svg")
loaded.render(path_svg)
lessons.show(path_svg)

# %%
ratio = seconds["loaded"] / seconds["compiled"]
ops = Counter(n.op_name for n in loaded.graph.ops)
lessons.claim(
    f"the loaded copy ran at {1e3 * seconds['loaded']:.3f} ms per call and the compiled "
    f"original at {1e3 * seconds['compiled']:.3f} ms ({ratio:.2f}x), both running the same "
    f"{sum(ops.values())} ops",
    holds=ops == Counter(n.op_name for n in original.graph.ops) and 0.8 < ratio < 1.25,
)
lessons.claim(
    f"loading took {1e3 * load_s:.1f} ms and tracing and compiling from Python "
    f"{1e3 * compile_s:.1f} ms",
    holds=load_s < 2 * compile_s,
)

# %% [markdown]
# ## What loading refuses
#
# A file comes from somewhere else, so `S.load` trusts nothing in it: no pickle, no names
# looked up as code, every field checked before the node it describes is built, sizes
# checked against the file and a cap before anything large is allocated. A checksum covers
# the graph and each tensor, so even one flipped bit is an error that names the field.

# %%
damaged = folder / "damaged.dip"
blob = bytearray(path.read_bytes())
blob[-1] ^= 1  # one bit of the last tensor's data
damaged.write_bytes(bytes(blob))
try:
    S.load(damaged)
    refused = ""
except S.LoadError as error:
    refused = str(error).replace(str(folder) + os.sep, "")
    print(f"S.load refused it: {refused}")
lessons.claim(
    f"a copy of the file with one bit flipped was refused, naming the field: "
    f"{refused.split(': ')[1] if refused else 'not refused'}",
    holds=bool(refused),
)

# %% [markdown]
# ## To another runtime: ONNX
#
# ONNX is the exchange format most runtimes read. `S.export_onnx(f, path)` writes a
# compiled function's graph with the `onnx` package (opset 17 by default): the scan becomes
# ONNX's `Scan`, a fused group its member ops, weights initializers. `onnx.checker` accepts
# it, and onnxruntime, which knows nothing of diptych, runs it. The race below is the same
# graph on two runtimes, each on one thread (`compare.peers.compare_with_onnxruntime`).

# %%
import onnx

from compare.peers import compare_with_onnxruntime
from symbolic.serialize.onnx import run_onnxruntime

onnx_path = folder / "rnn.onnx"
S.export_onnx(original, onnx_path)
onnx.checker.check_model(str(onnx_path))
exported = onnx.load(str(onnx_path))
print(
    f"wrote {onnx_path.name}: {onnx_path.stat().st_size:,} bytes, opset "
    f"{exported.opset_import[0].version}, ops {sorted({n.op_type for n in exported.graph.node})}"
)
theirs = run_onnxruntime(str(onnx_path), arrays)
ours = [np.asarray(v) for v in original(*arrays)]
worst = max(float(np.max(np.abs(a - b))) for a, b in zip(ours, theirs))
lessons.claim(
    f"onnxruntime computed what diptych computes to within {worst:.1e} (float32)",
    holds=worst < 1e-4,
)
diptych_s, runtime_s = compare_with_onnxruntime(
    original, arrays, target_ms=TARGET_MS, repeats=REPEATS
)
lessons.claim(
    f"on the same graph diptych's plan took {1e3 * diptych_s:.3f} ms per call and "
    f"onnxruntime {1e3 * runtime_s:.3f} ms ({runtime_s / diptych_s:.2f}x diptych's time)",
)

# %% [markdown]
# ## Exercises
#
# Fill in `docs/lessons/exercises/12_a_graph_without_its_python.py`, then run
# `python docs/lessons/12_a_graph_without_its_python.py --check` (or
# `diptych lesson 12 --check`).
#
# 1. `exercise_1(path)`: how many nodes of each op a `.dip` file holds, as a dict, read with
#    a safetensors reader and `json` alone (no diptych).
# 2. `exercise_2(model, x, path)`: save the eager `model` (a `common.nn` module taking one
#    array) traced on the example `x` to `path`, so that `S.load(path)(x)` computes what
#    `model(E.tensor(x))` does.
# 3. `exercise_3(path, batches)`: load the training step saved at `path` and train on with
#    it, one call per batch (a tuple of arrays); return the losses, as Python floats.
