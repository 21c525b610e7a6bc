"""Building blocks shared by the models: EmbeddingNet (AVCA), MLPEmbeddingNet and TripletNet
(AVGZSLNet, CJME), and AVCA's pre-norm transformer.

State_dict names follow the original (`fc.0.weight`, `layers.0.0.norm.weight`,
`layers.0.0.fn.to_qkv.weight`, `layers.0.1.fn.net.3.weight`): published checkpoints load.
"""
from typing import Optional

from torch import Tensor, nn

from .dropout import Dropout


class EmbeddingNet(nn.Module):
    """[Linear, BN, ReLU, Dropout] (+ [Linear, BN(momentum), ReLU, Dropout] with `hidden`).

    `hidden` 0 or None means no hidden layer. `momentum` is used by the second BatchNorm of
    the hidden-layer form only (docs/models.md); the others use PyTorch's default 0.1.
    `use_bn=False` drops the FIRST BatchNorm of the hidden-layer form only, as the original's
    `use_bn` (ClipClap's `--embeddings_batch_norm False`): Linear, ReLU, Dropout, Linear, BN, ReLU,
    Dropout, keys `fc.0.*`, `fc.3.*`, `fc.4.*`; the no-hidden form keeps its BatchNorm.
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float, momentum: float = 0.1,
                 hidden: Optional[int] = None, use_bn: bool = True):
        super().__init__()
        # In place, with the same values: ReLU on BatchNorm's (or Linear's) fresh output (their
        # backward reads their input), Dropout where autograd does not record (the ReLU keeps its output).
        if hidden:
            layers = [nn.Linear(in_dim, hidden), *([nn.BatchNorm1d(hidden)] if use_bn else []),
                      nn.ReLU(inplace=True), Dropout(dropout, inplace=True),
                      nn.Linear(hidden, out_dim), nn.BatchNorm1d(out_dim, momentum=momentum),
                      nn.ReLU(inplace=True), Dropout(dropout, inplace=True)]
        else:
            layers = [nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True),
                      Dropout(dropout, inplace=True)]
        self.fc = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


class MLPEmbeddingNet(nn.Module):
    """AVGZSLNet's and CJME's nets: Linear, [BN], ReLU, Dropout, Linear [, ReLU].

    Held as one `nn.Sequential` named `fc`: with `use_bn` the Linears are `fc.0` and `fc.4`,
    without it `fc.0` and `fc.3` (the original's keys). `hidden` 0 or None means one Linear
    (`fc.0`). `final_relu` adds CJME's trailing ReLU (it has no parameters).
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float, use_bn: bool,
                 hidden: Optional[int] = None, final_relu: bool = False):
        super().__init__()
        if hidden:
            layers = [nn.Linear(in_dim, hidden)]
            if use_bn:
                layers.append(nn.BatchNorm1d(hidden))
            layers += [nn.ReLU(), Dropout(dropout), nn.Linear(hidden, out_dim)]
        else:
            layers = [nn.Linear(in_dim, out_dim)]
        if final_relu:
            layers.append(nn.ReLU())
        self.fc = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


class TripletNet(nn.Module):
    """AVGZSLNet's and CJME's three branches into the 64-d joint space (MLPEmbeddingNet each):
    `embedding_net1` audio (D_a -> hidden -> 64), `embedding_net2` video (D_v -> hidden -> 64),
    `embedding_net3` text (word_dim -> word_hidden -> 64), created in that order. word_dim is the
    class vectors' width (300 for word2vec, 1536 for CLIP+CLAP); the text net's hidden width is
    the original's fixed 300 whatever the input width.
    """

    def __init__(self, input_size_audio: int, input_size_video: int, hidden: Optional[int],
                 dropout: float, use_bn: bool, final_relu: bool = False, out_dim: int = 64,
                 word_dim: int = 300, word_hidden: int = 300):
        super().__init__()
        self.embedding_net1 = MLPEmbeddingNet(input_size_audio, out_dim, dropout, use_bn, hidden, final_relu)
        self.embedding_net2 = MLPEmbeddingNet(input_size_video, out_dim, dropout, use_bn, hidden, final_relu)
        self.embedding_net3 = MLPEmbeddingNet(word_dim, out_dim, dropout, use_bn, word_hidden, final_relu)


class TripletEmbeddings:
    """f_a, f_v, f_t of a model holding a `triplet_net` (AVGZSLNet, CJME)."""

    def f_a(self, audio: Tensor) -> Tensor:
        return self.triplet_net.embedding_net1(audio)

    def f_v(self, video: Tensor) -> Tensor:
        return self.triplet_net.embedding_net2(video)

    def f_t(self, text: Tensor) -> Tensor:
        return self.triplet_net.embedding_net3(text)



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
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), Dropout(dropout),
                                 nn.Linear(hidden_dim, dim), Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), Dropout(dropout))

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
