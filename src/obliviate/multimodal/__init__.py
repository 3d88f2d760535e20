"""Vision-language (multimodal LLM) unlearning (docs/multimodal.md).

A vision-language model must forget a person both when asked with their photo (image+text) and
in text alone, as in MLLMU-Bench (Liu+ 2024, arXiv 2410.22108). Modules:

- :mod:`~obliviate.multimodal.portraits`: procedural synthetic portraits and their views;
- :mod:`~obliviate.multimodal.people`: the built-in fictitious people, their QA/MCQ/cloze items
  and the forget/test/retain/real sets;
- :mod:`~obliviate.multimodal.tiny`: the tiny LLaVA-style model and its processor;
- :mod:`~obliviate.multimodal.loading`: any Hugging Face vision-language model by name or folder;
- :mod:`~obliviate.multimodal.lm`: the image bank and :class:`~obliviate.multimodal.lm.VisionLM`,
  which lets the text engine (scoring, generation, the trainer) run a vision-language model;
- :mod:`~obliviate.multimodal.encoding`: items with images to token ids for that engine.
"""
