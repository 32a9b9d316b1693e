"""The Runtime API client against a scripted UNIX socket (no HAProxy needed)."""

from __future__ import annotations

import socket
import threading

import pytest

from deployments.runtimes.single_host.haproxy_api import HAProxyError, RuntimeAPI

STAT = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,weight,status,addr\n"
    "be_hello,BACKEND,0,0,1,1,,10,256,UP,\n"
    "be_hello,r1-0,0,0,1,1,,7,256,no check,127.0.0.1:40001\n"
    "be_hello,r2-0,0,0,2,2,,3,128,DRAIN,127.0.0.1:40002\n"
    "be_hello,r3-0,1,1,0,0,,0,0,MAINT,127.0.0.1:40003\n"
)


class FakeSocket:
    """Answers each connection's single command line from a table; records commands."""

    def __init__(self, path: str, answers: dict[str, str]):
        self.path, self.answers, self.commands = path, answers, []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    data += conn.recv(4096)
                command = data.decode().strip()
                self.commands.append(command)
                answer = next((a for prefix, a in self.answers.items() if command.startswith(prefix)), "")
                conn.sendall(answer.encode())

    def close(self):
        self.server.close()


@pytest.fixture
def fake(tmp_path):
    sock = FakeSocket(
        str(tmp_path / "admin.sock"),
        {
            "show stat": STAT,
            "show info": "Name: HAProxy\nVersion: 2.6.12\nPid: 4242\n",
            "show backend": "# name\nbe_unknown\nbe_hello\n",
            "experimental-mode on; add server be_hello/bad": "Invalid server address\n",
            "experimental-mode on; add server": "New server registered.\n",
            "experimental-mode on; del server": "Server deleted.\n",
            "set weight be_hello/nope": "No such server.\n",
        },
    )
    yield sock
    sock.close()


def test_servers_parses_show_stat(fake):
    api = RuntimeAPI(fake.path)
    servers = api.servers("be_hello")
    assert set(servers) == {"r1-0", "r2-0", "r3-0"}
    assert servers["r1-0"] == {"weight": 256, "state": "ready", "sessions": 1, "queued": 0, "addr": "127.0.0.1:40001"}
    assert servers["r2-0"]["state"] == "drain" and servers["r2-0"]["weight"] == 0
    assert servers["r3-0"]["state"] == "maint" and servers["r3-0"]["queued"] == 1
    assert fake.commands == ["show stat be_hello 4 -1"]


def test_add_and_delete_use_experimental_mode(fake):
    api = RuntimeAPI(fake.path)
    api.add_server("be_hello", "r4-0", "127.0.0.1", 40004, weight=0)
    api.del_server("be_hello", "r4-0")
    assert fake.commands == [
        "experimental-mode on; add server be_hello/r4-0 127.0.0.1:40004 weight 0",
        "experimental-mode on; del server be_hello/r4-0",
    ]
    with pytest.raises(HAProxyError, match="Invalid server address"):
        api.add_server("be_hello", "bad", "x", 1)


def test_set_commands_fail_loudly_on_any_answer(fake):
    api = RuntimeAPI(fake.path)
    api.set_weight("be_hello", "r1-0", 100)
    api.set_state("be_hello", "r1-0", "drain")
    api.batch(["set weight be_hello/r1-0 1", "set server be_hello/r1-0 state ready"])
    assert fake.commands[-1] == "set weight be_hello/r1-0 1; set server be_hello/r1-0 state ready"
    with pytest.raises(HAProxyError, match="No such server"):
        api.set_weight("be_hello", "nope", 1)
    with pytest.raises(ValueError):
        api.set_state("be_hello", "r1-0", "up")


def test_info_backends_and_alive(fake, tmp_path):
    api = RuntimeAPI(fake.path)
    assert api.info()["Pid"] == "4242"
    assert api.backends() == ["be_unknown", "be_hello"]
    assert api.alive()
    assert not RuntimeAPI(str(tmp_path / "absent.sock"), connect_wait=0.05).alive()
    with pytest.raises(HAProxyError, match="not reachable"):
        RuntimeAPI(str(tmp_path / "absent.sock"), connect_wait=0.05).execute("show info")
