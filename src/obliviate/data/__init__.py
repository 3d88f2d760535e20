"""Unlearning requests, loaders, prompt templates, collators and the built-in benchmark."""

from obliviate.data.types import DataError, QAItem, UnlearningRequest

__all__ = ["DataError", "QAItem", "UnlearningRequest"]
