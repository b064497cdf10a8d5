"""`gridwork up` supervises its services (#15 item 16): a service process that dies is started
again, with a backoff and a log line, and answers /readyz once more."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx

from services.cli.embedded import free_port
from services.cli.stack import LocalStack
from shared.settings import Settings


def test_a_killed_service_is_restarted_and_ready_again(settings: Settings) -> None:
    stack = LocalStack(settings.model_copy(update={"scoring_port": free_port()}), services=("scoring",))
    endpoints = stack.start(echo=lambda _line: None)
    said: list[str] = []
    stop = threading.Event()

    def supervisor() -> None:  # what `gridwork up` runs until Ctrl-C
        while not stop.wait(0.2):
            stack.supervise(echo=said.append)

    watcher = threading.Thread(target=supervisor, daemon=True)
    watcher.start()
    url = endpoints["services"]["scoring"]
    try:
        with httpx.Client(timeout=2) as http:
            assert http.get(f"{url}/readyz").status_code == 200
            for round_ in (1, 2):
                first = stack.procs["scoring"]
                os.kill(first.pid, signal.SIGKILL)
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    now = stack.procs["scoring"]
                    if now.pid != first.pid:
                        try:
                            if http.get(f"{url}/readyz").status_code == 200:
                                break
                        except httpx.HTTPError:
                            pass
                    time.sleep(0.2)
                else:
                    raise AssertionError(f"scoring not back within 90 s; the supervisor said {said}")
                assert stack.restarts["scoring"] == round_
        assert said[0].startswith("service scoring exited with signal SIGKILL; restarting it in 1 s")
        assert said[1].startswith("service scoring restarted (pid ")
        # the second exit, soon after the first restart, waits longer: the backoff doubles
        assert said[2].startswith("service scoring exited with signal SIGKILL; restarting it in 2 s")
    finally:
        stop.set()
        watcher.join(5)
        stack.stop(echo=lambda _line: None)
    assert stack.procs == {} and stack.restart_at == {}
