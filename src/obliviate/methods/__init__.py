"""Unlearning methods. Importing this package registers every method family.

Each family is one module; a new method is one file (or one preset) plus its registration.
"""

from obliviate.methods import gradient, preference, representation, retain, whp  # noqa: F401  (registration)
from obliviate.methods import distillation, saliency, sisa, task_vector  # noqa: F401,E402  (issue 3 part B)
from obliviate.methods import editing, inference  # noqa: F401,E402  (issue 4: editing, inference-time)
