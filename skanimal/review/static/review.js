// skanimal review: thumbnails by class, keys and clicks to relabel, undo, retrain.
"use strict";

const TOKEN = document.querySelector('meta[name="skanimal-token"]').content;
const CHUNK = 120; // thumbnails rendered at a time per section (the rest as you scroll)

let classes = [];
let reviewFolder = "_review";
let counts = {};
let selected = null;
let busy = false;

const $ = (id) => document.getElementById(id);

function say(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", !!isError);
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-Skanimal-Token": TOKEN},
    body: JSON.stringify(body || {}),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// ------------------------------------------------------------------------------ rendering

const observer = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (entry.isIntersecting) renderMore(entry.target.closest("section"));
  }
}, {rootMargin: "600px"});

function figureFor(photo, sectionName) {
  const fig = document.createElement("figure");
  fig.className = "photo";
  fig.tabIndex = -1;
  fig.dataset.path = photo.path;
  fig.dataset.folder = photo.folder;
  fig.dataset.section = sectionName;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.decoding = "async";
  img.src = photo.thumb;
  img.alt = photo.name;
  img.width = 160;
  img.height = 160;
  fig.appendChild(img);
  const caption = document.createElement("figcaption");
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = photo.name;
  name.title = photo.path;
  caption.appendChild(name);
  const conf = document.createElement("span");
  conf.className = "conf";
  if (photo.confidence === null) {
    conf.textContent = "–";
  } else {
    // In _review, the model's best guess is worth showing; elsewhere it is the folder.
    const guess = photo.folder === reviewFolder ? `${photo.predicted} ` : "";
    conf.textContent = `${guess}${photo.confidence.toFixed(2)}`;
    conf.title = `model: ${photo.predicted}`;
  }
  caption.appendChild(conf);
  if (photo.suspect) {
    fig.classList.add("suspect");
    const suspect = document.createElement("span");
    suspect.className = "suspect-label";
    suspect.textContent = `audit: ${photo.suspect}?`;
    caption.appendChild(suspect);
  }
  const moved = document.createElement("span");
  moved.className = "moved-label";
  moved.hidden = true;
  caption.appendChild(moved);
  fig.appendChild(caption);
  fig.addEventListener("click", () => select(fig));
  fig.addEventListener("dblclick", () => window.open(photo.photo, "_blank", "noopener"));
  return fig;
}

function renderMore(section) {
  const photos = section._photos;
  const grid = section.querySelector(".grid");
  const start = section._rendered;
  const end = Math.min(photos.length, start + CHUNK);
  const fragment = document.createDocumentFragment();
  for (let i = start; i < end; i++) fragment.appendChild(figureFor(photos[i], section.dataset.name));
  grid.appendChild(fragment);
  section._rendered = end;
  return end > start;
}

function label(folder) {
  return folder === reviewFolder ? `${reviewFolder} (none of these)` : folder;
}

function render(data) {
  classes = data.classes;
  reviewFolder = data.review_folder;
  const keys = $("keys");
  keys.replaceChildren();
  classes.forEach((name, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.folder = name;
    button.innerHTML = i < 9 ? `<kbd>${i + 1}</kbd> ` : "";
    button.append(name);
    button.addEventListener("click", () => moveSelected(name));
    keys.appendChild(button);
  });
  const none = document.createElement("button");
  none.type = "button";
  none.className = "review-key";
  none.dataset.folder = reviewFolder;
  none.innerHTML = "<kbd>0</kbd> none of these";
  none.addEventListener("click", () => moveSelected(reviewFolder));
  keys.appendChild(none);

  const main = $("sections");
  const nav = $("sections-nav");
  main.replaceChildren();
  nav.replaceChildren();
  counts = {};
  selected = null;
  for (const sectionData of data.sections) {
    counts[sectionData.name] = sectionData.photos.length;
    const section = document.createElement("section");
    section.id = `section-${sectionData.name}`;
    section.dataset.name = sectionData.name;
    section._photos = sectionData.photos;
    section._rendered = 0;
    const heading = document.createElement("h2");
    heading.append(label(sectionData.name), " ");
    const count = document.createElement("span");
    count.className = "count";
    heading.appendChild(count);
    section.appendChild(heading);
    const grid = document.createElement("div");
    grid.className = "grid";
    section.appendChild(grid);
    const sentinel = document.createElement("div");
    sentinel.className = "sentinel";
    section.appendChild(sentinel);
    main.appendChild(section);
    const link = document.createElement("a");
    link.href = `#${section.id}`;
    link.dataset.name = sectionData.name;
    nav.appendChild(link);
    renderMore(section);
    observer.observe(sentinel);
  }
  updateCounts();
  $("undo").disabled = !data.can_undo;
  $("retrain").disabled = !data.can_retrain;
  if (!data.can_retrain) $("retrain").title = "Start 'skanimal review' with --model MODEL to retrain";
  const first = document.querySelector("figure.photo");
  if (first) select(first, true);
}

function updateCounts() {
  for (const link of document.querySelectorAll("#sections-nav a")) {
    link.textContent = `${link.dataset.name} (${counts[link.dataset.name] || 0})`;
  }
  for (const section of document.querySelectorAll("#sections section")) {
    section.querySelector(".count").textContent = `${counts[section.dataset.name] || 0} photo${counts[section.dataset.name] === 1 ? "" : "s"}`;
  }
}

async function load() {
  const response = await fetch("/api/photos", {credentials: "same-origin"});
  if (!response.ok) {
    say("Cannot list the photos: open the link printed by 'skanimal review'.", true);
    return;
  }
  render(await response.json());
}

// ---------------------------------------------------------------------------- selection

function select(fig, quiet) {
  if (!fig) return;
  if (selected) selected.classList.remove("selected");
  selected = fig;
  fig.classList.add("selected");
  fig.focus({preventScroll: true});
  if (!quiet) fig.scrollIntoView({block: "nearest"});
}

function rendered() {
  return Array.from(document.querySelectorAll("figure.photo"));
}

function step(offset) {
  if (!selected) return select(rendered()[0]);
  let figures = rendered();
  let i = figures.indexOf(selected) + offset;
  if (i >= figures.length - 1) {
    // Past what is rendered: render the next chunk of this or the following sections.
    for (const section of document.querySelectorAll("#sections section")) {
      if (section._rendered < section._photos.length && renderMore(section)) break;
    }
    figures = rendered();
  }
  select(figures[Math.max(0, Math.min(figures.length - 1, i))]);
}

function columns() {
  const grid = selected && selected.parentElement;
  if (!grid) return 1;
  const top = grid.firstElementChild.offsetTop;
  let n = 0;
  for (const child of grid.children) {
    if (child.offsetTop !== top) break;
    n++;
  }
  return Math.max(1, n);
}

// -------------------------------------------------------------------------------- changes

function showMove(fig, folder) {
  fig.dataset.folder = folder;
  const moved = fig.querySelector(".moved-label");
  const away = folder !== fig.dataset.section;
  fig.classList.toggle("moved", away);
  moved.hidden = !away;
  moved.textContent = away ? `→ ${folder}` : "";
}

async function moveSelected(folder) {
  if (busy || !selected) return;
  const fig = selected;
  const before = fig.dataset.folder;
  if (before === folder) {
    step(1);
    return;
  }
  try {
    const result = await post("/api/move", {path: fig.dataset.path, folder});
    fig.dataset.path = result.to;
    showMove(fig, result.folder);
    counts[before] -= 1;
    counts[result.folder] = (counts[result.folder] || 0) + 1;
    updateCounts();
    $("undo").disabled = false;
    say(`Moved ${result.from} → ${result.to}`);
    if (selected === fig) step(1);
  } catch (error) {
    say(`Not moved: ${error.message}`, true);
  }
}

async function undo() {
  if (busy) return;
  try {
    const result = await post("/api/undo");
    const figures = rendered();
    let missing = false;
    for (const item of result.restored) {
      const fig = figures.find((f) => f.dataset.path === item.from);
      if (!fig) {
        missing = true;
        continue;
      }
      counts[fig.dataset.folder] -= 1;
      counts[item.folder] = (counts[item.folder] || 0) + 1;
      fig.dataset.path = item.to;
      showMove(fig, item.folder);
      select(fig);
    }
    if (missing) await load();
    updateCounts();
    say(`Undone: ${result.restored.map((r) => `${r.from} → ${r.to}`).join(", ")}`);
  } catch (error) {
    say(`Nothing undone: ${error.message}`, true);
  }
}

function setBusy(value) {
  busy = value;
  for (const button of document.querySelectorAll("header button")) button.disabled = value;
  $("progress").hidden = !value;
}

async function retrain() {
  if (busy) return;
  try {
    await post("/api/retrain");
  } catch (error) {
    say(`Cannot retrain: ${error.message}`, true);
    return;
  }
  setBusy(true);
  say("Retraining…");
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const status = await (await fetch("/api/retrain", {credentials: "same-origin"})).json();
    const bar = $("progress-bar");
    bar.max = Math.max(1, status.total);
    bar.value = status.done;
    $("progress-text").textContent =
      `${status.phase}${status.total ? ` ${status.done}/${status.total}` : ""}`;
    if (status.state !== "running") {
      setBusy(false);
      await load();
      if (status.state === "done") say(`Retrained: ${status.message}`);
      else say(`Retraining failed: ${status.message}`, true);
      return;
    }
  }
}

// ------------------------------------------------------------------------------- keyboard

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key;
  if (/^[1-9]$/.test(key)) {
    const folder = classes[Number(key) - 1];
    if (folder !== undefined) moveSelected(folder);
  } else if (key === "0") {
    moveSelected(reviewFolder);
  } else if (key === "u" || key === "U") {
    undo();
  } else if (key === "ArrowRight") {
    step(1);
  } else if (key === "ArrowLeft") {
    step(-1);
  } else if (key === "ArrowDown") {
    step(columns());
  } else if (key === "ArrowUp") {
    step(-columns());
  } else {
    return;
  }
  event.preventDefault();
});

$("undo").addEventListener("click", undo);
$("retrain").addEventListener("click", retrain);
load();
