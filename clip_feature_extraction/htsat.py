"""HTS-AT (Chen et al., ICASSP 2022) as WavCaps builds it: a log-mel front end and a Swin Transformer v1.

See docs/clipclap.md 1.2. Module and attribute names give the state_dict keys of WavCaps' published
`HTSAT_BERT_zero_shot.pt` under `audio_encoder.audio_enc.`:

    audio_feats_extractor.mel_trans.stft.conv_{real,imag}.weight   STFT as two frozen Conv1d
    audio_feats_extractor.log_trans.melW                           mel filters [513, 64]
    bn0.*                                                          BatchNorm2d(64) over mel bins
    patch_embed.{proj,norm}.*                                      Conv2d(1, 96, 4, stride 4) + LayerNorm
    layers.{s}.blocks.{b}.{norm1, attn.*, norm2, mlp.fc1, mlp.fc2}  Swin blocks, depths (2, 2, 6, 2)
    layers.{s}.blocks.{b}.attn_mask                                shifted blocks only (odd b, s < 3)
    layers.{s}.downsample.{norm,reduction}.*                       patch merging, s < 3
    norm.*, tscam_conv.*, head.*                                   final LayerNorm(768); AudioSet head

The audio embedding is the mean of the 64 final tokens after `norm` (768-d). HTS-AT's AudioSet
head (`tscam_conv` = Conv2d(768, 527, kernel (2, 3), padding (0, 1)), `head` = Linear(527, 527))
only feeds outputs WavCaps ignores; it exists so that the published checkpoint loads strictly,
and is not evaluated. Inference only: no SpecAugment, no dropout, no drop-path.
"""
from typing import Optional

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 32000
N_FFT = 1024
HOP = 320
N_MELS = 64
FMIN, FMAX = 50, 14000
AMIN = 1e-10                  # floor of the mel power before the log (ref 1, no top_db)
SPEC_SIZE = 256               # the Swin input is SPEC_SIZE x SPEC_SIZE
FREQ_RATIO = SPEC_SIZE // N_MELS          # 4 blocks of time stacked along frequency
TARGET_FRAMES = SPEC_SIZE * FREQ_RATIO    # 1024 frames after interpolation
PATCH = 4
EMBED_DIM = 96
DEPTHS = (2, 2, 6, 2)
HEADS = (4, 8, 16, 32)
WINDOW = 8
NUM_CLASSES = 527             # AudioSet
MASK_VALUE = -100.0           # attention score added between tokens of different shifted regions
NUM_FEATURES = EMBED_DIM * 2 ** (len(DEPTHS) - 1)    # 768
# kernel height of tscam_conv: frequency rows of the final map per time block (256 / 8 / 4 / 4 = 2)
TSCAM_ROWS = SPEC_SIZE // 2 ** (len(DEPTHS) - 1) // PATCH // FREQ_RATIO


# ---------------------------------------------------------------- front end (torchlibrosa's layout)

class STFT(nn.Module):
    """Centred STFT (reflect padding, periodic Hann window) as two frozen Conv1d whose kernels are
    the windowed cosine and minus-sine DFT rows: `conv_real.weight`, `conv_imag.weight`
    `[n_fft // 2 + 1, 1, n_fft]`."""

    def __init__(self, n_fft: int = N_FFT, hop: int = HOP):
        super().__init__()
        self.n_fft = n_fft
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        n = np.arange(n_fft)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)                   # periodic Hann
        phase = 2 * np.pi * (np.outer(np.arange(bins), n) % n_fft) / n_fft    # [bins, n_fft], exact
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(np.cos(phase) * window)[:, None, :])
            self.conv_imag.weight.copy_(torch.from_numpy(-np.sin(phase) * window)[:, None, :])
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, wave: torch.Tensor):
        """`wave` [B, L] -> (real, imag), each [B, frames, bins] with frames = L // hop + 1."""
        padded = F.pad(wave[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        return self.conv_real(padded).transpose(1, 2), self.conv_imag(padded).transpose(1, 2)


class Spectrogram(nn.Module):
    """Power spectrogram: real^2 + imag^2 of `stft`."""

    def __init__(self):
        super().__init__()
        self.stft = STFT()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(wave)
        return real ** 2 + imag ** 2                                   # [B, frames, 513]


class LogMel(nn.Module):
    """Mel filter bank `melW` [513, 64] (librosa, Slaney scale and area norm, 50 Hz - 14 kHz) and
    10 * log10(max(mel power, 1e-10))."""

    def __init__(self):
        super().__init__()
        mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)
        self.melW = nn.Parameter(torch.from_numpy(mel.T.astype(np.float32)), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=AMIN))     # [B, frames, 64]


class LogMelFrontEnd(nn.Module):
    """Waveform at 32 kHz [B, L] -> log-mel [B, L // 320 + 1, 64] (1001 frames for 10 s)."""

    def __init__(self):
        super().__init__()
        self.mel_trans = Spectrogram()
        self.log_trans = LogMel()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.log_trans(self.mel_trans(wave))


def mel_to_image(mel: torch.Tensor) -> torch.Tensor:
    """HTS-AT's input image: `mel` [B, frames <= 1024, 64] -> [B, 1, 256, 256].

    The time axis is resized to 1024 frames (bicubic, align_corners=True), then cut into 4
    consecutive blocks of 256 frames stacked along frequency: row = block * 64 + mel bin,
    column = frame within the block."""
    batch, frames, bins = mel.shape
    if frames > TARGET_FRAMES or bins != N_MELS:
        raise ValueError(f"HTS-AT takes at most {TARGET_FRAMES} frames of {N_MELS} mel bins, "
                         f"got {frames} x {bins}")
    x = mel[:, None]                                                   # [B, 1, T, 64]
    if frames < TARGET_FRAMES:
        x = F.interpolate(x, size=(TARGET_FRAMES, bins), mode="bicubic", align_corners=True)
    blocks = x.reshape(batch, FREQ_RATIO, SPEC_SIZE, bins)            # [B, block, frame, mel]
    return blocks.permute(0, 1, 3, 2).reshape(batch, 1, FREQ_RATIO * bins, SPEC_SIZE)


# ---------------------------------------------------------------- Swin Transformer v1

def to_windows(grid: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * windows, window * window, C], windows in row-major order."""
    b, h, w, c = grid.shape
    x = grid.reshape(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def from_windows(windows: torch.Tensor, window: int, size: int) -> torch.Tensor:
    """Inverse of `to_windows` for a size x size grid: -> [B, size, size, C]."""
    c = windows.shape[-1]
    n = size // window
    x = windows.reshape(-1, n, n, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size, size, c)


def relative_position_index(window: int) -> torch.Tensor:
    """[N, N] index into the (2w-1)^2 bias table of the offset between tokens i and j of a window
    (N = w * w): (row_i - row_j + w - 1) * (2w - 1) + (col_i - col_j + w - 1)."""
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])            # [2, N]
    offset = coords[:, :, None] - coords[:, None, :] + (window - 1)   # [2, N, N], in 0 .. 2w-2
    return offset[0] * (2 * window - 1) + offset[1]


def shifted_window_mask(size: int, window: int, shift: int) -> torch.Tensor:
    """[windows, N, N]: 0 between tokens of the same region of the cyclically shifted grid,
    MASK_VALUE between tokens that were not neighbours before the shift."""
    region = torch.zeros(1, size, size, 1)
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bands:
        for cols in bands:
            region[:, rows, cols] = label
            label += 1
    labels = to_windows(region, window).squeeze(-1)                   # [windows, N]
    different = labels[:, None, :] != labels[:, :, None]              # [windows, N, N]
    return torch.zeros(different.shape).masked_fill(different, MASK_VALUE)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learnt relative position bias."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, windows: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """`windows` [B * nW, N, C]; `mask` [nW, N, N] or None -> [B * nW, N, C]."""
        bw, n_tok, dim = windows.shape
        qkv = self.qkv(windows).reshape(bw, n_tok, 3, self.heads, dim // self.heads)
        q_bhnd, k_bhnd, v_bhnd = qkv.permute(2, 0, 3, 1, 4).unbind(0)       # each [B*nW, heads, N, d]
        scores_bhnn = (q_bhnd * self.scale) @ k_bhnd.transpose(-2, -1)
        bias_nnh = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        scores_bhnn = scores_bhnn + bias_nnh.reshape(n_tok, n_tok, self.heads).permute(2, 0, 1)
        if mask is not None:                                                 # same mask for each image
            n_win = mask.shape[0]
            scores_bhnn = (scores_bhnn.reshape(bw // n_win, n_win, self.heads, n_tok, n_tok)
                           + mask[None, :, None]).reshape(bw, self.heads, n_tok, n_tok)
        out_bhnd = scores_bhnn.softmax(dim=-1) @ v_bhnd
        return self.proj(out_bhnd.transpose(1, 2).reshape(bw, n_tok, dim))


class Mlp(nn.Module):
    """Linear(C, 4C), exact GELU, Linear(4C, C)."""

    def __init__(self, dim: int, ratio: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(dim, ratio * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(ratio * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm block: x + W-MSA(norm1(x)) (cyclically shifted by `shift` when > 0), then
    x + MLP(norm2(x)). A map no larger than the window is one window and is never shifted."""

    def __init__(self, dim: int, size: int, heads: int, window: int, shift: int):
        super().__init__()
        if size <= window:
            window, shift = size, 0
        self.size, self.window, self.shift = size, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim)
        self.register_buffer("attn_mask", shifted_window_mask(size, window, shift) if shift else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x` [B, size * size, C] -> same shape."""
        b, n_tok, c = x.shape
        grid = self.norm1(x).reshape(b, self.size, self.size, c)
        if self.shift:
            grid = torch.roll(grid, shifts=(-self.shift, -self.shift), dims=(1, 2))
        attended = self.attn(to_windows(grid, self.window), self.attn_mask)
        grid = from_windows(attended, self.window, self.size)
        if self.shift:
            grid = torch.roll(grid, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + grid.reshape(b, n_tok, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Halve the grid: concat of the (even, even), (odd, even), (even, odd), (odd, odd) row/column
    sub-grids, LayerNorm(4C), Linear(4C, 2C, no bias)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, size: int) -> torch.Tensor:
        """`x` [B, size * size, C] -> [B, (size / 2)^2, 2C]."""
        b, _, c = x.shape
        g = x.reshape(b, size, size, c)
        x = torch.cat([g[:, 0::2, 0::2], g[:, 1::2, 0::2], g[:, 0::2, 1::2], g[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.reshape(b, -1, 4 * c)))


class SwinStage(nn.Module):
    """`depth` blocks on a size x size grid (shift window // 2 on odd blocks), then patch merging."""

    def __init__(self, dim: int, size: int, depth: int, heads: int, window: int, downsample: bool):
        super().__init__()
        self.size = size
        self.blocks = nn.ModuleList([SwinBlock(dim, size, heads, window, window // 2 if b % 2 else 0)
                                     for b in range(depth)])
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x, self.size) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    """[B, 1, 256, 256] -> 4x4 patches -> [B, 64 * 64, 96] tokens (row-major), LayerNorm."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(1, EMBED_DIM, kernel_size=PATCH, stride=PATCH)
        self.norm = nn.LayerNorm(EMBED_DIM)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(image).flatten(2).transpose(1, 2))


class HTSAT(nn.Module):
    """Waveform at 32 kHz [B, L] -> embedding [B, 768]. L is 320,000 for 10 s (1001 frames);
    at most 327,679 (1024 frames)."""

    def __init__(self):
        super().__init__()
        self.audio_feats_extractor = LogMelFrontEnd()
        self.bn0 = nn.BatchNorm2d(N_MELS)
        self.patch_embed = PatchEmbed()
        grid = SPEC_SIZE // PATCH                                              # 64
        self.layers = nn.ModuleList([
            SwinStage(EMBED_DIM * 2 ** s, grid // 2 ** s, depth, heads, WINDOW,
                      downsample=s < len(DEPTHS) - 1)
            for s, (depth, heads) in enumerate(zip(DEPTHS, HEADS))])
        self.norm = nn.LayerNorm(NUM_FEATURES)
        # AudioSet head of HTS-AT: loaded, not evaluated (WavCaps uses only the embedding)
        self.tscam_conv = nn.Conv2d(NUM_FEATURES, NUM_CLASSES, kernel_size=(TSCAM_ROWS, 3), padding=(0, 1))
        self.head = nn.Linear(NUM_CLASSES, NUM_CLASSES)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, L] -> log-mel after bn0 (per mel bin, running statistics) [B, L // 320 + 1, 64]."""
        mel = self.audio_feats_extractor(wave)                                 # [B, T, 64]
        return self.bn0(mel.transpose(1, 2)[..., None])[..., 0].transpose(1, 2)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(mel_to_image(self.log_mel(wave)))           # [B, 4096, 96]
        for stage in self.layers:
            tokens = stage(tokens)                                             # ... [B, 64, 768]
        return self.norm(tokens).mean(dim=1)                                   # [B, 768]
