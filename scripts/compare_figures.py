"""Compare the figure tables of two ``figures.gpkg`` files (before and after a change).

Used to show that a refactoring changes no figure: run ``make demo`` (or
``gis demo --out D --maps M``) on the old and on the new code, then::

    python scripts/compare_figures.py OLD/figures.gpkg NEW/figures.gpkg

Every layer and table is compared row by row after sorting by its key:
numbers to a relative 1e-9, everything else exactly. Exit 0 when they are the
same, 1 with the differences listed otherwise.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pyogrio

KEYS = {
    "parcel_pieces": ["parcel_id", "project_id"],
    "project_figures": ["project_id"],
    "district_figures": ["district"],
}


def read(path: str, layer: str) -> pd.DataFrame:
    df = pyogrio.read_dataframe(path, layer=layer, read_geometry=False)
    keys = [k for k in KEYS.get(layer, []) if k in df.columns] or list(df.columns[:1])
    return df.sort_values(keys).reset_index(drop=True)


def differences(old: str, new: str) -> list[str]:
    """Human-readable differences between the figure tables of two files."""
    out: list[str] = []
    layers_old = {name for name, _ in pyogrio.list_layers(old)}
    layers_new = {name for name, _ in pyogrio.list_layers(new)}
    if layers_old != layers_new:
        out.append(f"layers differ: {sorted(layers_old)} vs {sorted(layers_new)}")
    for layer in sorted(layers_old & layers_new):
        a, b = read(old, layer), read(new, layer)
        if list(a.columns) != list(b.columns):
            out.append(f"{layer}: columns differ: {list(a.columns)} vs {list(b.columns)}")
            continue
        if len(a) != len(b):
            out.append(f"{layer}: {len(a)} rows vs {len(b)}")
            continue
        for col in a.columns:
            x, y = a[col], b[col]
            if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
                same = np.isclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-9, atol=0, equal_nan=True)
            else:
                same = (x.astype(str) == y.astype(str)).to_numpy()
            if not same.all():
                i = int(np.flatnonzero(~same)[0])
                out.append(f"{layer}.{col}: {int((~same).sum())} rows differ, e.g. row {i}: {x.iloc[i]!r} vs {y.iloc[i]!r}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    diffs = differences(*argv)
    for line in diffs:
        print(line)
    print("same figures" if not diffs else f"{len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
