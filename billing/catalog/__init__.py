"""The price catalog: plans, model list prices, Flow coefficients and window caps.

Data lives in a versioned YAML file (``catalog.yaml``); a request is priced by the version
in effect at its ``started_at``. Every number the plan documents do not give is marked with
an ``assumption:`` note in the file.
"""

from billing.catalog.loader import default_catalog_path, load_catalog
from billing.catalog.model import (
    Catalog,
    CatalogVersion,
    LilacPlan,
    ModelPrice,
    ZenmuxPlan,
)

__all__ = [
    "Catalog",
    "CatalogVersion",
    "LilacPlan",
    "ModelPrice",
    "ZenmuxPlan",
    "default_catalog_path",
    "load_catalog",
]
