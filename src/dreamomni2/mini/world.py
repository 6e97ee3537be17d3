"""The procedural mini world, in one namespace: a re-export of the modules it is split into.

The mini world (single-object 32x32 scenes, their renderer and DreamOmni2-style instruction cases) lives in
modules by concept, each importing only those below it:

* :mod:`dreamomni2.mini.groups` — task, category, kind and group names (``edit/concrete``...), group mixes;
* :mod:`dreamomni2.mini.scene` — the vocabulary, :class:`Obj`, :class:`Scene` and the renderer;
* :mod:`dreamomni2.mini.text` — instruction text: canonical prompts, paraphrases, irregular instructions;
* :mod:`dreamomni2.mini.cases` — :class:`Case` and the seeded sampler (:func:`sample_case`, :func:`make_cases`);
* :mod:`dreamomni2.mini.manifest` — cases to PNGs plus ``manifest.jsonl`` and back.

``from dreamomni2.mini.world import X`` keeps working for every name that was defined here before the split
(the private helpers too, imported ``as`` themselves); new code may import from the modules above directly.
"""

from __future__ import annotations

from dreamomni2.mini.cases import (
    MAX_IMAGES,
    Case,
    make_cases,
    sample_case,
)
from dreamomni2.mini.cases import _check_compose_refs as _check_compose_refs
from dreamomni2.mini.cases import _distinct_obj_scene as _distinct_obj_scene
from dreamomni2.mini.cases import _n_images as _n_images
from dreamomni2.mini.cases import _pick as _pick
from dreamomni2.mini.cases import _scene as _scene
from dreamomni2.mini.groups import CATEGORIES, GROUP_NAMES, GROUPS, KINDS, TASKS, group_name, group_weights
from dreamomni2.mini.manifest import read_cases, read_manifest, write_cases
from dreamomni2.mini.scene import (
    BACKGROUNDS,
    BAND,
    COLORS,
    DARKEN,
    LIGHTEN,
    OBJ_ATTRS,
    PATTERNS,
    RADIUS,
    SCENE_ATTRS,
    SHAPES,
    SIZES,
    VOCAB,
    Obj,
    Scene,
    pattern_color,
    pattern_mask,
    render,
    render_array,
    shape_mask,
    validate_scene,
)
from dreamomni2.mini.scene import _grid as _grid
from dreamomni2.mini.text import (
    ATTR_SYNONYMS,
    ATTR_WORD,
    IMAGE_WORDS,
    IRREGULAR_ATTR_SYNONYMS,
    OBJECT_WORDS,
    ORDINALS,
    PATTERN_ADJ,
    REF_STYLES,
    VALUE_SYNONYMS,
    canonical_prompt,
    irregular_instruction,
    irregular_ref,
    paraphrase_instruction,
)
from dreamomni2.mini.text import _article as _article
from dreamomni2.mini.text import _canonical_word as _canonical_word
from dreamomni2.mini.text import _join as _join
from dreamomni2.mini.text import _noun_phrase as _noun_phrase
from dreamomni2.mini.text import _sentence as _sentence

__all__ = [
    # groups
    "CATEGORIES", "GROUPS", "GROUP_NAMES", "KINDS", "TASKS", "group_name", "group_weights",
    # scene
    "BACKGROUNDS", "BAND", "COLORS", "DARKEN", "LIGHTEN", "OBJ_ATTRS", "PATTERNS", "RADIUS", "SCENE_ATTRS", "SHAPES",
    "SIZES", "VOCAB", "Obj", "Scene", "pattern_color", "pattern_mask", "render", "render_array", "shape_mask",
    "validate_scene",
    # text
    "ATTR_SYNONYMS", "ATTR_WORD", "IMAGE_WORDS", "IRREGULAR_ATTR_SYNONYMS", "OBJECT_WORDS", "ORDINALS",
    "PATTERN_ADJ", "REF_STYLES", "VALUE_SYNONYMS", "canonical_prompt", "irregular_instruction", "irregular_ref",
    "paraphrase_instruction",
    # cases
    "MAX_IMAGES", "Case", "make_cases", "sample_case",
    # manifest
    "read_cases", "read_manifest", "write_cases",
]  # fmt: skip
