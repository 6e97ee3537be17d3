"""The paper's data pipeline (DreamOmni2 section 2).

Stage 1, pairs sharing an object or attribute: :mod:`dreamomni2.synth.mixing` (the feature-mixing attention
processor for FLUX) and :mod:`dreamomni2.synth.pairs` (prompt files -> pairs, ``dreamomni2 synth pairs``). The
modules are imported where used; importing this package loads nothing heavy.
"""
