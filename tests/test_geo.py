"""Packaged geography (envs/geo.py): the land outline and the coordinates of every region a scenario names."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from envs import Scenario
from envs.geo import COORDINATES_FILE, LAND_FILE, land_rings, region_coordinates
from envs.spec import NAMED_SCENARIOS, data_dir

SCENARIOS = ("default", "contended", "hubs", "flashcrowd", "residency", "carbon", "global", "shift")


def test_the_land_file_loads_without_pickle() -> None:
    with np.load(data_dir() / LAND_FILE, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["offsets", "xy"]
        xy, offsets = npz["xy"], npz["offsets"]
    assert xy.dtype == np.float32 and xy.ndim == 2 and xy.shape[1] == 2
    assert offsets.dtype == np.int32 and offsets[0] == 0 and offsets[-1] == len(xy)
    assert np.all(np.diff(offsets) >= 4)  # a closed ring has at least a triangle and its repeated first vertex
    assert (data_dir() / LAND_FILE).stat().st_size < 250_000


def test_land_rings_are_closed_and_on_the_globe() -> None:
    rings = land_rings()
    assert len(rings) >= 150
    for ring in rings:
        assert ring.dtype == np.float64 and ring.ndim == 2 and ring.shape[1] == 2
        np.testing.assert_array_equal(ring[0], ring[-1])  # every ring is closed
        assert np.all((ring[:, 0] >= -180) & (ring[:, 0] <= 180)), "longitude out of [-180, 180]"
        assert np.all((ring[:, 1] >= -90) & (ring[:, 1] <= 90)), "latitude out of [-90, 90]"
    assert not rings[0].flags.writeable  # the cached arrays are shared: read-only
    assert land_rings() is not land_rings()  # a fresh list each call


def test_every_listed_region_has_valid_coordinates() -> None:
    coords = region_coordinates()
    with open(data_dir() / COORDINATES_FILE, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["region"] for r in rows] == sorted(coords) and len(rows) == len(coords)  # sorted, no duplicate
    for row in rows:
        lat, lon = coords[row["region"]]
        assert -90 <= lat <= 90 and -180 <= lon <= 180, row
        assert row["city"], row
        assert all(len(row[c].partition(".")[2]) <= 4 for c in ("latitude", "longitude")), row


def test_every_region_of_the_packaged_data_has_coordinates() -> None:
    coords = region_coordinates()
    with open(data_dir() / "azure_interregion_rtt_p50_ms.csv", newline="", encoding="utf-8") as f:
        rtt_regions = {row[0] for row in list(csv.reader(f))[1:]}
    with open(data_dir() / "cloud_region_metadata_jurisdiction.csv", newline="", encoding="utf-8") as f:
        azure_regions = {row["region"] for row in csv.DictReader(f) if row["provider"] == "azure"}
    assert rtt_regions and azure_regions
    assert sorted((rtt_regions | azure_regions) - set(coords)) == []


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_region_a_scenario_names_has_coordinates(name: str) -> None:
    assert name in NAMED_SCENARIOS
    scenario = Scenario.load(name)
    named = set(scenario.region_names)
    named |= {node["location"] for node in scenario.spec["service_nodes"].values()}
    named |= {node["home"] for node in scenario.spec["service_nodes"].values()}
    named |= {r for model in scenario.spec["models"].values() for r in model.get("warm_regions", [])}
    assert sorted(named - set(region_coordinates())) == []


@pytest.mark.parametrize(
    ("region", "lat_range", "lon_range"),
    [
        ("East US", (36, 38), (-80, -78)),  # Virginia
        ("Japan East", (35, 36.5), (139, 140.5)),  # Tokyo
        ("West Europe", (52, 53), (4, 5.5)),  # Netherlands
        ("Brazil South", (-24.5, -23), (-47.5, -46)),  # Sao Paulo
        ("Australia East", (-34.5, -33), (150.5, 152)),  # Sydney
        ("Southeast Asia", (1, 1.6), (103.5, 104.2)),  # Singapore
        ("Spain Central", (40, 41), (-4, -3)),  # Madrid (Azure's metadata has the longitude's sign flipped)
    ],
)
def test_spot_checks(region: str, lat_range: tuple[float, float], lon_range: tuple[float, float]) -> None:
    lat, lon = region_coordinates()[region]
    assert lat_range[0] <= lat <= lat_range[1] and lon_range[0] <= lon <= lon_range[1], (region, lat, lon)


def test_a_missing_region_is_named() -> None:
    with pytest.raises(
        KeyError, match=re.escape("'Atlantis North' has no coordinates in envs/data/region_coordinates.csv")
    ):
        region_coordinates()["Atlantis North"]
