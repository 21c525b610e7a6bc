"""What the feature extractors share (docs/features.md; user guide: docs/extraction.md).

- `decode`: PyAV decoding in one pass (frames through a per-frame function, optional
  constant frame-rate conversion; audio as int16), `Failure` for a video to skip;
- `videos`: the video list (class folders or a `video,class` csv) and class ids;
- `pipeline`: the decode -> batch -> model -> write loop (`Family`, `extract`), its
  DataLoader workers, sharding over torchrun ranks, resume from atomic chunks, the merge
  and the failures file;
- `weights`: weight files with an error naming the file, its source and the flag;
- `cli`: the flags and run step of every extraction CLI.
"""
