"""The numeric dtypes a dataset spec allows, and the nearest of them for a foreign array's dtype."""

from __future__ import annotations

import numpy as np

# schemas/dataset_spec.schema.json allows these and "string"
NUMERIC_DTYPES = ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "bool")


def portable_dtype(dtype: np.dtype) -> np.dtype | None:
    """``dtype`` when the spec allows it, else float32 for floats, int64 for integers, None for the rest."""
    if dtype.name in NUMERIC_DTYPES:
        return dtype
    if dtype.kind == "f":
        return np.dtype("float32")
    if dtype.kind in "iu":
        return np.dtype("int64")
    return None
