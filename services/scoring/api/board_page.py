"""The board page: the community's 5+1 board (评优表) in a browser.

The page itself holds no data.  Its script reads the community and a bearer token from the URL
fragment (``/board#community=bairuijing&token=…`` — a fragment never reaches a server or its
logs), fetches the board JSON from this service with the token, and draws it.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["board"])

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>5+1 board · gridwork</title>
<style>
body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;min-width:48rem}th,td{padding:.35rem .7rem;border-bottom:1px solid #ddd}
th{text-align:left;background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#d8ecd8;height:.6rem;display:inline-block;vertical-align:middle;margin-right:.4rem}
#err{color:#b00}
</style></head><body>
<h1 id="title">5+1 board (评优积分制)</h1>
<p><label>period <input id="period" placeholder="2025-10, 2025-W41, 2025-Q4, 2025"></label>
<button id="go">show</button> <span id="err"></span></p>
<table><thead><tr><th>rank</th><th>worker</th><th>grid</th><th>attendance</th><th>5+1 items met</th>
<th>completion</th><th>points</th></tr></thead><tbody id="rows"></tbody></table>
<script>
const args = new URLSearchParams(location.hash.slice(1));
const community = args.get("community"), token = args.get("token");
const el = (tag, text, cls) => { const e = document.createElement(tag); e.textContent = text;
  if (cls) e.className = cls; return e; };
async function show() {
  const err = document.getElementById("err"); err.textContent = "";
  if (!community || !token) { err.textContent = "open this page as /board#community=…&token=…"; return; }
  const period = document.getElementById("period").value.trim();
  const url = `/v1/communities/${encodeURIComponent(community)}/board`
    + (period ? `?period=${encodeURIComponent(period)}` : "");
  const r = await fetch(url, {headers: {Authorization: `Bearer ${token}`}});
  const body = await r.json();
  if (!r.ok) { err.textContent = (body.error && body.error.message) || r.status; return; }
  document.getElementById("title").textContent = `${body.name || community} — 5+1 board ${body.period.key}`;
  const rows = document.getElementById("rows"); rows.replaceChildren();
  body.workers.forEach((w, i) => {
    const tr = document.createElement("tr");
    const pct = w.completion == null ? null : Math.round(w.completion * 100);
    const done = el("td", "", "n");
    if (pct != null) { const b = el("span", "", "bar"); b.style.width = `${pct / 2}px`; done.append(b, `${pct}%`); }
    tr.append(el("td", w.rank ?? i + 1, "n"), el("td", `${w.worker_id} ${w.name || ""}`), el("td", w.grid_id || ""),
      el("td", `${w.attendance_days}/${w.working_days}`, "n"), el("td", `${w.items_met}/${w.items_due}`, "n"),
      done, el("td", w.total.toFixed(1), "n"));
    rows.append(tr);
  });
}
document.getElementById("go").onclick = show;
show();
</script></body></html>
"""


@router.get("/board", response_class=HTMLResponse, include_in_schema=False)
async def board_page() -> HTMLResponse:
    """The board page (data comes from the JSON API with the token in the URL fragment)."""
    return HTMLResponse(PAGE)
