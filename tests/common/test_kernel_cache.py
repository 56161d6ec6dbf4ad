"""The disk cache of numba kernels (`common.kernel_cache`): two processes generate the same
source and the second loads it; nothing found on disk is trusted (an edited, cut short or
emptied file is rebuilt); a folder others may write, or one that cannot be written, is not
used; files are written atomically and the folder stays bounded; and a kernel numba cannot
build runs with numpy instead, with one warning that names it."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import common.fusion as fusion
from common import kernel_cache
from common.fusion import FusedKernel, NumbaKernel, Program, Step

needs_numba = pytest.mark.skipif(not fusion.numba_available(), reason="numba is not installed")
SHAPE = (300, 400)  # 120,000 elements: more than one block, so `auto` picks numba


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder, named the way users name it: by $DIPTYCH_CACHE."""
    monkeypatch.setenv("DIPTYCH_CACHE", str(tmp_path))
    monkeypatch.setattr(kernel_cache, "_warned", set())
    return tmp_path / "kernels"


def _pythagoras() -> tuple[Program, list, np.ndarray]:
    """sqrt(x*x + y*y) as a program, its inputs and numpy's value."""
    steps = (
        Step("mul", (("in", 0), ("in", 0))),
        Step("mul", (("in", 1), ("in", 1))),
        Step("add", (("t", 0), ("t", 1))),
        Step("sqrt", (("t", 2),)),
    )
    rng = np.random.default_rng(0)
    x, y = (rng.normal(size=SHAPE).astype(np.float32) for _ in range(2))
    return Program(("float32", "float32"), steps, SHAPE, "float32"), [x, y], np.sqrt(x * x + y * y)


def _fresh_numba_run(program: Program, args: list) -> tuple[np.ndarray, NumbaKernel]:
    """A kernel built as a new process builds it: from the disk cache if it is there."""
    kernel = NumbaKernel(program, frozenset())
    return kernel(np, *args), kernel


# ---- two processes: the same source, the same bits, and the second hits the cache ------

SCRIPT = """
import hashlib, json, os, pathlib, time
import numpy as np
import symbolic as S
from common import functional as F
from common.fusion import cache_dir

def files():
    folder = cache_dir()
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in sorted(folder.rglob("*")) if p.is_file()} if folder.exists() else {}

before = files()
for _ in range(int(os.environ["OTHER_NODES"])):  # other work first: process-wide ids shift
    S.placeholder() + 1.0
x, y = S.placeholder(SHAPE, name="x"), S.placeholder(SHAPE, name="y")
out = F.tanh(F.sqrt(x * x + y * y) * 0.1 - 1.0) * F.clamp(y, min=-0.5) + x / 3.0
f = S.compile(out, inputs=[x, y], optimize=2)
rng = np.random.default_rng(0)
arrays = [rng.normal(size=SHAPE).astype(np.float32) for _ in range(2)]
start = time.perf_counter()
value = f(*arrays)
first_call = time.perf_counter() - start
(op,) = f.report.fused_kernels
numba = getattr(op.kernel.chosen, "_kernel", None)
from symbolic.visualize import to_dot
print(json.dumps({"choice": op.kernel.choice, "source": op.kernel.source,
                  "graph": str(f.graph), "traced": str(f.traced_graph), "plan": f.source,
                  "changes": [c for stage in f.report.stages for c in stage.changes],
                  "dot": to_dot(f.graph),
                  "bits": hashlib.sha256(value.tobytes()).hexdigest(),
                  "before": before, "after": files(), "first_call": first_call,
                  "hits": sum(numba.stats.cache_hits.values()) if numba else 0,
                  "misses": sum(numba.stats.cache_misses.values()) if numba else 0}))
""".replace("SHAPE", repr(SHAPE))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> list[dict]:
    """The same program compiled and run by two processes in turn, with other hash seeds
    (Python's set order differs between them) and one cache folder."""
    folder = tmp_path_factory.mktemp("shared_cache")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    runs = []
    for seed, other_nodes in (("1", "0"), ("2", "37")):
        env = {
            **os.environ,
            "OTHER_NODES": other_nodes,
            "DIPTYCH_CACHE": str(folder),
            "PYTHONHASHSEED": seed,
            "DIPTYCH_FUSION_TARGET": "auto",
        }
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def test_two_processes_generate_byte_identical_kernels(two_processes):
    first, second = two_processes
    assert first["source"] == second["source"]
    assert first["after"].keys() == second["after"].keys()


def test_two_processes_print_the_same_graph_plan_report_and_picture(two_processes):
    """Local numbering: nothing printed depends on what else the process built first."""
    first, second = two_processes
    for key in ("graph", "traced", "plan", "changes", "dot"):
        assert first[key] == second[key], key
    assert "%0 = placeholder('x')" in first["traced"]
    assert (
        max(map(len, first["plan"].splitlines())) < 100
    )  # generated lines fit the project's width


def test_the_same_program_gives_the_same_bits_and_target_in_two_processes(two_processes):
    first, second = two_processes
    assert first["choice"] == second["choice"]
    assert first["bits"] == second["bits"]


@needs_numba
def test_the_second_process_loads_the_kernel_and_writes_nothing(two_processes):
    first, second = two_processes
    assert first["choice"].startswith("numba") and first["misses"] == 1
    assert second["before"] == second["after"] == first["after"]  # same files, same times
    assert (second["hits"], second["misses"]) == (1, 0)


# ---- nothing found on disk is trusted ---------------------------------------------------


@needs_numba
def test_an_edited_cache_file_is_rebuilt_and_results_stay_right(cache):
    program, args, want = _pythagoras()
    _fresh_numba_run(program, args)
    (path,) = cache.glob("fused_*.py")
    original = path.read_text()
    edited = original.replace("sqrt(t2)", "(t2 * np.float32(2.0))")  # a wrong kernel
    assert edited != original
    path.write_text(edited)
    got, _ = _fresh_numba_run(program, args)
    np.testing.assert_allclose(got, want, rtol=2e-6)
    assert path.read_text() == original
    assert "sha256 of the lines below: " in original.splitlines()[0]


@needs_numba
@pytest.mark.parametrize(
    "damage",
    ["empty source", "source cut short", "empty numba index", "numba object code cut short"],
)
def test_a_cut_short_or_empty_cache_file_is_rebuilt(damage, cache):
    """Each of these broke the kernel in every later process; now the next build repairs it."""
    program, args, want = _pythagoras()
    _fresh_numba_run(program, args)
    (source,) = cache.glob("fused_*.py")
    original = source.read_text()
    numba_file = {"empty numba index": "*.nbi", "numba object code cut short": "*.nbc"}
    victim = (
        next((cache / "__pycache__").glob(numba_file[damage])) if damage in numba_file else source
    )
    victim.write_bytes(victim.read_bytes()[:40] if "cut short" in damage else b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired quietly, as a cache miss is
        for build in range(2):  # the first meets the damage, the second what it left
            got, _ = _fresh_numba_run(program, args)
            np.testing.assert_allclose(got, want, rtol=2e-6, err_msg=f"build {build}")
    assert source.read_text() == original


# ---- folders that must not, or cannot, be used ------------------------------------------


@needs_numba
@pytest.mark.parametrize("problem", ["writable by others", "owned by another user"])
def test_a_cache_folder_others_control_is_refused(problem, cache, monkeypatch):
    """numba's index files are pickles: a folder others may write could run their code."""
    cache.mkdir(parents=True)
    if problem == "writable by others":
        cache.chmod(0o777)
        match = "writable by other users.*chmod 700"
    else:
        monkeypatch.setattr(os, "getuid", lambda: os.stat(cache).st_uid + 1)
        match = "belongs to another user"
    program, args, want = _pythagoras()
    with pytest.warns(UserWarning, match=match) as caught:
        got, kernel = _fresh_numba_run(program, args)
        assert kernel_cache.entry("kernel = None\n", cache) is None  # warned once per folder
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    np.testing.assert_allclose(got, want, rtol=2e-6)
    assert not list(cache.glob("fused_*.py"))  # built in memory
    assert kernel.target == "numba"


@needs_numba
def test_a_cache_folder_that_cannot_be_created_means_building_in_memory(cache, tmp_path):
    """As root no folder is read-only, so the folder's place is taken by a file instead."""
    cache.write_text("not a folder")
    program, args, want = _pythagoras()
    with pytest.warns(UserWarning, match="kernel cache is not used") as caught:
        got, _ = _fresh_numba_run(program, args)
    assert len(caught) == 1
    np.testing.assert_allclose(got, want, rtol=2e-6)


def test_cache_files_are_renamed_into_place_from_the_same_folder(cache, monkeypatch):
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: renames.append((a, b)) or real_replace(a, b))
    path = kernel_cache.entry("kernel = None\n", cache)
    ((temporary, target),) = renames
    assert os.path.dirname(temporary) == os.path.dirname(target) == str(cache)
    assert str(target) == str(path) and path.read_text().endswith("kernel = None\n")


def test_a_failed_write_leaves_no_file_behind(cache, monkeypatch):
    def read_only(*args):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.warns(UserWarning, match="Read-only file system"):
        assert kernel_cache.entry("kernel = None\n", cache) is None
    assert not [p for p in cache.iterdir() if p.is_file()]  # no kernel, no temporary


def test_the_cache_keeps_only_the_newest_kernels(cache, monkeypatch):
    monkeypatch.setattr(kernel_cache, "MAX_CACHED_KERNELS", 3)
    paths = []
    for age in range(5):  # oldest first
        path = kernel_cache.entry(f"kernel = {age}\n", cache)
        os.utime(path, (1e9 + age, 1e9 + age))
        (cache / "__pycache__" / f"{path.stem}.kernel-3.py311.nbi").write_bytes(b"index")
        paths.append(path)
    newest = kernel_cache.entry("kernel = 'newest'\n", cache)
    assert set(cache.glob("fused_*.py")) == {*paths[3:], newest}
    numba_files = {p.name.split(".")[0] for p in (cache / "__pycache__").iterdir()}
    assert numba_files == {p.stem for p in paths[3:]}  # numba's files went with their kernels


# ---- any build error: numpy instead, one warning naming the kernel ---------------------


def test_a_kernel_numba_cannot_build_runs_with_numpy_after_one_warning(cache, monkeypatch):
    def broken(*args):
        raise RuntimeError("LLVM ran out of registers\nand a second line")

    monkeypatch.setenv("DIPTYCH_FUSION_TARGET", "numba")
    monkeypatch.setattr(fusion, "numba_available", lambda: True)
    monkeypatch.setattr(kernel_cache, "build", broken)
    program, args, want = _pythagoras()
    kernel = FusedKernel(program, "fused_7")
    out = np.empty(SHAPE, np.float32)
    with pytest.warns(UserWarning, match=r"^fused_7 \(sqrt.*LLVM ran out of registers\)") as w:
        assert kernel(np, *args, out=out) is out
    assert len(w) == 1 and "\n" not in str(w[0].message)
    np.testing.assert_array_equal(out, want)  # the chunked kernel: numpy's values exactly
    assert kernel.choice == "numpy-chunked (numba failed: RuntimeError)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(kernel(np, *args), want)
