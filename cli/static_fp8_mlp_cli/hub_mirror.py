"""A local, read-only Hugging Face Hub for kernel repos: olah in offline mode.

olah (PyPI `olah`, checked with 0.5.4) serves git repositories under
`<mirrors-path>/<repo_type>/<owner>/<name>` as Hub repos. Its routes take the repo type
from the URL (`/api/kernels/...`, `/kernels/.../resolve/...`) and accept every type in
huggingface_hub's REPO_TYPES_MAPPING, which includes `kernels` from huggingface_hub
2.x on, so with `offline = true` it answers, from the local git repo, everything
`kernels.get_kernel(repo_id, version=N)` and `snapshot_download(repo_type="kernel")`
ask: `/api/kernels/<id>/refs`, `/api/kernels/<id>/tree/<rev>/<path>`,
`/api/kernels/<id>/revision/<rev>`, `HEAD`/`GET /kernels/<id>/resolve/<rev>/<file>`.

What it does not serve, and how we live with it:
- `/api/organizations/<owner>/overview` (the `kernels` trust check): callers pass
  `trust_remote_code=True` (or a list naming the repo).
- Uploads of any kind: `publish --git`/`--mirror-root` writes the git repo directly.
- Its LFS sniffing reads any 120-150 byte blob as text; a *binary* file of that size
  would make it fail. Variant files are text of that size at most (the native module
  is far larger), so this does not bite us.

olah pins its own dependency versions, so it lives in its own virtualenv:
`find_olah()` looks at $OLAH_BIN, then `olah-cli` on PATH, then the default venv
(`$STATIC_FP8_MLP_OLAH_VENV`, else ~/.cache/static-fp8-mlp/olah-venv);
`find_olah(install=True)` creates that venv with `pip install olah==0.5.4`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

OLAH_VERSION = "0.5.4"
HOST = "127.0.0.1"


class HubMirrorError(RuntimeError):
    pass


def default_olah_venv() -> Path:
    env = os.environ.get("STATIC_FP8_MLP_OLAH_VENV")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "static-fp8-mlp" / "olah-venv"


def find_olah(*, install: bool = False) -> Path:
    """Path of the `olah-cli` executable; with `install`, create the default venv if needed."""
    env_bin = os.environ.get("OLAH_BIN")
    if env_bin:
        p = Path(env_bin)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise HubMirrorError(f"OLAH_BIN={env_bin} is not an executable file")
    on_path = shutil.which("olah-cli")
    if on_path:
        return Path(on_path)
    venv_bin = default_olah_venv() / "bin" / "olah-cli"
    if venv_bin.is_file():
        return venv_bin
    if not install:
        raise HubMirrorError(
            "olah is not installed: run tools/install_olah.sh (or set OLAH_BIN to an olah-cli "
            "executable, or put olah-cli on PATH)"
        )
    return install_olah(default_olah_venv())


def install_olah(venv: Path, *, python: str | None = None) -> Path:
    """Create `venv` and pip-install olah into it; returns its olah-cli."""
    venv = Path(venv)
    subprocess.run([python or sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"olah=={OLAH_VERSION}"], check=True
    )
    return venv / "bin" / "olah-cli"


def mirror_repo_dir(mirror_dir: Path, repo_id: str) -> Path:
    """Where the git repo of kernel `repo_id` lives under a mirror root."""
    owner, name = repo_id.split("/")
    return Path(mirror_dir) / "kernels" / owner / name


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _write_config(path: Path, *, port: int, mirror_dir: Path, cache_dir: Path) -> None:
    def q(p: Path) -> str:
        return '"' + str(p).replace("\\", "\\\\").replace('"', '\\"') + '"'

    path.write_text(
        "[basic]\n"
        f'host = "{HOST}"\n'
        f"port = {port}\n"
        f"repos-path = {q(cache_dir)}\n"
        f"mirrors-path = [{q(mirror_dir)}]\n"
        f'mirror-netloc = "{HOST}:{port}"\n'
        f'mirror-lfs-netloc = "{HOST}:{port}"\n'
        "\n[accessibility]\n"
        "offline = true\n"
    )


def _ready(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/api/kernels/__probe__/__probe__/refs", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def serve_local_hub(
    mirror_dir: Path,
    port: int | None = None,
    *,
    olah_bin: Path | None = None,
    startup_timeout: float = 60.0,
    log_dir: Path | None = None,
) -> Iterator[str]:
    """Serve `mirror_dir` (holding `kernels/<owner>/<name>` git repos) on 127.0.0.1.

    Yields the endpoint URL (for HF_ENDPOINT). The server runs in its own process group
    and is stopped (SIGTERM, then SIGKILL after 10 s) when the block exits, whatever
    happens inside it.
    """
    olah = Path(olah_bin) if olah_bin else find_olah()
    mirror_dir = Path(mirror_dir).absolute()
    with tempfile.TemporaryDirectory(prefix="olah-") as tmp:
        tmp_path = Path(tmp)
        logs = Path(log_dir) if log_dir else tmp_path / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        attempts = 1 if port is not None else 3
        last_error = ""
        for _ in range(attempts):
            use_port = port or free_port()
            endpoint = f"http://{HOST}:{use_port}"
            config = tmp_path / "olah.toml"
            _write_config(config, port=use_port, mirror_dir=mirror_dir, cache_dir=tmp_path / "cache")
            log_file = open(logs / "olah.stdout", "ab")
            proc = subprocess.Popen(
                [str(olah), "-c", str(config), "--log-path", str(logs)],
                cwd=tmp,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                deadline = time.monotonic() + startup_timeout
                while time.monotonic() < deadline:
                    if proc.poll() is not None:
                        break
                    if _ready(endpoint):
                        break
                    time.sleep(0.2)
                if proc.poll() is None and _ready(endpoint):
                    try:
                        yield endpoint
                        return
                    finally:
                        _stop(proc)
                        log_file.close()
                last_error = (logs / "olah.stdout").read_text(errors="replace")[-2000:]
            finally:
                _stop(proc)
                log_file.close()
        raise HubMirrorError(f"olah did not start on {HOST}: {last_error}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the group is only olah
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def client_env(endpoint: str, cache_dir: Path, *, offline: bool = False) -> dict[str, str]:
    """Environment for a child process that loads kernels from `endpoint` into `cache_dir`.

    Telemetry is off, and HF_HUB_USER_AGENT_ORIGIN is set because kernels 0.17.2 builds
    an invalid User-Agent (which httpx refuses to send) when telemetry is disabled
    without it.
    """
    env = {
        "HF_ENDPOINT": endpoint,
        "HF_HUB_CACHE": str(cache_dir),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_USER_AGENT_ORIGIN": "static-fp8-mlp",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env
