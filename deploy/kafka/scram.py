"""Replace a SCRAM user's password on the brokers, with Kafka's own ``ConfigCommand``.

aiokafka has no client for the SCRAM credential API (KIP-554), so the rotation runs the
broker distribution's admin tool, as ``kafka-configs.sh --alter --entity-type users`` would.
Both secrets stay off every command line: the current login goes in a 0600 properties file,
the new password in a 0600 ``@argfile`` (``Jvm.run_tool``), each deleted after the run.
Connections already open stay authenticated; new ones need the new password.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from deploy.kafka import config
from deploy.kafka.jvm import Jvm
from deploy.kafka.security import write_private
from metering.errors import ConfigError, InputError
from metering.kafka_security import KafkaSecurity

ITERATIONS = 8192
"""SCRAM's hashing rounds for the new credential (Kafka's minimum is 4096)."""
_PLAIN = re.compile(r"[^\s,\[\]=]{12,}")
"""What ConfigCommand's ``key=[a=b,c=d]`` syntax can carry, at a length worth having."""


def rotate_password(
    java: str, libs: Path, bootstrap: str, security: KafkaSecurity, user: str, new_password: str
) -> Path:
    """Give ``user`` the SCRAM credential ``new_password`` (mechanism of ``security``),
    logging in as ``security``'s user. Returns the tool's log (kept: it holds no secret)."""
    if security.protocol == "PLAINTEXT":
        raise ConfigError(
            "the brokers take no passwords (METERING_KAFKA_SECURITY_PROTOCOL is PLAINTEXT)"
        )
    if not _PLAIN.fullmatch(new_password):
        raise InputError(
            "the new password must be at least 12 characters without spaces, ',', '[', ']' "
            "or '=' (what kafka-configs can carry)"
        )
    work = Path(tempfile.mkdtemp(prefix="metering-kafka-scram-"))
    log4j = work / "log4j.properties"
    log4j.write_text(config.LOG4J_PROPERTIES)
    log_path = work / "kafka-configs.log"
    login = work / "admin.properties"
    write_private(login, config.render_properties(security.java_properties()))
    credential = f"{security.mechanism}=[iterations={ITERATIONS},password={new_password}]"
    words = [
        "kafka.admin.ConfigCommand", "--bootstrap-server", bootstrap,
        "--command-config", str(login), "--alter", "--entity-type", "users",
        "--entity-name", user, "--add-config", credential,
    ]  # fmt: skip
    try:
        Jvm(java, libs, "256m", log4j).run_tool(
            words, work / ".args", log_path, f"replacing the password of {user}"
        )
    finally:
        login.unlink(missing_ok=True)
    return log_path
