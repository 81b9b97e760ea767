"""The manifest cache: dtypes survive the round trip, bad files are rebuilt, keys cover what a
manifest depends on."""

import pandas as pd
import pytest

from zooflow.validation import manifest_cache

KEY = {"module": "classification", "task_folder": "classification", "task_md5": "a" * 32,
       "data_checks": {"folder": "classification", "min_side": 8}}


def table():
    return pd.DataFrame({"path": ["a/1.jpg", "a/2.jpg"], "decodes": [True, False], "width": [64, 8],
                         "share": [0.5, float("nan")], "error": ["", "cannot decode"]})


class Counter:
    def __init__(self, make=table):
        self.calls, self.make = 0, make

    def __call__(self):
        self.calls += 1
        return self.make()


def test_a_cached_manifest_is_reused_with_its_dtypes(tmp_path):
    build = Counter()
    first = manifest_cache.cached_manifest(build, folder=tmp_path, **KEY)
    again = manifest_cache.cached_manifest(build, folder=tmp_path, **KEY)
    assert build.calls == 1
    pd.testing.assert_frame_equal(again, first, check_exact=True)  # bool stays bool, int64 stays int64
    assert [p.name for p in tmp_path.iterdir()] == [f"{manifest_cache.cache_key(**KEY)}.parquet"]  # no temp files


@pytest.mark.parametrize("change", [{"task_md5": "b" * 32}, {"module": "sentiment"}, {"task_folder": "other"},
                                    {"data_checks": {"folder": "classification", "min_side": 16}}])
def test_the_key_covers_what_the_manifest_depends_on(change):
    assert manifest_cache.cache_key(**{**KEY, **change}) != manifest_cache.cache_key(**KEY)


def test_the_format_version_is_part_of_the_key(monkeypatch):
    before = manifest_cache.cache_key(**KEY)
    monkeypatch.setattr(manifest_cache, "MANIFEST_FORMAT", manifest_cache.MANIFEST_FORMAT + 1)
    assert manifest_cache.cache_key(**KEY) != before


@pytest.mark.parametrize("garbage", [b"", b"not parquet at all", b"PAR1\x00\x01truncated"])
def test_an_unreadable_cache_file_is_rebuilt_not_fatal(tmp_path, garbage):
    path = tmp_path / f"{manifest_cache.cache_key(**KEY)}.parquet"
    path.write_bytes(garbage)
    build = Counter()
    result = manifest_cache.cached_manifest(build, folder=tmp_path, **KEY)
    assert build.calls == 1
    pd.testing.assert_frame_equal(result, table())
    pd.testing.assert_frame_equal(pd.read_parquet(path), table())  # rewritten whole


def test_a_table_parquet_cannot_hold_is_returned_uncached(tmp_path):
    mixed = Counter(lambda: pd.DataFrame({"path": ["x"], "value": pd.Series([object()], dtype=object)}))
    result = manifest_cache.cached_manifest(mixed, folder=tmp_path, **KEY)
    assert len(result) == 1
    assert list(tmp_path.iterdir()) == []  # neither a cache file nor a temporary one left behind
