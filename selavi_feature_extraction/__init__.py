"""SeLaVi ("main") features: R(2+1)D-18 video and ResNet-9 audio networks pre-trained on
VGGSound, the one-second window front end, and the `get_clusters.py` CLI."""
