"""The `diptych` entry point, driven as a user would (console-script function and subprocess)."""

import subprocess
import sys

from compare.cli import main


def test_main_prints_both_loss_curves_and_they_agree(capsys):
    assert main(["--steps", "20"]) == 0
    out = capsys.readouterr().out
    assert "eager loss" in out and "symbolic loss" in out
    rel = float(out.split("loss curves: ")[1].split()[0])
    assert rel < 1e-5


def test_bad_arguments_exit_with_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "compare", "--steps", "1"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--steps must be at least 2" in result.stderr
