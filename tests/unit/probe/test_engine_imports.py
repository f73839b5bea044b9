"""cryptography (about 8 MB) is imported by the first probe that reads a certificate, not before:
a runner whose monitors are not TLS never loads it."""

from __future__ import annotations

from pathlib import Path

import trustme

from ..fresh_python import run_fresh

# Runs in a fresh interpreter: this one has imported cryptography already (trustme does).
_SCRIPT = """
import asyncio, json, ssl, sys
from tcpmonitor.api import TcpMonitorSpec
from tcpmonitor.cli.main import main
from tcpmonitor.probe import ProbeMaterial, compile_plan, run_probe
from tcpmonitor.scheduling.runtime import MonitorRuntime

def loaded():
    return any(name.startswith("cryptography") for name in sys.modules)

async def serve(context):
    async def close(_, writer):
        writer.close()
    return await asyncio.start_server(close, "127.0.0.1", 0, ssl=context)

async def probe(port, material=None, **spec):
    spec = TcpMonitorSpec.model_validate({"host": "127.0.0.1", "port": port, **spec})
    return await run_probe(compile_plan(spec, material))

async def scenario():
    seen = {"imported": loaded()}
    plain = await serve(None)
    result = await probe(plain.sockets[0].getsockname()[1], send="x", timeout="2s")
    seen["connect"] = (result.state.value, loaded())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    secure = await serve(context)
    material = ProbeMaterial(ca_pem=open(sys.argv[3]).read())
    tls = {"enabled": True, "serverName": "localhost"}
    result = await probe(secure.sockets[0].getsockname()[1], material, tls=tls, timeout="2s")
    seen["tls"] = (result.state.value, result.tls.certificate is not None, loaded())
    print(json.dumps(seen))

asyncio.run(scenario())
"""


def test_cryptography_is_imported_by_the_first_tls_probe_only(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    cert, key, ca_pem = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_pem))
    seen = run_fresh(_SCRIPT, str(cert), str(key), str(ca_pem))
    assert seen["imported"] is False
    assert seen["connect"] == ["Up", False]
    assert seen["tls"] == ["Up", True, True]
