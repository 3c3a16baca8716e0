"""PerSampleSeed says when it does nothing (no ExactResumeHook arming it)."""
import logging
import warnings

import numpy as np
import pytest
from mmengine.logging import MMLogger

from cmid_mm.datasets.transforms import PerSampleSeed


def test_unarmed_warns_once_naming_the_hook_and_passes_through():
    t = PerSampleSeed()
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    with pytest.warns(UserWarning, match=r"not armed.*dict\(type='ExactResumeHook'\).*"
                                         'custom_hooks'):
        out = t(dict(sample_idx=3))
    assert out == dict(sample_idx=3)
    assert np.random.rand() == expected  # the global stream was not reseeded
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        t(dict(sample_idx=4))  # only once


def test_unarmed_is_logged_too():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        with pytest.warns(UserWarning):
            PerSampleSeed()(dict(sample_idx=0))
    finally:
        logger.removeHandler(handler)
    assert any('ExactResumeHook' in r.getMessage() for r in records)


def test_when_unarmed_error_and_ignore():
    with pytest.raises(RuntimeError, match='PerSampleSeed is not armed'):
        PerSampleSeed(when_unarmed='error')(dict(sample_idx=0))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert PerSampleSeed(when_unarmed='ignore')(dict(sample_idx=0)) == dict(sample_idx=0)
    with pytest.raises(ValueError, match="when_unarmed must be one of.*'loud'"):
        PerSampleSeed(when_unarmed='loud')


def test_armed_does_not_warn():
    t = PerSampleSeed()
    t.set_epoch(0, 2)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        t(dict(sample_idx=0))
        a = np.random.rand()
        t(dict(sample_idx=0))
        assert np.random.rand() == a
