// A refusal (4xx) carries the service's message naming the field: show it where the action was, like a success.
if (window.htmx) {
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "4..", swap: true, error: false },
    { code: "...", swap: false, error: true },
  ];
}

// The live board: one event stream per page. The browser resumes it with Last-Event-ID after a drop, and the
// server then sends only a board that changed. When the session's token runs out the server says "expired"
// and the page reloads (a page load renews the token; a stream cannot set cookies).
document.addEventListener("DOMContentLoaded", () => {
  const board = document.getElementById("board");
  if (!board || !board.dataset.stream || !window.EventSource) return;
  const stream = new EventSource(board.dataset.stream);
  stream.addEventListener("board", (event) => { board.innerHTML = event.data; board.dataset.version = event.lastEventId; });
  stream.addEventListener("expired", () => { stream.close(); window.location.reload(); });
  stream.onerror = () => { if (stream.readyState === EventSource.CLOSED) window.location.reload(); };
});
