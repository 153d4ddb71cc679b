() => {
  // A file the browser would refuse for a box (an mp3 dropped on the video, a video on the voice track) goes
  // to the server's check instead, which says what the file is and puts it where it belongs.
  const routes = {
    "in-video": ["video/", "in-face-other"],
    "in-photo": ["image/", "in-face-other"],
    "in-audio": ["audio/", "in-voice-other"],
  };
  const reroute = (event, files) => {
    const host = event.target && event.target.closest ? event.target.closest("#in-video, #in-photo, #in-audio") : null;
    if (!host || !files || !files.length) return;
    const [prefix, other] = routes[host.id];
    const file = files[0];
    if (file.type && file.type.startsWith(prefix)) return;
    const input = document.querySelector(`#${other} input[type=file]`);
    if (!input) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const moved = new DataTransfer();
    moved.items.add(file);
    input.files = moved.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    if (event.type === "change") event.target.value = "";
  };
  document.addEventListener("change", (e) => {
    if (e.target && e.target.matches && e.target.matches("input[type=file]")) reroute(e, e.target.files);
  }, true);
  document.addEventListener("drop", (e) => reroute(e, e.dataTransfer && e.dataTransfer.files), true);
}
