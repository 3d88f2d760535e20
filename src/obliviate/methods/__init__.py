"""Unlearning methods (docs/methods.md). Importing this package imports no method family.

Every built-in method, forget/retain term and wrapper is listed once, as a ``"module:attr"``
string, in :mod:`obliviate.registry`; a lookup imports only the module it names. A method is a
:class:`~obliviate.methods.base.MethodPreset` (its defaults) in its family module; docs/methods.md
walks through adding one.
"""
