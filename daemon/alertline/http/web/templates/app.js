// Live updates: reload the page when an alert changes, unless the user is typing.
(function () {
  if (!window.EventSource) { return; }
  var pending = null;
  var source = new EventSource("/events");
  source.onmessage = function () {
    if (pending) { return; }
    pending = setTimeout(function () {
      pending = null;
      var active = document.activeElement;
      if (active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA")) { return; }
      window.location.reload();
    }, 500);
  };
})();
