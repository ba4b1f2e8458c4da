"""[sandbox] The lab: an MLLP server for orders and a sender of results, on one asyncio loop
in a thread of its own, and the control API (Flask, ``control.py``) on another.

An order is answered at once (AA, or whatever the fault switches say); its results follow
after ``result_delay`` seconds, one ORU^R01 per ordered test, sent to the portal's listener
(``results_host``:``results_port``). A result message the listener does not acknowledge
(down, dropped, no answer) is sent again with the same control id, after 1, 2, 5, 10, 30 s
and then every 60 s, until the listener answers: as a real lab does, so results survive a
listener that was stopped or killed. An AE or AR from the portal is recorded and not resent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import hl7
from hl7.mllp import InvalidBlockError, open_hl7_connection, start_hl7_server
from werkzeug.serving import make_server

from portal.integrations.sandbox.hl7lab import messages, values
from portal.integrations.sandbox.hl7lab.control import create_control_app
from portal.integrations.sandbox.hl7lab.state import Faults, SandboxState

log = logging.getLogger("portal.integrations.sandbox.hl7lab")

DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "mllp_port": 2576,  # 0: any free port (tests)
    "control_port": 5102,  # 0: any free port; None: no control API
    "results_host": "127.0.0.1",
    "results_port": 2575,
    "result_delay": 5.0,  # seconds from the order to its first results
    "final_delay": 10.0,  # from a preliminary result to its final one
    "correction_delay": 15.0,  # from a final result to its correction
    "results_timeout": 10.0,  # how long the listener's ACK is waited for
    "retry_delays": (1.0, 2.0, 5.0, 10.0, 30.0, 60.0),  # then the last, again and again
    "seed": None,  # same seed, same values and modes
    "tls_cert": None,  # PEM files: serve MLLP over TLS
    "tls_key": None,
}
MAX_ORDER_BYTES = 1024 * 1024
GARBAGE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n\x00\xff not an HL7 answer"


def new_control_id() -> str:
    """Unique across restarts (the listener deduplicates on sender and control id)."""
    return "L" + secrets.token_hex(8).upper()


@dataclass
class Delivery:
    """What sending one result message came to."""

    ack_code: str | None
    ack_text: str
    error: str | None = None


class LabSandbox:
    """Start with ``start()`` (ports 0 are replaced by those bound), stop with ``stop()``."""

    def __init__(self, config: dict[str, Any] | None = None):
        settings = {**DEFAULTS, **(config or {})}
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown sandbox settings: {sorted(unknown)}")
        self.config = settings
        self.state = SandboxState()
        self.rng = random.Random(settings["seed"])  # noqa: S311 (made-up results, not secrets)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._http = None
        self._http_thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()  # connections and reporting, for stop()
        self._reporting: set[asyncio.Task] = set()  # results not yet sent, for reset()
        self.mllp_port: int = settings["mllp_port"]
        self.control_port: int | None = settings["control_port"]

    # Lifecycle ---------------------------------------------------------------------------

    def _tls(self) -> ssl.SSLContext | None:
        if not self.config["tls_cert"]:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.config["tls_cert"], self.config["tls_key"])
        return context

    def start(self) -> LabSandbox:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self._server = self.loop.run_until_complete(
                    start_hl7_server(
                        self._on_connection,
                        self.config["host"],
                        self.config["mllp_port"],
                        encoding="utf-8",
                        encoding_errors="replace",
                        limit=MAX_ORDER_BYTES,
                        ssl=self._tls(),
                    )
                )
            except BaseException as error:  # the port taken, a bad certificate: say so
                failure.append(error)
                ready.set()
                return
            self.mllp_port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="lab-sandbox-mllp", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        if self.config["control_port"] is not None:
            from_control = create_control_app(self)
            self._http = make_server(
                self.config["host"], self.config["control_port"], from_control, threaded=True
            )
            self.control_port = self._http.server_port
            self._http_thread = threading.Thread(
                target=self._http.serve_forever, name="lab-sandbox-control", daemon=True
            )
            self._http_thread.start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self.loop is not None and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        if self.loop is not None and not self.loop.is_running():
            self.loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def reset(self) -> None:
        """Faults back to normal, records forgotten, results not yet sent dropped."""
        self.call(self._cancel_reporting())
        self.state.reset()

    async def _cancel_reporting(self) -> None:
        for task in list(self._reporting):
            task.cancel()

    def call(self, coroutine: Coroutine, timeout: float = 60.0):
        """Run a coroutine on the sandbox's loop from another thread and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def _spawn(self, coroutine: Coroutine) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        self._reporting.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._reporting.discard)

    # Orders ------------------------------------------------------------------------------

    async def _on_connection(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            while True:
                try:
                    block = await reader.readblock()
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                except (InvalidBlockError, ValueError):
                    # Bytes outside a frame, or a frame over the limit: refused, read on.
                    writer.writeblock(
                        messages.ack(
                            code="AR",
                            control_id="",
                            answered=None,
                            ack_id=new_control_id(),
                            text="Not an MLLP frame",
                            error_code="100",
                        ).encode()
                    )
                    continue
                if not await self._answer(block.decode("utf-8", "replace"), writer):
                    break
                await writer.drain()
        except Exception:  # one connection's trouble never stops the lab
            log.exception("lab sandbox: connection failed")
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _answer(self, text: str, writer) -> bool:
        """Answer one order message; False when the connection is to be closed."""
        self.state.note_arrival()
        faults = self.state.order_faults()
        if faults.slow_seconds:
            await asyncio.sleep(faults.slow_seconds)
        try:
            order = messages.read_order(text)
        except messages.OrderRefused as refused:
            self.state.record_order(
                {
                    "control_id": None,
                    "placer_order_number": None,
                    "ack": refused.code,
                    "reason": refused.text,
                }
            )
            self._write_ack(
                writer,
                faults,
                code=refused.code,
                control_id=_control_id_of(text),
                order=None,
                text=refused.text,
                error_code=refused.error_code,
            )
            return True
        entry = order.summary()
        if faults.ack == "drop":
            self.state.record_order({**entry, "ack": "dropped"})
            writer.transport.abort()
            return False
        if faults.ack == "none":
            self.state.record_order({**entry, "ack": "none"})
            return True  # keep reading: the client gives up on its own
        if faults.ack == "garbage":
            self.state.record_order({**entry, "ack": "garbage"})
            writer.write(GARBAGE)
            await writer.drain()
            return False
        if faults.ack in ("AE", "AR"):
            reason = faults.ack_text or (
                "Sandbox: order refused" if faults.ack == "AR" else "Sandbox: order in error"
            )
            self.state.record_order({**entry, "ack": faults.ack, "reason": reason})
            self._write_ack(
                writer,
                faults,
                code=faults.ack,
                control_id=order.control_id,
                order=order,
                text=reason,
            )
            return True
        first = self.state.take_placer(order.sending_facility, order.placer_order_number)
        cancelling = order.control == "CA"
        self.state.record_order({**entry, "ack": "AA", "duplicate": not first and not cancelling})
        self._write_ack(writer, faults, code="AA", control_id=order.control_id, order=order)
        if first and not cancelling:
            plan = faults.results
            for test in order.tests:
                self._spawn(
                    self._report(order, test, plan, faults.abnormal, faults.duplicate_results)
                )
        return True

    def _write_ack(
        self, writer, faults: Faults, *, code, control_id, order, text="", error_code="207"
    ) -> None:
        answer = messages.ack(
            code=code,
            control_id=control_id,
            answered=order,
            ack_id=new_control_id(),
            text=text,
            error_code=error_code,
        ).encode()
        writer.writeblock(answer)
        if faults.duplicate_ack:
            writer.writeblock(answer)

    # Results -----------------------------------------------------------------------------

    def _mode(self, plan: str) -> str:
        if plan != "random":
            return plan
        roll = self.rng.random()
        return "preliminary_then_final" if roll < 0.25 else "corrected" if roll < 0.35 else "final"

    async def _report(self, order, test, plan: str, abnormal: str, duplicate: bool) -> None:
        mode = self._mode(plan)
        if mode == "none":
            return
        filler = "F" + secrets.token_hex(5).upper()
        collected = messages.now_stamp()
        drawn = [(loinc, values.draw(loinc, self.rng, abnormal)) for loinc in test.analytes]
        await asyncio.sleep(self.config["result_delay"])
        if mode == "preliminary_then_final":
            await self._send_result(order, test, filler, "P", drawn, collected, duplicate)
            await asyncio.sleep(self.config["final_delay"])
        await self._send_result(order, test, filler, "F", drawn, collected, duplicate)
        if mode == "corrected":
            await asyncio.sleep(self.config["correction_delay"])
            corrected = [(loinc, values.nudged(value, self.rng)) for loinc, value in drawn]
            notes = {
                loinc: f"Corrected result; previously reported as {old.value} {old.units}".strip()
                for (loinc, old) in drawn
            }
            await self._send_result(
                order, test, filler, "C", corrected, collected, duplicate, notes
            )

    async def _send_result(
        self, order, test, filler, status, drawn, collected, duplicate, notes=None
    ) -> None:
        observations = [
            messages.Observation(
                loinc=loinc,
                name=_name_of(loinc),
                value_type=value.value_type,
                value=value.value,
                units=value.units,
                reference_range=value.reference_range,
                flag=value.flag,
                note=(notes or {}).get(loinc, ""),
            )
            for loinc, value in drawn
        ]
        control_id = new_control_id()
        text = messages.oru(
            order=order,
            test=test,
            control_id=control_id,
            filler_order_number=filler,
            status=status,
            observations=observations,
            collected=collected,
        )
        record = self.state.new_result(
            {
                "control_id": control_id,
                "placer_order_number": order.placer_order_number,
                "test": test.loinc,
                "status": status,
                "observations": [
                    {"loinc": o.loinc, "value": o.value, "units": o.units, "flag": o.flag}
                    for o in observations
                ],
            }
        )
        await self._deliver_until_answered(text, record)
        if duplicate:
            await self._deliver_until_answered(
                text, self.state.new_result({**record, "duplicate": True, "attempts": 0})
            )

    async def _deliver_until_answered(self, text: str, record: dict) -> None:
        delays = self.config["retry_delays"]
        attempt = 0
        while True:
            attempt += 1
            outcome = await self.deliver(text)
            self.state.update_result(
                record,
                attempts=attempt,
                ack_code=outcome.ack_code,
                ack_text=outcome.ack_text,
                error=outcome.error,
            )
            if outcome.ack_code is not None:
                return
            await asyncio.sleep(delays[min(attempt - 1, len(delays) - 1)])

    async def deliver(self, text: str | bytes) -> Delivery:
        """Send one message to the portal's listener and read its ACK (one try)."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        timeout = self.config["results_timeout"]
        writer = None
        try:
            reader, writer = await asyncio.wait_for(
                open_hl7_connection(
                    self.config["results_host"],
                    self.config["results_port"],
                    encoding="utf-8",
                    encoding_errors="replace",
                    limit=MAX_ORDER_BYTES,
                ),
                timeout,
            )
            writer.writeblock(data)
            await writer.drain()
            answer = await asyncio.wait_for(reader.readblock(), timeout)
        except TimeoutError:
            return Delivery(None, "", "no ACK within the time-out")
        except (OSError, asyncio.IncompleteReadError, InvalidBlockError, ValueError) as error:
            return Delivery(None, "", f"{type(error).__name__}")
        finally:
            if writer is not None:
                writer.close()
        try:
            ack = hl7.parse(answer.decode("utf-8", "replace"))
            code = str(ack.extract_field("MSA", 1, 1, 1, 1))
            reason = str(ack.extract_field("MSA", 1, 3, 1, 1) or "")
        except Exception:
            return Delivery(None, "", "the answer is not an ACK")
        return Delivery(code, reason)


def _name_of(loinc: str) -> str:
    from_catalog = messages.lab_tests.get(loinc)
    return from_catalog.name if from_catalog else loinc


def _control_id_of(text: str) -> str:
    """MSH-10 of a message we could not read as an order, if it has one."""
    first = text.replace("\n", "\r").split("\r", 1)[0]
    if not first.startswith("MSH") or len(first) < 4:
        return ""
    parts = first.split(first[3])
    return parts[9] if len(parts) > 9 else ""
