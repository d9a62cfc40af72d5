"""The Apache Kafka broker's jars, gathered from Maven Central once per version.

Maven resolves ``kafka_2.13`` and its dependencies from ``pom.xml`` beside this module and copies
them to ``<home>/kafka/<version>/libs``. A marker file written last says the copy completed, so a
fetch interrupted halfway is redone rather than trusted; a file lock keeps two processes (two
test sessions, ``make`` and a CLI) from fetching into the same directory at once.
"""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from metering.errors import ServiceUnavailable

POM = Path(__file__).resolve().parent / "pom.xml"
MARKER = ".fetch-complete"
SCALA = "2.13"
FETCH_TIMEOUT_S = 900.0
_BROKER_JAR = re.compile(rf"^kafka_{re.escape(SCALA)}-(?P<version>[0-9][^/]*)\.jar$")


def version_dir(home: Path, version: str) -> Path:
    """``<home>/kafka/<version>``: everything cached for one Kafka release."""
    return home / "kafka" / version


def libs_dir(home: Path, version: str) -> Path:
    """Where the broker's jars of ``version`` live once fetched."""
    return version_dir(home, version) / "libs"


def is_fetched(libs: Path) -> bool:
    """True when a previous fetch into ``libs`` ran to its end."""
    return (libs / MARKER).is_file()


def broker_version(libs: Path) -> str:
    """The Kafka version of the broker jar in ``libs`` (``kafka_2.13-3.9.2.jar`` → ``3.9.2``)."""
    for jar in sorted(libs.glob(f"kafka_{SCALA}-*.jar")):
        match = _BROKER_JAR.match(jar.name)
        if match:
            return match["version"]
    raise ServiceUnavailable(f"no kafka_{SCALA}-*.jar in {libs}: run `metering kafka fetch`")


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch_jars(home: Path, version: str, *, mvn: str = "mvn") -> Path:
    """Gather the jars of Kafka ``version`` under ``home`` and return their directory.

    Idempotent: returns at once when the marker of a completed fetch is there. Otherwise:
    1. take the per-version lock (a concurrent fetch finishes first, then we re-check);
    2. run Maven into a scratch directory, its output going to ``fetch.log``;
    3. check the broker jar of ``version`` is among the files;
    4. write the marker, then move the scratch directory into place.
    Raises ``ServiceUnavailable`` (one line, naming the log) when Maven is missing or fails.
    """
    libs = libs_dir(home, version)
    if is_fetched(libs):
        return libs
    root = version_dir(home, version)
    with _exclusive(root / ".fetch.lock"):
        if is_fetched(libs):
            return libs
        mvn_path = shutil.which(mvn)
        if mvn_path is None:
            raise ServiceUnavailable(
                f"`{mvn}` not found on PATH: install Maven to fetch the Kafka {version} jars"
            )
        # Step 2. Maven into a scratch directory.
        scratch = root / "libs.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        log = root / "fetch.log"
        command = [
            mvn_path,
            "-B",
            "-q",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-Dkafka.version={version}",
            f"-DoutputDirectory={scratch}",
        ]
        with log.open("w") as out:
            try:
                result = subprocess.run(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=FETCH_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise ServiceUnavailable(
                    f"fetching the Kafka {version} jars took over {FETCH_TIMEOUT_S:.0f}s; see {log}"
                ) from None
        if result.returncode != 0:
            raise ServiceUnavailable(
                f"fetching the Kafka {version} jars failed "
                f"(mvn exit {result.returncode}); see {log}"
            )
        # Step 3. The broker jar of the asked version must be there.
        if not (scratch / f"kafka_{SCALA}-{version}.jar").is_file():
            raise ServiceUnavailable(f"Maven gave no kafka_{SCALA}-{version}.jar; see {log}")
        # Step 4. Marker first, then the move: `libs` never exists without its marker.
        jars = sorted(p.name for p in scratch.glob("*.jar"))
        (scratch / MARKER).write_text(
            f"kafka {version}\nfetched {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
            + "".join(f"{name}\n" for name in jars)
        )
        shutil.rmtree(libs, ignore_errors=True)
        scratch.rename(libs)
    return libs
