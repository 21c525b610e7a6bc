"""SeLaVi: windows (default and published quirk), frame picking, video and audio front end
(filterbank against python-speech-features), networks, keys and checkpoint loading."""
import math

import numpy as np
import pytest
import torch
from python_speech_features import logfbank
from torchvision.models.resnet import BasicBlock

from selavi_feature_extraction.models import audio_network, load_selavi, video_network
from selavi_feature_extraction.preprocess import (audio_window, resized_shape, selavi_frame,
                                                  window_offsets, window_starts)
from src.errors import UserError


def test_windows_default_and_published():
    assert window_starts(300, 30) == [30 * k for k in range(10)]        # 10 s: ten 1 s windows
    # [published quirk]: 10 s at 30 fps -> 9 windows at 0, 0.9, ..., 7.2 s
    assert window_starts(300, 30, match_published=True) == [27 * i for i in range(9)]
    assert window_starts(59, 30, match_published=True) == []             # under 2 s: none
    assert window_starts(59, 30) == [0]
    K = int(1500 / 25) - 1                                               # 60 s at 25 fps
    assert window_starts(1500, 25, True) == [int(1475 * i / (10 * (K // 10 + 1))) for i in range(K)]
    assert window_starts(60, 30000 / 1001) == [0, 30]                   # [k r, (k+1) r)


def test_frame_offsets():
    assert window_offsets(30).tolist() == list(range(30))
    off25 = window_offsets(25)
    assert len(off25) == 30 and off25[0] == 0 and off25[-1] == 24 and len(set(off25)) == 25
    assert off25.tolist() == torch.linspace(0, 24, 30).long().tolist()


def test_video_front_end():
    assert resized_shape(240, 320) == (112, int((320 / 240) * 112)) == (112, 149)
    assert resized_shape(320, 240) == (149, 112) and resized_shape(112, 200) == (112, 200)
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 1] = 255
    x = selavi_frame(rgb)
    assert x.shape == (3, 112, 112) and x.dtype == np.float32
    assert np.allclose(x[0], -0.45 / 0.225) and np.allclose(x[1], 0.55 / 0.225)
    # crop offsets ceil((H - 112) / 2): a column ramp keeps its centre columns
    ramp = np.broadcast_to((np.arange(240) % 256).astype(np.uint8)[None, :, None], (112, 240, 3))
    got = selavi_frame(np.ascontiguousarray(ramp))[0, 0]
    assert np.allclose(got, ((np.arange(64, 176) / 255) - 0.45) / 0.225, atol=1e-5)


def test_resize_long_side_is_ratio_then_product():
    # the original's int((long / short) * 112), not floor(long * 112 / short): they differ in
    # float64 for some sizes, found here among small ones. 168 x 183: (183 / 168) * 112 is
    # 121.99999999999999 -> 121, while 183 * 112 / 168 is exactly 122.0
    assert (183 / 168) * 112 < 122 and 183 * 112 / 168 == 122
    assert resized_shape(168, 183) == (112, 121) and resized_shape(183, 168) == (121, 112)
    differing = [(s, l) for s in range(1, 300) for l in range(s, 2 * s)
                 if s != 112 and int((l / s) * 112) != math.floor(l * 112 / s)]
    assert (168, 183) in differing
    for s, l in differing:
        assert resized_shape(s, l) == (112, int((l / s) * 112))
        assert resized_shape(l, s) == (int((l / s) * 112), 112)
    x = selavi_frame(np.zeros((168, 183, 3), np.uint8))  # resized to 112 x 121, then cropped
    assert x.shape == (3, 112, 112)


def test_audio_window_against_python_speech_features():
    rate = 44100
    rng = np.random.default_rng(0)
    samples = (rng.normal(0, 3000, int(2.5 * rate))).astype(np.int16)
    got = audio_window(samples, 30, 30.0, rate)                      # window at 1 s
    want = logfbank(samples[rate:2 * rate], rate, winlen=0.02, winstep=0.01, nfilt=257, nfft=1024)
    assert got.shape == (1, 257, 99) and got.dtype == np.float32
    np.testing.assert_allclose(got, (want.astype(np.float32).T[None] - 1.93) / 17.89, rtol=1e-6)
    late = audio_window(samples, 60, 30.0, rate)                     # 2 s + 1 s runs past the end
    tail = logfbank(samples[-rate:], rate, winlen=0.02, winstep=0.01, nfilt=257, nfft=1024)
    np.testing.assert_allclose(late, (tail.astype(np.float32).T[None] - 1.93) / 17.89, rtol=1e-6)


def test_networks_and_keys():
    v, a = video_network().eval(), audio_network().eval()
    assert "stem.0.weight" in v.state_dict() and not any(k.startswith("fc.") for k in v.state_dict())
    assert list(a.state_dict())[0] == "conv1.weight" and a.conv1.weight.shape == (64, 1, 7, 7)
    assert a.conv1.bias is None and all(len(getattr(a, f"layer{i}")) == 1 for i in range(1, 5))
    assert isinstance(a.layer1[0], BasicBlock) and "layer2.0.downsample.0.weight" in a.state_dict()
    with torch.inference_mode():
        assert a(torch.randn(2, 1, 257, 99)).shape == (2, 512)
    # the video network's [B, 512] output is checked end to end in test_pipeline.py


def test_checkpoint_loading(tmp_path):
    v, a = video_network(), audio_network()
    state = {f"module.video_network.base.{k}": t for k, t in v.state_dict().items()}
    state.update({f"module.audio_network.base.{k}": t for k, t in a.state_dict().items()})
    state["module.mlp_v.0.weight"] = torch.zeros(3)       # heads are ignored
    path = tmp_path / "selavi_vgg_sound.pth"
    torch.save({"model": state, "epoch": 1}, path)
    lv, la = load_selavi(str(path))
    assert torch.equal(lv.stem[0].weight, v.stem[0].weight) and torch.equal(la.conv1.weight, a.conv1.weight)
    torch.save({k[len("module."):]: t for k, t in state.items()}, path)  # a bare state_dict
    load_selavi(str(path))
    del state["module.audio_network.base.layer4.0.bn2.weight"]
    torch.save({"model": state}, path)
    with pytest.raises(UserError, match="missing 1 keys"):
        load_selavi(str(path))
    with pytest.raises(UserError, match=r"selavi_vgg_sound.pth.*--weights_path"):
        load_selavi(str(tmp_path / "absent.pth"))
