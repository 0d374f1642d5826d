"""Reading an audio file of unknown origin in bounded blocks.

A whole-file read of an upload is a memory bomb: silence compresses about 3,900:1 in FLAC, so
a 20 MiB upload can declare hours of multichannel audio, and reading it as float32 (then
float64 to decode) asks for tens of GiB. Here the declared frames x channels are checked
before anything is read, the count is kept while reading (a header may lie), and audio comes
out as mono float64 blocks of a bounded number of samples.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import soundfile as sf

# Samples (frames x channels) per read: 1 MiB of float32 whatever the channel count.
BLOCK_SAMPLES = 1 << 18


class TooMuchAudio(ValueError):
    """The file holds (or declares) more than ``limit`` samples (frames x channels)."""

    def __init__(self, samples: int, limit: int) -> None:
        super().__init__(f"{samples} samples (frames x channels) is over the limit of {limit}")
        self.samples = samples
        self.limit = limit


def mono_blocks(
    f: sf.SoundFile, max_samples: int, block_samples: int = BLOCK_SAMPLES
) -> Iterator[npt.NDArray[np.float64]]:
    """Yield ``f``'s audio as mono float64 blocks (the mean of its channels).

    Raises TooMuchAudio before reading when the header declares too much, or as soon as the
    running count passes ``max_samples``.
    """
    channels = int(f.channels)
    declared = int(f.frames)
    if declared > 0 and declared * channels > max_samples:
        raise TooMuchAudio(declared * channels, max_samples)
    frames = max(1, block_samples // max(1, channels))
    seen = 0
    while True:
        block = f.read(frames, dtype="float32", always_2d=True)
        if len(block) == 0:
            return
        seen += len(block) * channels
        if seen > max_samples:
            raise TooMuchAudio(seen, max_samples)
        yield block.mean(axis=1, dtype=np.float64)
