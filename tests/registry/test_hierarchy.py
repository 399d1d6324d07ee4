"""Materialized-path rules of the org hierarchy (pure)."""

from registry.hierarchy import child_path, depth_of, ids_of, parent_allowed


def test_paths_grow_by_id_and_give_depth_and_ids():
    county = child_path(None, "c")
    station = child_path(child_path(county, "t"), "s")
    assert station == "/c/t/s" and depth_of(station) == 2 and ids_of(station) == ["c", "t", "s"]


def test_only_the_one_plus_x_shape_is_allowed():
    assert parent_allowed("county", None) and not parent_allowed("county", "town")
    assert parent_allowed("town", "county") and parent_allowed("branch", "county")
    assert parent_allowed("station", "town") and parent_allowed("station", "branch")
    assert not parent_allowed("station", "county") and not parent_allowed("town", "town") and not parent_allowed("town", None)
