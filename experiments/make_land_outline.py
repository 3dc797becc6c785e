"""Build ``envs/data/land_110m.npz``, the land outline of the world-map render, from Natural Earth.

A one-off, re-runnable build step, not part of the package's run time: it reads the Natural Earth 1:110m
admin-0 countries polygons (public domain, https://www.naturalearthdata.com) that the geopandas 0.14.4
wheel bundles as ``geopandas/datasets/naturalearth_lowres/naturalearth_lowres.shp``, straight from the
wheel (no extraction, no network), and writes the exterior ring of every country polygon.

It needs ``pyshp`` (``pip install pyshp``), a build-time tool only: geoinfer never imports it at run time
and does not depend on it. Usage::

    python -m experiments.make_land_outline --wheel geopandas-0.14.4-py3-none-any.whl \
        --out envs/data/land_110m.npz

Output (``np.load(path, allow_pickle=False)`` reads it; nothing is pickled):

* ``xy``: ``float32 [N, 2]``, the vertices of every ring, ``(longitude, latitude)`` in degrees (WGS84);
* ``offsets``: ``int32 [P + 1]``, ring ``i`` is ``xy[offsets[i]:offsets[i + 1]]``.

Every ring is closed (its last vertex repeats its first). Holes (interior rings) are dropped: a land
outline needs the exterior only. Antarctica is kept. Rings under ``--min-area`` square degrees are dropped
(0 keeps all). The output is byte-for-byte reproducible: the zip entries carry a fixed timestamp.
"""

from __future__ import annotations

import argparse
import io
import itertools
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

SHAPEFILE = "geopandas/datasets/naturalearth_lowres/naturalearth_lowres"  # path inside the wheel, no suffix
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip entry timestamp, so that a rerun writes identical bytes


def signed_area(ring: NDArray[np.float64]) -> float:
    """Shoelace area of a closed ``[n, 2]`` ring, square degrees: negative when clockwise."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


def read_rings(wheel: Path) -> list[NDArray[np.float64]]:
    """The rings of every polygon part of the countries shapefile inside ``wheel``, each closed ``[n, 2]``."""
    try:
        import shapefile  # pyshp: a build-time tool, never a run-time dependency of geoinfer
    except ImportError as exc:  # pragma: no cover - depends on the build machine
        raise SystemExit("this build step needs pyshp: pip install pyshp") from exc
    with zipfile.ZipFile(wheel) as zf:
        files = {ext: io.BytesIO(zf.read(f"{SHAPEFILE}.{ext}")) for ext in ("shp", "shx", "dbf")}
    rings: list[NDArray[np.float64]] = []
    with shapefile.Reader(shp=files["shp"], shx=files["shx"], dbf=files["dbf"]) as reader:
        for shape in reader.iterShapes():
            points = np.asarray(shape.points, dtype=np.float64)
            bounds = [*shape.parts, len(points)]
            for start, stop in itertools.pairwise(bounds):
                ring = points[start:stop, :2]
                if not np.array_equal(ring[0], ring[-1]):
                    ring = np.vstack([ring, ring[:1]])
                rings.append(ring)
    return rings


def exterior_rings(rings: list[NDArray[np.float64]], min_area: float) -> list[NDArray[np.float64]]:
    """The exterior rings (clockwise in a shapefile; holes run counter-clockwise) of at least ``min_area``."""
    return [r for r in rings if signed_area(r) < 0 and -signed_area(r) >= min_area]


def pack(rings: list[NDArray[np.float64]]) -> dict[str, NDArray[Any]]:
    """``xy`` (float32 lon/lat vertices of all rings) and ``offsets`` (int32 ring bounds, ``P + 1``)."""
    sizes = [len(r) for r in rings]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    xy = np.clip(np.concatenate(rings), [-180.0, -90.0], [180.0, 90.0]).astype(np.float32)
    return {"xy": xy, "offsets": offsets}


def write_npz(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    """An ``.npz`` as :func:`numpy.savez_compressed` writes it, but with fixed entry timestamps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help="the geopandas 0.14.4 wheel (.whl)")
    parser.add_argument("--out", type=Path, default=Path("envs/data/land_110m.npz"), help="the .npz to write")
    parser.add_argument("--min-area", type=float, default=0.0, help="drop rings smaller than this (deg^2)")
    args = parser.parse_args(argv)
    rings = read_rings(args.wheel)
    kept = exterior_rings(rings, args.min_area)
    arrays = pack(kept)
    write_npz(args.out, arrays)
    print(
        f"{args.out}: {len(kept)} exterior rings of {len(rings)} rings, {len(arrays['xy'])} vertices, "
        f"{args.out.stat().st_size / 1024:.1f} KiB"
    )


if __name__ == "__main__":
    main()
