"""Audit the installed packages for known vulnerabilities: pip-audit, strict, PyPI's feed.

Why a wrapper and not a bare ``pip-audit`` line:

1. **Known-unfixable advisories are listed, never silenced wholesale**: each id in
   ``.ci/audit-ignore.txt`` needs a reason on its line, and only those ids are ignored.
2. **No silent pass**: ``--strict`` makes a package that could not be checked an error.
   Without it pip-audit exits 0 having checked nothing when the advisory feed does not answer.
3. **The feed may not be reachable**: pip-audit's PyPI service reads
   ``https://pypi.org/pypi/<name>/<version>/json``. Some registry-only networks (this project's
   machines among them) serve PyPI's index but answer 404 for that endpoint, even for releases
   that exist. The wrapper asks the feed for a release that surely exists (pip-audit's own)
   first: if the feed does not answer, it says so in one line and exits 0, or 2 when
   ``METERING_AUDIT_REQUIRED=1`` (set it wherever the feed is reachable, so a broken feed
   fails the build there).

Exit codes: 0 clean (or feed unreachable, not required), 1 vulnerabilities found or a
package not auditable, 2 feed unreachable and required, 3 a malformed ignore file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path

IGNORE_FILE = Path(__file__).with_name("audit-ignore.txt")
FEED = "https://pypi.org/pypi/{name}/{version}/json"
TIMEOUT_S = 20


def ignored_ids(path: Path = IGNORE_FILE) -> list[str]:
    """The advisory ids to ignore: ``<ID> <reason…>`` per line; ``#`` lines are comments."""
    ids = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        advisory, _, reason = text.partition(" ")
        if not reason.strip():
            print(f"audit: {path.name}:{number}: {advisory} has no reason", file=sys.stderr)
            raise SystemExit(3)
        ids.append(advisory)
    return ids


def feed_answers() -> str | None:
    """None when the advisory feed answers; else why not (one line)."""
    url = FEED.format(name="pip-audit", version=version("pip-audit"))
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            response.read(1)
    except urllib.error.HTTPError as exc:
        return f"GET {url} answered {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return f"GET {url} failed: {getattr(exc, 'reason', exc)}"
    return None


def main() -> int:
    ignores = ignored_ids()
    unreachable = feed_answers()
    if unreachable is not None:
        required = os.environ.get("METERING_AUDIT_REQUIRED", "") == "1"
        print(
            f"audit: NOT RUN: PyPI's advisory feed does not answer here ({unreachable}); "
            "run `make audit` where it does"
            + (" (METERING_AUDIT_REQUIRED=1: failing)" if required else ""),
            file=sys.stderr,
        )
        return 2 if required else 0
    command = [
        sys.executable, "-m", "pip_audit", "--strict", "--vulnerability-service", "pypi",
        "--skip-editable", "--progress-spinner", "off", "--desc", "off",
        *(arg for advisory in ignores for arg in ("--ignore-vuln", advisory)),
    ]  # fmt: skip
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
