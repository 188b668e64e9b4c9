"""Throughput of the SPRG pull over the PowerSchool API (local server), and what a resume repeats.

    python bench/bench_api_pull.py [--students 50000] [--page-size 1000]

Generates the demo district into a temporary SQLite SIS, serves it with the test
PowerSchool server on 127.0.0.1, and reports:
- records/s of a full pull (every record of every table fetched, over HTTP, with
  the page checkpoint written);
- after a failure on a page in the middle of STUDENTS, how many requests the
  retried pull repeats (pages fetched by both attempts) and how many it makes.
Prints counts and timings only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from calpads.demo.generator import generate_district  # noqa: E402
from calpads.extracts.common import program_set  # noqa: E402
from calpads.layouts import load_layout  # noqa: E402
from calpads.run_scope import RunScope  # noqa: E402
from calpads.sources.api_common import ApiSourceError, RetryPolicy  # noqa: E402
from calpads.sources.powerschool_api import PowerSchoolClient, PowerSchoolSettings  # noqa: E402
from calpads.sources.sprg_frames import client_sprg_pull  # noqa: E402
from tests.integration.vendor_servers.common import Fault  # noqa: E402
from tests.integration.vendor_servers.powerschool import PowerSchoolServer  # noqa: E402


def pages(server: PowerSchoolServer) -> list[tuple[str, int]]:
    return [(e.path.rsplit("/", 1)[-1], int(e.query["page"])) for e in server.requests("/ws/schema/table/", status=200)
            if "page" in e.query]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=50_000)
    ap.add_argument("--page-size", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="calpads-bench-") as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/sis.db")
        t0 = time.perf_counter()
        generate_district(engine, students=args.students, seed=3, dirty=0.02, attendance=False, log=lambda m: None)
        print(f"district: {args.students:,} students generated in {time.perf_counter() - t0:.1f} s")
        server = PowerSchoolServer(engine, "bench", "bench-secret", max_page_size=args.page_size).start()
        scope = RunScope.from_params("SPRG", {"academic_year": "2025-2026", "submission": "custom",
                                              "programs": ["101", "122", "144", "181", "191"]}, date(2026, 6, 30))
        codes = program_set(load_layout("SPRG"), scope)
        settings = PowerSchoolSettings(server.url, "bench", "bench-secret", page_size=args.page_size,
                                       policy=RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.05))
        try:
            client = PowerSchoolClient(settings)
            t0 = time.perf_counter()
            pull = client_sprg_pull(client, scope, codes, Path(tmp) / "run1")
            secs = time.perf_counter() - t0
            records = sum(len(s.load(s.fetched_pages, [])) for s in client.stores)
            n_req = len(server.log)
            print(f"full pull: {records:,} records in {n_req} requests, {secs:.1f} s = {records / secs:,.0f} records/s"
                  f" ({len(pull.students):,} students, {len(pull.programs):,} programs selected)")
            client.close()

            # A failure in the middle of STUDENTS, then the task retry.
            n_students = len(server.tables["students"])
            mid = max(1, (n_students // args.page_size) * 4 // 5)
            server.clear_log()
            server.faults.append(Fault("/ws/schema/table/students", status=500, page=mid, times=10))
            client = PowerSchoolClient(settings)
            try:
                client_sprg_pull(client, scope, codes, Path(tmp) / "run2")
            except ApiSourceError:
                pass
            first = set(pages(server))
            server.faults.clear()
            server.clear_log()
            t0 = time.perf_counter()
            client = PowerSchoolClient(settings)
            client_sprg_pull(client, scope, codes, Path(tmp) / "run2")
            secs = time.perf_counter() - t0
            second = pages(server)
            repeated = first & set(second)
            print(f"resume after a failure on STUDENTS page {mid} of {-(-n_students // args.page_size)}: "
                  f"{len(second)} page requests ({len(server.log)} requests in all, {secs:.1f} s); "
                  f"pages fetched by both attempts: {len(repeated)}; first page asked: "
                  f"{min((p for t, p in second if t == 'students'), default=None)} of STUDENTS")
            client.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
