"""Request limits, in one place: the CLI, the Session's request check, the server and the web UI all read these.

Each limit is a module constant; change one by assigning before use (``dreamomni2.limits.MAX_STEPS = 200``) or, for
the server and web UI, with their flags. A request above a limit is refused with a message naming the field and
the limit, never clipped silently.
"""

from __future__ import annotations

from dreamomni2.tasks import MAX_IMAGES

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_IMAGES",
    "MAX_INPUT_PIXELS",
    "MAX_JUDGE_REPLY_CHARS",
    "MAX_JUDGE_SAMPLES",
    "MAX_N",
    "MAX_OUTPUT_PIXELS",
    "MAX_OUTPUT_SIDE",
    "MAX_PROMPT_CHARS",
    "MAX_REPORT_THUMB_SIDE",
    "MAX_SEED",
    "MAX_STEPS",
    "MIN_OUTPUT_SIDE",
]

#: Most denoising steps a request may ask for.
MAX_STEPS: int = 150
#: Most images one request may draw.
MAX_N: int = 8
#: Largest seed (the CPU generator's range).
MAX_SEED: int = 2**63 - 1
#: Output width/height bounds, in pixels.
MIN_OUTPUT_SIDE: int = 16
MAX_OUTPUT_SIDE: int = 4096
#: Most output pixels (width x height, and the ``max_area`` cap).
MAX_OUTPUT_PIXELS: int = 4096 * 4096
#: Most pixels of one input image (checked from the header, before decoding).
MAX_INPUT_PIXELS: int = 64 * 1024 * 1024
#: Longest instruction or prompt, in characters.
MAX_PROMPT_CHARS: int = 4000
#: Largest HTTP request body the server reads.
MAX_BODY_BYTES: int = 64 * 1024 * 1024
#: Longest side, in pixels, of an image inlined in a ``bench report`` HTML page (larger ones are thumbnailed, so a
#: report of N cases stays about N x (inputs + runs) x 30 KB at most).
MAX_REPORT_THUMB_SIDE: int = 256
#: Longest benchmark-judge reply parsed (a longer one is unjudged, never read as a verdict).
MAX_JUDGE_REPLY_CHARS: int = 16384
#: Most samples a VLM judge may take per case for its majority vote (``bench judge --samples``).
MAX_JUDGE_SAMPLES: int = 15
