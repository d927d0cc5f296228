"""The package list, computed: every ``gradcheck`` package as found, and the repository's
``nets/`` installed as ``gradcheck_nets`` (no generic top-level name in site-packages; see
pyproject.toml for everything else). tests/test_packaging.py checks the wheel."""

from setuptools import find_packages, setup

NETS = ["gradcheck_nets", *(f"gradcheck_nets.{p}" for p in find_packages("nets"))]

setup(
    packages=[*find_packages(include=["gradcheck", "gradcheck.*"]), *NETS],
    package_dir={"gradcheck_nets": "nets"},
)
