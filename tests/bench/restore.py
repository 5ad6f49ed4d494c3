"""Restore of 50,000 documents into the Firestore emulator, against its own batched write rate.

One run, one emulator: a randomized 50,000-document dataset using every value type is written with
plain 500-write commits — one at a time, then with the restore's concurrency into a second project
— and the faster of the two is the baseline. Then: backup → verify → wipe → restore (default
mode, only-missing) → every document compared field by field, types included. Targets: restore
≤ 60 s and ≥ 70% of the baseline rate; 0 documents lost or changed.

    python -m tests.bench.restore [--documents 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx

from emulator.settings import StackSettings, load_stack_settings
from shared.backup.gapic import Database, FirestoreApi
from shared.backup.jobs import Backups
from shared.backup.restore import Restorer, Target
from shared.backup.sinks import open_sink
from shared.settings import LOCAL_HOST
from tests import dataset
from tests.bench.harness import backing

TARGET_S = 60.0
TARGET_RATIO = 0.7


def wipe(settings: StackSettings) -> None:
    httpx.delete(
        f"http://{LOCAL_HOST}:{settings.stack_firestore_port}/emulator/v1/projects/"
        f"{settings.project_id}/databases/(default)/documents",
        timeout=60,
    ).raise_for_status()


async def measure(settings: StackSettings, documents: int, sink_dir: Path) -> dict[str, object]:
    api = FirestoreApi(settings)
    db = Database(settings.project_id)
    writes = dataset.documents(documents, seed=2026, db=db)
    started = time.perf_counter()
    await dataset.write_all(api, db, writes, parallel=1)
    sequential = documents / (time.perf_counter() - started)
    other = Database("ngx-bench-baseline")
    copies = dataset.documents(documents, seed=2026, db=other)
    started = time.perf_counter()
    await dataset.write_all(api, other, copies, parallel=settings.restore_concurrency)
    parallel = documents / (time.perf_counter() - started)
    baseline = max(sequential, parallel)

    before = await dataset.snapshot(api, db)
    backups = Backups(settings.model_copy(update={"backup_sink": f"file://{sink_dir}"}))
    started = time.perf_counter()
    manifest = await backups.run()
    backup_s = time.perf_counter() - started
    started = time.perf_counter()
    verified = await backups.verify(manifest.backup_id)
    verify_s = time.perf_counter() - started
    wipe(settings)
    started = time.perf_counter()
    report = await Restorer(settings).restore(
        open_sink(f"file://{sink_dir}"), manifest.backup_id, Target(db)
    )
    restore_s = time.perf_counter() - started
    after = await dataset.snapshot(api, db)
    await api.close()
    lost = len(before.keys() - after.keys())
    changed = sum(1 for path in before if path in after and before[path] != after[path])
    rate = documents / restore_s
    return {
        "benchmark": "restore",
        "documents": documents,
        "baseline_sequential_docs_s": round(sequential),
        "baseline_parallel_docs_s": round(parallel),
        "restore_s": round(restore_s, 2),
        "restore_docs_s": round(rate),
        "ratio": round(rate / baseline, 3),
        "backup_s": round(backup_s, 2),
        "backup_bytes": manifest.bytes,
        "shards": len(manifest.shards),
        "verify_s": round(verify_s, 2),
        "verified": verified["ok"],
        "written": report["written"],
        "lost": lost,
        "changed": changed,
        "pass": restore_s <= TARGET_S
        and rate / baseline >= TARGET_RATIO
        and lost == changed == 0
        and verified["ok"],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=50_000)
    args = parser.parse_args()
    with backing(("firestore",)) as stack_settings, tempfile.TemporaryDirectory() as sink:
        settings = load_stack_settings(
            environment="test",
            firestore_emulator_host=f"{LOCAL_HOST}:{stack_settings.stack_firestore_port}",
            stack_firestore_port=stack_settings.stack_firestore_port,
        )
        result = asyncio.run(measure(settings, args.documents, Path(sink)))
    print(
        f"restore of {result['documents']:,} documents: {result['restore_s']} s "
        f"({result['restore_docs_s']:,} docs/s) vs the emulator's batched writes "
        f"{result['baseline_sequential_docs_s']:,} docs/s sequential, "
        f"{result['baseline_parallel_docs_s']:,} docs/s parallel → {result['ratio']:.0%} "
        f"(targets ≤ {TARGET_S:.0f} s, ≥ {TARGET_RATIO:.0%}); lost {result['lost']}, "
        f"changed {result['changed']}"
    )
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
