// The app's page: log in, send photos or a video, follow the job, list and open results.
//
// Views follow the address's fragment: "" (home: upload and my results), "#job/<id>" (home,
// following a job), "#result/<hash>" and "#result/<hash>/from/<hash>" (a re-export). The body's
// data attributes say what is shown (view, job, cloud, hash, points) for tests and styles.
import { api, setCsrfToken } from "./api.js";
import { describe, watchJob } from "./progress.js";
import { ResultView, showProgress } from "./result.js";
import { setupUpload } from "./upload.js";

const $ = (id) => document.getElementById(id);
const RESULTS_SHOWN = 50;
let user = null; // { username, is_vip } while logged in
let results = null; // hash -> entry of GET /api/results, newest first
let following = null; // the job the home view follows

function show(view) {
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `${view}-view`;
  document.body.dataset.view = view;
}

function signedIn(session) {
  user = { username: session.username, is_vip: session.is_vip };
  setCsrfToken(session.csrf_token);
  $("who").textContent = session.username + (session.is_vip ? " (VIP)" : "");
  $("logout").hidden = false;
  $("video-row").hidden = !session.is_vip;
  route();
}

function signedOut(message = "") {
  user = null;
  results = null;
  setCsrfToken(null);
  $("who").textContent = "";
  $("logout").hidden = true;
  $("login-error").textContent = message;
  show("login");
}

// Show a refused request in `element`; an ended session sends the page back to the log-in form.
function failed(error, element) {
  if (error.status === 401 && user) signedOut("Your session has ended: please log in again.");
  else element.textContent = error.text ?? String(error);
}

function sizeText(bytes) {
  return bytes >= 1e6 ? (bytes / 1e6).toFixed(1) + " MB" : Math.ceil(bytes / 1e3) + " kB";
}

function resultItem(entry) {
  const item = document.createElement("li");
  const open = document.createElement("a");
  open.className = "open";
  open.href = `#result/${entry.hash}`;
  open.textContent = entry.name;
  const facts = document.createElement("span");
  const when = entry.created_at ? new Date(entry.created_at).toLocaleString() : "";
  const points = entry.point_count == null ? "" : `${entry.point_count.toLocaleString()} points, `;
  facts.textContent = `${points}${sizeText(entry.size)}${when ? ", " + when : ""}`;
  const share = document.createElement("a");
  share.href = `/g/${entry.hash}`;
  share.textContent = "share link";
  item.append(open, facts, share);
  return item;
}

async function loadResults() {
  const answer = await api("GET", `/api/results?limit=${RESULTS_SHOWN}`);
  results = new Map(answer.results.map((entry) => [entry.hash, entry]));
  const list = $("results");
  list.replaceChildren(...answer.results.map(resultItem));
  if (!answer.results.length) list.textContent = "No results yet.";
  document.body.dataset.results = String(answer.results.length);
  return results;
}

async function refreshResults() {
  $("results-error").textContent = "";
  try {
    await loadResults();
  } catch (error) {
    failed(error, $("results-error"));
  }
}

// The entry of `hash` in my results (the list is fetched again when it is missing), or null.
async function lookup(hash) {
  if (!results?.has(hash)) {
    try {
      await loadResults();
    } catch {
      return null;
    }
  }
  return results.get(hash) ?? null;
}

async function follow(id) {
  if (following === id) return;
  following = id;
  const box = $("upload-progress");
  document.body.dataset.job = "queued";
  try {
    const status = await watchJob(id, (update) => {
      const { text, share } = describe(update);
      if (following === id) showProgress(box, text, share);
      document.body.dataset.job = update.state;
    });
    if (following !== id) return;
    following = null;
    if (status.state === "done") {
      showProgress(box, null);
      location.hash = `#result/${status.hash}`;
    } else {
      showProgress(box, describe(status).text, null);
    }
  } catch (error) {
    following = null;
    showProgress(box, null);
    failed(error, $("upload-error"));
  }
}

const resultView = new ResultView({ lookup, onError: failed });

function route() {
  if (!user) return signedOut();
  const [kind = "", value = "", , from = ""] = decodeURIComponent(location.hash.slice(1)).split("/");
  if (kind === "result" && value) {
    show("result");
    resultView.open(value, from || null);
    return;
  }
  show("home");
  refreshResults();
  if (kind === "job" && value) follow(value);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  $("login-button").disabled = true;
  try {
    const session = await api("POST", "/api/login", { username: $("username").value, password: $("password").value });
    $("password").value = "";
    signedIn(session);
  } catch (error) {
    $("login-error").textContent = error.text;
  } finally {
    $("login-button").disabled = false;
  }
});

$("logout").addEventListener("click", async () => {
  try {
    await api("POST", "/api/logout");
  } catch (error) {
    if (error.status !== 401) return failed(error, $("login-error"));
  }
  signedOut();
});

setupUpload({
  isVip: () => Boolean(user?.is_vip),
  onAccepted: (id) => { location.hash = `#job/${id}`; },
  onError: failed,
  onProgress: (text, share) => showProgress($("upload-progress"), text, share),
});

window.addEventListener("hashchange", route);
api("GET", "/api/session").then(signedIn, (error) => signedOut(error.status === 401 ? "" : error.text));
