"""C3D / VGGish ("cls") feature extraction: `ClsFamily` and the one CLI (`extract.py`)."""
