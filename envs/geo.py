"""Packaged geography for world-map renders: land outlines and Azure region coordinates.

Both read files of ``envs/data`` (see ``SOURCES.md`` there) through :mod:`importlib.resources`, once per
process; nothing is downloaded. Coordinates are WGS84 degrees: longitude in [-180, 180] (east positive),
latitude in [-90, 90] (north positive).
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
from importlib import resources

import numpy as np
from numpy.typing import NDArray

LAND_FILE = "land_110m.npz"
COORDINATES_FILE = "region_coordinates.csv"
COORDINATE_COLUMNS = ("region", "latitude", "longitude", "city")


class RegionCoordinates(dict[str, tuple[float, float]]):
    """Region name -> ``(latitude, longitude)`` in degrees; a missing region raises a ``KeyError`` that says so."""

    def __missing__(self, region: str) -> tuple[float, float]:
        raise KeyError(
            f"region {region!r} has no coordinates in envs/data/{COORDINATES_FILE} "
            f"(it lists {len(self)} Azure regions, e.g. {', '.join(sorted(self)[:3])}): add a row for it"
        )


def land_rings() -> list[NDArray[np.float64]]:
    """Natural Earth 1:110m land outline: one closed ``[n, 2]`` array of (longitude, latitude) degrees per ring.

    The exterior ring of every country polygon (Antarctica included), each closed (last vertex = first).
    The arrays are read-only and shared between calls; the list is a fresh copy.
    """
    return list(_land_rings())


def region_coordinates() -> RegionCoordinates:
    """Azure region name -> ``(latitude, longitude)`` in degrees, as Azure publishes them (city level).

    A fresh copy each call; looking up a region that the file lacks raises a ``KeyError`` naming it.
    """
    return RegionCoordinates(_region_coordinates())


@functools.cache
def _land_rings() -> tuple[NDArray[np.float64], ...]:
    data = (resources.files("envs") / "data" / LAND_FILE).read_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        xy = np.asarray(npz["xy"], dtype=np.float64)
        offsets = np.asarray(npz["offsets"], dtype=np.int64)
    xy.setflags(write=False)
    return tuple(xy[start:stop] for start, stop in itertools.pairwise(offsets))


@functools.cache
def _region_coordinates() -> dict[str, tuple[float, float]]:
    text = (resources.files("envs") / "data" / COORDINATES_FILE).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COORDINATE_COLUMNS:
        raise ValueError(f"envs/data/{COORDINATES_FILE}: expected the columns {COORDINATE_COLUMNS}")
    return {row["region"]: (float(row["latitude"]), float(row["longitude"])) for row in reader}
