#!/usr/bin/env python3
"""Many HTTPS clients, each from its own source address, against the edge (run inside the test's network
namespace, where those addresses live).

    edge_clients.py HOST PORT PATH PLAN_JSON

PLAN_JSON is a list of {"source": "10.x.y.z", "requests": N}. Each client opens one keep-alive TLS
connection from its address and sends its N requests one after another, no faster than MIN_INTERVAL apart
(below the edge's own per-address limit_req rate, so only the API's per-IP budget can answer 429). Prints
one JSON object: per source, the count of each status and of each error code seen in 429 bodies.
"""

import http.client
import json
import ssl
import sys
import threading
import time

MIN_INTERVAL = 0.08  # seconds: at most 12.5 requests/s per client (the edge allows 20/s per address)
DEADLINE = 50.0  # seconds for the whole run: the API's window is one minute from a client's first request


def client(host, port, path, source, requests, results, started):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the host's self-signed test certificate
    statuses, codes, errors = {}, {}, []
    connection = None
    for _ in range(requests):
        if time.monotonic() - started > DEADLINE:
            errors.append("deadline")
            break
        began = time.monotonic()
        try:
            if connection is None:
                connection = http.client.HTTPSConnection(
                    host, port, timeout=20, source_address=(source, 0), context=context
                )
            connection.request("GET", path, headers={"User-Agent": "edge-clients"})
            response = connection.getresponse()
            body = response.read()
            statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
            if response.status == 429:
                code = json.loads(body)["error"]["code"]
                codes[code] = codes.get(code, 0) + 1
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = None
        except Exception as err:  # counted, never hidden: the test fails on any transport error
            errors.append(f"{type(err).__name__}: {err}")
            if connection is not None:
                connection.close()
            connection = None
        pause = MIN_INTERVAL - (time.monotonic() - began)
        if pause > 0:
            time.sleep(pause)
    if connection is not None:
        connection.close()
    results[source] = {"statuses": statuses, "codes_429": codes, "errors": errors}


def main():
    host, port, path, plan = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
    results = {}
    started = time.monotonic()
    threads = [
        threading.Thread(
            target=client,
            args=(host, port, path, entry["source"], entry["requests"], results, started),
        )
        for entry in plan
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"seconds": round(time.monotonic() - started, 2), "clients": results}))


if __name__ == "__main__":
    main()
