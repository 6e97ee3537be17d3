"""A tiny procedural world for DreamOmni2-style multimodal editing and generation.

``dreamomni2.mini.world`` renders single-object scenes and samples instruction cases (edit / generate,
concrete / abstract); ``dreamomni2.mini.analyzer`` reads rendered or generated images back into attributes and
scores them against a case's target (the mini counterpart of the paper's VLM judge). Only numpy and Pillow are
needed; nothing is imported here eagerly.
"""
