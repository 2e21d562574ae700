"""Packaging for recbole_unlearn.

The YAML defaults live in the top-level ``properties/`` folder (RecBole's layout). They are
installed as the package data ``recbole_unlearn/properties`` so that a non-editable
``pip install .`` still finds them; see ``recbole_unlearn/utils/paths.py``.
"""
from setuptools import setup

with open("requirements.txt", encoding="utf-8") as f:
    install_requires = [
        line.strip() for line in f if line.strip() and not line.startswith("#")
    ]

setup(
    name="recbole_unlearn",
    version="0.2.0",
    description="Machine unlearning (Retrain, SISA, SRU, RecEraser, SRUGA) for RecBole's "
    "sequential recommenders",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=[
        "recbole_unlearn",
        "recbole_unlearn.config",
        "recbole_unlearn.data",
        "recbole_unlearn.evaluator",
        "recbole_unlearn.model",
        "recbole_unlearn.trainer",
        "recbole_unlearn.unlearn",
        "recbole_unlearn.unlearnable",
        "recbole_unlearn.serving",
        "recbole_unlearn.quick_start",
        "recbole_unlearn.benchmark",
        "recbole_unlearn.utils",
        "recbole_unlearn.properties",
    ],
    package_dir={"recbole_unlearn.properties": "properties"},
    package_data={"recbole_unlearn.properties": ["*.yaml", "*/*.yaml"]},
    install_requires=install_requires,
    # "cpu": the torch build CI and the benchmarks run (the CPU wheel on our machines); leave it
    # out to keep a torch you already have (any version requirements.txt allows, CUDA builds too).
    extras_require={"cpu": ["torch==2.13.0"], "test": ["pytest>=7", "pytest-xdist>=3", "hypothesis>=6"]},
    entry_points={
        "console_scripts": ["recbole-unlearn=recbole_unlearn.cli:command"]
    },
)
