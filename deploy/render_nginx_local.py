"""Render deploy/nginx.conf for a Docker-free run on loopback (tests, benchmarks).

The production config (deploy/nginx.conf) proxies to ``hub1:8000`` and
``hub2:8000`` and writes its pid/logs under /var.  This module rewrites a copy:

* every ``server HOST:PORT ...;`` line of the upstream block becomes one line per
  port in *upstream_ports*, pointing at ``127.0.0.1:PORT`` (parameters such as
  ``max_fails`` are kept);
* ``listen 80;`` becomes ``listen 127.0.0.1:LISTEN_PORT;`` (an IPv6 ``listen
  [::]:80`` line, if any, is dropped);
* ``user`` is removed, ``daemon off;`` is added, and ``pid``, ``error_log``,
  ``access_log`` and every ``*_temp_path`` point inside *workdir*.

Usage as a module::

    from deploy.render_nginx_local import render
    conf = render([8001, 8002], 8080, pathlib.Path("var/nginx"))
    subprocess.Popen(["nginx", "-c", str(conf), "-p", str(workdir), "-e", str(workdir / "error.log")])

or from the command line::

    python deploy/render_nginx_local.py --upstream 8001 8002 --listen 8080 --workdir var/nginx
"""

from __future__ import annotations

import argparse
import pathlib
import re

SOURCE = pathlib.Path(__file__).resolve().parent / "nginx.conf"

TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

_USER = re.compile(r"^[ \t]*user\s+[^;]*;[^\n]*\n", re.M)
_DAEMON = re.compile(r"^[ \t]*daemon\s+[^;]*;[^\n]*\n", re.M)
_PID = re.compile(r"^(\s*)pid\s+[^;]*;", re.M)
_ERROR_LOG = re.compile(r"^(\s*)error_log\s+\S+", re.M)
_ACCESS_LOG = re.compile(r"^(\s*)access_log\s+\S+", re.M)
_TEMP_PATH = re.compile(r"^[ \t]*\w+_temp_path\s+[^;]*;[^\n]*\n", re.M)
_INCLUDE = re.compile(r"^[ \t]*include\s+([^;\s]+)\s*;[^\n]*\n", re.M)
_UPSTREAM = re.compile(r"(upstream\s+\w+\s*\{)(.*?)(\})", re.S)
# "server host:port params;" (not "server {", "server_name", "server_tokens").
_UPSTREAM_SERVER = re.compile(r"^([ \t]*)server\s+[^\s;{]+([^;]*);[^\n]*\n", re.M)
_LISTEN_V4 = re.compile(r"^(\s*)listen\s+(?:0\.0\.0\.0:|\*:)?80\b([^;]*);", re.M)
_LISTEN_V6 = re.compile(r"^[ \t]*listen\s+\[::\]:80\b[^;]*;[^\n]*\n", re.M)
_HTTP_OPEN = re.compile(r"^(\s*)http\s*\{[^\n]*\n", re.M)


def _q(path: pathlib.Path) -> str:
    """Quote a path for nginx (workdirs may contain spaces)."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _drop_missing_include(m: re.Match) -> str:
    # e.g. /etc/nginx/mime.types on a machine without nginx-common: drop the
    # include rather than fail (default_type still applies).
    target = m.group(1)
    if any(ch in target for ch in "*?[") or pathlib.Path(target).exists():
        return m.group(0)
    return ""


def _rewrite_upstream(block: re.Match, ports: list[int]) -> str:
    head, body, tail = block.group(1), block.group(2), block.group(3)
    servers = list(_UPSTREAM_SERVER.finditer(body))
    if not servers:
        raise ValueError("upstream block has no 'server' lines")
    indent, params = servers[0].group(1), servers[0].group(2)
    replacement = "".join(f"{indent}server 127.0.0.1:{int(p)}{params};\n" for p in ports)
    first = servers[0]
    body = body[: first.start()] + replacement + _UPSTREAM_SERVER.sub("", body[first.end() :])
    return head + body + tail


def render_text(text: str, upstream_ports: list[int], listen_port: int, workdir: pathlib.Path) -> str:
    """Return *text* (an nginx.conf) rewritten for loopback; see the module doc."""
    if not upstream_ports:
        raise ValueError("at least one upstream port is needed")
    workdir = pathlib.Path(workdir).resolve()

    text = _USER.sub("", text)
    text = _DAEMON.sub("", text)
    text = _TEMP_PATH.sub("", text)
    text = _INCLUDE.sub(_drop_missing_include, text)
    text = "daemon off;\n" + text

    text, n = _PID.subn(lambda m: f"{m.group(1)}pid {_q(workdir / 'nginx.pid')};", text)
    if not n:
        text = f"pid {_q(workdir / 'nginx.pid')};\n" + text
    text, n = _ERROR_LOG.subn(lambda m: f"{m.group(1)}error_log {_q(workdir / 'error.log')}", text)
    if not n:
        text = f"error_log {_q(workdir / 'error.log')};\n" + text
    text = _ACCESS_LOG.sub(lambda m: f"{m.group(1)}access_log {_q(workdir / 'access.log')}", text)

    text, n = _UPSTREAM.subn(lambda m: _rewrite_upstream(m, upstream_ports), text)
    if n != 1:
        raise ValueError(f"expected exactly one upstream block, found {n}")

    text = _LISTEN_V6.sub("", text)
    text, n = _LISTEN_V4.subn(lambda m: f"{m.group(1)}listen 127.0.0.1:{int(listen_port)}{m.group(2)};", text)
    if not n:
        raise ValueError("no 'listen 80' line found")

    temp_lines = "".join(f"    {name}_temp_path {_q(workdir / 'tmp' / name)};\n" for name in TEMP_PATHS)
    text, n = _HTTP_OPEN.subn(lambda m: m.group(0) + temp_lines, text, count=1)
    if not n:
        raise ValueError("no 'http {' block found")
    return text


def render(upstream_ports: list[int], listen_port: int, workdir: pathlib.Path) -> pathlib.Path:
    """Write a loopback copy of deploy/nginx.conf into *workdir*; return its path.

    Start it with ``nginx -c <path> -p <workdir> -e <workdir>/error.log``
    (``daemon off;`` is set: nginx stays in the foreground).
    """
    workdir = pathlib.Path(workdir).resolve()
    for name in TEMP_PATHS:
        (workdir / "tmp" / name).mkdir(parents=True, exist_ok=True)
    text = render_text(SOURCE.read_text(), upstream_ports, listen_port, workdir)
    out = workdir / "nginx.conf"
    out.write_text(text)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", type=int, nargs="+", required=True, metavar="PORT")
    ap.add_argument("--listen", type=int, required=True, metavar="PORT")
    ap.add_argument("--workdir", type=pathlib.Path, required=True)
    args = ap.parse_args(argv)
    print(render(args.upstream, args.listen, args.workdir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
