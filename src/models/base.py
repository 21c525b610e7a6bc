"""The interface every model answers; the trainer and the evaluator know nothing else.

- `training_step(batch) -> (loss, parts)`: the scalar loss to back-propagate and its named
  parts (detached scalars for the logs).
- `after_optimizer_step(batch)`: a hook run after each optimiser step (default: nothing).
- `eval_distances(audio, video, text, squared) -> {mode: [N, C]}`: distances of N samples to
  the C classes whose word vectors are `text [C, 300]`, for each mode in `modes`; optionally
  also `zsl`: the distances ZSL is computed from (f-VAEGAN-D2's own ZSL classifier), else the
  mode's own.
- `adopt_stage_1_choices(stage_1_model)`: what stage 1 chose on val besides the epoch and beta,
  taken over by the stage-2 model before the test (default: nothing).
- `reported_mode`: the mode the paper reports (the epoch score and get_evaluation's line).
- `configure_optimizers(args) -> (optimizer, scheduler or None)`.
- optionally `fit(trainer)`: a model with its own training procedure (f-VAEGAN-D2).
- optionally `eval_embeddings(audio, video, text) -> (samples [N, d], classes [C, d])`: the
  embeddings behind the reported distances (get_evaluation.py --plots draws their t-SNE).
"""
from dataclasses import dataclass, fields
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn


@dataclass
class PairBatch:
    """B positive samples and their negatives (a sample of another class).

    audio [B, D_a], video [B, D_v], text [B, 300] (word vector of the sample's class),
    label [B] (position of the class in `class_ids`), `*_neg` the same for the negatives;
    class_text [C, 300] word vectors of the training classes, class_ids [C] global indices.
    """
    audio: Tensor
    video: Tensor
    text: Tensor
    label: Tensor
    audio_neg: Tensor
    video_neg: Tensor
    text_neg: Tensor
    label_neg: Tensor
    class_text: Tensor
    class_ids: Tensor

    def map(self, fn) -> "PairBatch":
        return PairBatch(**{f.name: fn(f.name, getattr(self, f.name)) for f in fields(self)})


def distance_matrix(x: Tensor, t: Tensor, squared: bool = False) -> Tensor:
    """L2 distances [N, C] between sample embeddings x [N, d] and class embeddings t [C, d]."""
    d = torch.cdist(x, t, p=2)
    return d * d if squared else d


class GZSLModel(nn.Module):
    modes: Tuple[str, ...] = ("audio", "video", "both")
    reported_mode: str = "both"

    def training_step(self, batch: PairBatch) -> Tuple[Tensor, Dict[str, Tensor]]:
        raise NotImplementedError

    def after_optimizer_step(self, batch: PairBatch) -> None:
        pass

    def adopt_stage_1_choices(self, stage_1: "GZSLModel") -> None:
        pass

    def eval_distances(self, audio: Tensor, video: Tensor, text: Tensor,
                       squared: bool = False) -> Dict[str, Tensor]:
        raise NotImplementedError

    def eval_embeddings(self, audio: Tensor, video: Tensor, text: Tensor) -> Tuple[Tensor, Tensor]:
        """Sample embeddings [N, d] and class embeddings [C, d] of the reported mode (optional)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its embeddings")

    def optimizer_parameters(self):
        return self.parameters()

    def configure_optimizers(self, args) -> Tuple[torch.optim.Optimizer, Optional[object]]:
        """Adam(lr), no weight decay; ReduceLROnPlateau(max, patience 3) with --lr_scheduler."""
        opt = torch.optim.Adam(self.optimizer_parameters(), lr=args.lr)
        sched = plateau(opt) if args.lr_scheduler else None
        return opt, sched


def plateau(optimizer):
    """PROTOCOL.md section 3: PyTorch defaults besides mode='max', patience=3."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=3)


def audio_video_distances(e_a: Tensor, e_v: Tensor, t_a: Tensor, t_v: Tensor,
                          squared: bool) -> Dict[str, Tensor]:
    """The usual three modes: audio, video, and `both` = their sum."""
    d_a = distance_matrix(e_a, t_a, squared)
    d_v = distance_matrix(e_v, t_v, squared)
    return {"audio": d_a, "video": d_v, "both": d_a + d_v}
