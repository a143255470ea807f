"""Contact import throughput: a generated CSV through the product's import path (the Importer
actor, parallel Ray tasks parsing and normalising chunks, COPY into staging, one INSERT … ON
CONFLICT per chunk with dedupe and DNC flags) — against the rate at which raw COPY writes the
same rows into a table shaped like `contacts` in the same database (this machine's limit).

    python bench/import.py [--contacts 1000000] [--dnc 100000] [--parallel N]

The file: US, UK, German, French, Australian and Indian numbers in national and international
forms, two custom attributes, 1 % bad rows (invalid numbers, bad e-mail, no id, wrong field
count), 2 % duplicate external ids; the DNC list holds 100,000 addresses, a fifth of them
numbers of the file. The last line printed is one JSON object: contacts_per_s,
copy_rows_per_s, ratio, ...
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import phonenumbers  # noqa: E402
import ray  # noqa: E402

from pom_actors import names  # noqa: E402
from pom_actors.config import Settings  # noqa: E402
from pom_actors.runtime import Runtime  # noqa: E402
from pom_actors.store import catalog  # noqa: E402
from pom_actors.store.imports import create_import  # noqa: E402

HEADER = "external_id,first_name,last_name,phone1,phone2,email,segment,balance\n"


def _us_area_codes() -> list[int]:
    return [a for a in range(201, 990) if phonenumbers.is_valid_number(phonenumbers.parse(f"+1{a}2345678"))]


def generate(path: Path, n: int, seed: int = 7) -> list[str]:
    """Write the CSV; returns the E.164 form of some of its numbers (for the DNC list)."""
    rnd = random.Random(seed)
    areas = _us_area_codes()
    e164 = []
    with open(path, "w", newline="") as f:
        f.write(HEADER)
        buf = []
        for i in range(n):
            r = rnd.random()
            if r < 0.45:
                a, x, s = rnd.choice(areas), rnd.randint(200, 999), rnd.randint(0, 9999)
                phone, norm = f"({a}) {x}-{s:04d}", f"+1{a}{x}{s:04d}"
            elif r < 0.75:
                a, s = 7000 + rnd.choice((4, 5, 8, 9)) * 100 + rnd.randint(0, 99), rnd.randint(0, 999999)
                phone, norm = f"+44 {a} {s:06d}", f"+44{a}{s:06d}"
            elif r < 0.85:
                s = rnd.randint(10**7, 10**8 - 1)
                phone, norm = f"+49 30 {s}", f"+4930{s}"
            elif r < 0.93:
                s = rnd.randint(0, 8) * 10**7 + rnd.randint(0, 10**7 - 1)
                phone, norm = f"+33 6 {s:08d}", f"+336{s:08d}"
            elif r < 0.97:
                s = rnd.choice((0, 1, 2, 3, 5, 6, 7, 8)) * 10**7 + rnd.randint(0, 10**7 - 1)
                phone, norm = f"+61 4{s:08d}", f"+614{s:08d}"
            else:
                s = rnd.randint(10**8, 10**9 - 1)
                phone, norm = f"+91 9{s}", f"+919{s}"
            if i % 5 == 0:
                e164.append(norm)
            eid = f"C{i:08d}" if not (i > 100 and rnd.random() < 0.02) else f"C{rnd.randint(0, i - 1):08d}"
            email = f"user{i}@example.com"
            phone2 = ""
            if rnd.random() < 0.01:                          # 1 % bad rows
                kind = rnd.randint(0, 3)
                if kind == 0:
                    phone = "+1 212 55"
                elif kind == 1:
                    email = "not-an-address"
                elif kind == 2:
                    eid = ""
                else:
                    buf.append(f"{eid},Short,Row\n")
                    continue
            buf.append(f'{eid},First{i},"Last, {i}",{phone},{phone2},{email},seg{i % 7},{i % 1000}\n')
            if len(buf) >= 10_000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))
    return e164


def copy_rate(conn, path: Path, n: int) -> float:
    """Rows per second that COPY writes into a table shaped like `contacts` (same indexes)."""
    conn.execute("CREATE TEMP TABLE copy_probe (LIKE contacts INCLUDING ALL)")
    buf = io.StringIO()
    for i in range(n):
        buf.write(f"1\tC{i:08d}\tFirst{i}\tLast, {i}\t+1212{2000000 + i % 8000000:07d}\tfixed_line_or_mobile\t\\N"
                  f"\t\\N\tuser{i}@example.com\t{{America/New_York}}\t{{\"segment\": \"seg{i % 7}\", "
                  f"\"balance\": \"{i % 1000}\"}}\n")
    data = buf.getvalue()
    cols = "list_id, external_id, first_name, last_name, phone1, phone1_type, phone2, phone2_type, email, " \
           "timezones, attributes"
    start = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(f"COPY copy_probe ({cols}) FROM STDIN") as copy:
            copy.write(data)
    elapsed = time.perf_counter() - start
    conn.execute("DROP TABLE copy_probe")
    return n / elapsed


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=1_000_000)
    ap.add_argument("--dnc", type=int, default=100_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pom-bench-import-"))
    path = work / "contacts.csv"
    t0 = time.perf_counter()
    numbers = generate(path, args.contacts)
    generated_s = time.perf_counter() - t0
    settings = Settings.from_env().replace(data_dir=str(work / "data"), demo=False, kafka=False)
    rt = Runtime.start(settings)
    try:
        with rt.connect() as conn:
            with conn.transaction():
                list_id = catalog.create_list(conn, "bench-import")
                rnd = random.Random(3)
                dnc = rnd.sample(numbers, min(len(numbers), args.dnc // 5))
                dnc += [f"+1999{i:07d}" for i in range(args.dnc - len(dnc))]
                with conn.cursor() as cur, cur.copy("COPY dnc_entries (address, source) FROM STDIN") as copy:
                    for a in dnc:
                        copy.write_row((a, "bench"))
            conn.execute("ANALYZE")
            importer = names.actor(names.IMPORTER)
            ray.get(importer.status.remote(), timeout=60)             # up before the clock starts
            start = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            import_id = create_import(conn, list_id, "bench", str(path), {"region": "US"})
            importer.kick.remote()
            while True:
                row = conn.execute("SELECT state, finished_at, rows_read, rows_loaded, rows_rejected, "
                                   "duplicates, dnc_flagged, message FROM import_jobs WHERE id = %s",
                                   (import_id,)).fetchone()
                if row[0] in ("done", "failed", "stopped"):
                    break
                time.sleep(0.2)
            elapsed = (row[1] - start).total_seconds()
            stored = conn.execute("SELECT count(*) FROM contacts WHERE list_id = %s", (list_id,)).fetchone()[0]
            status = ray.get(importer.status.remote(), timeout=30)
            copy_rows_per_s = copy_rate(conn, path, args.contacts)
    finally:
        rt.stop(drain_s=1)
    rate = row[2] / elapsed
    return {"contacts": args.contacts, "state": row[0], "message": row[7], "seconds": round(elapsed, 2),
            "rows_read": row[2], "rows_loaded": row[3], "rows_rejected": row[4], "duplicates": row[5],
            "dnc_flagged": row[6], "stored": stored, "dnc_entries": args.dnc,
            "file_mb": round(path.stat().st_size / 2**20, 1), "generate_s": round(generated_s, 1),
            "fast_phones": status.get("fast_phones"), "slow_phones": status.get("slow_phones"),
            "contacts_per_s": round(rate), "copy_rows_per_s": round(copy_rows_per_s),
            "ratio": round(rate / copy_rows_per_s, 3)}


if __name__ == "__main__":
    print(json.dumps(main()))
