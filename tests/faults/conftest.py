"""Shared material of the fault suite: a tiny data set and finished runs to break.

The finished runs are built once per session; a test that damages one works on a copy.
"""

import shutil

import pytest

from medcl.cli import main
from tests.cli.conftest import TINY, write_png_folder, write_tiny_config
from tests.stratify.test_cli import TINY as STRATIFY_TINY

# The smallest pipeline that has every stage: features, cluster, one pretraining, two cells.
PIPELINE = [*TINY, "run.methods=[random,ufc]", "run.label_fractions=[1.0]"]
STRATIFY = [*STRATIFY_TINY, "evaluate.baselines=false"]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    root = write_png_folder(tmp_path_factory.mktemp("faults-data"))
    write_tiny_config(root)
    return root


@pytest.fixture(scope="session")
def finished_run(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("faults-run") / "run"
    assert main(["run", str(data_root / "cfg.yaml"), "--out", str(out), *PIPELINE]) == 0
    return out


@pytest.fixture(scope="session")
def finished_stratify(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults-stratify") / "run"
    assert main(["stratify", *STRATIFY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A copy of the finished pipeline run, to damage."""
    return shutil.copytree(finished_run, tmp_path / "run")


@pytest.fixture
def stratify_copy(finished_stratify, tmp_path):
    return shutil.copytree(finished_stratify, tmp_path / "strat")
