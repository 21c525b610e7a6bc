"""WavCaps' HTSAT-BERT audio-text retrieval model (ASE), the "CLAP" of ClipClap-GZSL.

See docs/clipclap.md 1.2 (audio), 1.3 (weights) and 2 (text). The module names give the keys of the
published `HTSAT_BERT_zero_shot.pt` (a dict whose `model` entry is the ASE state_dict):

    audio_encoder.audio_enc.*        HTS-AT (`htsat.HTSAT`)
    text_encoder.text_encoder.*      transformers' BertModel, bert-base, no pooler
    audio_proj.{0,2}.*               Linear(768, 1024), ReLU, Linear(1024, 1024)
    text_proj.{0,2}.*                Linear(768, 1024), ReLU, Linear(1024, 1024)
    temp                             contrastive temperature (loaded, unused here)

Everything runs in fp32, in eval mode, without gradients. `transformers` is imported only when
the text tower or the tokenizer is built (audio extraction does not need it), and never goes to
the network: the BERT weights come from the checkpoint, the vocabulary from a file the user gives.
"""
import inspect
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clip_feature_extraction.htsat import HTSAT, NUM_FEATURES
from src.errors import UserError
from src.extraction.weights import load_weights_file, load_exact, require_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")           # transformers must never try the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WAVCAPS_SOURCE = "the WavCaps release (HTSAT_BERT_zero_shot.pt, github.com/XinhaoMei/WavCaps)"
BERT_VOCAB_SOURCE = "bert-base-uncased's vocab.txt from the Hugging Face hub"
SAMPLE_RATE = 32000
CLIP_SAMPLES = 10 * SAMPLE_RATE          # 320,000 samples: the 10 s the model sees
EMBED_SIZE = 1024
TEXT_MAX_TOKENS = 30                     # WavCaps' tokenizer truncation
TEMP_INIT = 0.07
TEXT_PREFIXES = ("text_encoder.", "text_proj.")
# buffers older transformers saved in the BERT state_dict and recent ones no longer do
STALE_BUFFERS = ("text_encoder.text_encoder.embeddings.position_ids",)


def center_window(wave: np.ndarray) -> np.ndarray:
    """The 10 s the model sees of a mono 32 kHz signal [L] -> [320000] (spec 1.2): shorter
    signals right-padded with zeros, longer ones cut to [L//2 - 160000, L//2 + 160000)."""
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"center_window takes a mono signal [L], got shape {wave.shape}")
    if len(wave) <= CLIP_SAMPLES:
        return np.pad(wave, (0, CLIP_SAMPLES - len(wave)))
    start = len(wave) // 2 - CLIP_SAMPLES // 2
    return wave[start:start + CLIP_SAMPLES].copy()


def _projection(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, EMBED_SIZE), nn.ReLU(), nn.Linear(EMBED_SIZE, EMBED_SIZE))


class AudioEncoder(nn.Module):
    """WavCaps' wrapper: `audio_enc` is HTS-AT; waveform [B, L] -> [B, 768]."""

    def __init__(self):
        super().__init__()
        self.audio_enc = HTSAT()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.audio_enc(wave)


class TextEncoder(nn.Module):
    """WavCaps' wrapper: `text_encoder` is a randomly initialised BertModel without pooler
    (bert-base unless `bert_config` overrides BertConfig fields, e.g. a tiny one in tests)."""

    def __init__(self, bert_config: Optional[dict] = None):
        super().__init__()
        from transformers import BertConfig, BertModel   # heavy, and only the text side needs it
        self.text_encoder = BertModel(BertConfig(**(bert_config or {})), add_pooling_layer=False)

    @property
    def width(self) -> int:
        return self.text_encoder.config.hidden_size


class WavCapsASE(nn.Module):
    """The ASE model: `encode_audio` and `encode_text` give L2-normalised 1024-d embeddings.
    With `text=False` there is no text tower and no `text_proj` (audio extraction)."""

    def __init__(self, text: bool = True, bert_config: Optional[dict] = None):
        super().__init__()
        self.audio_encoder = AudioEncoder()
        self.text_encoder = TextEncoder(bert_config) if text else None
        self.audio_proj = _projection(NUM_FEATURES)
        self.text_proj = _projection(self.text_encoder.width) if text else None
        self.temp = nn.Parameter(torch.ones([]) * TEMP_INIT)

    @property
    def device(self) -> torch.device:
        return self.temp.device

    @torch.no_grad()
    def encode_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveforms at 32 kHz [B, 320000] -> float32 [B, 1024], each row of unit L2 norm."""
        wave = torch.as_tensor(wave, dtype=torch.float32).to(self.device)
        if wave.dim() != 2:
            raise ValueError(f"encode_audio takes a batch of waveforms [B, L], got {tuple(wave.shape)}")
        embedding = self.audio_proj(self.audio_encoder(wave))
        return F.normalize(embedding, dim=-1, eps=1e-12).float()

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str], tokenizer) -> torch.Tensor:
        """Prompts -> float32 [P, 1024], each row of unit L2 norm: BERT tokens (padded to the
        longest, at most 30), BERT with the attention mask, the [CLS] output through `text_proj`."""
        if self.text_encoder is None:
            raise RuntimeError("this WavCapsASE was built with text=False: no text tower")
        batch = tokenizer(list(prompts), padding="longest", truncation=True, max_length=TEXT_MAX_TOKENS,
                          return_tensors="pt")
        hidden = self.text_encoder.text_encoder(
            input_ids=batch["input_ids"].to(self.device),
            attention_mask=batch["attention_mask"].to(self.device)).last_hidden_state   # [P, T, 768]
        return F.normalize(self.text_proj(hidden[:, 0]), dim=-1, eps=1e-12).float()


def _ase_state(checkpoint, path: Path) -> dict:
    """The ASE state_dict of a WavCaps checkpoint ({"model": state_dict, ...}) or a bare one."""
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise UserError(f"{path} is not a WavCaps checkpoint: expected a dict whose 'model' entry is the "
                        f"HTSAT-BERT state_dict (HTSAT_BERT_zero_shot.pt), or that state_dict itself")
    if all(k.startswith("module.") for k in state):                # saved from a DataParallel wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def load_wavcaps(path: Optional[str], random_init: bool = False, device="cpu", text: bool = True,
                 bert_config: Optional[dict] = None) -> WavCapsASE:
    """WavCaps HTSAT-BERT in eval mode, fp32, on `device`, with the weights of `path`
    (`HTSAT_BERT_zero_shot.pt`), or random weights and no file with `random_init`.

    Every parameter must load with its shape (a UserError names the file and what does not fit).
    Buffers the checkpoint has and the model does not keep (BERT's `embeddings.position_ids`)
    are skipped; with `text=False` the `text_encoder.*` and `text_proj.*` entries are ignored.
    `bert_config`: BertConfig fields overriding bert-base (tests only; the checkpoint is bert-base)."""
    state = None
    if not random_init:
        path = require_file(path, "WavCaps weights (HTSAT_BERT_zero_shot.pt)", "--wavcaps_weights",
                            WAVCAPS_SOURCE)
        state = _ase_state(load_weights_file(path), path)
        if not text:
            state = {k: v for k, v in state.items() if not k.startswith(TEXT_PREFIXES)}
    model = WavCapsASE(text=text, bert_config=bert_config)
    if state is not None:
        kept = set(model.state_dict())
        skippable = ({name for name, _ in model.named_buffers()} - kept) | set(STALE_BUFFERS)
        load_exact(model, {k: v for k, v in state.items() if k in kept or k not in skippable}, path)
    return model.to(device).eval()


def load_bert_tokenizer(vocab_path: Optional[str]):
    """bert-base-uncased's WordPiece tokenizer (lower-casing) from its `vocab.txt`, offline."""
    path = require_file(vocab_path, "BERT vocabulary (bert-base-uncased vocab.txt)", "--bert_vocab",
                        BERT_VOCAB_SOURCE)
    from transformers import BertTokenizer
    try:
        tokens = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not a BERT vocabulary (one UTF-8 token a line): {err}") from None
    tokens = [t for t in tokens if t]
    # transformers 5 takes the vocabulary as `vocab` and silently ignores `vocab_file`; 4.x the reverse
    key = "vocab" if "vocab" in inspect.signature(BertTokenizer.__init__).parameters else "vocab_file"
    tokenizer = BertTokenizer(**{key: str(path)}, do_lower_case=True)
    missing = set(tokens) - set(tokenizer.get_vocab())
    if not tokens or missing:
        raise UserError(f"{path}: the tokenizer did not take this vocabulary "
                        f"({len(missing)} of {len(tokens)} tokens missing); expected {BERT_VOCAB_SOURCE}")
    return tokenizer
