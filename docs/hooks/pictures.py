"""Draw the pictures that the README and the home page show, into docs/images/ (checked in, so
GitHub shows them): the two engines over one kernel set, and the `neuron` model's gradient
graph beside its eager tape. Rerun after changing how pictures are drawn:

    .venv/bin/python docs/hooks/pictures.py

Not a mkdocs hook: the pictures need Graphviz's `dot`, which a build should not depend on.
"""

from __future__ import annotations

from pathlib import Path

import graphviz

from common import style
from compare import cli

IMAGES = Path(__file__).resolve().parents[1] / "images"
NEURON = ["neuron", "--batch", "2", "--size", "4"]  # the same sizes in both pictures


def engines() -> graphviz.Digraph:
    """One model, one kernel set, two engines: the picture of the whole project."""
    dot = graphviz.Digraph(
        "engines",
        graph_attr={**style.GRAPH_ATTRS, "ranksep": "0.45", "nodesep": "0.6"},
        node_attr={**style.NODE_ATTRS, "fontsize": "12", "margin": "0.15,0.08"},
        edge_attr={**style.EDGE_ATTRS, "fontsize": "10"},
    )
    dot.node(
        "model",
        "a model, written once\nwith F and common.nn",
        shape="note",
        fillcolor="#ffffff",
        color="#334155",
    )
    dot.node(
        "eager",
        "eager (E), define-by-run\nruns each op now;\na tape records it for backward()",
        **style.SOURCES["placeholder"] | {"shape": "box", "style": "filled,rounded"},
    )
    dot.node(
        "symbolic",
        "symbolic (S), define-then-run\nadds each op to a graph;\ncompile: passes, then a plan",
        **style.SOURCES["variable"] | {"shape": "box", "style": "filled,rounded"},
    )
    dot.node(
        "kernels",
        "common.ops: one kernel set\nkernel, shape rule and gradient rule per op",
        shape="box3d",
        **style.OPS["elementwise"],
    )
    dot.edge("model", "eager", label=" on tensors")
    dot.edge("model", "symbolic", label=" on symbols")
    dot.edge("eager", "kernels", label=" at once")
    dot.edge("symbolic", "kernels", label=" when the compiled\n function is called")
    return dot


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    written = engines().render(IMAGES / "engines", format="svg", cleanup=True)
    print(f"wrote {written}")
    graph = IMAGES / "neuron_graph.svg"
    cli.main(["graph", *NEURON, "--stage", "traced", "--what", "grad", "-o", str(graph)])
    cli.main(["tape", *NEURON, "-o", str(IMAGES / "neuron_tape.svg")])


if __name__ == "__main__":
    main()
