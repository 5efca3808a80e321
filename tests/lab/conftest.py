"""Fixtures for the NAT lab tests: skip (with the reason) where a lab cannot run, remove the
leftovers of crashed runs once per session, and close every lab a test made.

Rule: lab tests use the prefix "hpt", so they never touch a lab a person left running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from holepunch.lab import Lab, LabUnavailable, cleanup_stale, netns

PREFIX = "hpt"


@pytest.fixture(scope="session")
def lab_env() -> Iterator[None]:
    """Skip unless this is Linux, we are root and `ip`, `nft` exist; clean stale test labs."""
    try:
        netns.check_environment(("ip", "nft", "sh"))
    except LabUnavailable as exc:
        pytest.skip(str(exc))
    cleanup_stale(PREFIX)
    yield
    cleanup_stale(PREFIX)


@pytest.fixture
def prefix() -> str:
    """The name prefix of test labs."""
    return PREFIX


@pytest.fixture
def make_lab(lab_env: None) -> Iterator[Callable[..., Lab]]:
    """`make_lab({"A": "symmetric"}, **options)` -> a started lab, closed after the test."""
    labs: list[Lab] = []

    def make(sites: Mapping[str, str], **options: Any) -> Lab:
        lab = Lab(sites, prefix=PREFIX, **options)
        labs.append(lab)
        return lab.start()

    yield make
    for lab in labs:
        lab.close()
