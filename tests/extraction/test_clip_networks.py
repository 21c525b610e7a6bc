"""CLIP ViT-B/32 and WavCaps HTSAT-BERT (docs/clipclap.md 1.1-1.3, 2): state_dict layouts of the
published files, strict loading and its errors, the log-mel front end against torch.stft and a
direct numpy computation, HTS-AT's 256x256 image, pre-processing, embedding shapes and norms.
Networks are randomly initialised; BERT is a tiny configuration except where bert-base itself
is checked."""
import copy

import librosa
import numpy as np
import pytest
import torch
from torch import nn

from clip_feature_extraction import clip_vit
from clip_feature_extraction.clip_vit import (CLIP_MEAN, CLIP_STD, build_clip, encode_image, encode_text,
                                              load_clip, preprocess_frame)
from clip_feature_extraction.htsat import mel_to_image
from clip_feature_extraction.wavcaps import (TextEncoder, WavCapsASE, center_window, load_bert_tokenizer,
                                             load_wavcaps)
from src.errors import UserError

TINY_BERT = dict(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=64)
TOY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog", "cat", "bark", "##s", "can", "be",
             "heard", ".", "person", "playing", "the", "guitar"]
AUDIO = "audio_encoder.audio_enc."
WIDTHS, DEPTHS, HEADS = (96, 192, 384, 768), (2, 2, 6, 2), (4, 8, 16, 32)


# ------------------------------------------------------------------ WavCaps HTSAT-BERT: layout

def published_audio_shapes():
    """Keys and shapes of the HTS-AT / audio side of HTSAT_BERT_zero_shot.pt, from spec 1.2."""
    lin = lambda o, i, bias=True: {"weight": (o, i), **({"bias": (o,)} if bias else {})}  # noqa: E731
    ln = lambda c: {"weight": (c,), "bias": (c,)}                                           # noqa: E731
    parts = {"audio_feats_extractor.mel_trans.stft.conv_real": {"weight": (513, 1, 1024)},
             "audio_feats_extractor.mel_trans.stft.conv_imag": {"weight": (513, 1, 1024)},
             "audio_feats_extractor.log_trans": {"melW": (513, 64)},
             "bn0": {"weight": (64,), "bias": (64,), "running_mean": (64,), "running_var": (64,),
                     "num_batches_tracked": ()},
             "patch_embed.proj": {"weight": (96, 1, 4, 4), "bias": (96,)}, "patch_embed.norm": ln(96),
             "norm": ln(768), "tscam_conv": {"weight": (527, 768, 2, 3), "bias": (527,)},
             "head": lin(527, 527)}
    for s, (c, depth, heads) in enumerate(zip(WIDTHS, DEPTHS, HEADS)):
        for b in range(depth):
            p = f"layers.{s}.blocks.{b}."
            parts.update({p + "norm1": ln(c), p + "norm2": ln(c), p + "attn.qkv": lin(3 * c, c),
                          p + "attn.proj": lin(c, c), p + "mlp.fc1": lin(4 * c, c), p + "mlp.fc2": lin(c, 4 * c),
                          p + "attn": {"relative_position_bias_table": (225, heads),
                                       "relative_position_index": (64, 64)}})
            if b % 2 and s < 3:                    # shifted blocks; stage 3's 8x8 map is one window
                windows = (64 // 2 ** s // 8) ** 2
                parts[p[:-1]] = {"attn_mask": (windows, 64, 64)}
        if s < 3:
            parts[f"layers.{s}.downsample.norm"] = ln(4 * c)
            parts[f"layers.{s}.downsample.reduction"] = lin(2 * c, 4 * c, bias=False)
    shapes = {AUDIO + m + "." + n: shape for m, d in parts.items() for n, shape in d.items()}
    shapes.update({f"audio_proj.{i}.{n}": s for i, w in ((0, 768), (2, 1024))
                   for n, s in lin(1024, w).items()})
    shapes["temp"] = ()
    return shapes


@pytest.fixture(scope="module")
def audio_model():
    return load_wavcaps(None, random_init=True, text=False)


def test_htsat_state_dict_is_the_published_layout(audio_model):
    got = {k: tuple(v.shape) for k, v in audio_model.state_dict().items()}
    want = published_audio_shapes()
    assert sorted(set(got) ^ set(want)) == []
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    blocks = [sum(f"{AUDIO}layers.{s}.blocks.{b}.norm1.weight" in got for b in range(8)) for s in range(4)]
    assert blocks == list(DEPTHS)
    masks = sorted(k for k in got if k.endswith("attn_mask"))
    assert masks == [f"{AUDIO}layers.{s}.blocks.{b}.attn_mask" for s, b in ((0, 1), (1, 1), (2, 1), (2, 3), (2, 5))]
    assert not audio_model.training and audio_model.text_encoder is None


def test_shift_mask_and_relative_positions(audio_model):
    stages = audio_model.audio_encoder.audio_enc.layers
    mask = stages[0].blocks[1].attn_mask                         # [64 windows, 64, 64]
    assert set(mask.unique().tolist()) == {0.0, -100.0}
    assert (mask[0] == 0).all()                                  # an inner window is one region
    assert (mask[-1] != 0).any() and torch.equal(mask, mask.transpose(1, 2))
    index = stages[0].blocks[0].attn.relative_position_index
    assert index[0, 0] == index[63, 63] == 112 and index.max() == 224 and index.min() == 0   # centre of 15x15
    assert index[0, 63] == 0 and index[63, 0] == 224
    assert stages[3].blocks[1].shift == 0 and stages[0].blocks[1].shift == 4


def test_text_tower_is_bert_base_without_pooler():
    with torch.device("meta"):                                       # the layout only: no weights
        bert = TextEncoder().text_encoder
    cfg = bert.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size,
            cfg.vocab_size) == (12, 768, 12, 3072, 30522)
    keys = list(bert.state_dict())
    assert not any("pooler" in k for k in keys)
    assert "embeddings.word_embeddings.weight" in keys and "encoder.layer.11.output.LayerNorm.bias" in keys


# ------------------------------------------------------------------ WavCaps: loading

def test_wavcaps_checkpoint_loads_strictly_and_errors_name_the_file(tmp_path):
    model = WavCapsASE(text=True, bert_config=TINY_BERT)
    with torch.no_grad():
        model.audio_encoder.audio_enc.layers[2].blocks[3].mlp.fc1.weight.add_(1.0)
        model.text_proj[2].bias.fill_(0.5)
    state = model.state_dict()
    assert {k.split(".")[0] for k in state} == {"audio_encoder", "text_encoder", "audio_proj", "text_proj", "temp"}
    assert state["text_proj.0.weight"].shape == (1024, 32) and state["text_proj.2.weight"].shape == (1024, 1024)
    assert any(k.startswith("text_encoder.text_encoder.encoder.layer.1.") for k in state)
    # older transformers also saved BERT's position_ids buffer: skipped
    published = {**state, "text_encoder.text_encoder.embeddings.position_ids": torch.arange(64)[None]}
    path = tmp_path / "HTSAT_BERT_zero_shot.pt"
    torch.save({"model": published, "epoch": 1}, path)

    loaded = load_wavcaps(str(path), bert_config=TINY_BERT)
    fc1 = "audio_encoder.audio_enc.layers.2.blocks.3.mlp.fc1.weight"
    assert torch.equal(loaded.state_dict()[fc1], state[fc1]) and not loaded.training
    assert torch.equal(loaded.text_proj[2].bias, state["text_proj.2.bias"])
    audio_only = load_wavcaps(str(path), text=False)               # text keys ignored, no BERT built
    assert audio_only.text_encoder is None and torch.equal(audio_only.state_dict()[fc1], state[fc1])

    bad = {k: v for k, v in state.items() if k != "audio_proj.0.bias"}
    bad["audio_encoder.audio_enc.tscam_conv.weight"] = torch.zeros(527, 768, 3, 3)
    bad["audio_encoder.audio_enc.extra.weight"] = torch.zeros(1)
    torch.save(bad, path)                                           # a bare state_dict is accepted too
    with pytest.raises(UserError, match=r"HTSAT_BERT_zero_shot\.pt.*missing 1 keys.*audio_proj\.0\.bias"
                                        r".*unexpected 1 keys.*extra\.weight.*wrong shapes.*tscam_conv"):
        load_wavcaps(str(path), text=False)
    torch.save([1, 2, 3], path)
    with pytest.raises(UserError, match=r"HTSAT_BERT_zero_shot\.pt is not a WavCaps checkpoint"):
        load_wavcaps(str(path), text=False)
    with pytest.raises(UserError, match=r"missing\.pt.*XinhaoMei/WavCaps.*--wavcaps_weights"):
        load_wavcaps(str(tmp_path / "missing.pt"))


# ------------------------------------------------------------------ WavCaps: front end and image

def torch_stft_power(wave):
    spec = torch.stft(wave, n_fft=1024, hop_length=320, window=torch.hann_window(1024, periodic=True),
                      center=True, pad_mode="reflect", return_complex=True)
    return (spec.abs() ** 2).transpose(1, 2)                          # [B, frames, 513]


def test_stft_convolutions_reproduce_torch_stft(audio_model):
    wave = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = audio_model.audio_encoder.audio_enc.audio_feats_extractor.mel_trans(wave)
    want = torch_stft_power(wave)
    assert got.shape == want.shape == (2, 8000 // 320 + 1, 513)
    assert torch.allclose(got, want, rtol=1e-3, atol=1e-3 * want.max().item())


def test_log_mel_against_direct_computation_and_bn0_per_mel_bin(audio_model):
    htsat = audio_model.audio_encoder.audio_enc
    t = np.arange(320000) / 32000
    wave = torch.from_numpy(0.5 * np.sin(2 * np.pi * 1000 * t)).float()[None]
    with torch.no_grad():
        got = htsat.audio_feats_extractor(wave)
    assert got.shape == (1, 1001, 64)
    fb = librosa.filters.mel(sr=32000, n_fft=1024, n_mels=64, fmin=50, fmax=14000)      # [64, 513]
    direct = 10 * np.log10(np.maximum(torch_stft_power(wave.double())[0].numpy() @ fb.T, 1e-10))
    assert np.abs(got[0].numpy() - direct).max() < 1e-3
    centres = librosa.mel_frequencies(n_mels=66, fmin=50, fmax=14000)[1:-1]
    assert abs(centres[got[0, 500].argmax()] - 1000) < 60                                # the 1 kHz tone
    bn = htsat.bn0
    try:                                                             # bn0 normalises each mel bin
        with torch.no_grad():
            bn.running_mean.copy_(torch.arange(64.0))
            bn.running_var.fill_(4.0)
            normed = htsat.log_mel(wave)
        assert torch.allclose(normed, (got - torch.arange(64.0)) / (4.0 + bn.eps) ** 0.5, atol=1e-4)
    finally:
        bn.reset_running_stats()


def test_mel_to_image_stacks_four_time_blocks_along_frequency():
    frames, bins = torch.meshgrid(torch.arange(1024.0), torch.arange(64.0), indexing="ij")
    image = mel_to_image((frames * 100 + bins)[None])
    assert image.shape == (1, 1, 256, 256)
    block, mel, col = 2, 17, 200
    assert image[0, 0, block * 64 + mel, col] == (block * 256 + col) * 100 + mel
    rows = torch.arange(256)
    want = ((rows // 64)[:, None] * 256 + torch.arange(256)[None]) * 100 + (rows % 64)[:, None]
    assert torch.equal(image[0, 0], want.float())
    # 1001 frames are resized to 1024 with align_corners: the ends stay, a constant stays constant
    ramp = torch.linspace(0, 1, 1001)[:, None].expand(1001, 64)[None] * 10
    out = mel_to_image(ramp)
    assert out[0, 0, 0, 0] == 0 and torch.isclose(out[0, 0, 192, 255], torch.tensor(10.0))
    assert torch.allclose(mel_to_image(torch.full((1, 1001, 64), 3.0)), torch.tensor(3.0))
    with pytest.raises(ValueError, match="at most 1024 frames"):
        mel_to_image(torch.zeros(1, 1100, 64))


def test_encode_audio_shapes_norms_and_batch_independence(audio_model):
    wave = torch.randn(2, 320000, generator=torch.Generator().manual_seed(1)) * 0.1
    emb = audio_model.encode_audio(wave)
    assert emb.shape == (2, 1024) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(audio_model.encode_audio(wave[1:]), emb[1:], atol=1e-5)   # eval mode, no mixing


def test_center_window():
    short = np.arange(1, 101, dtype=np.float32)
    out = center_window(short)
    assert out.shape == (320000,) and out.dtype == np.float32
    assert np.array_equal(out[:100], short) and not out[100:].any()
    exact = np.random.default_rng(0).standard_normal(320000).astype(np.float32)
    assert np.array_equal(center_window(exact), exact)
    long = np.arange(400001, dtype=np.float32)                       # L // 2 = 200000
    assert np.array_equal(center_window(long), long[40000:360000])
    with pytest.raises(ValueError):
        center_window(np.zeros((2, 10)))


# ------------------------------------------------------------------ WavCaps: text

def test_bert_tokenizer_and_encode_text(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(TOY_VOCAB) + "\n")
    tok = load_bert_tokenizer(str(vocab))
    ids = tok(["A Dog barks."])["input_ids"][0]
    assert ids == [2, 5, 6, 8, 9, 13, 3]                             # lower-cased WordPiece, [CLS] ... [SEP]
    assert len(tok([" ".join(["dog"] * 50)], truncation=True, max_length=30)["input_ids"][0]) == 30
    model = load_wavcaps(None, random_init=True, bert_config=TINY_BERT)
    prompts = ["a dog barks can be heard.", "the cat", "a person playing the guitar can be heard."]
    emb = model.encode_text(prompts, tok)
    assert emb.shape == (3, 1024) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    # the attention mask hides the padding: a short prompt alone gives the same embedding
    assert torch.allclose(model.encode_text(["the cat"], tok)[0], emb[1], atol=1e-5)
    with pytest.raises(RuntimeError, match="text=False"):
        load_wavcaps(None, random_init=True, text=False).encode_text(["a"], tok)
    with pytest.raises(UserError, match=r"nope\.txt.*bert-base-uncased.*--bert_vocab"):
        load_bert_tokenizer(str(tmp_path / "nope.txt"))


# ------------------------------------------------------------------ CLIP ViT-B/32

def openai_shapes():
    """OpenAI ViT-B-32.pt's parameter names and shapes (the CLIP release's model definition)."""
    shapes = {"positional_embedding": (77, 512), "text_projection": (512, 512), "logit_scale": (),
              "token_embedding.weight": (49408, 512), "ln_final.weight": (512,), "ln_final.bias": (512,),
              "visual.class_embedding": (768,), "visual.positional_embedding": (50, 768),
              "visual.proj": (768, 512), "visual.conv1.weight": (768, 3, 32, 32)}
    for ln in ("visual.ln_pre", "visual.ln_post"):
        shapes.update({ln + ".weight": (768,), ln + ".bias": (768,)})
    for prefix, w in (("visual.transformer", 768), ("transformer", 512)):
        for i in range(12):
            p = f"{prefix}.resblocks.{i}."
            shapes.update({p + "attn.in_proj_weight": (3 * w, w), p + "attn.in_proj_bias": (3 * w,),
                           p + "attn.out_proj.weight": (w, w), p + "attn.out_proj.bias": (w,),
                           p + "mlp.c_fc.weight": (4 * w, w), p + "mlp.c_fc.bias": (4 * w,),
                           p + "mlp.c_proj.weight": (w, 4 * w), p + "mlp.c_proj.bias": (w,)})
            for ln in ("ln_1", "ln_2"):
                shapes.update({p + ln + ".weight": (w,), p + ln + ".bias": (w,)})
    return shapes


@pytest.fixture(scope="module")
def clip_model():
    def refuse(*args, **kwargs):
        raise AssertionError("tried to download")
    import huggingface_hub
    import open_clip
    with pytest.MonkeyPatch.context() as mp:                        # random_init never downloads
        mp.setattr(open_clip.pretrained, "download_pretrained_from_url", refuse)
        mp.setattr(open_clip.pretrained, "download_pretrained_from_hf", refuse)
        mp.setattr(huggingface_hub, "hf_hub_download", refuse)
        return load_clip(None, random_init=True)


def test_clip_state_dict_is_openai_layout(clip_model):
    got = {k: tuple(v.shape) for k, v in clip_model.state_dict().items()}
    assert got == openai_shapes()
    blocks = clip_model.visual.transformer.resblocks
    assert type(blocks[0].mlp.gelu).__name__ == "QuickGELU" and not clip_model.training
    assert clip_model.visual.conv1.weight.dtype == torch.float32                      # CPU: fp32


class _Node(nn.Module):
    """A bare module to rebuild a TorchScript archive holding a given state_dict."""


def save_torchscript(state, path):
    root = _Node()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        node = root
        for name in parents:
            if not hasattr(node, name):
                node.add_module(name, _Node())
            node = getattr(node, name)
        if value.is_floating_point():
            node.register_parameter(leaf, nn.Parameter(value, requires_grad=False))
        else:
            node.register_buffer(leaf, value)
    torch.jit.script(root).save(str(path))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_clip_loads_openai_files_strictly(clip_model, tmp_path, monkeypatch):
    # the loader under test; a copy of the built model saves building a new one for each file
    monkeypatch.setattr(clip_vit, "build_clip", lambda fp16=False: copy.deepcopy(clip_model))
    state = {k: v.half() if v.is_floating_point() else v for k, v in clip_model.state_dict().items()}
    state["visual.proj"] = torch.full((768, 512), 0.25, dtype=torch.float16)
    ints = {"input_resolution": torch.tensor(224), "context_length": torch.tensor(77),
            "vocab_size": torch.tensor(49408)}
    path = tmp_path / "ViT-B-32.pt"
    save_torchscript({**state, **ints}, path)                        # the release is a TorchScript archive
    loaded = load_clip(str(path))
    assert torch.equal(loaded.visual.proj, torch.full((768, 512), 0.25))
    assert loaded.visual.proj.dtype == torch.float32 and not loaded.training

    plain = tmp_path / "plain.pt"                                     # a saved state_dict in the same keys
    torch.save({**state, **ints}, plain)
    assert torch.equal(load_clip(str(plain)).visual.proj, loaded.visual.proj)

    bad = {k: v for k, v in state.items() if k != "ln_final.bias"}
    bad["visual.proj"] = torch.zeros(768, 256)
    torch.save(bad, plain)
    with pytest.raises(UserError, match=r"plain\.pt.*missing 1 keys.*ln_final\.bias.*wrong shapes.*visual\.proj"):
        load_clip(str(plain))
    torch.save({"weights": [1, 2]}, plain)
    with pytest.raises(UserError, match=r"plain\.pt is not a CLIP checkpoint"):
        load_clip(str(plain))
    with pytest.raises(UserError, match=r"ViT-B-32\.pt.*openaipublic.*--clip_weights"):
        load_clip(str(tmp_path / "missing" / "ViT-B-32.pt"))


def test_preprocess_frame_is_clips_transform():
    import open_clip
    from PIL import Image
    reference = open_clip.image_transform(224, is_train=False, mean=CLIP_MEAN, std=CLIP_STD)
    rng = np.random.default_rng(0)
    for shape in ((240, 320, 3), (401, 150, 3)):                     # landscape, portrait
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        x = preprocess_frame(frame)
        assert x.shape == (3, 224, 224) and x.dtype == torch.float32
        assert torch.allclose(x, reference(Image.fromarray(frame)), atol=1e-6)
    flat = np.zeros((100, 200, 3), np.uint8)
    flat[..., 0], flat[..., 2] = 200, 10                              # channel order is kept as given
    x = preprocess_frame(flat)
    for c, v in enumerate((200, 0, 10)):
        assert torch.allclose(x[c], torch.tensor((v / 255 - CLIP_MEAN[c]) / CLIP_STD[c]), atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frame(flat.astype(np.float32))


def test_clip_encoders_shapes_and_norms(clip_model):
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    img = encode_image(clip_model, images)
    assert img.shape == (2, 512) and img.dtype == torch.float32
    assert torch.allclose(img.norm(dim=-1), torch.ones(2), atol=1e-5)
    txt = encode_text(clip_model, ["a photo of a dog.", "a video of a person playing guitar."])
    assert txt.shape == (2, 512) and txt.dtype == torch.float32
    assert torch.allclose(txt.norm(dim=-1), torch.ones(2), atol=1e-5)
    import open_clip                                                  # CLIP's BPE: known OpenAI token ids
    assert open_clip.tokenizer.SimpleTokenizer()(["a photo of a dog."])[0, :8].tolist() == \
        [49406, 320, 1125, 539, 320, 1929, 269, 49407]


def test_fp16_build_matches_openai_mixed_precision():
    with torch.device("meta"):                                       # dtypes only: no weights
        model = build_clip(fp16=True)
    assert model.visual.conv1.weight.dtype == torch.float16 and model.visual.proj.dtype == torch.float16
    assert model.text_projection.dtype == torch.float16
    assert model.visual.ln_post.weight.dtype == torch.float32                   # layer norms stay fp32
    assert type(model.visual.ln_post).__name__ == "LayerNormFp32"
