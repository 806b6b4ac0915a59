// Renders /openapi.json on the /docs page; loads nothing else (the page's CSP allows 'self').
"use strict";
fetch("/openapi.json").then((r) => r.json()).then((doc) => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("desc").textContent = doc.info.description;
  const ops = document.getElementById("ops");
  ops.textContent = "";
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const div = document.createElement("div");
      div.className = "op";
      const m = document.createElement("span");
      m.className = "m " + method;
      m.textContent = method;
      const p = document.createElement("code");
      p.textContent = path;
      const s = document.createElement("div");
      s.textContent = op.summary || "";
      const d = document.createElement("details");
      const sm = document.createElement("summary");
      sm.textContent = "responses: " + Object.keys(op.responses || {}).join(", ");
      const pre = document.createElement("pre");
      pre.textContent = JSON.stringify(op, null, 2);
      d.append(sm, pre);
      div.append(m, p, s, d);
      ops.append(div);
    }
  }
});
