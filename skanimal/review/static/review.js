// skanimal review: thumbnails by class, keys and clicks to relabel, undo, retrain.
"use strict";

const TOKEN = document.querySelector('meta[name="skanimal-token"]').content;
const CHUNK = 120; // thumbnails rendered at a time per section (the rest as you scroll)

let classes = [];
let reviewFolder = "_review";
let trashFolder = "_trash";
let counts = {};
let selected = null; // the current photo (keyboard focus)
let anchor = null; // where a shift-click range starts
const chosen = new Set(); // every selected photo (the current one included)
let busy = false;
let queue = Promise.resolve(); // moves and undos run one after another, in key order

// Run ``action`` after the ones before it: a key pressed while a move is on its way acts
// on the selection as that move leaves it (the next photo, when advancing).
function enqueue(action) {
  queue = queue.then(action).catch((error) => say(error.message, true));
}

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
  if (photo.review_reason) {
    // why the model sends it to review: unsure, a photo unlike those it was trained on, or both
    const reason = document.createElement("span");
    reason.className = "reason-label";
    reason.textContent = photo.review_reason === "low confidence" ? "unsure" :
      (photo.review_reason === "both" ? "new? unsure" : "new?");
    reason.title = `to review: ${photo.review_reason}`;
    caption.appendChild(reason);
  }
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
  if (photo.status === "confirmed") fig.classList.add("confirmed");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = photo.status === "confirmed" ? "✓ you" : (photo.status === "sorted" ? "model" : "");
  who.title = photo.status === "confirmed" ? "a person put it here" :
    (photo.status === "sorted" ? "sorted by the model" : "");
  caption.appendChild(who);
  fig._photo = photo;
  fig.addEventListener("click", (event) => {
    if (event.shiftKey) selectRange(fig);
    else if (event.ctrlKey || event.metaKey) toggle(fig);
    else select(fig);
  });
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
  trashFolder = data.trash_folder;
  const keys = $("keys");
  keys.replaceChildren();
  classes.forEach((name, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.folder = name;
    button.innerHTML = i < 9 ? `<kbd>${i + 1}</kbd> ` : "";
    button.append(name);
    button.addEventListener("click", () => enqueue(() => moveSelected(name)));
    keys.appendChild(button);
  });
  const none = document.createElement("button");
  none.type = "button";
  none.className = "review-key";
  none.dataset.folder = reviewFolder;
  none.innerHTML = "<kbd>0</kbd> none of these";
  none.addEventListener("click", () => enqueue(() => moveSelected(reviewFolder)));
  keys.appendChild(none);
  const trash = document.createElement("button");
  trash.type = "button";
  trash.className = "review-key";
  trash.dataset.folder = trashFolder;
  trash.innerHTML = "<kbd>Del</kbd> trash";
  trash.title = `Move to ${trashFolder}: kept, never trained on; u or a move brings it back`;
  trash.addEventListener("click", () => enqueue(() => moveSelected(trashFolder)));
  keys.appendChild(trash);

  const main = $("sections");
  const nav = $("sections-nav");
  main.replaceChildren();
  nav.replaceChildren();
  counts = {};
  selected = null;
  anchor = null;
  chosen.clear();
  showSelection();
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
  setUndo(data.undo_steps);
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

function clearChosen() {
  for (const fig of chosen) fig.classList.remove("chosen");
  chosen.clear();
}

function focusOn(fig, quiet) {
  if (selected) selected.classList.remove("selected");
  selected = fig;
  fig.classList.add("selected");
  fig.focus({preventScroll: true});
  if (!quiet) fig.scrollIntoView({block: "nearest"});
}

// Select only this photo.
function select(fig, quiet) {
  if (!fig) return;
  clearChosen();
  chosen.add(fig);
  fig.classList.add("chosen");
  anchor = fig;
  focusOn(fig, quiet);
  showSelection();
}

// Ctrl/Cmd-click: add or remove one photo.
function toggle(fig) {
  if (chosen.has(fig) && chosen.size > 1) {
    chosen.delete(fig);
    fig.classList.remove("chosen");
    if (selected === fig) focusOn(chosen.values().next().value, true);
  } else {
    chosen.add(fig);
    fig.classList.add("chosen");
    focusOn(fig, true);
  }
  anchor = fig;
  showSelection();
}

// Shift-click: every photo from the last clicked one to this one.
function selectRange(fig) {
  const figures = rendered();
  const from = figures.indexOf(anchor || selected || fig);
  const to = figures.indexOf(fig);
  clearChosen();
  for (let i = Math.min(from, to); i <= Math.max(from, to); i++) {
    chosen.add(figures[i]);
    figures[i].classList.add("chosen");
  }
  focusOn(fig, true);
  showSelection();
}

// "a": every photo of the current photo's section (rendering all of it).
function selectSection() {
  const section = selected ? selected.closest("section") : document.querySelector("#sections section");
  if (!section) return;
  while (renderMore(section)) { /* render the rest of the section */ }
  clearChosen();
  for (const fig of section.querySelectorAll("figure.photo")) {
    if (fig.classList.contains("moved")) continue; // already moved away: not "in view"
    chosen.add(fig);
    fig.classList.add("chosen");
  }
  if (chosen.size && !chosen.has(selected)) focusOn(chosen.values().next().value, true);
  showSelection();
}

function showSelection() {
  $("selection").textContent = chosen.size > 1 ? `${chosen.size} photos selected` : "";
}

// The photos a key acts on, in page order.
function targets() {
  if (chosen.size > 1) return rendered().filter((fig) => chosen.has(fig));
  return selected ? [selected] : [];
}

function rendered() {
  return Array.from(document.querySelectorAll("figure.photo"));
}

function step(offset, from) {
  from = from || selected;
  if (!from) return select(rendered()[0]);
  let figures = rendered();
  let i = figures.indexOf(from) + offset;
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

function advancing() {
  return $("advance").checked;
}

// After a move: the next photo not moved (advance on), else the same photo(s) stay selected.
function afterMove(figs) {
  if (!advancing()) return;
  const figures = rendered();
  let i = figures.indexOf(figs[figs.length - 1]);
  while (i + 1 < figures.length && figures[i + 1].classList.contains("moved") && !chosen.has(figures[i + 1])) i++;
  step(1, figures[i]);
}

function applyMoves(figs, moved) {
  const byPath = new Map(figs.map((fig) => [fig.dataset.path, fig]));
  for (const item of moved) {
    const fig = byPath.get(item.from);
    if (!fig) continue;
    const before = fig.dataset.folder;
    fig.dataset.path = item.to;
    if (before !== item.folder) {
      counts[before] -= 1;
      counts[item.folder] = (counts[item.folder] || 0) + 1;
    }
    showMove(fig, item.folder);
    fig.classList.toggle("confirmed", item.folder !== reviewFolder && item.folder !== trashFolder);
  }
  updateCounts();
}

async function send(url, body, figs, verb) {
  if (busy || !figs.length) return;
  try {
    const result = await post(url, body);
    const moved = result.moved || [result];
    applyMoves(figs, moved);
    const n = moved.filter((m) => m.from !== m.to).length;
    const kept = moved.length - n;
    const where = [...new Set(moved.map((m) => m.folder))].join(", ");
    say(moved.length === 1 && n === 1 ? `Moved ${moved[0].from} → ${moved[0].to}` :
      `${verb} ${moved.length} photo${moved.length === 1 ? "" : "s"} (${where})` +
      (kept ? `: ${kept} already there, marked confirmed` : ""));
    afterMove(figs); // with the photos' new places: what the next key acts on
    refreshUndo();
  } catch (error) {
    say(`Not moved: ${error.message}`, true);
  }
}

function moveSelected(folder) {
  const figs = targets();
  if (figs.length === 1 && figs[0].dataset.folder === folder) {
    // Already there: confirm it, then go on.
    return send("/api/move", {paths: [figs[0].dataset.path], folder}, figs, "Confirmed");
  }
  return send("/api/move", {paths: figs.map((f) => f.dataset.path), folder}, figs, "Moved");
}

function acceptSelected() {
  const figs = targets().filter((fig) => fig._photo && fig._photo.predicted);
  if (!figs.length) return say("No prediction to accept for the selected photo(s).", true);
  return send("/api/accept", {paths: figs.map((f) => f.dataset.path)}, figs, "Accepted");
}

async function refreshUndo() {
  const response = await fetch("/api/history", {credentials: "same-origin"});
  if (response.ok) setUndo((await response.json()).undo_steps);
}

function setUndo(steps) {
  $("undo").disabled = !steps;
  $("undo").title = steps ? `Undo the last step (u); ${steps} step${steps === 1 ? "" : "s"} can be undone` : "Nothing to undo";
}

async function undo() {
  if (busy) return;
  try {
    const result = await post("/api/undo");
    const figures = rendered();
    let missing = false;
    const back = [];
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
      fig.classList.remove("confirmed");
      back.push(fig);
    }
    if (missing) await load();
    else if (back.length) {
      select(back[0]);
      for (const fig of back.slice(1)) { chosen.add(fig); fig.classList.add("chosen"); }
      showSelection();
    }
    updateCounts();
    setUndo(result.undo_steps);
    say(`Undone: ${result.restored.length === 1 ? `${result.restored[0].from} → ${result.restored[0].to}` : `${result.restored.length} photos put back`}`);
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
    await post("/api/retrain", {confirmed_only: $("confirmed-only").checked});
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
  if (event.target instanceof HTMLInputElement && event.target.type !== "checkbox") return;
  if (event.altKey) return;
  const key = event.key;
  if ((event.ctrlKey || event.metaKey) && (key === "a" || key === "A")) {
    selectSection();
    event.preventDefault();
    return;
  }
  if (event.ctrlKey || event.metaKey) return;
  if (/^[1-9]$/.test(key)) {
    const folder = classes[Number(key) - 1];
    if (folder !== undefined) enqueue(() => moveSelected(folder));
  } else if (key === "0") {
    enqueue(() => moveSelected(reviewFolder));
  } else if (key === "Enter") {
    enqueue(acceptSelected);
  } else if (key === "Delete" || key === "Backspace") {
    enqueue(() => moveSelected(trashFolder));
  } else if (key === "a" || key === "A") {
    selectSection();
  } else if (key === "Escape") {
    if (selected) select(selected, true);
  } else if (key === "u" || key === "U") {
    enqueue(undo);
  } else if (key === "ArrowRight") {
    event.shiftKey ? extend(1) : step(1);
  } else if (key === "ArrowLeft") {
    event.shiftKey ? extend(-1) : step(-1);
  } else if (key === "ArrowDown") {
    step(columns());
  } else if (key === "ArrowUp") {
    step(-columns());
  } else {
    return;
  }
  event.preventDefault();
});

// Shift+arrow: grow the selection by one photo.
function extend(offset) {
  const figures = rendered();
  const next = figures[figures.indexOf(selected) + offset];
  if (!next) return;
  chosen.add(next);
  next.classList.add("chosen");
  focusOn(next);
  showSelection();
}

const advanceBox = $("advance");
advanceBox.checked = localStorage.getItem("skanimal-review-advance") !== "0";
advanceBox.addEventListener("change", () => {
  localStorage.setItem("skanimal-review-advance", advanceBox.checked ? "1" : "0");
  if (selected) selected.focus({preventScroll: true}); // keys go on acting on the photos
});
$("confirmed-only").addEventListener("change", () => selected && selected.focus({preventScroll: true}));
$("undo").addEventListener("click", () => enqueue(undo));
$("retrain").addEventListener("click", retrain);
load();
