"""The diffusion-erasure entries of the metric catalogue (:mod:`obliviate.metrics.catalogue`):
the metrics :mod:`obliviate.diffusion.evaluate` records on the built-in shapes benchmark
(docs/diffusion.md). Kept apart only for length; the rules of the catalogue apply.
"""

from __future__ import annotations

from obliviate.metrics.base import MetricDef

IMAGES = "images"  # generated images, classified by the judge
FEATURES = "features"  # judge features of generated and real images
CANVAS = "Zhang+ 2024, arXiv 2402.11846 (UnlearnCanvas), evaluation metrics"
_DIFF = "obliviate.diffusion.metrics"
_DEFS: list[MetricDef] = []


def _diff(
    name: str,
    direction: str,
    description: str,
    paper: str,
    function: str,
    per_item: str | None,
    inputs: tuple[str, ...],
) -> None:
    _DEFS.append(
        MetricDef(name, description, paper, direction, function, per_item, 1, None, inputs)  # type: ignore[arg-type]
    )


_diff(
    "unlearning_accuracy",
    "higher",
    "UA: share of the erased concept's images the judge does not assign to it",
    CANVAS,
    f"{_DIFF}:unlearning_accuracy",
    None,
    (IMAGES,),
)
_diff(
    "in_domain_retain_accuracy",
    "higher",
    "IRA: the erased concept's judge head's accuracy on the other concepts' images",
    CANVAS,
    f"{_DIFF}:retain_accuracy",
    None,
    (IMAGES,),
)
_diff(
    "cross_domain_retain_accuracy",
    "higher",
    "CRA: the other judge head's accuracy on every prompt's images",
    CANVAS,
    f"{_DIFF}:retain_accuracy",
    None,
    (IMAGES,),
)
_diff(
    "cross_domain_accuracy_forget_prompts",
    "higher",
    "the other judge head's accuracy on the erased concept's prompts only",
    CANVAS,
    f"{_DIFF}:retain_accuracy",
    None,
    (IMAGES,),
)
_diff(
    "cross_domain_accuracy_retain_prompts",
    "higher",
    "the other judge head's accuracy on the retained prompts only",
    CANVAS,
    f"{_DIFF}:retain_accuracy",
    None,
    (IMAGES,),
)
_diff(
    "fid",
    "lower",
    "FID-style Fréchet distance of judge features, retained prompts vs real drawings",
    "Heusel+ 2017, arXiv 1706.08500, FID",
    f"{_DIFF}:fid_from_features",
    f"{_DIFF}:frechet_distance",
    (FEATURES,),
)
_diff(
    "kid",
    "lower",
    "KID (unbiased MMD², cubic kernel) of judge features vs real drawings",
    "Bińkowski+ 2018, arXiv 1801.01401, KID",
    f"{_DIFF}:kid_from_features",
    None,
    (FEATURES,),
)


DIFFUSION_DEFINITIONS: tuple[MetricDef, ...] = tuple(_DEFS)
