import math

import numpy as np
import pytest

from cmid_mm.datasets import RandomGaussianNoise


def normal_cdf(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_std_on_flat_uint8_image():
    np.random.seed(0)
    img = np.full((200, 200, 3), 128, np.uint8)
    out = RandomGaussianNoise(prob=1.0, var_range=(30., 30.))(dict(img=img.copy()))['img']
    assert out.dtype == np.uint8 and out.shape == img.shape
    diff = out.astype(np.float64) - 128
    # rounding to integers adds a uniform(-0.5, 0.5) error: variance 30 + 1/12
    assert diff.std() == pytest.approx(math.sqrt(30 + 1 / 12), rel=0.01)
    assert abs(diff.mean()) < 0.05


def test_clipping_at_zero():
    np.random.seed(1)
    img = np.zeros((200, 200, 3), np.uint8)
    out = RandomGaussianNoise(prob=1.0, var_range=(30., 30.))(dict(img=img))['img']
    # a pixel stays 0 when round(noise) <= 0, i.e. noise < 0.5: P = Phi(0.5 / sqrt(30))
    assert (out == 0).mean() == pytest.approx(normal_cdf(0.5 / math.sqrt(30)), abs=0.01)
    assert out.max() < 40  # no wrap-around of negative values to 255


def test_uint16_scaled_and_float_unclipped():
    np.random.seed(2)
    img16 = np.full((150, 150, 2), 30000, np.uint16)
    out16 = RandomGaussianNoise(prob=1.0, var_range=(30., 30.))(dict(img=img16))['img']
    assert out16.dtype == np.uint16
    assert out16.astype(np.float64).std() == pytest.approx(
        math.sqrt(30) * 65535 / 255, rel=0.01)
    img_f = np.zeros((150, 150, 2), np.float32)
    out_f = RandomGaussianNoise(prob=1.0, var_range=(30., 30.))(dict(img=img_f))['img']
    assert out_f.dtype == np.float32 and out_f.min() < -10
    assert out_f.std() == pytest.approx(math.sqrt(30), rel=0.01)


def test_variance_drawn_uniformly_per_call():
    np.random.seed(3)
    noise = RandomGaussianNoise(prob=1.0, var_range=(10., 50.))
    variances = [noise(dict(img=np.zeros((64, 64), np.float32)))['img'].var()
                 for _ in range(200)]
    assert min(variances) > 10 * 0.9 and max(variances) < 50 * 1.1
    assert np.mean(variances) == pytest.approx(30, abs=2)  # uniform(10, 50) has mean 30
    assert np.std(variances) == pytest.approx(40 / math.sqrt(12), rel=0.15)


def test_probability():
    np.random.seed(4)
    img = np.full((8, 8, 3), 100, np.uint8)
    assert (RandomGaussianNoise(prob=0.)(dict(img=img.copy()))['img'] == img).all()
    noise = RandomGaussianNoise(prob=0.6)
    changed = [(noise(dict(img=img.copy()))['img'] != img).any() for _ in range(2000)]
    assert np.mean(changed) == pytest.approx(0.6, abs=0.04)


def test_bad_arguments():
    with pytest.raises(ValueError, match='prob'):
        RandomGaussianNoise(prob=1.5)
    with pytest.raises(ValueError, match='var_range'):
        RandomGaussianNoise(var_range=(50., 10.))
    with pytest.raises(TypeError, match='int32'):
        RandomGaussianNoise(prob=1.)(dict(img=np.zeros((4, 4), np.int32)))
