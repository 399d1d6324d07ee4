"""Write (or with --check, compare) every generated deploy file: Dockerfiles, KafkaTopics, KafkaUsers, service manifests, compose, dashboard."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from manifests import REPO, generate  # noqa: E402


def stale_files(root: Path = REPO) -> list[str]:
    """Generated files under `root` whose content differs from what the generator writes now."""
    stale = []
    for relative, text in generate().items():
        path = root / relative
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(relative)
    return stale


def main() -> int:
    """Write the files, or report the stale ones and exit 1 with --check."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report files that differ; exit 1 if any")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        for relative in stale:
            print(f"stale: {relative}")
        if stale:
            print("run: uv run python tools/deploy/gen_manifests.py")
        return 1 if stale else 0
    for relative, text in generate().items():
        path = REPO / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
