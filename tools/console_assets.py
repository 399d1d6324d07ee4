"""Copy the browser assets the platform serves from the npm packages (package-lock.json) into the repository.

The county may run on a closed network, so nothing is loaded from a CDN: the API docs' Swagger UI (every
service's `/docs`), htmx and Alpine.js (the gateway's console) and axe-core (the console's accessibility tests)
are vendored here, each with its package, version and SHA-256 in a `VERSIONS.json` beside it.
`tests/gateway/test_console_assets.py` holds the vendored files to those records and to the lock file.

    make console-assets    # npm ci, then this script
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODE_MODULES = REPO / "node_modules"
# destination folder -> {file name there: (npm package, path inside the package)}
ASSETS: dict[Path, dict[str, tuple[str, str]]] = {
    REPO / "shared/src/shouwang_shared/swagger_ui": {
        "swagger-ui-bundle.js": ("swagger-ui-dist", "swagger-ui-bundle.js"),
        "swagger-ui.css": ("swagger-ui-dist", "swagger-ui.css"),
        "favicon-32x32.png": ("swagger-ui-dist", "favicon-32x32.png"),
    },
    REPO / "services/gateway/src/gateway/console/static/vendor": {
        "htmx.min.js": ("htmx.org", "dist/htmx.min.js"),
        "alpine.min.js": ("alpinejs", "dist/cdn.min.js"),
    },
    REPO / "tests/gateway/console_vendor": {
        "axe.min.js": ("axe-core", "axe.min.js"),
    },
}


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locked_version(package: str) -> str:
    """The version package-lock.json pins for `package`."""
    lock = json.loads((REPO / "package-lock.json").read_text(encoding="utf-8"))
    return lock["packages"][f"node_modules/{package}"]["version"]


def main() -> None:
    for folder, files in ASSETS.items():
        folder.mkdir(parents=True, exist_ok=True)
        versions = {}
        for name, (package, inner) in files.items():
            shutil.copyfile(NODE_MODULES / package / inner, folder / name)
            versions[name] = {"package": package, "version": locked_version(package), "sha256": sha256(folder / name)}
            licence = next((p for p in sorted((NODE_MODULES / package).glob("LICEN[CS]E*"))), None)
            if licence is not None:  # the package's licence travels with its files
                shutil.copyfile(licence, folder / f"{package}.LICENSE")
        (folder / "VERSIONS.json").write_text(json.dumps(versions, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"{folder.relative_to(REPO)}: {', '.join(files)}")


if __name__ == "__main__":
    main()
