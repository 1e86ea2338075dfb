"""The network guard itself: a download attempt inside a test must fail loudly."""

import socket
import urllib.request

import pytest

from tests.conftest import NetworkAccessError


def test_download_attempt_is_blocked() -> None:
    with pytest.raises(NetworkAccessError):
        urllib.request.urlopen("https://download.pytorch.org/models/resnet18-f37072fd.pth", timeout=1)


def test_loopback_is_allowed() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket()
    client.connect(server.getsockname())  # must not raise
    client.close()
    server.close()
