"""Benchmark judges behind one interface: ``judge(case, output, inputs) -> Verdict`` (see docs/judges.md).

* :mod:`~dreamomni2.bench.judges.base` — the :class:`Judge` base class; :mod:`~dreamomni2.bench.judges.factory` —
  :func:`make_judge` (the spec parser);
* :mod:`~dreamomni2.bench.judges.analyzer` — ``analyzer``, the mini world's ground truth;
* :mod:`~dreamomni2.bench.judges.vlm` — ``vlm:qwen:DIR`` / ``vlm:openai:URL[#model]``, the pointwise VLM judge, its
  prompts and reply parser;
* :mod:`~dreamomni2.bench.judges.pairwise` — the pairwise VLM judge (both orders), win rates, Bradley–Terry, Elo;
* :mod:`~dreamomni2.bench.judges.embed` — ``clip:DIR`` and ``dino:DIR`` similarities;
* :mod:`~dreamomni2.bench.judges.runs` — judging run folders (resumable judgement files) and comparing runs.

Nothing heavy loads at import time: models load in a judge's ``prepare``.
"""

from __future__ import annotations

from dreamomni2.bench.judges.base import JUDGE_SPECS, Judge, unjudged
from dreamomni2.bench.judges.factory import make_judge

__all__ = ["JUDGE_SPECS", "Judge", "make_judge", "unjudged"]
