"""Turns CustomResourceDefinitions into the JSON schemas kubeconform reads for custom resources,
one file per kind and version, laid out as kubeconform's ``-schema-location`` template
``{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json`` expects.

    python deploy/helm/schemas/crd_to_jsonschema.py OUT_DIR CRD.yaml...

Strict like the Kubernetes schemas kubeconform uses with -strict: an object that lists its
properties accepts no others (unless the CRD says x-kubernetes-preserve-unknown-fields), so a
misspelt field fails the check instead of being ignored. Kubernetes' own OpenAPI extensions
become plain JSON Schema: x-kubernetes-int-or-string is an integer or a string, nullable adds
null to the type.

The committed schemas were made from Strimzi 1.2.0 (packaging/install/cluster-operator/
04[0345]-Crd-*.yaml at tag 1.2.0 of strimzi/strimzi-kafka-operator) and prometheus-operator v0.93.0
(example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,podmonitors,prometheusrules}.yaml);
deploy/helm/schemas/README.md says how to make them again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strict(node: Any) -> Any:
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def schemas(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{relative path: schema} for each served version of ``crd``."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    out = {}
    for version in spec["versions"]:
        if not version.get("served", False):
            continue
        schema = strict(version["schema"]["openAPIV3Schema"])
        schema.setdefault("properties", {})
        schema["properties"]["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
        schema["properties"]["metadata"] = {"type": "object"}
        schema["additionalProperties"] = False
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        out[f"{group}/{kind.lower()}_{version['name']}.json"] = schema
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    target = Path(argv[0])
    for path in argv[1:]:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for rel, schema in schemas(doc).items():
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
                print(dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
