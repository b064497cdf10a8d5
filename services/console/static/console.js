// gridwork console: live regions and confirmations.  Pages show their data without this script;
// it only keeps them current.  A region marked data-live="issues work" is fetched again (the same
// page's ?fragment=<id> block) when the server's event stream says that topic changed.
(function () {
  "use strict";
  const body = document.body;
  const url = body.dataset.liveUrl;
  const state = document.querySelector("[data-live-state]");
  function show(on) {
    if (!state) return;
    state.hidden = false;
    state.querySelector("[data-on]").hidden = !on;
    state.querySelector("[data-off]").hidden = on;
  }
  const pending = new Map();
  async function refresh(region) {
    const src = new URL(region.dataset.src || location.href, location.href);
    src.searchParams.set("fragment", region.id);
    try {
      const response = await fetch(src, { credentials: "same-origin", headers: { "X-Fragment": region.id } });
      if (!response.ok) return;
      region.innerHTML = await response.text();
      region.dataset.refreshedAt = String(Date.now());
      region.dispatchEvent(new CustomEvent("gw:refreshed", { bubbles: true }));
    } catch (err) { /* the next event retries */ }
  }
  function changed(topic) {
    document.querySelectorAll("[data-live]").forEach(function (region) {
      if (!region.id || !region.dataset.live.split(" ").includes(topic)) return;
      if (pending.has(region.id)) return;
      // events come in bursts: one fetch per region per burst
      pending.set(region.id, setTimeout(function () { pending.delete(region.id); refresh(region); }, 50));
    });
  }
  if (url && document.querySelector("[data-live]") && window.EventSource) {
    const source = new EventSource(url);
    source.addEventListener("open", function () { show(true); body.dataset.live = "open"; });
    source.addEventListener("error", function () { show(false); body.dataset.live = "closed"; });
    source.addEventListener("changed", function (e) { changed(e.data); });
  }
  document.addEventListener("submit", function (e) {
    const message = e.target.dataset.confirm;
    if (message && !window.confirm(message)) e.preventDefault();
  });
})();
