"""What the lab connector's tests share: the connector's settings for a sandbox, an order
built with the labs' own ORM builder, waiting for something to happen, and a self-signed
certificate for TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal.integrations.hl7lab.connector import Hl7LabConnector
from portal.labs.hl7.orm import OrderedTest, OrderMessage, build_orm
from portal.terminology import lab_tests

# The sandbox for tests: free ports, short delays, quick retries, the same values each run.
FAST = {
    "mllp_port": 0,
    "control_port": 0,
    "result_delay": 0.1,
    "final_delay": 0.2,
    "correction_delay": 0.2,
    "results_timeout": 5.0,
    "retry_delays": (0.2, 0.5, 1.0),
    "seed": 12,
}

LIPID_PANEL = "24331-1"
HBA1C = "4548-4"


def settings_for(lab_port: int, **overrides) -> dict:
    """The connector's settings pointing at a lab on loopback ``lab_port``."""
    return {
        "host": "127.0.0.1",
        "port": lab_port,
        "use_tls": False,
        "tls_ca_pem": "",
        "timeout_seconds": 2,
        "sending_application": "PRACTICE_PORTAL",
        "sending_facility": "PORTAL",
        "receiving_application": "SANDBOX_LIS",
        "receiving_facility": "SANDBOX_LAB",
        "lab_codes": "",
        **overrides,
    }


def connector_for(lab_port: int, **overrides) -> Hl7LabConnector:
    return Hl7LabConnector(settings_for(lab_port, **overrides))


def order_message(
    *,
    control_id: str = "ORD-1",
    placer: str = "PL-1",
    mrn: str = "MRN-1",
    family: str = "Doe",
    given: str = "Jane",
    birth_date: date = date(1980, 1, 2),
    tests: tuple[str, ...] = (LIPID_PANEL, HBA1C),
    connector: Hl7LabConnector | None = None,
) -> str:
    """An ORM^O01 2.5.1 made by ``portal.labs.hl7.orm`` (with the connector's identities
    and lab codes when given), as the labs domain makes it."""
    identities = connector.identities() if connector else {}
    ordered = []
    for loinc in tests:
        lab_code = connector.lab_code_for(loinc) if connector else None
        ordered.append(
            OrderedTest(
                loinc=loinc,
                name=lab_tests.get(loinc).name,
                lab_code=lab_code[0] if lab_code else None,
            )
        )
    return build_orm(
        OrderMessage(
            control_id=control_id,
            placer_order_number=placer,
            patient_mrn=mrn,
            patient_family_name=family,
            patient_given_name=given,
            patient_birth_date=birth_date,
            patient_sex="F",
            provider_id="1",
            provider_family_name="Lee",
            provider_given_name="Ann",
            tests=tuple(ordered),
            receiving_application=identities.get("receiving_application", "SANDBOX_LIS"),
            receiving_facility=identities.get("receiving_facility", "SANDBOX_LAB"),
        )
    )


def analytes_of(*tests: str) -> list[str]:
    """The LOINC codes the lab reports for the tests (a panel's members)."""
    codes = []
    for loinc in tests:
        test = lab_tests.get(loinc)
        codes += list(test.members) if test.is_panel else [loinc]
    return codes


def control(lab, path: str, body: dict | None = None) -> dict:
    """Call the sandbox's control API over HTTP."""
    url = f"http://127.0.0.1:{lab.control_port}{path}"
    if body is None:
        response = requests.get(url, timeout=30)
    else:
        response = requests.post(url, json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def set_faults(lab, **switches) -> dict:
    return control(lab, "/_sandbox/faults", switches)


def wait_for(condition: Callable[[], object], timeout: float = 60, what: str = "it") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.05)


def self_signed_certificate(folder: Path) -> tuple[Path, Path, str]:
    """A certificate for 127.0.0.1 and localhost, made now with ``cryptography``:
    (certificate file, key file, certificate PEM text)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox lab")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    cert_file, key_file = folder / "lab.crt", folder / "lab.key"
    cert_file.write_text(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, pem
