() => {
  // Files are checked in the browser before an upload starts, so that the answer appears beside the box:
  // a file over the upload limit is named to the server's check (not uploaded), and a file the box would refuse
  // (an mp3 dropped on the video, a video on the voice track) goes to the server's check instead, which says
  // what it is and puts it where it belongs.
  const boxes = "#in-video, #in-photo, #in-audio, #in-voice-file";
  const notes = { "in-video": "video", "in-photo": "photo", "in-audio": "audio", "in-voice-file": "voice_file" };
  const routes = {
    "in-video": ["video/", "in-face-other"],
    "in-photo": ["image/", "in-face-other"],
    "in-audio": ["audio/", "in-voice-other"],
  };
  const stop = (event) => {
    event.preventDefault();
    event.stopImmediatePropagation();
    if (event.type === "change") event.target.value = "";
  };
  const tooBig = (event, host, file) => {
    const limit = window.gradio_config && window.gradio_config.max_file_size;
    if (!limit || file.size <= limit) return false;
    stop(event);
    const box = document.querySelector("#too-big textarea, #too-big input");
    if (box) {
      box.value = JSON.stringify({ box: notes[host.id], name: file.name, size: file.size, limit: limit, at: Date.now() });
      box.dispatchEvent(new Event("input", { bubbles: true }));
    }
    return true;
  };
  const check = (event, files) => {
    const host = event.target && event.target.closest ? event.target.closest(boxes) : null;
    if (!host || !files || !files.length) return;
    const file = files[0];
    if (tooBig(event, host, file) || !routes[host.id]) return;
    const [prefix, other] = routes[host.id];
    if (file.type && file.type.startsWith(prefix)) return;
    const input = document.querySelector(`#${other} input[type=file]`);
    if (!input) return;
    stop(event);
    const moved = new DataTransfer();
    moved.items.add(file);
    input.files = moved.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  };
  document.addEventListener("change", (e) => {
    if (e.target && e.target.matches && e.target.matches("input[type=file]")) check(e, e.target.files);
  }, true);
  document.addEventListener("drop", (e) => check(e, e.dataTransfer && e.dataTransfer.files), true);
}
