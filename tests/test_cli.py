"""The command line: `minicnn gradcheck` checks every op; bad arguments exit non-zero."""
import subprocess
import sys

import pytest

from minicnn import cli, opcheck


def test_every_builtin_op_passes_its_gradient_check():
    rows = opcheck.run_all()
    failed = [(name, err) for name, _, err, ok, _ in rows if not ok]
    assert len(rows) == len(opcheck.CASES) and not failed, failed


def test_gradcheck_command_prints_a_table(capsys):
    assert cli.main(["gradcheck", "--only", "conv2d,max_pool2d"]) == 0
    out = capsys.readouterr().out
    assert "conv2d" in out and "max_pool2d" in out and "2 passed, 0 failed" in out


def test_python_dash_m_reaches_the_cli():
    r = subprocess.run([sys.executable, "-m", "minicnn", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "gradcheck" in r.stdout


def test_unknown_subcommand_exits_non_zero():
    with pytest.raises(SystemExit) as e:
        cli.main(["nope"])
    assert e.value.code != 0


def test_unknown_training_recipe_is_a_clear_error(capsys):
    assert cli.main(["train", "resnet50"]) == 2
    assert "no recipe for 'resnet50'" in capsys.readouterr().err
