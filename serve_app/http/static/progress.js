// A job's progress: its event stream (SSE), or polling its status when the stream fails.
import { api } from "./api.js";

const FINAL = new Set(["done", "failed"]);
const STAGES = ["queued", "decoding", "inferring", "exporting", "done"];
const POLL_MS = 1000;
const STREAM_TRIES = 3; // streams that may break before the page polls instead

const LABELS = {
  queued: "Waiting in line",
  decoding: "Reading the frames",
  inferring: "Reconstructing",
  exporting: "Writing the point cloud",
  done: "Done",
  failed: "Failed",
};

// Follow job `id`, calling onUpdate(status) at each change; resolves to its final status.
export function watchJob(id, onUpdate) {
  const path = `/api/reconstructions/${encodeURIComponent(id)}`;
  return new Promise((resolve, reject) => {
    let breaks = 0;
    let finished = false;
    const seen = (status) => {
      if (finished) return;
      onUpdate(status);
      if (FINAL.has(status.state)) {
        finished = true;
        resolve(status);
      }
    };
    const ask = async () => { // the status once; false when it cannot be had (the job is given up)
      try {
        seen(await api("GET", path));
        return true;
      } catch (error) {
        finished = true;
        reject(error);
        return false;
      }
    };
    const poll = async () => {
      if ((await ask()) && !finished) setTimeout(poll, POLL_MS);
    };
    const stream = () => {
      const source = new EventSource(`${path}/events`);
      source.onmessage = (event) => {
        seen(JSON.parse(event.data));
        if (finished) source.close();
      };
      source.onerror = async () => {
        source.close(); // a lost or ended stream: ask once, then stream again or poll
        if (finished) return;
        breaks += 1;
        if ((await ask()) && !finished) (breaks < STREAM_TRIES ? stream : poll)();
      };
    };
    if (typeof EventSource === "function") stream();
    else poll();
  });
}

// Words and a 0..1 share (null: not started) for a status.
export function describe(status) {
  const label = LABELS[status.state] || status.state;
  if (status.state === "failed") return { text: `${label}: ${status.message || status.error}`, share: null };
  const parts = [label];
  if (status.state === "queued" && status.position != null) parts.push(`place ${status.position} in the queue`);
  if (status.estimated_wait_s != null && status.state !== "done") {
    parts.push(`about ${Math.max(1, Math.round(status.estimated_wait_s))} s to wait`);
  }
  return { text: parts.join(", "), share: STAGES.indexOf(status.state) / (STAGES.length - 1) };
}
