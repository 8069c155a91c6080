// kiln dashboard: the live parts. Every page works without this script; with it, an element with
// data-stream follows that server-sent event stream (a build's log, an app's log lines).

const NEAR_BOTTOM_PX = 40;

function atBottom(el) {
  return el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
}

function appLogLine(l) {
  const div = document.createElement("div");
  div.className = "logline";
  for (const [cls, text] of [
    ["t", l.t],
    ["src", l.src],
    ["msg", l.line],
  ]) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    div.append(span, " ");
  }
  return div;
}

function follow(el) {
  const json = el.dataset.format === "json";
  const keep = Number(el.dataset.keep || 0);
  const badge = document.querySelector(`[data-live-for="${el.id}"]`);
  const source = new EventSource(el.dataset.stream);
  source.addEventListener("open", () => {
    if (badge) badge.hidden = false;
  });
  source.addEventListener("error", () => {
    if (badge) badge.hidden = true;
  });
  // The stream starts over with the whole log: so does the element.
  source.addEventListener("reset", () => {
    el.textContent = "";
  });
  source.addEventListener("message", (e) => {
    const stick = atBottom(el);
    if (json) {
      el.querySelector(".log-empty")?.remove();
      el.append(appLogLine(JSON.parse(e.data)));
      while (keep > 0 && el.children.length > keep) el.firstElementChild.remove();
    } else {
      el.append(`${e.data}\n`);
    }
    if (stick) el.scrollTop = el.scrollHeight;
  });
  // The build ended: stop (EventSource would reconnect) and show the finished page.
  source.addEventListener("end", () => {
    source.close();
    if (badge) badge.hidden = true;
    if (el.dataset.reloadOnEnd) window.location.reload();
  });
  el.scrollTop = el.scrollHeight;
}

// A log shows its end (where a build says how it went), live or not.
for (const el of document.querySelectorAll(".log")) el.scrollTop = el.scrollHeight;
for (const el of document.querySelectorAll("[data-stream]")) follow(el);
