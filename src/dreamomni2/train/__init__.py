"""Multi-reference LoRA / full fine-tuning of FLUX.1-Kontext-architecture models with the inference ids.

Modules: ``config`` (YAML -> dataclasses), ``data`` (manifest, checks, buckets), ``cache``
(on-disk latents and text embeddings), ``loss`` (flow matching, timestep sampling),
``checkpoint`` (atomic saves, exact resume), ``loop`` (the trainer).
"""
