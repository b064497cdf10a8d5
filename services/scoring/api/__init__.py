"""The scoring service's HTTP edge: the /v1 JSON routes and the printable exports.

* :mod:`.routes`     — /v1: progress, boards, exports, figures, awards, rulebooks (bearer JWT);
* :mod:`.exports`    — the 评优表 rendered as CSV and XLSX.

The board in a browser is the console's (``services/console``): signed in, no token in a URL.
"""

from .routes import router

#: Every router of the service, in the order they are mounted.
ROUTERS = (router,)

__all__ = ["ROUTERS", "router"]
