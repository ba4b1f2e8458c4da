"""Run the lab sandbox: ``python -m portal.integrations.sandbox.hl7lab --mllp-port 2576
--control-port 5102 --results-host 127.0.0.1 --results-port 2575`` (``--help`` for the rest)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from portal.integrations.sandbox.hl7lab.server import DEFAULTS, LabSandbox


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m portal.integrations.sandbox.hl7lab")
    parser.add_argument("--host", default=DEFAULTS["host"], help="where both ports listen")
    parser.add_argument("--mllp-port", type=int, default=DEFAULTS["mllp_port"])
    parser.add_argument("--control-port", type=int, default=DEFAULTS["control_port"])
    parser.add_argument("--results-host", default=DEFAULTS["results_host"])
    parser.add_argument("--results-port", type=int, default=DEFAULTS["results_port"])
    parser.add_argument(
        "--result-delay", type=float, default=DEFAULTS["result_delay"], help="seconds"
    )
    parser.add_argument("--final-delay", type=float, default=DEFAULTS["final_delay"])
    parser.add_argument("--correction-delay", type=float, default=DEFAULTS["correction_delay"])
    parser.add_argument("--seed", type=int, default=None, help="same seed, same results")
    parser.add_argument("--tls-cert", default=None, help="PEM: serve MLLP over TLS")
    parser.add_argument("--tls-key", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="lab-sandbox: %(message)s")
    lab = LabSandbox(
        {
            "host": args.host,
            "mllp_port": args.mllp_port,
            "control_port": args.control_port,
            "results_host": args.results_host,
            "results_port": args.results_port,
            "result_delay": args.result_delay,
            "final_delay": args.final_delay,
            "correction_delay": args.correction_delay,
            "seed": args.seed,
            "tls_cert": args.tls_cert,
            "tls_key": args.tls_key,
        }
    ).start()
    logging.getLogger("portal.integrations.sandbox.hl7lab").info(
        "orders over MLLP on %s:%s, control API on http://%s:%s, results to %s:%s",
        args.host,
        lab.mllp_port,
        args.host,
        lab.control_port,
        args.results_host,
        args.results_port,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    lab.stop()


if __name__ == "__main__":
    main()
