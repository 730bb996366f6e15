// The upload form: photos (several, chosen or dropped) or, for a VIP, one video.
import { upload } from "./api.js";

const $ = (id) => document.getElementById(id);

function megabytes(files) {
  return (files.reduce((sum, file) => sum + file.size, 0) / 1e6).toFixed(1) + " MB";
}

// Wire the form; isVip() says whether a video may be sent, onAccepted(jobId) follows the job,
// onError(error, element) shows a refusal, onProgress(text, share) shows the upload's progress.
export function setupUpload({ isVip, onAccepted, onError, onProgress }) {
  const photos = $("photos"), video = $("video"), drop = $("drop"), button = $("upload-button");
  const errorLine = $("upload-error");
  let chosen = null; // { kind: "photos" | "video", files: File[] }

  const choose = (kind, files) => {
    chosen = files.length ? { kind, files } : null;
    errorLine.textContent = "";
    $("chosen").textContent = chosen
      ? `${files.length} ${kind === "video" ? "video" : files.length === 1 ? "photo" : "photos"} chosen (${megabytes(files)})`
      : "";
    button.disabled = chosen === null;
  };

  photos.addEventListener("change", () => {
    video.value = "";
    choose("photos", [...photos.files]);
  });
  video.addEventListener("change", () => {
    photos.value = "";
    choose("video", [...video.files]);
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const files = [...event.dataTransfer.files];
    const isVideo = files.length === 1 && files[0].type.startsWith("video/");
    // a known type that is not an image is refused here; an unknown one (HEIC on some systems) is for the service
    const strays = isVideo ? [] : files.filter((file) => file.type && !file.type.startsWith("image/"));
    photos.value = "";
    video.value = "";
    if (isVideo && !isVip()) {
      choose("photos", []);
      errorLine.textContent = "Sending a video needs a VIP account; drop photos instead.";
    } else if (strays.length) {
      choose("photos", []);
      const what = isVip() ? "photos or one video" : "photos";
      errorLine.textContent = `Not a photo: ${strays.map((file) => file.name).join(", ")}; drop ${what} only.`;
    } else {
      choose(isVideo ? "video" : "photos", files);
    }
  });

  $("upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!chosen) return;
    const form = new FormData();
    for (const file of chosen.files) form.append(chosen.kind, file, file.name);
    button.disabled = true;
    errorLine.textContent = "";
    onProgress("Uploading", 0);
    try {
      const { id } = await upload("/api/reconstructions", form, (share) => {
        onProgress(`Uploading, ${Math.round(share * 100)} %`, share);
      });
      photos.value = "";
      video.value = "";
      choose("photos", []);
      onAccepted(id);
    } catch (error) {
      onProgress(null);
      button.disabled = false;
      onError(error, errorLine);
    }
  });
}
