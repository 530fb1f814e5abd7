"""`semcopy serve`'s settings: who gets in, how big an upload may be (the browser side is tests/e2e)."""

from __future__ import annotations

import json

from semcopy_lib.app.access import TOKEN_ENV, access_token
from semcopy_lib.dashboard.serve import (PLOTLY_URL, UPLOAD_GUARD, plotly_js_file, voila_command, websocket_limit,
                                         write_settings)


def test_a_token_is_asked_for_beyond_loopback_only(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert access_token(host) == "", host
    first, second = access_token("0.0.0.0"), access_token("192.168.1.5")
    assert len(first) >= 32 and first != second  # random, a new one each start
    assert access_token("example.org")  # a name that is not localhost
    assert access_token("0.0.0.0", "mine") == access_token("127.0.0.1", "mine") == "mine"
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert access_token("0.0.0.0") == "from-env"


def test_settings_carry_the_limits_and_the_token_privately(tmp_path):
    cap = 25 * 2**20
    root = write_settings(tmp_path, cap, token="s3cret")
    settings = json.loads((root / "voila.json").read_text())["Voila"]
    assert settings["token"] == "s3cret" and (root / "voila.json").stat().st_mode & 0o077 == 0
    assert settings["tornado_settings"]["websocket_max_message_size"] == websocket_limit(cap) == 8 * cap + 16 * 2**20
    page = (root / "voila" / "templates" / "semcopy" / "index.html.j2").read_text()
    assert UPLOAD_GUARD % cap in page and f"var cap = {cap}," in page
    command = voila_command(tmp_path / "nb.ipynb", "127.0.0.1", 8866)
    assert "--template=semcopy" in command and "--KernelManager.transport=ipc" in command
    assert not any("s3cret" in part for part in command)  # never on a command line others can list
    assert "--VoilaExecutor.iopub_timeout=60" in command  # a busy server still renders every page's widgets
    served = root / "voila" / "templates" / "semcopy" / "static" / "plotly.min.js"  # the map's, fetched once a browser
    assert served.read_bytes() == plotly_js_file().read_bytes() and PLOTLY_URL == "templates/semcopy/static/plotly.min.js"
