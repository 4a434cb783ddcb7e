"""A non-editable install must carry every subpackage and the bundled data."""

from pathlib import Path

import pytest

import medcl

ROOT = Path(medcl.__file__).parent


def test_every_code_folder_is_a_package():
    # setuptools' find_packages skips folders without __init__.py: they would vanish from wheels.
    for folder in [ROOT, *ROOT.rglob("*")]:
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py")):
            assert (folder / "__init__.py").exists(), f"{folder} has no __init__.py"


def test_bundled_files_are_declared_as_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    pyproject = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]
    assert "assets/*.npz" in data["medcl.data"]
    assert "configs/*.yaml" in data["medcl"]
    assert (ROOT / "data" / "assets" / "brain_aal.npz").exists()
    assert (ROOT / "configs" / "demo.yaml").exists()


def test_every_packaged_config_validates_and_the_demo_is_dsb2018():
    from medcl.config import load_config
    from medcl.stages.pipeline import demo_config
    from medcl.stratify_config import load_stratify_config

    assert (ROOT / "data" / "assets" / "dsb2018.npz").exists()
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        if path.stem.startswith("stratify"):
            load_stratify_config(str(path), [])
        elif path.stem != "demo-quick":  # an overlay on demo.yaml, checked below
            load_config(path)
    demo, quick = demo_config(), demo_config(quick=True)
    assert demo.data.dataset == quick.data.dataset == "dsb2018"
    assert demo.run.methods == ["random", "simclr", "ufc"] and len(demo.run.seeds) == 3
    assert quick.run.seeds == [0] and quick.pretrain.epochs < demo.pretrain.epochs
