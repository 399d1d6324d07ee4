"""Command line: import a CSV roster into the registry database, with progress.

    python -m registry.importer ROSTER.csv --database-url postgresql+asyncpg://…/registry

Keys come from PII_KEY / PII_INDEX_KEY (as the service uses them). Safe to re-run: people already
registered are skipped. Exits 0 when every row was imported or already there, 1 when rows were refused,
2 when the file itself was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from shouwang_shared.db import make_engine, make_session_factory
from shouwang_shared.errors import AppError
from shouwang_shared.migrations import migrate

from registry.config import RegistrySettings
from registry.roster import ImportReport, import_roster

MIGRATIONS = Path(__file__).parent / "migrations"


def _progress(started: float):
    def show(report: ImportReport) -> None:
        elapsed = time.perf_counter() - started
        rate = report.imported / elapsed if elapsed else 0.0
        print(
            f"\r已读取 {report.rows} 行 · 导入 {report.imported} · 已登记跳过 {report.already_registered} · "
            f"错误 {len(report.errors)} · {rate:,.0f} 行/秒",
            end="", file=sys.stderr, flush=True,
        )

    return show


async def run(path: Path, database_url: str, *, chunk_size: int, max_errors: int, workers: int = 2) -> int:
    """Import `path` into the database; returns the process exit code."""
    settings = RegistrySettings(database_url=database_url)
    if not settings.pii_key or not settings.pii_index_key:
        print("请设置 PII_KEY 与 PII_INDEX_KEY（与登记服务相同的密钥）", file=sys.stderr)
        return 2
    cipher = settings.pii_cipher()
    engine = make_engine(database_url, pool_size=2)
    try:
        await migrate(engine, MIGRATIONS)
        started = time.perf_counter()
        try:
            report = await import_roster(
                sessions=make_session_factory(engine), cipher=cipher, raw=path.read_bytes(), chunk_size=chunk_size,
                progress=_progress(started), workers=workers,
            )
        except AppError as exc:
            print(f"文件被拒绝（{exc.field}）：{exc.message}", file=sys.stderr)
            return 2
        elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    print(file=sys.stderr)
    for error in report.errors[:max_errors]:
        print(f"第 {error.line} 行 [{error.field}]：{error.reason}", file=sys.stderr)
    if len(report.errors) > max_errors:
        print(f"……另有 {len(report.errors) - max_errors} 个错误", file=sys.stderr)
    print(
        f"完成：{report.rows} 行，导入 {report.imported}，已登记跳过 {report.already_registered}，"
        f"错误 {len(report.errors)}，用时 {elapsed:.1f} 秒"
    )
    return 1 if report.errors else 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the import."""
    parser = argparse.ArgumentParser(prog="python -m registry.importer", description="导入志愿者花名册（CSV, UTF-8）")
    parser.add_argument("file", type=Path)
    parser.add_argument("--database-url", default=None, help="registry database (default: DATABASE_URL)")
    parser.add_argument("--chunk-size", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=2, help="processes preparing chunks (0: a thread of this process)")
    parser.add_argument("--max-errors", type=int, default=200, help="row errors to print")
    args = parser.parse_args(argv)
    url = args.database_url or RegistrySettings().database_url
    if not args.file.is_file():
        parser.error(f"file not found: {args.file}")
    return asyncio.run(run(args.file, url, chunk_size=args.chunk_size, max_errors=args.max_errors, workers=args.workers))


if __name__ == "__main__":
    sys.exit(main())
