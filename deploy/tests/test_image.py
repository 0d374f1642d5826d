"""deploy/Dockerfile against what the services need at run time (no Docker engine here to
build it, so the file is checked for the parts a container would otherwise miss)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import eas_station.dashboard as dashboard

DEPLOY = Path(__file__).resolve().parents[1]
ROOT = DEPLOY.parent
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def _final_stage() -> str:
    return DOCKERFILE[[m.start() for m in re.finditer(r"^FROM ", DOCKERFILE, re.M)][-1] :]


def test_the_map_files_reach_the_image_from_the_script_setup_uses() -> None:
    # The map's stage runs the one script that holds the package versions ...
    stage = re.search(r"^FROM (\S+) AS dashboard-map$(.*?)^FROM ", DOCKERFILE, re.M | re.S)
    assert stage, "no dashboard-map stage"
    assert "scripts/vendor-map.sh /build/vendor" in stage.group(2)
    assert "scripts/vendor-map.sh" in (ROOT / "scripts" / "setup.sh").read_text()
    # ... and its files land where the dashboard serves /static/vendor from.
    copy = re.search(r"^COPY --from=dashboard-map /build/vendor (\S+)$", _final_stage(), re.M)
    assert copy, "the final stage does not copy the map files"
    assert (ROOT / copy.group(1)).resolve() == (dashboard.STATIC / "vendor").resolve()
    assert "/static/vendor" in (dashboard.STATIC / "map.js").read_text()


@pytest.mark.parametrize(
    ("package", "why"),
    [
        ("espeak-ng", "narration's default text-to-speech engine"),
        ("ffmpeg", "eas-monitor's stream inputs, audio-control's uploads and stream outputs"),
    ],
)
def test_the_image_installs_the_tools_the_services_call(package: str, why: str) -> None:
    install = re.search(r"apt-get install[^&]*", _final_stage(), re.S)
    assert install and re.search(rf"\b{re.escape(package)}\b", install.group(0)), (
        f"{package} ({why}) is not installed in the image"
    )


def test_the_vendor_script_skips_work_already_done(tmp_path: Path) -> None:
    # The stamp is what makes setup.sh quick on every test run: with it, nothing is fetched
    # (an unreachable npm registry would fail the call otherwise).
    dest = tmp_path / "vendor"
    dest.mkdir()
    # The shell's tools, but no npm.
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("dirname", "cat", "mkdir", "cp"):
        (tools / tool).symlink_to(
            f"/usr/bin/{tool}" if Path(f"/usr/bin/{tool}").exists() else f"/bin/{tool}"
        )
    script = (ROOT / "scripts" / "vendor-map.sh").read_text()
    packages = re.search(r'^MAP_PACKAGES="([^"]+)"$', script, re.M)
    assert packages
    (dest / "VERSIONS").write_text(packages.group(1) + "\n")
    done = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "vendor-map.sh"), str(dest), str(tmp_path / "npm")],
        env={"PATH": str(tools)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["VERSIONS"]
