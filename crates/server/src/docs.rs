//! `GET /openapi.json` (the whole API) and `GET /docs`, an API reference
//! page rendered in the browser from that document, with no external
//! assets so it works offline and air-gapped.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::app::AppState;

pub fn routes(document: Arc<String>) -> Router<AppState> {
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        (*document).clone(),
                    )
                }
            }),
        )
        .route("/docs", get(|| async { Html(DOCS_PAGE).into_response() }))
}

const DOCS_PAGE: &str = r##"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Rollcall API reference</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;display:flex}
nav{width:17rem;height:100vh;overflow:auto;position:sticky;top:0;background:#f5f6f8;padding:1rem;box-sizing:border-box;font-size:.9rem}
nav a{display:block;color:#1d2330;text-decoration:none;padding:.15rem 0} main{padding:1rem 2rem;max-width:60rem}
.op{border:1px solid #d8dbe2;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:4.2rem;font-weight:700;text-transform:uppercase;font-size:.8rem}
.get{color:#1b7f3b}.post{color:#1d5fbf}.patch{color:#a05a00}.delete{color:#b3261e}.put{color:#6b3fa0}
code{background:#f0f1f4;padding:0 .25rem;border-radius:3px} table{border-collapse:collapse;font-size:.9rem}
td,th{border-bottom:1px solid #e4e6eb;padding:.2rem .6rem;text-align:left;vertical-align:top} pre{background:#f6f8fa;padding:.6rem;overflow:auto;font-size:.8rem}
</style></head><body><nav id="nav"></nav><main id="main"><p>Loading <code>/openapi.json</code>…</p></main>
<script>
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));
const ref = s => s && s.$ref ? s.$ref.split("/").pop() : (s && s.type === "array" && s.items ? ref(s.items) + "[]" : (s && s.type) || "object");
fetch("/openapi.json").then(r => r.json()).then(doc => {
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(item)) {
    if (!op || typeof op !== "object" || !op.responses) continue;
    (byTag[(op.tags || ["other"])[0]] ||= []).push({path, method, op});
  }
  let nav = "", main = `<h1>${esc(doc.info.title)} API</h1><p>${esc(doc.info.description)}</p>`;
  for (const [tag, ops] of Object.entries(byTag)) {
    nav += `<strong>${esc(tag)}</strong>`; main += `<h2 id="${esc(tag)}">${esc(tag)}</h2>`;
    for (const {path, method, op} of ops) {
      const id = method + path.replace(/[^a-z0-9]/gi, "-");
      nav += `<a href="#${id}"><span class="m ${method}">${method}</span>${esc(path)}</a>`;
      const params = (op.parameters || []).map(p => `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td><td>${p.required ? "required" : ""}</td><td>${esc(ref(p.schema))}</td><td>${esc(p.description)}</td></tr>`).join("");
      const body = op.requestBody ? Object.values(op.requestBody.content || {}).map(c => ref(c.schema)).join(", ") : "";
      const responses = Object.entries(op.responses).map(([code, r]) => `<tr><td>${esc(code)}</td><td>${esc(r.description)}</td><td>${esc(Object.values(r.content || {}).map(c => ref(c.schema)).join(", "))}</td></tr>`).join("");
      main += `<div class="op" id="${id}"><span class="m ${method}">${method}</span><code>${esc(path)}</code><p>${esc(op.summary || "")} ${esc(op.description || "")}</p>`
        + (params ? `<table><tr><th>parameter</th><th>in</th><th></th><th>type</th><th></th></tr>${params}</table>` : "")
        + (body ? `<p>Body: <code>${esc(body)}</code></p>` : "")
        + `<table><tr><th>status</th><th>meaning</th><th>body</th></tr>${responses}</table></div>`;
    }
  }
  main += "<h2>Schemas</h2>";
  for (const [name, schema] of Object.entries((doc.components || {}).schemas || {}))
    main += `<h3 id="schema-${esc(name)}">${esc(name)}</h3><pre>${esc(JSON.stringify(schema, null, 2))}</pre>`;
  document.getElementById("nav").innerHTML = nav;
  document.getElementById("main").innerHTML = main;
}).catch(e => { document.getElementById("main").textContent = "Could not load /openapi.json: " + e; });
</script></body></html>"##;
