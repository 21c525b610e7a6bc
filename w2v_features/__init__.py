"""Class-name word vectors: `make_word_vectors.py` builds the `{name: unit vector}` .npy."""
