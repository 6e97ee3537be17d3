"""The pointwise VLM judge (``vlm:qwen:DIR``, ``vlm:openai:URL[#model]``), its prompts and its reply parser.

The judge shows the VLM the case's inputs then the output, in one user turn, with the prompt of the case's task
(:data:`POINTWISE_PROMPTS`, written out verbatim in docs/judges.md; a test keeps the two equal). The criteria are the
paper's: the instruction followed, the referenced object or attribute reproduced, and for edits nothing else changed.
The reply must be one line of JSON, ``{"verdict": "yes" | "no", "reason": "..."}``; :func:`parse_answer` also takes a
``VERDICT: yes`` line or a bare ``yes``/``no``, in time linear in the reply (capped at
:data:`dreamomni2.limits.MAX_JUDGE_REPLY_CHARS`). A malformed, refused, over-long or failed (timed-out, unreachable)
reply gives no answer: the case is **unjudged**, with the reason, never a success.

With ``samples`` K > 1 the judge asks K times (sampling at ``temperature``, default 0.7) and takes the strict
majority of the answered samples; a tie, or no answered sample, leaves the case unjudged.

The VLM is reached through the planner's backends (:class:`dreamomni2.planner.openai.OpenAIPlanner` and
:class:`dreamomni2.planner.qwen.QwenPlanner`, their ``chat`` method): the same whole-call deadline, reply cap and
API-key rule (the key, from ``api_key`` or ``OPENAI_API_KEY``, goes only to the URL the user named).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from string import Template
from typing import Any, Protocol

from PIL import Image

from dreamomni2 import limits
from dreamomni2.bench.judges.base import Judge, unjudged
from dreamomni2.bench.records import Verdict
from dreamomni2.bench.suite import SuiteCase

__all__ = [
    "CRITERIA",
    "POINTWISE_PROMPTS",
    "VERDICT_WORDS",
    "ChatBackend",
    "Parsed",
    "VLMJudge",
    "fit_image",
    "images_phrase",
    "majority",
    "make_vlm_judge",
    "parse_answer",
    "pointwise_prompt",
]

logger = logging.getLogger(__name__)

#: The paper's criteria, per task (numbered in the prompts).
CRITERIA: dict[str, tuple[str, ...]] = {
    "edit": (
        "The result follows the instruction.",
        "The object or attribute the instruction refers to (taken from the image it names) is reproduced "
        "faithfully in the result.",
        "Nothing that the instruction does not ask to change has changed from image 1.",
    ),
    "generate": (
        "The generated image follows the instruction.",
        "Every object or attribute the instruction takes from a reference image (an object's identity, or an "
        "abstract attribute such as material, texture, style, pose or expression) is reproduced faithfully.",
        "The image is coherent: no subject duplicated or missing, no obvious artifacts.",
    ),
}


def numbered(lines: Sequence[str]) -> str:
    """``"1. ...\n2. ..."``."""
    return "\n".join(f"{i}. {c}" for i, c in enumerate(lines, 1))


_POINTWISE = Template(
    "You are a strict judge of $job.\n"
    "$inputs Image $result is the $what.\n"
    "Instruction: $instruction\n\n"
    'Answer "yes" only if all of these hold:\n'
    "$criteria\n"
    'Otherwise answer "no".\n\n'
    "Reply with exactly one line of JSON and nothing else:\n"
    '{"verdict": "yes" or "no", "reason": "at most 20 words"}'
)
_JOBS = {"edit": "instruction-based image editing", "generate": "subject-driven image generation"}
_WHAT = {"edit": "edited result", "generate": "generated image"}

#: The pointwise prompts, per task, as templates (``$inputs``, ``$result``, ``$instruction``).
POINTWISE_PROMPTS: dict[str, str] = {
    task: _POINTWISE.safe_substitute(job=_JOBS[task], what=_WHAT[task], criteria=numbered(CRITERIA[task]))
    for task in ("edit", "generate")
}

#: Words accepted as a pointwise verdict, and what they mean.
VERDICT_WORDS: dict[str, str] = {"yes": "yes", "no": "no", "pass": "yes", "fail": "no", "true": "yes", "false": "no"}
#: Longest instruction put into a prompt (longer ones are cut, marked with "...").
MAX_INSTRUCTION_CHARS = 2000
#: Most characters of replies kept in a verdict's ``raw``.
MAX_RAW_CHARS = 4000
#: Most ``{`` positions tried as the start of a JSON object (keeps parsing linear).
_MAX_JSON_STARTS = 8

_SPECIAL = re.compile(r"<\|[A-Za-z0-9_]{1,40}\|>")
_REFUSAL = re.compile(
    r"\b(?:i'?m sorry|i am sorry|i cannot|i can'?t|i am unable|i'?m unable|unable to (?:help|assist|comply)|"
    r"cannot (?:help|assist|comply)|can'?t (?:help|assist|comply)|not able to (?:help|assist))\b",
    re.IGNORECASE,
)


def images_phrase(task: str, n_inputs: int) -> str:
    """``"Image 1 is the image to edit."`` / ``"Images 1 to 3 are the inputs, in order; image 1 is the image to
    edit."`` / ``"Images 1 to 2 are the reference images, in order."``."""
    if task == "edit":
        if n_inputs == 1:
            return "Image 1 is the image to edit."
        return f"Images 1 to {n_inputs} are the inputs, in order; image 1 is the image to edit."
    if n_inputs == 1:
        return "Image 1 is the reference image."
    return f"Images 1 to {n_inputs} are the reference images, in order."


def _instruction_text(instruction: str) -> str:
    return _short(instruction, MAX_INSTRUCTION_CHARS)


def pointwise_prompt(task: str, n_inputs: int, instruction: str) -> str:
    """The text of a pointwise judging turn (the images come before it: inputs, then the output).

    Args:
        task: ``edit`` or ``generate``.
        n_inputs: how many input images precede the output.
        instruction: the case's instruction (whitespace collapsed, cut at :data:`MAX_INSTRUCTION_CHARS`).

    Returns:
        :data:`POINTWISE_PROMPTS` ``[task]`` filled in.
    """
    if task not in POINTWISE_PROMPTS:
        raise ValueError(f"task {task!r}: expected edit or generate")
    return Template(POINTWISE_PROMPTS[task]).substitute(
        inputs=images_phrase(task, n_inputs), result=n_inputs + 1, instruction=_instruction_text(instruction)
    )


# --- reply parsing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    """What a reply said: ``answer`` (a canonical word, or None when unusable), the judge's ``reason``, and why
    the reply is unusable (``problem``, None when ``answer`` is set)."""

    answer: str | None
    reason: str = ""
    problem: str | None = None


def _short(text: Any, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _word(value: Any, words: Mapping[str, str]) -> str | None:
    if isinstance(value, bool):
        return words.get(str(value).lower())
    if not isinstance(value, str) or len(value) > 40:
        return None
    return words.get(value.strip().strip("\"'`*.!").strip().lower())


def _from_json(text: str, key: str, words: Mapping[str, str]) -> Parsed | None:
    """The first JSON object (among the first few ``{``) holding ``key``; None when there is none."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    for _ in range(_MAX_JSON_STARTS):
        if start < 0:
            return None
        try:
            obj, _end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            obj = None
        if isinstance(obj, dict):
            found = {k.lower(): v for k, v in obj.items() if isinstance(k, str)}
            if key in found:
                answer = _word(found[key], words)
                reason = found.get("reason")
                reason = _short(reason, 300) if isinstance(reason, str) else ""
                if answer is None:
                    return Parsed(None, reason, f"malformed reply: {key} {_short(found[key], 40)!r} is not one of "
                                                f"{'/'.join(sorted(set(words.values())))}")  # fmt: skip
                return Parsed(answer, reason)
        start = text.find("{", start + 1)
    return None


def _from_lines(text: str, key: str, words: Mapping[str, str]) -> Parsed | None:
    """``VERDICT: yes`` lines (any case, markdown allowed); conflicting ones make the reply malformed."""
    pattern = re.compile(rf"^[ \t*#>_-]{{0,8}}{key}[ \t*_]{{0,4}}[:=][ \t*_\"'`]{{0,4}}([A-Za-z]{{1,10}})", re.I | re.M)
    found = {_word(m.group(1), words) for m in pattern.finditer(text)}
    if not found:
        return None
    if None in found or len(found) > 1:
        return Parsed(None, "", f"malformed reply: conflicting or unknown {key} lines")
    reason = re.search(r"^[ \t*#>_-]{0,8}reason[ \t*_]{0,4}[:=][ \t]{0,4}(.{1,300})", text, re.I | re.M)
    return Parsed(found.pop(), _short(reason.group(1), 300) if reason else "")


def _bare(text: str, words: Mapping[str, str]) -> Parsed | None:
    """A reply that is only an answer word (first line ``Yes.``, or the whole reply)."""
    first = text.strip().split("\n", 1)[0]
    answer = _word(first, words)
    if answer is None:
        return None
    rest = text.strip()[len(first) :].strip()
    return Parsed(answer, _short(rest, 300))


def parse_answer(reply: str | None, key: str = "verdict", words: Mapping[str, str] = VERDICT_WORDS) -> Parsed:
    """Read a judge's answer from a VLM reply, in time linear in its length.

    Rules, in order: a reply over :data:`dreamomni2.limits.MAX_JUDGE_REPLY_CHARS` characters, or an empty one, is
    unusable; chat special tokens (``<|im_end|>`` ...) and anything up to a closing ``</think>`` are dropped; the
    first JSON object (among the first 8 ``{``) holding ``key`` decides (a value outside ``words`` is malformed);
    else ``key: WORD`` lines decide (conflicting ones are malformed); else a first line that is only an answer word
    (``Yes.``); else the reply is a refusal (``I'm sorry``, ``I cannot`` ...) or malformed.

    Args:
        reply: the VLM's reply text.
        key: the JSON key / line label (``verdict``; the pairwise judge uses ``winner``).
        words: accepted answer words (lower case) -> canonical answer.

    Returns:
        A :class:`Parsed`: ``answer`` set, or ``problem`` saying why not.
    """
    if not isinstance(reply, str) or not reply.strip():
        return Parsed(None, "", "empty reply")
    if len(reply) > limits.MAX_JUDGE_REPLY_CHARS:
        return Parsed(None, "", f"reply of {len(reply)} characters is over the {limits.MAX_JUDGE_REPLY_CHARS} limit")
    text = _SPECIAL.sub("", reply)
    think = text.rfind("</think>")
    if think >= 0:
        text = text[think + len("</think>") :]
    for reader in (_from_json, _from_lines):
        parsed = reader(text, key, words)
        if parsed is not None:
            return parsed
    parsed = _bare(text, words)
    if parsed is not None:
        return parsed
    if _REFUSAL.search(text):
        return Parsed(None, "", f"refused: {_short(text)}")
    return Parsed(None, "", f"malformed reply (no {key} found): {_short(text)}")


def majority(answers: Sequence[str | None]) -> tuple[str | None, Counter]:
    """The strict majority among the answered samples (None answers are unjudged samples).

    Returns:
        ``(answer or None, counts)``; None when nothing was answered or the top answers tie.
    """
    counts = Counter(a for a in answers if a is not None)
    top = counts.most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None, counts
    return top[0][0], counts


# --- the judge -------------------------------------------------------------------------------


class ChatBackend(Protocol):
    """What the VLM judges need from a backend: one user turn (images, then text) -> the reply text.

    :class:`~dreamomni2.planner.openai.OpenAIPlanner` and :class:`~dreamomni2.planner.qwen.QwenPlanner` have it.
    """

    def chat(self, images: Sequence[Image.Image], text: str, temperature: float = 0) -> str: ...


def _call_errors() -> tuple[type[BaseException], ...]:
    from dreamomni2.planner.base import PlannerError

    return (PlannerError, OSError, TimeoutError, RuntimeError, ValueError)


def fit_image(image: Image.Image, max_area: int | None) -> Image.Image:
    """``image`` in RGB, shrunk (never enlarged) to at most ``max_area`` pixels with the project's resize."""
    from dreamomni2.resize import output_size, resize_image

    image = image.convert("RGB") if image.mode != "RGB" else image
    if max_area and image.width * image.height > max_area:
        return resize_image(image, output_size(image.width, image.height, max_area=max_area, multiple_of=16))
    return image


def load_backend(backend: ChatBackend) -> None:
    """Load a local backend's model now (a backend with a ``load`` method); remote ones have nothing to load."""
    load = getattr(backend, "load", None)
    if callable(load):
        load()


def ask(backend: ChatBackend, images: Sequence[Image.Image], text: str, temperature: float) -> tuple[str | None, str]:
    """One call: ``(reply, "")``, or ``(None, why)`` when the call failed (timeout, HTTP error, model error)."""
    try:
        return backend.chat(images, text, temperature=temperature), ""
    except _call_errors() as e:
        why = " ".join(str(e).replace("Planner endpoint", "judge endpoint").split())
        return None, f"call failed: {why[:300]}"


def raw_text(replies: Sequence[str | None]) -> str:
    """The replies, separated by ``\\n---\\n`` (a failed call as ``<no reply>``), cut to :data:`MAX_RAW_CHARS`."""
    text = "\n---\n".join("<no reply>" if r is None else r for r in replies)
    return text if len(text) <= MAX_RAW_CHARS else text[: MAX_RAW_CHARS - 3] + "..."


def sample_temperature(samples: int, temperature: float | None) -> float:
    """The temperature to ask at: the given one, else 0 (greedy) for one sample and 0.7 for a vote."""
    if temperature is not None:
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        return float(temperature)
    return 0.0 if samples == 1 else 0.7


def check_samples(samples: int) -> int:
    """``samples`` as an int in 1..:data:`dreamomni2.limits.MAX_JUDGE_SAMPLES` (ValueError otherwise)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= limits.MAX_JUDGE_SAMPLES:
        raise ValueError(f"samples must be an integer in 1..{limits.MAX_JUDGE_SAMPLES}, got {samples!r}")
    return samples


class VLMJudge(Judge):
    """Pointwise pass/fail judge asking a VLM backend.

    Args:
        backend: anything with ``chat(images, text, temperature)`` (see :class:`ChatBackend`).
        name: the judge's name (e.g. ``vlm:openai:http://127.0.0.1:8000/v1#qwen``).
        samples: answers per case for the majority vote (1..:data:`~dreamomni2.limits.MAX_JUDGE_SAMPLES`).
        temperature: sampling temperature (default: 0 for one sample, 0.7 for several).
        max_area: images above this many pixels are shrunk before sending (None: sent as they are).
    """

    kind = "pass"

    def __init__(self, backend: ChatBackend, name: str = "vlm", samples: int = 1, temperature: float | None = None,
                 max_area: int | None = 1024 * 1024) -> None:  # fmt: skip
        self.backend = backend
        self.name = name
        self.samples = check_samples(samples)
        self.temperature = sample_temperature(self.samples, temperature)
        self.max_area = max_area

    def prepare(self) -> VLMJudge:
        """Load a local backend's model now (an unloadable folder is fatal, not one unjudged case per case)."""
        load_backend(self.backend)
        return self

    def judge(self, case: SuiteCase, output: Image.Image, inputs: Sequence[Image.Image]) -> Verdict:
        """Ask ``samples`` times; the strict majority of the answered samples decides.

        Returns:
            ``success`` True/False with the judge's reason, or an unjudged verdict naming each sample's problem.
        """
        images = [fit_image(im, self.max_area) for im in [*inputs, output]]
        text = pointwise_prompt(case.task, len(inputs), case.instruction)
        replies: list[str | None] = []
        parsed: list[Parsed] = []
        for _ in range(self.samples):
            reply, failure = ask(self.backend, images, text, self.temperature)
            replies.append(reply)
            parsed.append(parse_answer(reply) if reply is not None else Parsed(None, "", failure))
        return self._verdict(case.id, parsed, replies)

    def _verdict(self, case_id: str, parsed: list[Parsed], replies: list[str | None]) -> Verdict:
        answer, counts = majority([p.answer for p in parsed])
        problems = [p.problem for p in parsed if p.problem]
        scores = {"yes": float(counts["yes"]), "no": float(counts["no"]), "unjudged": float(len(problems))}
        raw = raw_text(replies)
        if answer is None:
            why = f"tie {counts['yes']} yes / {counts['no']} no" if counts else "; ".join(dict.fromkeys(problems))
            v = unjudged(case_id, self.name, why, raw)
            v.scores = scores if self.samples > 1 else {}
            return v
        reason = next((p.reason for p in parsed if p.answer == answer and p.reason), "")
        if self.samples > 1:
            reason = f"{counts[answer]} of {self.samples} samples say {answer}" + (f": {reason}" if reason else "")
        return Verdict(id=case_id, judge=self.name, judged=True, success=answer == "yes",
                       score=float(answer == "yes"), scores=scores if self.samples > 1 else {},
                       reason=reason, raw=raw)  # fmt: skip


def make_backend(arg: str, **options: Any) -> ChatBackend:
    """The planner backend for ``qwen:DIR`` or ``openai:URL[#model]`` (``vlm:`` already stripped).

    Raises:
        ValueError: another backend name. FileNotFoundError: a missing Qwen folder.
    """
    from dreamomni2.planner.factory import make_planner

    name = arg.partition(":")[0]
    if name not in ("qwen", "openai") or ":" not in arg:
        raise ValueError(f"bad judge spec 'vlm:{arg}'; use vlm:qwen:DIR or vlm:openai:URL[#model]")
    return make_planner(arg, **options)


def make_vlm_judge(arg: str, samples: int = 1, temperature: float | None = None, max_area: int | None = 1024 * 1024,
                   max_new_tokens: int = 128, **options: Any) -> VLMJudge:  # fmt: skip
    """``vlm:ARG`` -> a :class:`VLMJudge` over the planner backend ``ARG`` (``qwen:DIR`` or ``openai:URL[#model]``).

    Args:
        arg: the spec after ``vlm:``.
        samples, temperature, max_area: see :class:`VLMJudge`.
        max_new_tokens: reply budget (a verdict needs a few dozen tokens).
        **options: backend options: ``device``, ``dtype`` (qwen); ``timeout``, ``api_key`` (openai).
    """
    backend = make_backend(arg, max_new_tokens=max_new_tokens, **options)
    return VLMJudge(backend, name=f"vlm:{arg}", samples=samples, temperature=temperature, max_area=max_area)
