"""The CLIP/CLAP feature family (ClipClap-GZSL, docs/clipclap.md): its two networks as a library.

- `clip_vit`: OpenAI CLIP ViT-B/32 through `open_clip` (image features and CLIP text embeddings).
- `htsat`: HTS-AT, the Swin Transformer audio encoder of WavCaps, with its log-mel front end.
- `wavcaps`: WavCaps' HTSAT-BERT audio-text model (ASE): audio features and WavCaps text embeddings.

Nothing is imported here, so that a caller of one network does not pay for the other's packages.
"""
