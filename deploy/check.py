#!/usr/bin/env python3
"""Offline checks of the deployment files in deploy/.

    python3 deploy/check.py

Always: every *.json parses and every *.yaml / *.yml parses (PyYAML). When the optional
packages are importable, also (otherwise the check says it is skipped):

- ECS task definition against the ECS API model in ``botocore`` (RegisterTaskDefinition input:
  unknown keys, wrong types, missing required fields);
- Kubernetes manifests against the typed models of the ``kubernetes`` Python client: every key
  must be a field of its object (catches misspelt or misplaced keys, which kubectl would only
  report against a live cluster), required fields must be present;
- docker-compose.yml against the Compose specification vendored in ``check-jsonschema``.

Install them outside the repository, e.g.:
    python3 -m venv /tmp/deploy-venv
    /tmp/deploy-venv/bin/pip install pyyaml botocore kubernetes check-jsonschema
    /tmp/deploy-venv/bin/python deploy/check.py
Exit status 0 when everything that could be checked passed, 1 otherwise.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent

try:
    import yaml
except ImportError:  # pragma: no cover - reported below
    yaml = None

if yaml is not None:

    class SyntaxLoader(yaml.SafeLoader):
        """Safe loading that also accepts CloudFormation's short tags (`!Ref`, `!Sub`, ...) in
        aws/*.yaml; deploy/aws/check.sh checks those templates in depth."""

    SyntaxLoader.add_multi_constructor("!", lambda loader, suffix, node: None)

failures: list[str] = []


def fail(msg: str) -> None:
    failures.append(msg)
    print(f"FAIL {msg}")


def ok(msg: str) -> None:
    print(f"ok   {msg}")


def skip(msg: str) -> None:
    print(f"skip {msg}")


def load_syntax() -> tuple[dict[Path, object], dict[Path, list[object]]]:
    jsons: dict[Path, object] = {}
    yamls: dict[Path, list[object]] = {}
    for path in sorted(DEPLOY.rglob("*.json")):
        try:
            jsons[path] = json.loads(path.read_text())
            ok(f"{path.relative_to(DEPLOY)}: JSON syntax")
        except ValueError as e:
            fail(f"{path.relative_to(DEPLOY)}: {e}")
    paths = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    if yaml is None:
        fail("PyYAML is not installed: cannot parse " + ", ".join(p.name for p in paths))
        return jsons, yamls
    for path in paths:
        try:
            docs = yaml.load_all(path.read_text(), Loader=SyntaxLoader)
            yamls[path] = [d for d in docs if d is not None]
            ok(f"{path.relative_to(DEPLOY)}: YAML syntax")
        except yaml.YAMLError as e:
            fail(f"{path.relative_to(DEPLOY)}: {e}")
    return jsons, yamls


def check_ecs(jsons: dict[Path, object]) -> None:
    task_defs = [p for p in jsons if p.parent.name == "ecs" and "task-definition" in p.name]
    try:
        import botocore.session
        from botocore.validate import ParamValidator
    except ImportError:
        skip("ECS task definition model check (pip install botocore)")
        return
    shape = (
        botocore.session.get_session()
        .get_service_model("ecs")
        .operation_model("RegisterTaskDefinition")
        .input_shape
    )
    for path in task_defs:
        report = ParamValidator().validate(jsons[path], shape).generate_report()
        if report:
            fail(f"{path.relative_to(DEPLOY)}: {report}")
        else:
            ok(f"{path.relative_to(DEPLOY)}: valid RegisterTaskDefinition input (botocore)")


# Kubernetes kinds -> model class names of the kubernetes client.
K8S_MODELS = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("v1", "Secret"): "V1Secret",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}
PRIMITIVES = {"str", "int", "bool", "float", "object", "datetime", "date", "bytes"}


def walk_k8s(models, type_name: str, value: object, where: str, errors: list[str]) -> None:
    """Checks `value` against the client model `type_name` (recursively).

    Type names look like `V1PodSpec`, `List[V1EnvVar]` / `list[V1EnvVar]` and
    `Dict[str, str]` / `dict(str, str)`, depending on the client's generation.
    """
    if type_name in PRIMITIVES:
        return
    m = re.fullmatch(r"[Ll]ist\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            errors.append(f"{where}: expected a list")
            return
        for i, item in enumerate(value):
            walk_k8s(models, m.group(1), item, f"{where}[{i}]", errors)
        return
    m = re.fullmatch(r"(?:Dict\[|dict\()[^,]+, (.+)[\])]", type_name)
    if m:
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping")
            return
        for k, v in value.items():
            walk_k8s(models, m.group(1), v, f"{where}.{k}", errors)
        return
    cls = getattr(models, type_name, None)
    if cls is None or not hasattr(cls, "attribute_map"):
        return
    if not isinstance(value, dict):
        errors.append(f"{where}: expected a {type_name} mapping")
        return
    by_json = {j: attr for attr, j in cls.attribute_map.items()}
    for key, v in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append(f"{where}: unknown field {key!r} for {type_name}")
            continue
        walk_k8s(models, cls.openapi_types[attr], v, f"{where}.{key}", errors)
    # Required fields (pydantic-based clients, kubernetes >= 35, expose them in model_fields).
    fields = getattr(cls, "model_fields", None)
    if fields:
        for attr, info in fields.items():
            if info.is_required() and cls.attribute_map.get(attr, attr) not in value:
                errors.append(f"{where}: missing required field {cls.attribute_map.get(attr, attr)!r}")


def check_k8s(yamls: dict[Path, list[object]]) -> None:
    manifests = {p: docs for p, docs in yamls.items() if p.parent.name == "k8s"}
    try:
        from kubernetes import client as models
    except ImportError:
        skip("Kubernetes manifest model check (pip install kubernetes)")
        return
    for path, docs in manifests.items():
        for doc in docs:
            if not isinstance(doc, dict):
                fail(f"{path.relative_to(DEPLOY)}: not a mapping")
                continue
            kind, api = doc.get("kind"), doc.get("apiVersion")
            if kind == "Kustomization":
                missing = [r for r in doc.get("resources", []) if not (path.parent / r).exists()]
                if missing:
                    fail(f"{path.relative_to(DEPLOY)}: resources not found: {missing}")
                else:
                    ok(f"{path.relative_to(DEPLOY)}: kustomization resources exist")
                continue
            model = K8S_MODELS.get((api, kind))
            if model is None:
                fail(f"{path.relative_to(DEPLOY)}: no model known for {api} {kind}")
                continue
            errors: list[str] = []
            walk_k8s(models, model, doc, kind, errors)
            if errors:
                for e in errors:
                    fail(f"{path.relative_to(DEPLOY)}: {e}")
            else:
                ok(f"{path.relative_to(DEPLOY)}: {api} {kind} fields valid (kubernetes client models)")
    check_k8s_consistency(manifests)


def check_k8s_consistency(manifests: dict[Path, list[object]]) -> None:
    """Cross-file facts: the Service and HPA point at the Deployment and its port."""
    docs = [d for ds in manifests.values() for d in ds if isinstance(d, dict)]
    deps = [d for d in docs if d.get("kind") == "Deployment"]
    if not deps:
        return
    dep = deps[0]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    ports = {p.get("name") for c in dep["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    for d in docs:
        kind = d.get("kind")
        if kind == "Service":
            sel = d["spec"].get("selector", {})
            bad_sel = any(labels.get(k) != v for k, v in sel.items())
            bad_port = any(p.get("targetPort") not in ports | {8080} for p in d["spec"]["ports"])
            (fail if bad_sel or bad_port else ok)(f"Service {d['metadata']['name']} selects the Deployment's pods and port")
        if kind == "HorizontalPodAutoscaler":
            ref = d["spec"]["scaleTargetRef"]
            good = ref.get("kind") == "Deployment" and ref.get("name") == dep["metadata"]["name"]
            (ok if good else fail)(f"HPA {d['metadata']['name']} targets Deployment {dep['metadata']['name']}")


def check_compose() -> None:
    compose = DEPLOY / "docker-compose.yml"
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    if not Path(exe).exists():
        skip("docker-compose.yml against the Compose specification (pip install check-jsonschema)")
        return
    r = subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(compose)],
        capture_output=True,
        text=True,
    )
    if r.returncode == 0:
        ok("docker-compose.yml: valid against the Compose specification")
    else:
        fail(f"docker-compose.yml: {r.stdout}{r.stderr}")


def main() -> int:
    jsons, yamls = load_syntax()
    check_ecs(jsons)
    check_k8s(yamls)
    check_compose()
    print(f"deploy/check.py: {'FAILED' if failures else 'all checks passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
