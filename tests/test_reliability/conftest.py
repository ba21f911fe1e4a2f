"""The tiny MOMA run of tests/conftest.py, logging every iteration."""
import pytest


@pytest.fixture(scope='session')
def tiny_run(tiny_moma_run) -> dict:
    """``tiny_moma_run`` whose logs hold each iteration's own losses (not
    MMEngine's 10-iteration moving average)."""
    return dict(
        tiny_moma_run,
        options=tiny_moma_run['options'] + ['log_processor.window_size=1'])
