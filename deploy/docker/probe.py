#!/usr/bin/env python3
"""Container healthcheck: ``gridwork-probe URL`` exits 0 when the URL answers 200 within 3 s.

The image has no curl or wget; Python is there anyway.
"""

import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as err:  # refused, timed out, 503 not ready
    print(f"{sys.argv[1]}: {err}", file=sys.stderr)
    sys.exit(1)
