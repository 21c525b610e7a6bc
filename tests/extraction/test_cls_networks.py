"""C3D and VGGish: pre-processing values (published quirk included), log-mel against a direct
numpy computation of docs/features.md's recipe, networks, weights, PCA and quantisation."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from audioset_vggish_tensorflow_to_pytorch import (PCAQuantiser, VGGish, frame_examples, load_pca,
                                                   load_vggish, log_mel, waveform_to_examples)
from c3d import C3D, C3D_MEAN, C3D_STD, c3d_frame, frames_to_clips, load_c3d, normalise_clips
from src.errors import UserError

C3D_KEYS = [f"{n}.{p}" for n in ("conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b",
                                 "conv5a", "conv5b", "fc6", "fc7", "fc8") for p in ("weight", "bias")]


def test_c3d_frame_values_and_quirk():
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 0, 200          # R, G, B
    out = c3d_frame(rgb)
    assert out.shape == (112, 112, 3) and out.dtype == np.uint8
    assert (out[..., 0] == 200).all() and (out[..., 2] == 10).all()   # BGR
    inv = c3d_frame(rgb, invert=True)                            # (256 - v) mod 256, 0 stays 0
    assert (inv[..., 0] == 56).all() and (inv[..., 1] == 0).all() and (inv[..., 2] == 246).all()
    # a gradient frame: Pillow's antialiased bilinear resize to 128x171, crop rows 8-119, cols 30-141
    grad = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(grad).resize((171, 128), Image.BILINEAR))[8:120, 30:142, ::-1]
    assert np.array_equal(c3d_frame(grad), want)


def test_clips_padding_and_normalisation():
    frames = [np.full((112, 112, 3), i, np.uint8) for i in range(35)]
    clips, valid = frames_to_clips(frames)
    assert clips.shape == (3, 16, 112, 112, 3) and valid.tolist() == [16, 16, 3]   # ceil(35 / 16)
    x = normalise_clips(torch.from_numpy(clips), torch.from_numpy(valid))
    assert x.shape == (3, 3, 16, 112, 112)
    for c in range(3):  # channel c (BGR order) of frame 17 (value 17)
        assert x[1, c, 1, 0, 0].item() == pytest.approx((17 / 255 - C3D_MEAN[c]) / C3D_STD[c], abs=1e-6)
    assert (x[2, :, 3:] == 0).all() and (x[2, :, :3] != 0).all()   # padding is 0 after normalising
    assert x.is_contiguous(memory_format=torch.channels_last_3d)


def test_c3d_channels_last_3d_is_within_rounding():
    """The extraction runs C3D in channels_last_3d (faster on the CPU): the same features."""
    torch.manual_seed(0)
    model = C3D().eval()
    clips = torch.randint(0, 256, (1, 16, 112, 112, 3), dtype=torch.uint8)
    x = normalise_clips(clips, torch.tensor([16]))
    with torch.inference_mode():
        want = model.features(x.contiguous())
        got = model.to(memory_format=torch.channels_last_3d).features(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6), (got - want).abs().max()


def test_c3d_shapes_keys_and_weights(tmp_path):
    model = C3D().eval()
    assert list(model.state_dict()) == C3D_KEYS
    with torch.inference_mode():
        assert model.features(torch.zeros(1, 3, 16, 112, 112)).shape == (1, 4096)
    path = tmp_path / "c3d.pickle"
    torch.save(model.state_dict(), path)
    loaded = load_c3d(str(path))
    assert torch.equal(loaded.fc7.weight, model.fc7.weight) and not loaded.training
    with pytest.raises(UserError, match=r"c3d\.pickle.*--c3d_weights.*--random_init"):
        load_c3d(str(tmp_path / "missing.pickle"))
    torch.save({k: v for k, v in model.state_dict().items() if k != "fc8.bias"}, path)
    with pytest.raises(UserError, match="missing 1 keys"):
        load_c3d(str(path))


def direct_log_mel(x):
    """docs/features.md's recipe written out frame by frame, independent of the implementation."""
    hz_to_mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi = hz_to_mel(125.0), hz_to_mel(7500.0)
    edges = [lo + (hi - lo) * i / 65 for i in range(66)]
    bin_mel = [hz_to_mel(8000.0 * k / 256) for k in range(257)]
    fb = np.zeros((257, 64))
    for m in range(64):
        for k in range(1, 257):                                          # DC bin weighted 0
            up = (bin_mel[k] - edges[m]) / (edges[m + 1] - edges[m])
            down = (edges[m + 2] - bin_mel[k]) / (edges[m + 2] - edges[m + 1])
            fb[k, m] = max(0.0, min(up, down))
    window = np.hanning(401)[:-1]                                        # periodic Hann
    rows = []
    for start in range(0, len(x) - 400 + 1, 160):                        # no padding
        spec = np.abs(np.fft.rfft(x[start:start + 400] * window, n=512))  # magnitude
        rows.append(np.log(spec @ fb + 0.01))
    return np.array(rows)


def test_log_mel_against_direct_recipe():
    rng = np.random.default_rng(1)
    x = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 0.5 + rng.normal(0, 0.05, 16000)
    got = log_mel(x)
    assert got.shape == (1 + (16000 - 400) // 160, 64) == (98, 64)
    np.testing.assert_allclose(got, direct_log_mel(x), rtol=1e-9, atol=1e-9)
    assert log_mel(np.zeros(399)).shape == (0, 64)


def test_examples_and_resampling():
    mel = np.arange(200 * 64, dtype=np.float64).reshape(200, 64)
    ex = frame_examples(mel)
    assert ex.shape == (2, 96, 64) and np.array_equal(ex[1], mel[96:192])   # tail dropped
    # 2 s at 44.1 kHz -> resampy kaiser_best to 16 kHz -> 198 frames -> 2 examples
    tone = np.sin(2 * np.pi * 440 * np.arange(88200) / 44100)
    assert waveform_to_examples(tone, 44100).shape == (2, 96, 64)
    assert waveform_to_examples(tone[:14000], 44100).shape == (0, 96, 64)  # < 0.96 s


def test_vggish_shapes_keys_and_channels_last_flatten(tmp_path):
    model = VGGish().eval()
    keys = {k.rsplit(".", 1)[0] for k in model.state_dict()}
    assert keys == {f"features.{i}" for i in (0, 3, 6, 8, 11, 13)} | {f"fc.{i}" for i in (0, 2, 4)}
    with torch.inference_mode():
        x = torch.randn(3, 1, 96, 64)
        y = model(x)
        assert y.shape == (3, 128) and (y >= 0).all()                      # ReLU after the last fc
        conv = model.features(x)                                           # [3, 512, 6, 4]
        want = model.fc(conv.permute(0, 2, 3, 1).reshape(3, -1))           # flattened [6, 4, 512]
        assert torch.allclose(y, want)
    path = tmp_path / "pytorch_vggish.pth"
    torch.save(model.state_dict(), path)
    assert torch.equal(load_vggish(str(path)).fc[4].bias, model.fc[4].bias)
    with pytest.raises(UserError, match="pytorch_vggish.pth"):
        load_vggish(None)


def test_pca_and_quantisation(tmp_path):
    eig = np.eye(128)[::-1].copy()                       # a permutation: row i picks 127 - i
    means = np.full(128, 0.5)
    emb = np.zeros((1, 128))
    emb[0, 127 - np.arange(6)] = np.array([-3.0, -2.0, 0.0, 1.0, 2.0, 2.5]) + 0.5
    q = PCAQuantiser(eig, means)(emb)
    assert q.dtype == np.uint8
    # clip to [-2, 2], truncate (x + 2) * 63.75: -3 -> 0, -2 -> 0, 0 -> 127, 1 -> 191, 2 -> 255
    assert q[0, :6].tolist() == [0, 0, 127, 191, 255, 255]
    np.savez(tmp_path / "pca.npz", pca_eigen_vectors=eig, pca_means=means.reshape(-1, 1))
    assert np.array_equal(load_pca(str(tmp_path / "pca.npz"))(emb), q)
    assert np.array_equal(load_pca(None, random_init=True)(np.zeros((1, 128))), np.full((1, 128), 127))
    with pytest.raises(UserError, match="vggish_pca_params.npz"):
        load_pca(str(tmp_path / "none.npz"))
