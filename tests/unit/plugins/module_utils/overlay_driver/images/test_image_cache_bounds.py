"""Which blobs a prune of the controller's cache removes, and the bounds as the task gives them."""

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.cache_bounds import (
    DAY, CacheBounds, CachedBlob)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError

NOW = 1800000000


def blob(name, size, days_ago, removable=True):
    return CachedBlob(name, size, NOW - days_ago * DAY, removable)


def test_age_removes_what_was_not_used_within_it():
    blobs = [blob("a", 10, 31), blob("b", 10, 29), blob("c", 10, 100, removable=False)]
    assert CacheBounds(max_age=30 * DAY).select(blobs, NOW) == ["a"]


def test_size_removes_the_least_recently_used_until_the_rest_fit_and_blobs_in_use_count():
    blobs = [blob("new", 100, 1), blob("old", 100, 5), blob("older", 100, 6), blob("used", 100, 9, removable=False)]
    assert CacheBounds(max_size=250).select(blobs, NOW) == ["older", "old"]
    assert CacheBounds(max_size=0).select(blobs, NOW) == ["older", "old", "new"]


def test_age_then_size():
    blobs = [blob("a", 100, 40), blob("b", 100, 3), blob("c", 100, 2)]
    assert CacheBounds(max_age=30 * DAY, max_size=150).select(blobs, NOW) == ["a", "b"]


def test_no_bound_removes_nothing():
    assert CacheBounds().unbounded
    assert CacheBounds().select([blob("a", 1 << 40, 10000)], NOW) == []


@pytest.mark.parametrize("age, size, expected", [
    (None, None, (None, None)), ("", "", (None, None)), (30, None, (30 * DAY, None)), ("0.5", None, (DAY / 2, None)),
    (0, "20G", (0, 20 << 30)), (None, 1000, (None, 1000)), (None, 0, (None, 0))])
def test_the_options_as_the_task_gives_them(age, size, expected):
    bounds = CacheBounds.from_options(age, size)
    assert (bounds.max_age, bounds.max_size) == expected


@pytest.mark.parametrize("age, size, named", [
    (-1, None, "controller_cache_max_age"), ("soon", None, "controller_cache_max_age"),
    (True, None, "controller_cache_max_age"), ("inf", None, "controller_cache_max_age"),
    ("nan", None, "controller_cache_max_age"), (None, "big", "controller_cache_max_size"),
    (None, -5, "controller_cache_max_size")])
def test_a_bad_bound_is_refused_naming_the_option_and_the_image(age, size, named):
    with pytest.raises(ImageError) as e:
        CacheBounds.from_options(age, size, "docker://r/app:v1")
    assert named in e.value.message and "docker://r/app:v1" in e.value.message
