"""deploy/ checked offline (Docker and Kubernetes do not run here): the files parse, every command they run is a
real entry point whose own parser accepts the arguments given, every module they load imports, every setting
they pass is one pi_platform reads, and the Helm values use only keys of the official chart's schema."""

import argparse
import importlib
import re
from pathlib import Path

import click
import dagster._cli
import dagster._daemon.cli
import dagster_webserver.cli
import pytest
import yaml

from pi_platform import cli, settings
from pi_platform.launcher.instance import POSTGRES_URL_ENV

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CLICK_ENTRY_POINTS = {"dagster": dagster._cli.cli, "dagster-daemon": dagster._daemon.cli.cli,
                      "dagster-webserver": dagster_webserver.cli.dagster_webserver}

# The chart's value keys, transcribed from its pydantic schema (dagster-io/dagster helm/dagster/schema/schema/charts:
# dagster/values.py, subschema/{global_,postgresql,run_launcher,daemon,concurrency}.py, dagster_user_deployments/subschema/
# user_deployments.py). A key missing here is a typo the chart would reject or silently ignore.
CHART_KEYS = {
    "global": {"postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName",
               "dagsterInstanceConfigMap"},
    "generatePostgresqlPasswordSecret": None,
    "postgresql": {"postgresqlScheme", "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
                   "postgresqlDatabase", "postgresqlParams", "service"},
    "dagster-user-deployments": {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    "runLauncher": {"type", "config"},
    "dagsterDaemon": {"enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps", "envSecrets",
                      "runMonitoring", "runRetries", "sensors", "schedules", "resources", "annotations", "labels"},
    "concurrency": {"enabled", "pools", "runs"},
    "telemetry": {"enabled"},
}
USER_DEPLOYMENT_KEYS = {"name", "image", "port", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
                        "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations",
                        "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe",
                        "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName"}
K8S_RUN_LAUNCHER_KEYS = {"image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
                         "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "failPodOnRunFailure"}


def parse_click(command: click.Command, args: list[str]) -> None:
    """Parse `args` the way the entry point would (unknown option or command: click.UsageError), without running."""
    while isinstance(command, click.Group):
        context = command.make_context(command.name, list(args), resilient_parsing=False)
        _, command, args = command.resolve_command(context, context.protected_args + context.args)
    command.make_context(command.name, list(args))


def in_image() -> dict[str, str]:
    """Files the Dockerfile copies to an absolute path in the image -> the repo file (for parsers that stat them)."""
    copies = re.findall(r"^COPY (\S+) (/\S+)$", (DEPLOY / "Dockerfile").read_text(), flags=re.M)
    return {target: str(REPO / source) for source, target in copies}


def check_command(argv: list[str]) -> None:
    """`argv` is a real entry point with arguments its parser accepts; a `-m MODULE` it names imports."""
    program, *args = argv
    args = [in_image().get(arg, arg) for arg in args]
    if program == "pi-platform":
        name, *rest = args
        parser = argparse.ArgumentParser(prog=f"pi-platform {name}", exit_on_error=False)
        importlib.import_module(cli.COMMANDS[name][0]).add_arguments(parser)
        parser.parse_args(rest)
    else:
        parse_click(CLICK_ENTRY_POINTS[program], args)
    if "-m" in args:
        importlib.import_module(args[args.index("-m") + 1])


def settings_read() -> set[str]:
    """Every PI_* name settings.py reads (the only reader of the environment), plus the client's PI_WEBAPI_<FIELD>."""
    return set(re.findall(r'"(PI_[A-Z_]+)"', (REPO / "pi_platform" / "settings.py").read_text()))


def check_environment(names: list[str]) -> None:
    known = settings_read()
    unknown = [n for n in names if n.startswith("PI_") and n not in known and not n.startswith("PI_WEBAPI_")]
    assert unknown == [], f"not read by pi_platform/settings.py: {unknown}"


def test_compose_services_run_real_commands_with_settings_the_platform_reads():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "code", "webserver", "daemon"} <= set(services)
    assert [name for name in services if name.startswith("collector")], "no stream collector service"
    for name, service in services.items():
        if name == "postgres":
            continue
        assert service["build"]["dockerfile"] == "deploy/Dockerfile" and (DEPLOY / service["build"]["context"]).is_dir()
        check_command(service["command"])
        check_environment(list(service["environment"]))
        assert POSTGRES_URL_ENV in service["environment"]
    assert "postgres" in services["webserver"]["depends_on"]

    # the webserver and the daemon load the code location from the code service's gRPC port
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (server,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    code_command = services["code"]["command"]
    assert server["host"] == "code" and str(server["port"]) == code_command[code_command.index("-p") + 1]
    assert server["location_name"] == code_command[code_command.index("--location-name") + 1]


def test_dockerfile_copies_what_exists_and_serves_the_code_location():
    text = (DEPLOY / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, flags=re.M):
        *sources, _ = line.split()
        for source in sources:
            assert (REPO / source).exists(), source
    assert "write_instance_yaml(" in text and "postgres=True" in text  # the instance `up --postgres` writes
    check_command(yaml.safe_load("[" + re.search(r"^CMD \[(.+?)\]$", text, flags=re.M | re.S).group(1).replace("\\\n", "") + "]"))


def test_helm_values_use_the_charts_keys_and_the_k8s_run_launcher():
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    assert set(values) <= set(CHART_KEYS), set(values) - set(CHART_KEYS)
    for key, allowed in CHART_KEYS.items():
        if allowed is not None and isinstance(values.get(key), dict):
            assert set(values[key]) <= allowed, (key, set(values[key]) - allowed)
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert set(values["runLauncher"]["config"]["k8sRunLauncher"]) <= K8S_RUN_LAUNCHER_KEYS
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert set(deployment) <= USER_DEPLOYMENT_KEYS
    check_command(["dagster", "code-server", "start", "-p", str(deployment["port"]), *deployment["codeServerArgs"]])
    check_environment([item["name"] for item in deployment["env"]])


@pytest.mark.parametrize("argv", [["dagster", "code-server", "start", "--no-such-flag"], ["pi-platform", "stream", "--shard"]])
def test_the_command_check_rejects_what_the_entry_point_would(argv):
    with pytest.raises((click.UsageError, argparse.ArgumentError)):
        check_command(argv)
