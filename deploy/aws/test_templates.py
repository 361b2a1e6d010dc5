#!/usr/bin/env python3
"""Checks the AWS templates in deploy/aws/ against the relay itself.

    python deploy/aws/test_templates.py BIN

BIN is the relay binary. The configuration names come from the relay's own field table,
`BIN config-fields --json`. A binary that cannot print it fails the checks that need the
table; it does not skip them. The health-check route is asked of BIN, started on
loopback. Nothing here talks to AWS. Needs PyYAML. Prints one line per check and, last,
`N passed, M failed`; exit status 1 when any failed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ECS = HERE / "ecs-fargate.yaml"
EC2 = HERE / "ec2-systemd.yaml"
TASK_JSON = ROOT / "deploy" / "ecs" / "task-definition.json"
UNIT = ROOT / "systemd" / "pqrelay.service"
README = HERE / "README.md"

# The vendor guide's security group names.
ALB_SG, SERVICE_SG, REDIS_SG = "PublicWebTrafficSG", "MteRelayServiceSG", "MTERelayElastiCacheSG"
ANYWHERE = "0.0.0.0/0"
# AWS managed policies a role may carry (their contents cannot be read offline).
ALLOWED_MANAGED = {"AmazonECSTaskExecutionRolePolicy", "AmazonSSMManagedInstanceCore"}
# Names both templates use for different things (tasks vs instances), not shared.
COMPUTE_ONLY = {"TargetGroup", "CpuScaling", "DesiredCount", "MaxCount"}
WAIT = 20.0  # seconds: the relay must answer within this


# --- loading ----------------------------------------------------------------------------------
class CfnLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus CloudFormation's short tags (`!Ref X` -> {"Ref": "X"})."""


def _short_tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    key = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    return {key: value}


CfnLoader.add_multi_constructor("!", _short_tag)


@functools.cache
def load(path: Path) -> dict[str, Any]:
    """The template as data (cached: treat it as read-only)."""
    with path.open() as f:
        return yaml.load(f, Loader=CfnLoader)


def resources(t: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == kind}


def target(x: Any) -> str | None:
    """The logical id a `Ref` or `GetAtt` points at."""
    if isinstance(x, dict) and "Ref" in x:
        return x["Ref"]
    if isinstance(x, dict) and "Fn::GetAtt" in x:
        return x["Fn::GetAtt"][0]
    return None


def branches(x: Any) -> Iterator[Any]:
    """Both sides of an `Fn::If` (minus AWS::NoValue), else x itself."""
    if isinstance(x, dict) and "Fn::If" in x:
        for side in x["Fn::If"][1:]:
            if side != {"Ref": "AWS::NoValue"}:
                yield from branches(side)
    else:
        yield x


def as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else [x]


def container(t: dict[str, Any]) -> dict[str, Any]:
    (td,) = resources(t, "AWS::ECS::TaskDefinition").values()
    (c,) = td["Properties"]["ContainerDefinitions"]
    return c


def user_data(t: dict[str, Any]) -> str:
    (lt,) = resources(t, "AWS::EC2::LaunchTemplate").values()
    return lt["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]


def heredoc(script: str, marker: str) -> list[str]:
    m = re.search(rf"<<'{marker}'\n(.*?)\n{marker}\n", script, re.DOTALL)
    assert m, f"user data has no <<'{marker}' block"
    return [line for line in m.group(1).splitlines() if line.strip()]


def ec2_env(t: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The EC2 env file's parts: plain NAME=value lines, and NAME -> ${Placeholder} secrets."""
    script = user_data(t)
    plain = dict(line.split("=", 1) for line in heredoc(script, "PLAIN_ENV"))
    secrets = dict(line.split() for line in heredoc(script, "SECRETS"))
    return plain, secrets


def placeholder(value: str) -> str | None:
    m = re.fullmatch(r"\$\{([A-Za-z0-9:]+)\}", value)
    return m.group(1) if m else None


def ecs_env(t: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    c = container(t)
    env = {e["Name"]: e["Value"] for e in c.get("Environment", [])}
    secrets = {s["Name"]: s["ValueFrom"] for s in c.get("Secrets", [])}
    return env, secrets


def task_json() -> dict[str, Any]:
    return json.loads(TASK_JSON.read_text())


def url_path(cmd: list[str]) -> str:
    urls = [a for a in cmd if a.startswith("http://")]
    assert len(urls) == 1, f"health check command has no single URL: {cmd}"
    return re.sub(r"^http://[^/]+", "", urls[0])


_fields: list[dict[str, Any]] | None = None
_fields_error: str | None = None


def fields() -> list[dict[str, Any]]:
    if _fields is None:
        raise AssertionError(_fields_error)
    return _fields


def load_fields(bin_path: str) -> None:
    global _fields, _fields_error
    try:
        r = subprocess.run(
            [bin_path, "config-fields", "--json"],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if r.returncode != 0:
            _fields_error = (
                f"`{bin_path} config-fields --json` failed (exit {r.returncode}): "
                + (r.stderr.strip().splitlines() or [""])[0][:200]
            )
            return
        _fields = json.loads(r.stdout)
        assert isinstance(_fields, list) and all("env" in f and "secret" in f for f in _fields)
    except (OSError, ValueError, AssertionError, subprocess.TimeoutExpired) as e:
        _fields_error = f"cannot read the relay's field table: {e!r}"
        _fields = None


# --- the relay, started for real ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:  # loopback only
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def relay_env(tmp: str, port: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "UPSTREAM": "http://127.0.0.1:9",  # never reached: the echo route answers by itself
        "CLIENT_ID_SECRET": "test-client-id-secret-0123456789abcdef",
        "CORS_ORIGINS": "https://example.com",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PID_FILE": f"{tmp}/pqrelay.pid",
        "UPGRADE_SOCK": f"{tmp}/upgrade.sock",
        "LOG_FORMAT": "json",
    }


def ask_relay(bin_path: str, path: str) -> tuple[int, bytes]:
    """Starts BIN on a free loopback port, GETs `path`, stops BIN."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        log = open(Path(tmp) / "relay.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [bin_path], env=relay_env(tmp, port), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + WAIT
            while True:
                if proc.poll() is not None:
                    log.close()
                    raise AssertionError(
                        f"relay exited ({proc.returncode}): "
                        + (Path(tmp) / "relay.log").read_text()[-500:]
                    )
                try:
                    return get(f"http://127.0.0.1:{port}{path}")
                except (OSError, urllib.error.URLError):
                    if time.monotonic() > deadline:
                        raise AssertionError(f"relay did not answer within {WAIT} s") from None
                    time.sleep(0.2)
        finally:
            stop(proc)
            log.close()


# --- sample values for parameters, to feed the stacks' settings to `BIN check-config` ----------
SAMPLE = {
    "AWS::Region": "us-east-1",
    "Upstream": "http://10.0.1.20:8000",
    "CorsOrigins": "https://www.my-company.com,https://dashboard.my-company.com",
}


def sample_secret(t: dict[str, Any], logical: str) -> str:
    """What Secrets Manager would hold: a generated string of the declared shape, or REDIS_URL."""
    props = t["Resources"][logical]["Properties"]
    gen = props.get("GenerateSecretString")
    if gen:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789"
        return "".join(alphabet[(i * 7) % len(alphabet)] for i in range(gen["PasswordLength"]))
    return "rediss://:" + "t" * 64 + "@master.pqrelay.abc123.use1.cache.amazonaws.com:6379"


def resolve(t: dict[str, Any], v: Any) -> str:
    if isinstance(v, str):
        return v
    name = target(v)
    if name in SAMPLE:
        return SAMPLE[name]
    if name in t["Parameters"]:
        return str(t["Parameters"][name]["Default"])
    raise AssertionError(f"cannot give a sample value for {v}")


def check_config(bin_path: str, env: dict[str, str]) -> None:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    r = subprocess.run(
        [bin_path, "check-config"],
        check=False,
        env=full,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, f"check-config refused it: {r.stderr.strip()[-600:]}"


# --- the checks --------------------------------------------------------------------------------
TESTS: list[Callable[[argparse.Namespace], None]] = []


def test(fn: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    TESTS.append(fn)
    return fn


@test
def env_names_are_relay_settings(args: argparse.Namespace) -> None:
    """1. Every variable the task and the EC2 env file set is a setting the relay knows."""
    known = {f["env"] for f in fields()}
    ecs_plain, ecs_secret = ecs_env(load(ECS))
    ec2_plain, ec2_secret = ec2_env(load(EC2))
    j = task_json()["containerDefinitions"][0]
    sets = {
        "ecs-fargate.yaml Environment": set(ecs_plain),
        "ecs-fargate.yaml Secrets": set(ecs_secret),
        "ec2-systemd.yaml plain.env": set(ec2_plain),
        "ec2-systemd.yaml secrets.list": set(ec2_secret),
        "deploy/ecs/task-definition.json": {e["name"] for e in j["environment"] + j["secrets"]},
    }
    for where, names in sets.items():
        unknown = sorted(names - known)
        assert not unknown, f"{where} sets {unknown}, which the relay does not know"
    # Both compute shapes configure the relay alike (the unit itself sets PID_FILE/UPGRADE_SOCK).
    ecs_all = set(ecs_plain) | set(ecs_secret)
    ec2_all = set(ec2_plain) | set(ec2_secret)
    assert ecs_all - ec2_all == {"PID_FILE", "UPGRADE_SOCK"} and ec2_all <= ecs_all, (
        f"the two stacks set different names: {sorted(ecs_all ^ ec2_all)}"
    )


@test
def secret_settings_come_from_secrets_manager(args: argparse.Namespace) -> None:
    """2. Every setting the relay marks secret comes from Secrets Manager, never plain env."""
    secret = {f["env"] for f in fields() if f["secret"]}
    assert {"CLIENT_ID_SECRET", "STATE_SECRET", "REDIS_URL"} <= secret, secret
    for path, (plain, from_sm) in ((ECS, ecs_env(load(ECS))), (EC2, ec2_env(load(EC2)))):
        t = load(path)
        leaked = sorted(secret & set(plain))
        assert not leaked, f"{path.name}: {leaked} set as plain environment"
        sm = resources(t, "AWS::SecretsManager::Secret")
        for name, ref in from_sm.items():
            logical = target(ref) if isinstance(ref, dict) else placeholder(ref)
            assert logical in sm, f"{path.name}: {name} is not read from a secret of this stack"
        for name in ("CLIENT_ID_SECRET", "STATE_SECRET", "RELAY_KEYS", "REDIS_URL"):
            assert name in from_sm, f"{path.name}: {name} is not given to the relay"
    j = task_json()["containerDefinitions"][0]
    leaked = sorted(secret & {e["name"] for e in j["environment"]})
    assert not leaked, f"task-definition.json: {leaked} set as plain environment"


@test
def secrets_are_generated_in_a_shape_the_relay_accepts(args: argparse.Namespace) -> None:
    """Secrets are generated (no value in the template) and fit: keys 43+ alphanumerics, rediss://."""
    for path in (ECS, EC2):
        t = load(path)
        sm = resources(t, "AWS::SecretsManager::Secret")
        for logical, r in sm.items():
            p = r["Properties"]
            if "GenerateSecretString" in p:
                g = p["GenerateSecretString"]
                assert g.get("ExcludePunctuation") is True, f"{logical}: not alphanumeric"
                assert g["PasswordLength"] >= (43 if logical == "RelayKeys" else 32), logical
            else:
                s = p["SecretString"]["Fn::Sub"]
                assert s.startswith("rediss://:{{resolve:secretsmanager:${RedisAuthToken}}}@"), s
        (rg,) = resources(t, "AWS::ElastiCache::ReplicationGroup").values()
        rp = rg["Properties"]
        assert rp["TransitEncryptionEnabled"] is True and rp["AtRestEncryptionEnabled"] is True
        assert rp["AuthToken"] == {"Fn::Sub": "{{resolve:secretsmanager:${RedisAuthToken}}}"}


def sg_rules(t: dict[str, Any]) -> tuple[dict[str, str], dict[str, list[dict[str, Any]]]]:
    """Group names by logical id, and every ingress rule by the group it belongs to."""
    groups = resources(t, "AWS::EC2::SecurityGroup")
    names = {k: v["Properties"]["GroupName"] for k, v in groups.items()}
    rules: dict[str, list[dict[str, Any]]] = {k: [] for k in groups}
    for k, v in groups.items():
        rules[k] += v["Properties"].get("SecurityGroupIngress", [])
    for v in resources(t, "AWS::EC2::SecurityGroupIngress").values():
        rules[target(v["Properties"]["GroupId"])].append(v["Properties"])
    return names, rules


def only_from(where: str, rules: list[dict[str, Any]], port: int, source: str) -> None:
    assert rules, f"{where} admits nothing"
    for r in rules:
        assert (r["IpProtocol"], r["FromPort"], r["ToPort"]) == ("tcp", port, port), (where, r)
        assert target(r.get("SourceSecurityGroupId")) == source, (where, r)
        assert not {"CidrIp", "CidrIpv6", "SourcePrefixListId"} & set(r), (where, r)


@test
def security_groups_admit_only_the_group_in_front(args: argparse.Namespace) -> None:
    """3. Redis 6379 only from the service group, the service 8080 only from the ALB group."""
    for path in (ECS, EC2):
        t = load(path)
        names, rules = sg_rules(t)
        assert sorted(names.values()) == sorted([ALB_SG, SERVICE_SG, REDIS_SG]), names
        by_name = {n: k for k, n in names.items()}
        alb, svc, redis = by_name[ALB_SG], by_name[SERVICE_SG], by_name[REDIS_SG]

        only_from(f"{path.name} {names[redis]}", rules[redis], 6379, svc)
        only_from(f"{path.name} {names[svc]}", rules[svc], 8080, alb)
        public = {
            (r["IpProtocol"], r["FromPort"], r["ToPort"], r.get("CidrIp")) for r in rules[alb]
        }
        assert public == {("tcp", 80, 80, ANYWHERE), ("tcp", 443, 443, ANYWHERE)}, public
        # Each group is on the resource the guide puts it on.
        (rg,) = resources(t, "AWS::ElastiCache::ReplicationGroup").values()
        assert [target(g) for g in rg["Properties"]["SecurityGroupIds"]] == [redis]
        assert rg["Properties"]["Port"] == 6379
        (lb,) = resources(t, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
        assert [target(g) for g in lb["Properties"]["SecurityGroups"]] == [alb]
        compute = [
            *(
                s["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
                for s in resources(t, "AWS::ECS::Service").values()
            ),
            *(
                lt["Properties"]["LaunchTemplateData"]["SecurityGroupIds"]
                for lt in resources(t, "AWS::EC2::LaunchTemplate").values()
            ),
        ]
        assert compute and all([target(g) for g in c] == [svc] for c in compute), compute


@test
def health_check_route_answers_200(args: argparse.Namespace) -> None:
    """4. The target group's and the container's health-check path is answered 200 by BIN."""
    paths = set()
    for path in (ECS, EC2):
        t = load(path)
        (tg,) = resources(t, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
        p = tg["Properties"]
        assert p["Matcher"] == {"HttpCode": "200"} and p["Port"] == 8080, p
        paths.add(p["HealthCheckPath"])
    c = container(load(ECS))
    paths.add(url_path(c["HealthCheck"]["Command"]))
    paths.add(url_path(task_json()["containerDefinitions"][0]["healthCheck"]["command"]))
    install = re.findall(r"curl [^\n]*(http://127\.0\.0\.1:8080/[^\s;]+)", user_data(load(EC2)))
    paths |= {url_path([u]) for u in install}
    assert len(paths) == 1, f"health-check paths differ: {paths}"
    (route,) = paths
    status, body = ask_relay(args.bin, route)
    assert status == 200, f"GET {route}: {status} {body[:200]!r}"
    echo = json.loads(body)
    assert echo.get("echo") == route.rsplit("/", 1)[1], echo


@test
def task_definition_json_matches_the_stack(args: argparse.Namespace) -> None:
    """5. deploy/ecs/task-definition.json agrees with the stack's task definition."""
    t = load(ECS)
    (td,) = resources(t, "AWS::ECS::TaskDefinition").values()
    c, j = container(t), task_json()
    jc = j["containerDefinitions"][0]
    env, secrets = ecs_env(t)
    assert {e["name"] for e in jc["environment"]} == set(env), "environment names differ"
    assert {s["name"] for s in jc["secrets"]} == set(secrets), "secret names differ"
    for name, value in env.items():  # fixed values (not parameters) must be equal too
        if isinstance(value, str) and name not in ("UPSTREAM", "CORS_ORIGINS"):
            assert {e["name"]: e["value"] for e in jc["environment"]}[name] == value, name
    pairs = {
        "ports": (
            [p["containerPort"] for p in jc["portMappings"]],
            [p["ContainerPort"] for p in c["PortMappings"]],
        ),
        "user": (jc["user"], c["User"]),
        "read-only root": (jc["readonlyRootFilesystem"], c["ReadonlyRootFilesystem"]),
        "log driver": (jc["logConfiguration"]["logDriver"], c["LogConfiguration"]["LogDriver"]),
        "health check": (jc["healthCheck"]["command"], c["HealthCheck"]["Command"]),
        "stop timeout": (jc["stopTimeout"], c["StopTimeout"]),
        "mounts": (
            [m["containerPath"] for m in jc["mountPoints"]],
            [m["ContainerPath"] for m in c["MountPoints"]],
        ),
        "size": (
            (j["cpu"], j["memory"]),
            (t["Parameters"]["TaskCpu"]["Default"], t["Parameters"]["TaskMemory"]["Default"]),
        ),
        "task role": ("taskRoleArn" in j, "TaskRoleArn" in td["Properties"]),
    }
    for what, (in_json, in_stack) in pairs.items():
        assert in_json == in_stack, f"{what}: task-definition.json {in_json} != stack {in_stack}"
    assert c["LogConfiguration"]["LogDriver"] == "awslogs" and "TaskRoleArn" not in td["Properties"]


def statements(t: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for k, r in t["Resources"].items():
        if r["Type"] == "AWS::IAM::Role":
            docs = [p["PolicyDocument"] for p in r["Properties"].get("Policies", [])]
        elif r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs = [r["Properties"]["PolicyDocument"]]
        else:
            continue
        for d in docs:
            for s in d["Statement"]:
                for s2 in branches(s):
                    yield k, s2


@test
def iam_is_least_privilege(args: argparse.Namespace) -> None:
    """6. IAM: no wildcard action or resource; secrets readable are exactly the relay's."""
    for path in (ECS, EC2):
        t = load(path)
        sm = set(resources(t, "AWS::SecretsManager::Secret"))
        _, used = ecs_env(t) if path == ECS else ec2_env(t)
        relay_secrets = {
            target(v) if isinstance(v, dict) else placeholder(v) for v in used.values()
        }
        readable: set[str | None] = set()
        for role, s in statements(t):
            assert s["Effect"] == "Allow" and not {"NotAction", "NotResource"} & set(s), s
            for a in as_list(s["Action"]):
                assert "*" not in a, f"{path.name} {role}: wildcard action {a}"
            for res in as_list(s["Resource"]):
                assert res != "*" and not (isinstance(res, str) and "*" in res), (role, res)
            if any(a.startswith("secretsmanager:") for a in as_list(s["Action"])):
                assert as_list(s["Action"]) == ["secretsmanager:GetSecretValue"], s
                refs = {target(r) for r in as_list(s["Resource"])}
                assert refs <= sm, f"{role}: reads something other than this stack's secrets"
                readable |= refs
        assert readable == relay_secrets, (
            f"{path.name}: readable {readable} != used {relay_secrets}"
        )
        for k, r in resources(t, "AWS::IAM::Role").items():
            for arn in r["Properties"].get("ManagedPolicyArns", []):
                name = arn["Fn::Sub"].rsplit("/", 1)[1] if isinstance(arn, dict) else arn
                assert name in ALLOWED_MANAGED, f"{k}: managed policy {name}"
            (trust,) = r["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            assert trust["Principal"]["Service"] in (
                "ecs-tasks.amazonaws.com",
                "ec2.amazonaws.com",
            ), trust


@test
def shared_resources_are_identical(args: argparse.Namespace) -> None:
    """The network, groups, Redis, secrets, logs and load balancer are the same in both stacks."""
    a, b = load(ECS), load(EC2)
    for section in ("Parameters", "Rules", "Conditions", "Resources", "Outputs"):
        common = (set(a.get(section, {})) & set(b.get(section, {}))) - COMPUTE_ONLY
        for k in sorted(common):
            assert a[section][k] == b[section][k], f"{section}.{k} differs between the templates"
    shared = set(a["Resources"]) & set(b["Resources"])
    assert {"Vpc", "Redis", "LoadBalancer", "HttpsListener", "RedisUrl", "LogGroup"} <= shared


@test
def timeouts_let_the_load_balancer_close_idle_connections(args: argparse.Namespace) -> None:
    """UPSTREAM_READ_TIMEOUT_MS < ALB idle timeout < CLIENT_TIMEOUT_MS, HEADER_TIMEOUT_MS."""
    t = load(ECS)
    (lb,) = resources(t, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    attrs = {x["Key"]: x["Value"] for x in lb["Properties"]["LoadBalancerAttributes"]}
    idle_ms = int(attrs["idle_timeout.timeout_seconds"]) * 1000
    j = {e["name"]: e["value"] for e in task_json()["containerDefinitions"][0]["environment"]}
    for where, env in (("ecs", ecs_env(t)[0]), ("ec2", ec2_env(load(EC2))[0]), ("json", j)):
        assert int(env["UPSTREAM_READ_TIMEOUT_MS"]) < idle_ms, where
        assert int(env["CLIENT_TIMEOUT_MS"]) > idle_ms, where
        assert int(env["HEADER_TIMEOUT_MS"]) > idle_ms, where


@test
def relay_accepts_each_stack_configuration(args: argparse.Namespace) -> None:
    """`BIN check-config` accepts the task's and the EC2 env file's settings (sample values)."""
    t = load(ECS)
    plain, secret = ecs_env(t)
    env = {k: resolve(t, v) for k, v in plain.items()}
    env |= {k: sample_secret(t, target(v)) for k, v in secret.items()}
    check_config(args.bin, env)
    t = load(EC2)
    plain2, secret2 = ec2_env(t)
    env = {
        k: re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: resolve(t, {"Ref": m.group(1)}), v)
        for k, v in plain2.items()
    }
    env |= {k: sample_secret(t, placeholder(v)) for k, v in secret2.items()}
    with tempfile.TemporaryDirectory() as tmp:  # the unit's own PID_FILE/UPGRADE_SOCK
        check_config(args.bin, env | {"PID_FILE": f"{tmp}/p.pid", "UPGRADE_SOCK": f"{tmp}/u.sock"})


def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


@test
def ec2_installs_the_systemd_unit_and_upgrades_in_place(args: argparse.Namespace) -> None:
    """User data installs systemd/ where the unit expects it; the upgrade is `systemctl reload`."""
    t = load(EC2)
    script = user_data(t)
    unit = unit_settings()
    binary = unit["ExecStart"][0].split()[0]
    (env_file,) = unit["EnvironmentFile"]
    config = next(v.split("=", 1)[1] for v in unit["Environment"] if v.startswith("CONFIG_FILE="))
    unit_env = {v.split("=", 1)[0] for v in unit["Environment"]}
    assert any(" -u" in r for r in unit["ExecReload"]), unit["ExecReload"]
    install = heredoc(script, "INSTALL")
    text = "\n".join(install)
    assert f"mv -f {binary}.new {binary}" in text, binary
    assert "/etc/systemd/system/pqrelay.service" in text and "systemd-sysusers" in text
    assert f'"$work/systemd/pqrelay.yaml" {config}' in text, config
    assert f'mv -f "$env" {env_file}' in text, env_file
    assert "sha256sum --check" in text and "umask 077" in text
    assert "systemctl reload pqrelay" in text
    plain, secrets = ec2_env(t)
    overridden = sorted(unit_env & (set(plain) | set(secrets)))
    assert not overridden, f"the env file would override the unit's {overridden}"
    (doc,) = resources(t, "AWS::SSM::Document").values()
    (step,) = doc["Properties"]["Content"]["mainSteps"]
    assert step["inputs"]["runCommand"] == ["/usr/local/sbin/pqrelay-install --reload"], step
    (asg,) = resources(t, "AWS::AutoScaling::AutoScalingGroup").values()
    roll = asg["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert roll["WaitOnResourceSignals"] is True and roll["MaxBatchSize"] == 1, roll
    assert roll["MinInstancesInService"] == {"Ref": "DesiredCount"}, roll
    assert t["Parameters"]["DesiredCount"]["MinValue"] >= 1


@test
def outputs_and_exceptions_are_documented(args: argparse.Namespace) -> None:
    """Outputs name the fingerprint command; every checkov skip and cfn-lint ignore is in README."""
    readme = README.read_text()
    for path in (ECS, EC2):
        t = load(path)
        cmd = t["Outputs"]["FingerprintCommand"]["Value"]["Fn::Sub"]
        assert "filter-log-events" in cmd and "${LogGroup}" in cmd, cmd
        assert '\\"relay key\\" \\"sha256:\\"' in json.dumps(cmd), cmd
        assert {"RelayUrl", "LogGroupName"} <= set(t["Outputs"])
        for k, r in t["Resources"].items():
            meta = r.get("Metadata", {})
            for skip in meta.get("checkov", {}).get("skip", []):
                assert skip.get("comment"), f"{k}: {skip['id']} without a reason"
                assert skip["id"] in readme, f"{k}: checkov {skip['id']} not listed in README.md"
            for rule in meta.get("cfn-lint", {}).get("config", {}).get("ignore_checks", []):
                assert rule in readme, f"{k}: cfn-lint {rule} not listed in README.md"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bin", metavar="BIN", help="the pqrelay binary")
    args = ap.parse_args()
    load_fields(args.bin)
    passed = failed = 0
    for fn in TESTS:
        try:
            fn(args)
        except Exception as e:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            print(f"FAIL {fn.__name__}: {type(e).__name__}: {e}")
        else:
            passed += 1
            print(f"ok   {fn.__name__}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
