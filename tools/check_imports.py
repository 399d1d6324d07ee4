"""Checks the rule that services import the shared library and never each other, and that no two test modules share a
name (pytest imports test files by their base name: a second `test_x.py` stops the whole run at collection)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("registry", "dispatch", "intel", "rewards", "reports", "gateway")


def violations(root: Path = ROOT) -> list[str]:
    """Every `import <other service>` found in a service's source, as `file:line: message`."""
    found = []
    for service in SERVICES:
        for path in sorted((root / "services" / service / "src").rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in SERVICES and top != service:
                        found.append(f"{path.relative_to(root)}:{node.lineno}: {service} imports {top}")
    shared = root / "shared" / "src"
    for path in sorted(shared.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in SERVICES and node.level == 0:
                found.append(f"{path.relative_to(root)}:{node.lineno}: shared imports {node.module}")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in SERVICES:
                        found.append(f"{path.relative_to(root)}:{node.lineno}: shared imports {alias.name}")
    for path in sorted([*(root / "shared" / "src").rglob("*.py"), *(root / "services").glob("*/src/**/*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(m.split(".")[0] == "shouwang_dev" for m in modules):
                found.append(f"{path.relative_to(root)}:{node.lineno}: runtime code imports shouwang_dev (dev tools never ship in an image)")
    return found


def duplicate_test_modules(root: Path = ROOT) -> list[str]:
    """Test files that share a base name with another, as `name: path, path`."""
    by_name: dict[str, list[str]] = {}
    for path in sorted((root / "tests").rglob("test_*.py")):
        by_name.setdefault(path.name, []).append(str(path.relative_to(root)))
    return [f"{name}: {', '.join(paths)} (test modules must have distinct names)" for name, paths in by_name.items() if len(paths) > 1]


if __name__ == "__main__":
    problems = violations() + duplicate_test_modules()
    for line in problems:
        print(line)
    sys.exit(1 if problems else 0)
