"""Building blocks shared by the models: EmbeddingNet and AVCA's pre-norm transformer.

State_dict names follow the original (`fc.0.weight`, `layers.0.0.norm.weight`,
`layers.0.0.fn.to_qkv.weight`, `layers.0.1.fn.net.3.weight`): published checkpoints load.
"""
from typing import Optional

from torch import Tensor, nn


class EmbeddingNet(nn.Module):
    """[Linear, BN, ReLU, Dropout] (+ [Linear, BN(momentum), ReLU, Dropout] with `hidden`).

    `hidden` 0 or None means no hidden layer. `momentum` is used by the second BatchNorm of
    the hidden-layer form only (MODELS.md); the others use PyTorch's default 0.1.
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float, momentum: float = 0.1,
                 hidden: Optional[int] = None):
        super().__init__()
        if hidden:
            layers = [nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
                      nn.Linear(hidden, out_dim), nn.BatchNorm1d(out_dim, momentum=momentum),
                      nn.ReLU(), nn.Dropout(dropout)]
        else:
            layers = [nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU(), nn.Dropout(dropout)]
        self.fc = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape                                               # (B, T, dim)
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2)      # (B, h, T, dh)
                   for t in self.to_qkv(x).chunk(3, dim=-1))
        attn = (q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1)    # (B, h, T, T)
        out = (attn @ v).transpose(1, 2).reshape(b, n, -1)               # (B, T, h*dh)
        return self.to_out(out)


class Transformer(nn.Module):
    """Pre-norm transformer: x = x + Attn(LN(x)); x = x + FF(LN(x)), `depth` times."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.ModuleList([PreNorm(dim, Attention(dim, heads, dim_head, dropout)),
                           PreNorm(dim, FeedForward(dim, mlp_dim, dropout))])
            for _ in range(depth)])

    def forward(self, x: Tensor) -> Tensor:
        for attn, ff in self.layers:
            x = x + attn(x)
            x = x + ff(x)
        return x
