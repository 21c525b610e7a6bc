"""The prompt templates of ClipClap's class text embeddings (docs/clipclap.md 2), verbatim and in order.

`{}` is the class name. The original files keep them as Python lists in
`clip_embeddings_extraction/get_clip_embeddings_{ucf,activitynet,vggsound}.py`; UCF and
ActivityNet share one pair of lists, VGGSound has its own. Also as data in
`../shared/reference/clipclap_prompt_templates.json` (keys ucf_clip, ucf_audio, vgg_clip, vgg_audio;
tests/extraction/test_clip_text.py compares the two).
"""
from typing import Dict, Tuple

# CLIP, UCF and ActivityNet (48): photo, video, example, demonstration of a / the person, then of
# a / the person using, doing, during, performing, practicing
CLIP_UCF_ACTIVITYNET: Tuple[str, ...] = (
    "a photo of a person {}.",
    "a video of a person {}.",
    "a example of a person {}.",
    "a demonstration of a person {}.",
    "a photo of the person {}.",
    "a video of the person {}.",
    "a example of the person {}.",
    "a demonstration of the person {}.",
    "a photo of a person using {}.",
    "a video of a person using {}.",
    "a example of a person using {}.",
    "a demonstration of a person using {}.",
    "a photo of the person using {}.",
    "a video of the person using {}.",
    "a example of the person using {}.",
    "a demonstration of the person using {}.",
    "a photo of a person doing {}.",
    "a video of a person doing {}.",
    "a example of a person doing {}.",
    "a demonstration of a person doing {}.",
    "a photo of the person doing {}.",
    "a video of the person doing {}.",
    "a example of the person doing {}.",
    "a demonstration of the person doing {}.",
    "a photo of a person during {}.",
    "a video of a person during {}.",
    "a example of a person during {}.",
    "a demonstration of a person during {}.",
    "a photo of the person during {}.",
    "a video of the person during {}.",
    "a example of the person during {}.",
    "a demonstration of the person during {}.",
    "a photo of a person performing {}.",
    "a video of a person performing {}.",
    "a example of a person performing {}.",
    "a demonstration of a person performing {}.",
    "a photo of the person performing {}.",
    "a video of the person performing {}.",
    "a example of the person performing {}.",
    "a demonstration of the person performing {}.",
    "a photo of a person practicing {}.",
    "a video of a person practicing {}.",
    "a example of a person practicing {}.",
    "a demonstration of a person practicing {}.",
    "a photo of the person practicing {}.",
    "a video of the person practicing {}.",
    "a example of the person practicing {}.",
    "a demonstration of the person practicing {}.",
)

# WavCaps, UCF and ActivityNet (30): by verb group (none: 6, using: 5, doing: 5, during: 4,
# performing: 5, practicing: 5)
WAVCAPS_UCF_ACTIVITYNET: Tuple[str, ...] = (
    "a person {} can be heard.",
    "a example of a person {} can be heard.",
    "a demonstration of a person {} can be heard.",
    "the person {} can be heard.",
    "a example of the person {} can be heard.",
    "a demonstration of the person {} can be heard.",
    "a person using {} can be heard.",
    "a example of a person using {} can be heard.",
    "a demonstration of a person using {} can be heard.",
    "a example of the person using {} can be heard.",
    "a demonstration of the person using {} can be heard.",
    "a person doing {} can be heard.",
    "a example of a person doing {} can be heard.",
    "a demonstration of a person doing {} can be heard.",
    "a example of the person doing {} can be heard.",
    "a demonstration of the person doing {} can be heard.",
    "a example of a person during {} can be heard.",
    "a demonstration of a person during {} can be heard.",
    "a example of the person during {} can be heard.",
    "a demonstration of the person during {} can be heard.",
    "a person performing {} can be heard.",
    "a example of a person performing {} can be heard.",
    "a demonstration of a person performing {} can be heard.",
    "a example of the person performing {} can be heard.",
    "a demonstration of the person performing {} can be heard.",
    "a person practicing {} can be heard.",
    "a example of a person practicing {} can be heard.",
    "a demonstration of a person practicing {} can be heard.",
    "a example of the person practicing {} can be heard.",
    "a demonstration of the person practicing {} can be heard.",
)

# CLIP, VGGSound (8; the original has a 48-template list commented out)
CLIP_VGGSOUND: Tuple[str, ...] = (
    "a photo of {}.",
    "a video of {}.",
    "a example of {}.",
    "a demonstration of {}.",
    "a photo of the person {}.",
    "a video of the {}.",
    "a example of the {}.",
    "a demonstration of the {}.",
)

# WavCaps, VGGSound (9; the original has a 30-template list commented out)
WAVCAPS_VGGSOUND: Tuple[str, ...] = (
    "a {} can be heard.",
    "a example of a {} can be heard.",
    "a demonstration of a {} can be heard.",
    "the {} can be heard.",
    "a example of the {} can be heard.",
    "a demonstration of the {} can be heard.",
    "{} can be heard.",
    "a example of {} can be heard.",
    "a demonstration of {} can be heard.",
)

# The reference file's keys (clipclap_prompt_templates.json) -> templates
BY_KEY: Dict[str, Tuple[str, ...]] = {
    "ucf_clip": CLIP_UCF_ACTIVITYNET, "ucf_audio": WAVCAPS_UCF_ACTIVITYNET,
    "vgg_clip": CLIP_VGGSOUND, "vgg_audio": WAVCAPS_VGGSOUND,
}
MODELS = ("clip", "wavcaps")


def templates(dataset: str, model: str) -> Tuple[str, ...]:
    """The templates of `model` (clip or wavcaps) for `dataset` (ucf, activitynet or vggsound;
    the extraction's names `activity` and `ucf101` are accepted)."""
    if model not in MODELS:
        raise ValueError(f"unknown text model {model!r}: use clip or wavcaps")
    if dataset in ("ucf", "ucf101", "activity", "activitynet"):
        return CLIP_UCF_ACTIVITYNET if model == "clip" else WAVCAPS_UCF_ACTIVITYNET
    if dataset == "vggsound":
        return CLIP_VGGSOUND if model == "clip" else WAVCAPS_VGGSOUND
    raise ValueError(f"unknown dataset {dataset!r}: use ucf, activitynet or vggsound")
