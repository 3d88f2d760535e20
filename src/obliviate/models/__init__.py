"""Model and tokenizer loading (hub name or local path) and the tiny CPU default."""

from obliviate.models.loading import load_model, load_tokenizer, model_fingerprint

__all__ = ["load_model", "load_tokenizer", "model_fingerprint"]
