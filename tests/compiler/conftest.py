"""Shared, session-scoped compiled zoo models (export and calibration are the slow parts)."""

import pytest

from hwforge.compiler import Calibration, default_int8_pipeline, load_model, run_pipeline

ZOO = ["mlp-digits", "cnn-digits"]


@pytest.fixture(scope="session")
def loaded():
    return {name: load_model(name) for name in ZOO}


@pytest.fixture(scope="session")
def quantized(loaded):
    return {
        name: run_pipeline(m.graph, default_int8_pipeline(), Calibration(m.calibration)).graph
        for name, m in loaded.items()
    }
