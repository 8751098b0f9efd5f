"""A local stack never puts two of its parts on one port: one of them would fail to bind while the other answered
in its place (seen as a policy engine answering 404 to every policy route)."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from opsmeter_cli.stack import SERVICES, Stack, StackConfig
from opsmeter_runtime.localstack import LocalStackError, free_port


def test_free_ports_are_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_a_stack_with_two_parts_on_one_port_refuses_to_start(tmp_path: Path) -> None:
    ports = {s.name: free_port() for s in SERVICES}
    ports["policy-engine"] = ports["reporting"]
    config = StackConfig(data_dir=tmp_path, broker_port=free_port(), redis_port=free_port(), service_ports=ports)
    with pytest.raises(LocalStackError, match=r"two parts of the stack on one port: .*policy-engine"):
        Stack(config).start(timeout=5)


def test_a_service_whose_port_is_taken_exits_at_once(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = "async def app(scope, receive, send):\n    raise RuntimeError('never served')\n"
        code = (
            f"{app}\n"
            "from opsmeter_runtime.service import serve\n"
            "from opsmeter_runtime.settings import ServiceSettings\n"
            f"serve(app, ServiceSettings(host='127.0.0.1', port={port}), service='probe')\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0
    assert "address already in use" in (done.stdout + done.stderr).lower()
