"""`turnout import growthbook`: GrowthBook features (the SDK payload) as turnout config."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from turnout.config import validate_config
from turnout.errors import ConfigError


def add_import_command(commands: Any) -> None:
    imports = commands.add_parser("import", help="convert another tool's flags to turnout config")
    sources = imports.add_subparsers(dest="import_source", required=True)
    growthbook = sources.add_parser("growthbook", help="GrowthBook features (SDK payload JSON) to TOML")
    growthbook.add_argument("file", type=Path, help="features.json, or the SDK payload with `features`")
    growthbook.add_argument("-o", "--output", type=Path, help="write the TOML here (default: print it)")


def import_growthbook(path: Path, output: Path | None) -> int:
    import json

    from turnout.growthbook import GrowthBookImportError, import_features

    try:
        import tomli_w
    except ImportError:
        print('writing TOML needs tomli-w: pip install "turnout[cli]"', file=sys.stderr)
        return 1
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object of features")
        config = import_features(payload)
        validate_config(config, source=str(path))
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"{path}: the converted flags do not validate: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"{path}: not JSON features: {exc}", file=sys.stderr)
        return 1
    except GrowthBookImportError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    text = tomli_w.dumps(config)
    if output is None:
        print(text, end="")
    else:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {len(config['flags'])} flags to {output}", file=sys.stderr)
    return 0
