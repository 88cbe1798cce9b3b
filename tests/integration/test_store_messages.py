"""Store mistakes in a ModelDeployment get the fix in the message: https:// on a store that
speaks plain HTTP, a URL pointing at index.json, a public key pasted as a .pub body or a private
key. Real loopback HTTP server and the operator's own release fetch; no apiserver."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator

import pytest

from edge_rollout.api.release import Release
from edge_rollout.store import keys
from edge_rollout.store.releases import ReleaseRef, ReleaseUnavailableError, fetch_release
from tests.integration.fleet_support import publish_index_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(http://127.0.0.1:PORT, public key PEM) of a signed store served over plain HTTP."""
    root, public_key = publish_index_store(tmp_path_factory.mktemp("store"), ["1.0"])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", public_key
    finally:
        server.shutdown()
        thread.join(timeout=5)


def unavailable(url: str, public_key: str) -> ReleaseUnavailableError:
    found = fetch_release(ReleaseRef(url, public_key, "m", "1.0"))
    assert isinstance(found, ReleaseUnavailableError), found
    return found


def test_the_store_is_read_over_the_right_scheme(store: tuple[str, str]) -> None:
    url, public_key = store
    assert isinstance(fetch_release(ReleaseRef(url, public_key, "m", "1.0")), Release)


def test_https_on_a_plain_http_store_says_to_use_http(store: tuple[str, str]) -> None:
    url, public_key = store
    https = url.replace("http://", "https://")
    error = unavailable(https, public_key)
    assert error.reason == "StoreUnreachable"
    assert str(error).startswith(
        f"{https} answers plain HTTP, not TLS: set spec.model.store.url to {url} (or serve the"
        " store over TLS)."
    )


def test_a_url_pointing_at_the_index_says_to_give_the_base(store: tuple[str, str]) -> None:
    url, public_key = store
    error = unavailable(f"{url}/models/m/1.0/index.json", public_key)
    assert str(error) == (
        f"{url}/models/m/1.0/index.json: url check failed: this is a file in a store (a release"
        " index), not the store. Give the store's base URL; models/<model>/<version>/index.json is"
        " added to it"
    )


def test_the_body_of_a_pub_file_is_taken_as_the_key(store: tuple[str, str]) -> None:
    url, public_key = store
    body = "".join(public_key.strip().splitlines()[1:-1])
    assert isinstance(fetch_release(ReleaseRef(url, body, "m", "1.0")), Release)


@pytest.mark.parametrize("form", ["pem", "pem-body"])
def test_a_private_key_says_it_is_now_in_the_cluster_and_must_be_replaced(
    store: tuple[str, str], form: str
) -> None:
    url, _ = store
    pem = keys.private_key_pem(keys.generate_private_key()).decode()
    given = pem if form == "pem" else "".join(pem.strip().splitlines()[1:-1])
    error = unavailable(url, given)
    assert error.reason == "InvalidPublicKey"
    assert (
        str(error)
        == f"public key: key check failed: {keys.LEAKED}. Never put a private key in a spec"
    )
