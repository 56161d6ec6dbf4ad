"""The engines check each other. `equivalence` runs a program eagerly and compiled at each
optimize level, node by node, and names the first node whose values part and the pass that
parted them; `gradcheck` holds eager and compiled gradients, first and second order, to
central differences in float64. `diptych check` runs both.

    report = equivalence(fn, x, y)          # fn written with F: runs on tensors and symbols
    report.ok; report.first_divergence      # .node .op .line .pass_name .expected .got
    print(gradcheck(fn, x, y, order=2))

Tolerances: optimize=0 runs the traced graph with eager's own kernels, so it must equal eager
bit for bit. Passes may reorder float arithmetic (fused kernels round their own way), so an
optimized value may differ from the value it replaces by `RTOL` of its dtype times the
array's largest magnitude (1 for an all-zero array): 1e-5 in float32, 1e-12 in float64.
A program that draws random numbers parts everywhere: each run draws its own.

Modules: stages.py runs each stage's graph node by node and pairs its nodes with the stage
before's; equivalence.py, gradcheck.py and command.py (`diptych check`) build on it.
"""

from compare.check.command import add_parser, run_check_command
from compare.check.equivalence import (
    Divergence,
    EquivalenceReport,
    equivalence,
    equivalence_of_model,
)
from compare.check.gradcheck import GradcheckReport, Worst, gradcheck, gradcheck_of_model
from compare.check.stages import RTOL, parting

__all__ = [
    "RTOL",
    "Divergence",
    "EquivalenceReport",
    "GradcheckReport",
    "Worst",
    "add_parser",
    "equivalence",
    "equivalence_of_model",
    "gradcheck",
    "gradcheck_of_model",
    "parting",
    "run_check_command",
]
