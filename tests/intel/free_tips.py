"""The freely written labelled tips (`data/free_tips/*.json`): every file, as clustering features and truth."""

from __future__ import annotations

import json
from pathlib import Path

FREE_TIPS = Path(__file__).parent / "data" / "free_tips"


def load_sets(folder: Path = FREE_TIPS) -> dict[str, list[dict]]:
    """Every labelled file in the folder by its name (`tune`, `holdout`, ...); ids and incidents prefixed by it."""
    sets = {}
    for path in sorted(folder.glob("*.json")):
        rows = json.loads(path.read_text(encoding="utf-8"))
        sets[path.stem] = [{**r, "id": f"{path.stem}:{r['id']}", "incident": f"{path.stem}:{r['incident']}"} for r in rows]
    return sets
