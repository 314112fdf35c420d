// iamlease console: small progressive enhancements. Every page works without this script.
"use strict";
document.documentElement.classList.add("js");

document.addEventListener("DOMContentLoaded", () => {
  tabs();
  externalId();
  copyButtons();
  countdowns();
  confirms();
  roleForm();
});

// Tabs with arrow-key support (WAI-ARIA tab pattern).
function tabs() {
  const list = document.querySelector("[role=tablist]");
  if (!list) return;
  const all = [...list.querySelectorAll("[role=tab]")];
  const select = (tab) => {
    for (const t of all) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      const panel = document.getElementById(t.getAttribute("aria-controls"));
      if (on) panel.removeAttribute("data-hidden"); else panel.setAttribute("data-hidden", "");
    }
    const hidden = document.querySelector(".check-form input[name=tab]");
    if (hidden) hidden.value = tab.id.replace("tab-", "");
  };
  for (const t of all) {
    t.tabIndex = t.getAttribute("aria-selected") === "true" ? 0 : -1;
    t.addEventListener("click", () => select(t));
    t.addEventListener("keydown", (e) => {
      const i = all.indexOf(t);
      let next = null;
      if (e.key === "ArrowRight") next = all[(i + 1) % all.length];
      if (e.key === "ArrowLeft") next = all[(i - 1 + all.length) % all.length];
      if (next) { e.preventDefault(); select(next); next.focus(); }
    });
  }
}

// "Generate" a fresh External ID and show it in the trust policy to paste.
function externalId() {
  const button = document.querySelector("[data-generate-external-id]");
  const input = document.querySelector("[data-external-id]");
  const policy = document.querySelector("[data-trust-policy]");
  if (!button || !input) return;
  button.addEventListener("click", () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const bytes = crypto.getRandomValues(new Uint8Array(64));
    let id = "";
    for (const b of bytes) { if (b < 248 && id.length < 32) id += alphabet[b % 62]; }
    const old = input.value;
    input.value = id;
    if (policy && old) policy.textContent = policy.textContent.split(JSON.stringify(old)).join(JSON.stringify(id));
  });
}

function copyButtons() {
  for (const b of document.querySelectorAll("[data-copy]")) {
    b.addEventListener("click", async () => {
      const text = document.getElementById(b.dataset.copy).textContent;
      try {
        await navigator.clipboard.writeText(text);
        b.textContent = "Copied";
      } catch {
        const r = document.createRange();
        r.selectNodeContents(document.getElementById(b.dataset.copy));
        const s = getSelection(); s.removeAllRanges(); s.addRange(r);
        b.textContent = "Press Ctrl+C";
      }
      setTimeout(() => { b.textContent = "Copy"; }, 1500);
    });
  }
}

function human(secs) {
  if (secs <= 0) return "expired";
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
  return (h ? h + "h " : "") + (h || m ? String(m).padStart(h ? 2 : 1, "0") + "m " : "") + String(s).padStart(2, "0") + "s";
}

function countdowns() {
  const items = [...document.querySelectorAll("[data-expires]")];
  for (const el of document.querySelectorAll("[data-seconds]")) el.textContent = human(Number(el.dataset.seconds));
  if (!items.length) return;
  const tick = () => {
    const now = Math.floor(Date.now() / 1000);
    for (const el of items) el.textContent = human(Number(el.dataset.expires) - now);
  };
  tick();
  setInterval(tick, 1000);
}

function confirms() {
  for (const f of document.querySelectorAll("form[data-confirm]")) {
    f.addEventListener("submit", (e) => { if (!confirm(f.dataset.confirm)) e.preventDefault(); });
  }
}

// The role form: only the fields of the chosen credential type, and a live username preview
// with its worst-case length (the server checks the same rule when the role is written).
function roleForm() {
  const form = document.getElementById("role-form");
  if (!form) return;
  const type = form.querySelector("#credential_type");
  const showType = () => {
    for (const el of form.querySelectorAll("[data-types]")) {
      el.hidden = !el.dataset.types.split(" ").includes(type.value);
    }
  };
  type.addEventListener("change", showType);
  showType();

  const tpl = form.querySelector("#username_template");
  const name = form.querySelector("#name");
  const path = form.querySelector("#user_path");
  const out = document.getElementById("template-preview");
  const pathOut = document.getElementById("path-preview");
  const mount = form.dataset.mount;
  const clean = (s) => s.replace(/[^A-Za-z0-9+=,.@_-]/g, "_").slice(0, 32);
  const rnd = (n) => { let s = ""; const a = "abcdefghijklmnopqrstuvwxyz0123456789"; for (const b of crypto.getRandomValues(new Uint8Array(n))) s += a[b % 36]; return s; };
  const update = () => {
    const role = (name && name.value) || "role";
    const t = (tpl && tpl.value) || "iamlease-{{role}}-{{random}}";
    let worst = 0, example = "", rest = t, ok = /\{\{\s*random(\s+\d+)?\s*\}\}/.test(t);
    const re = /\{\{\s*((?:random|display_name)(?:\s+(\d+))?|role|mount|meta\.[A-Za-z0-9_.-]+|unix_time)\s*\}\}/g;
    let last = 0, m;
    while ((m = re.exec(t))) {
      const lit = t.slice(last, m.index); worst += lit.length; example += lit;
      const key = m[1].split(/\s+/)[0];
      if (key === "random") { const n = m[2] ? Number(m[2]) : 16; worst += n; example += rnd(n); }
      else if (key === "unix_time") { worst += 10; example += String(Math.floor(Date.now() / 1000)); }
      else if (key === "display_name") { const n = m[2] ? Number(m[2]) : 32; worst += n; example += clean("token-ci").slice(0, n); }
      else if (key.startsWith("meta.")) { worst += 32; example += clean(key.slice(5)); }
      else { worst += 32; example += clean(key === "role" ? role : key === "mount" ? mount : "token-ci"); }
      last = re.lastIndex;
    }
    worst += t.length - last; example += t.slice(last);
    if (out) {
      out.textContent = `e.g. ${example} · up to ${worst} of IAM's 64 characters` + (ok ? "" : " · {{random}} is required");
      out.classList.toggle("over", worst > 64 || !ok);
    }
    if (pathOut) pathOut.textContent = path && path.value ? "" : `default IAM path: /iamlease/${mount}/${role}/`;
  };
  for (const el of [tpl, name, path]) if (el) el.addEventListener("input", update);
  update();
}
