"""The SIS API sources, as their hooks declare them: the one list of vendors.

Every module of the package calpads_airflow.hooks is imported (``hook_classes``), and every SisApiHook
subclass with a ``source`` is a source (a hook defined elsewhere, e.g. a district's own, registers itself when its
module is imported). Everything per vendor derives from here: the valid ``[calpads] sis_source``
values, the default connection ids, the Airflow pools, the data-flow page's words, the provider
info's connection types and the source clients.

    python -m calpads_airflow.registry pools     # "<pool>\t<slots>\t<description>": per source, per LEA SIS
    python -m calpads_airflow.registry sources   # "<source>\t<conn_type>\t<default connection>"

(scripts/setup.sh and scripts/airflow-init.sh create the pools from the first.)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from calpads_airflow.hooks import hook_classes
from calpads_airflow.hooks.base import SisApiHook


def hooks() -> list[type[SisApiHook]]:
    """The vendor hook classes, one per source: this project's and those of ``[calpads] sis_hook_modules``."""
    return hook_classes()


def api_sources() -> tuple[str, ...]:
    """The ``[calpads] sis_source`` values that read a vendor API (``sql`` is the other one)."""
    return tuple(h.source for h in hooks())


def hook_for(source: str) -> type[SisApiHook]:
    """The hook class of an API source; ValueError naming the known sources otherwise."""
    found = {h.source: h for h in hooks()}
    if source not in found:
        raise ValueError(f"unknown SIS API source {source!r}; choose one of {', '.join(found)}")
    return found[source]


def pools() -> list[tuple[str, int, str]]:
    """(pool name, default slots, description) of every source: one pool per SIS keeps parallel tasks
    under the vendor's rate limit."""
    return [(h.pool_name(), h.pool_slots, f"SIS API calls: {h.hook_name}") for h in hooks()]


def all_pools() -> list[tuple[str, int, str]]:
    """The vendor pools above, plus one per SIS connection of the LEA file's LEAs (calpads_airflow.leas)."""
    from calpads_airflow.leas import pools as lea_pools

    return pools() + lea_pools()


def flow_words() -> dict[str, tuple[str, str]]:
    """Source -> (how it is reached, what it must be granted to read): the data-flow page's words."""
    return {h.source: (h.flow_system, h.read_permission) for h in hooks()}


def client_for(source: str, conn: Any) -> Any:
    """The source's client for an Airflow Connection (or any object with host/login/password/extra_dejson)."""
    return hook_for(source).client_for_connection(conn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calpads_airflow.registry", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["pools", "sources"])
    args = parser.parse_args(argv)
    if args.what == "pools":
        lines = [f"{name}\t{slots}\t{description}" for name, slots, description in all_pools()]
    else:
        lines = [f"{h.source}\t{h.conn_type}\t{h.default_conn_name}" for h in hooks()]
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
