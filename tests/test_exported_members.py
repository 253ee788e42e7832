"""``worker`` exports exactly its public names (httpx pins its surface the same way)."""

from __future__ import annotations

import worker


def test_all_lists_exactly_the_public_members():
    public = {name for name in vars(worker) if not name.startswith("_")}
    # Submodules become attributes of the package when they are imported; they are
    # reached as worker.<module>, not exported names.
    modules = {name for name in public if type(getattr(worker, name)).__name__ == "module"}
    assert set(worker.__all__) == public - modules


def test_every_exported_name_resolves():
    for name in worker.__all__:
        assert getattr(worker, name) is not None
