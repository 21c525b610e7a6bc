"""[original defect] `main.py --fvaegan --test_selection`: the original f-VAEGAN-D2 script's own
choice, kept to reproduce the seed's table (docs/models.md "f-VAEGAN-D2"). After every epoch the model
is scored on the run's evaluation split (val in stage 1, test in stage 2) as the original did: GZSL
by the classifier's argmax (no calibration) at its best classifier epoch by HM on that split, ZSL
by the ZSL classifier at its best epoch there; the epoch with the best GZSL HM is kept in
`test_selection.json` and printed at the end. Numbers chosen on the test set: never the protocol's.

A trainer callback of f-VAEGAN-D2's (its registry entry's `callbacks`), not a part of the model: it
scores with the metrics of src/evaluate.py and writes its file atomically.
"""
import json
import logging
from typing import Dict, Optional

from ..evaluate import evaluate_distances, format_line
from ..io_utils import atomic_write_json

log = logging.getLogger("avgzsl")


def original_scores(model, split) -> Dict[str, float]:
    """The original's numbers of an f-VAEGAN-D2 model on `split` itself."""
    best = {"seen": 0.0, "unseen": 0.0, "hm": -1.0, "zsl": 0.0}

    def gzsl_epoch(_, distances):
        r = evaluate_distances(distances, split.labels, split.seen_mask, beta=0.0)
        if r["hm"] > best["hm"]:
            best.update(seen=r["seen"], unseen=r["unseen"], hm=r["hm"])

    def zsl_epoch(_, distances):
        best["zsl"] = max(best["zsl"], evaluate_distances(distances, split.labels, split.seen_mask, beta=0.0)["zsl"])

    was_training = model.training
    model.eval()
    model.train_classifiers(split.text, model.cls_epochs, model.cls_epochs, model.features(split.audio, split.video),
                            gzsl_epoch, zsl_epoch)
    model.train(was_training)
    return best


class OriginalSelection:
    """The trainer callback: the original's score of every epoch on `split`, the best kept."""

    def __init__(self, split, resuming: bool):
        self.split = split
        self.resuming = resuming
        self.selection: Optional[dict] = None

    def after_epoch(self, trainer, epoch: int) -> None:
        path = trainer.run.path / "test_selection.json"
        if self.selection is None and self.resuming and path.exists():
            self.selection = json.loads(path.read_text())
        r = original_scores(trainer.model, self.split)
        log.info("epoch %d on %s (original selection): %s", epoch + 1, self.split.name, format_line(r))
        if self.selection is None or r["hm"] > self.selection["hm"]:
            self.selection = {**r, "epoch": epoch + 1, "split": self.split.name, "line": format_line(r)}
            atomic_write_json(self.selection, path)

    def after_fit(self, trainer) -> None:
        if self.selection:
            log.info("best epoch %d on %s (original selection, chosen on that split):", self.selection["epoch"],
                     self.selection["split"])
            print(self.selection["line"])


def selection_callbacks(args, split, resuming: bool) -> list:
    """f-VAEGAN-D2's callbacks (`--test_selection`): the original's choice on the evaluation split."""
    if not args.test_selection:
        return []
    return [OriginalSelection(split("test" if args.retrain_all else "val"), resuming=resuming)]
