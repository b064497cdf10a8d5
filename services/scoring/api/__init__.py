"""The scoring service's HTTP edge: the /v1 JSON routes, the board page, and the printable exports.

* :mod:`.routes`     — /v1: progress, boards, exports, figures, awards, rulebooks (bearer JWT);
* :mod:`.board_page` — ``/board``, the 5+1 board in a browser (the page holds no data: its script
  fetches the board JSON with the token from the URL fragment);
* :mod:`.exports`    — the 评优表 rendered as CSV and XLSX.
"""

from .board_page import router as board_page_router
from .routes import router

#: Every router of the service, in the order they are mounted.
ROUTERS = (router, board_page_router)

__all__ = ["ROUTERS", "board_page_router", "router"]
