"""The op registry is complete whatever was imported first (issue 12)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_importing_common_alone_registers_every_op_including_control():
    """Control ops are declared in common, so a registry walk sees them without `symbolic`."""
    program = (
        "import sys, common\n"
        "from common.ops import OPS\n"
        "missing = {'cond', 'while_loop', 'scan', 'item'} - set(OPS)\n"
        "engines = sorted(m for m in sys.modules if m.split('.')[0] in ('symbolic', 'eager'))\n"
        "print(sorted(missing), engines)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[] []", done.stdout + done.stderr
