"""Write (or with --check, compare) deploy/k8s/base/kafka/topics.yaml: one Strimzi KafkaTopic per topic of
shouwang_shared.topics.CATALOG. The same file is part of what gen_manifests.py writes; this is the narrow entry point."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from manifests import REPO, dump_all, kafka_topic  # noqa: E402

from shouwang_shared.topics import CATALOG  # noqa: E402

TOPICS_FILE = REPO / "deploy" / "k8s" / "base" / "kafka" / "topics.yaml"


def topics_yaml() -> str:
    """The KafkaTopic documents of the catalog."""
    return dump_all([kafka_topic(spec) for spec in CATALOG])


def main() -> int:
    """Write the file, or exit 1 with --check when it differs from the catalog."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    current = TOPICS_FILE.read_text(encoding="utf-8") if TOPICS_FILE.exists() else ""
    if args.check:
        if current != topics_yaml():
            print(f"{TOPICS_FILE.relative_to(REPO)} differs from the catalog: run uv run python tools/deploy/gen_topics.py")
            return 1
        return 0
    if current != topics_yaml():
        TOPICS_FILE.write_text(topics_yaml(), encoding="utf-8")
        print(f"wrote {TOPICS_FILE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
