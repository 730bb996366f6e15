// One result: its cloud (the share page's viewer), share link, download, and the adjust panel.
import { api } from "./api.js";
import { describe, watchJob } from "./progress.js";
import { CloudViewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);

// The export options the adjust form holds, as POST /api/results/{hash}/export takes them.
function exportOptions() {
  const whole = (id) => ($(id).value.trim() === "" ? null : Math.trunc(Number($(id).value)));
  return {
    conf_percentile: Number($("conf").value),
    source: $("source").value,
    show_cameras: $("show-cameras").checked,
    mask_black_bg: $("mask-black").checked,
    mask_white_bg: $("mask-white").checked,
    frame: whole("frame"),
    max_points: whole("max-points"),
  };
}

// Show `text` and a bar at `share` (0..1; null: under way, no measure) in `box`; text null hides it.
export function showProgress(box, text, share) {
  box.hidden = text === null;
  if (text === null) return;
  if (!box.firstChild) {
    const line = Object.assign(document.createElement("p"), { className: "progress-text" });
    line.setAttribute("aria-live", "polite");
    box.append(Object.assign(document.createElement("progress"), { max: 1 }), line);
  }
  box.querySelector(".progress-text").textContent = text;
  const bar = box.querySelector("progress");
  if (share === null || share === undefined) bar.removeAttribute("value");
  else bar.value = share;
}

export class ResultView {
  // lookup(hash): the result's entry of GET /api/results (or null); onError(error, element) shows a refusal.
  constructor({ lookup, onError }) {
    this.lookup = lookup;
    this.onError = onError;
    this.viewer = null;
    this.opened = 0; // counts opens: a slow load of an earlier result must not overwrite a later one
    this.source = null; // the result whose stored predictions the adjust panel exports from
    $("conf").addEventListener("input", () => { $("conf-value").textContent = $("conf").value; });
    $("reset").addEventListener("click", () => this.viewer?.reset());
    $("point-size").addEventListener("input", () => this.viewer?.setPointSize(Number($("point-size").value)));
    $("copy-link").addEventListener("click", () => navigator.clipboard?.writeText($("share-link").href));
    $("adjust-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.reexport();
    });
  }

  // Show result `hash`; `from`: the result it was re-exported from (whose predictions are kept), if any.
  async open(hash, from) {
    const opened = ++this.opened;
    const body = document.body.dataset;
    body.hash = hash;
    body.cloud = "loading";
    delete body.points;
    $("cloud-status").textContent = "Loading…";
    $("adjust-error").textContent = "";
    const share = new URL(`/g/${hash}`, location.href).href;
    $("share-link").href = share;
    $("share-link").textContent = share;
    $("download").href = `/g/${hash}.glb`;
    this.source = from || hash;
    this.viewer ??= new CloudViewer($("cloud"));
    this.viewer.setPointSize(Number($("point-size").value));
    const [entry, source] = await Promise.all([this.lookup(hash), this.lookup(this.source)]);
    if (opened !== this.opened) return;
    $("result-title").textContent = entry ? entry.name : "Result";
    const kept = source === null || source.predictions;
    $("reexport").disabled = !kept;
    $("adjust-note").textContent = kept ? "" : "This scan can no longer be adjusted: its model outputs have expired.";
    try {
      const points = await this.viewer.load(`/g/${hash}.glb`);
      if (opened !== this.opened) return;
      $("cloud-status").textContent = points.toLocaleString() + " points";
      body.points = String(points);
      body.cloud = "shown";
    } catch (error) {
      if (opened !== this.opened) return;
      $("cloud-status").textContent = "This scan could not be shown: " + (error.message || error);
      body.cloud = "failed";
    }
  }

  async reexport() {
    const box = $("export-progress"), button = $("reexport"), source = this.source;
    button.disabled = true;
    $("adjust-error").textContent = "";
    showProgress(box, "Sending", null);
    try {
      const { id } = await api("POST", `/api/results/${encodeURIComponent(source)}/export`, exportOptions());
      document.body.dataset.exportJob = id;
      const status = await watchJob(id, (update) => {
        const { text, share } = describe(update);
        showProgress(box, text, share);
        document.body.dataset.exportState = update.state;
      });
      if (status.state === "done") {
        showProgress(box, null);
        const target = `#result/${status.hash}/from/${source}`;
        if (location.hash === target) this.open(status.hash, source); // the same cloud again: no hashchange
        else location.hash = target;
      } else {
        $("adjust-error").textContent = describe(status).text;
      }
    } catch (error) {
      showProgress(box, null);
      this.onError(error, $("adjust-error"));
    } finally {
      button.disabled = false;
    }
  }
}
