"""Self-contained JSON schemas of Kubernetes kinds for kubeconform, from the schemas the PyPI
package kubernetes-validate ships (a dev dependency, pinned: pyproject.toml).

kubernetes-validate keeps one file per kind whose references point at a shared
``/api/_definitions.json`` under the https://kubernetes.io/ base, which kubeconform would try to
download (there is no network at test time). This copies a kind's schema with the definitions it
reaches, references rewritten to point inside the file, as kubeconform's
``{{.ResourceKind}}{{.KindSuffix}}.json`` layout expects. The "-strict" variant is used: objects
accept no properties beyond those listed, as ``kubeconform -strict`` means.

    python deploy/helm/schemas/k8s_standalone.py OUT_DIR VERSION KIND_FILE...
    (e.g. OUT_DIR 1.37.0 deployment-apps-v1 service-v1)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# how a kind's file points into the shared definitions, and how they point at each other
REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")


def source_dir(version: str) -> Path:
    """kubernetes-validate's strict schemas of Kubernetes ``version`` (e.g. 1.37.0)."""
    import kubernetes_validate

    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    folder = root / f"v{version}-local-strict"
    if not folder.is_dir():
        have = sorted(p.name for p in root.iterdir())
        raise FileNotFoundError(f"no schemas of Kubernetes {version} in kubernetes-validate ({', '.join(have)})")
    return folder


def _refs(node: Any, found: set[str]) -> Any:
    """``node`` with references rewritten to #/$defs/..., their names added to ``found``."""
    if isinstance(node, list):
        return [_refs(n, found) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        prefix = next((p for p in REF_PREFIXES if isinstance(value, str) and value.startswith(p)), None)
        if key == "$ref" and prefix is not None:
            name = value[len(prefix) :]
            found.add(name)
            out[key] = f"#/$defs/{name}"
        else:
            out[key] = _refs(value, found)
    return out


def standalone(kind: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    pending: set[str] = set()
    schema: dict[str, Any] = _refs(kind, pending)
    schema.pop("$id", None)
    defs: dict[str, Any] = {}
    while pending:
        name = pending.pop()
        if name in defs:
            continue
        more: set[str] = set()
        defs[name] = _refs(definitions[name], more)
        pending |= more - defs.keys()
    schema["$defs"] = defs
    return schema


def write(out: Path, version: str, kinds: list[str]) -> list[Path]:
    """Standalone schemas of ``kinds`` (file stems such as deployment-apps-v1) into ``out``;
    a kind without a schema is skipped (kubeconform then reports it as missing)."""
    src = source_dir(version)
    definitions = json.loads((src / "_definitions.json").read_text())["$defs"]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem in kinds:
        path = src / f"{stem}.json"
        if not path.exists():
            continue
        dest = out / path.name
        dest.write_text(json.dumps(standalone(json.loads(path.read_text()), definitions)))
        written.append(dest)
    return written


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    for p in write(Path(sys.argv[1]), sys.argv[2], sys.argv[3:]):
        print(p)
