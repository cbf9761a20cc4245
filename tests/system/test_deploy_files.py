"""The deployment files: docker-compose.yml, the nginx config, the Dockerfile, and docs/deployment.md on them.

No Docker engine runs here, so the files are checked by parsing them (and nginx's own `-t`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.render_nginx_local import render
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"mongo", "redis", "hub1", "hub2", "nginx"}
HUBS = ("hub1", "hub2")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def default(name: str) -> Any:
    """A setting's default from the code (not Settings(): the environment may set variables)."""
    field = Settings.model_fields[name]
    return field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]


def deployment_doc_section(title: str) -> str:
    text = (ROOT / "docs" / "deployment.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/deployment.md has no '## {title}' section"
    return match.group(1)


def configuration_table() -> dict[str, str]:
    """The Configuration table of docs/deployment.md: variable -> default, as written there (between backticks)."""
    rows = {}
    for line in deployment_doc_section("Configuration").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"`[A-Z][A-Z0-9_]+`", cells[0]):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_compose_services_health_checks_and_variables(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    assert services["mongo"]["image"].startswith("mongo:7")
    assert "--replSet" in services["mongo"]["command"]
    assert "rs.initiate" in " ".join(services["mongo"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert any(volume.endswith(":/data/db") for volume in services["mongo"]["volumes"])
    for name in HUBS:
        hub = services[name]
        environment = hub["environment"]
        assert environment["MONGODB_URL"].startswith("mongodb://mongo:27017/")
        assert "replicaSet=rs0" in environment["MONGODB_URL"]
        assert environment["REDIS_URL"].startswith("redis://redis:6379")
        assert environment["TRUSTED_PROXY_COUNT"] == "1"  # exactly nginx in front
        assert "SECRET_KEY" not in environment  # from the env file, never in the repository
        assert hub["env_file"] in (".env", [".env"])
        assert hub["depends_on"]["mongo"]["condition"] == "service_healthy"
        assert hub["depends_on"]["redis"]["condition"] == "service_healthy"
        # Docker's SIGKILL must come after the hub's own bounded shutdown.
        grace = int(str(hub["stop_grace_period"]).rstrip("s"))
        assert grace > default("shutdown_timeout_seconds")
    nginx = services["nginx"]
    assert any(volume.startswith("./deploy/nginx.conf:") for volume in nginx["volumes"])
    assert {nginx["depends_on"][name]["condition"] for name in HUBS} == {"service_healthy"}

    # Every variable compose sets is a setting, and documented.
    documented = configuration_table()
    for name in HUBS:
        for variable in services[name]["environment"]:
            assert variable in documented, variable
    example = (ROOT / ".env.example").read_text()
    for variable in re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.M):
        assert variable in documented, variable


def test_deployment_doc_names_what_compose_has(compose: dict[str, Any]) -> None:
    deployment = deployment_doc_section("Docker Compose")
    for service in SERVICES:
        assert f"`{service}`" in deployment, service
    for word in ("ip_hash", "TRUSTED_PROXY_COUNT", ".env", "SECRET_KEY", "/health", "/ready", "/metrics"):
        assert word in deployment, word


def test_configuration_table_is_every_setting_with_its_default() -> None:
    documented = configuration_table()
    fields = Settings.model_fields
    assert set(documented) == {name.upper() for name in fields}
    for name in fields:
        written = documented[name.upper()]
        value = default(name)
        if value is None or value == []:
            assert written in ("—", "-", "(unset)", "(none)", ""), (name, written)
        elif name == "data_dir":
            assert f"`{value}`" in written or "`./var`" in written
        else:
            expected = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            assert f"`{expected}`" in written, (name, written, expected)


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in text.splitlines() if line and not line.startswith(("#", " "))]
    keywords = [parts[0].upper() for parts in instructions]
    assert keywords[0] == "FROM"
    assert "slim" in instructions[0][1]
    user = next(parts[1] for parts in instructions if parts[0].upper() == "USER")
    assert user.split(":")[0] not in ("0", "root")
    assert re.search(r"^HEALTHCHECK .*\n?.*/health", text, re.M)
    assert instructions[-1] == ["CMD", '["python", "-m", "hub"]']
    # Dependencies are installed before the code is copied, so code changes reuse the layer.
    install = text.index("pip install")
    assert text.index("COPY requirements.lock") < install < text.index("COPY hub/")
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "SECRET" in line]  # no secret baked into the image
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "var/", ".git", "tests/"} <= set(ignored)


def test_nginx_config_is_valid(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed (Debian's nginx package; .ci/run installs it)")
    source = (ROOT / "deploy" / "nginx.conf").read_text()
    for directive in ("ip_hash;", "proxy_set_header Upgrade $http_upgrade;", "location /socket.io/",
                      "server hub1:8000", "server hub2:8000", "client_max_body_size 1m;"):  # fmt: skip
        assert directive in source, directive
    config = render([18001, 18002], 18080, tmp_path)
    result = subprocess.run(
        [nginx, "-t", "-c", str(config), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
