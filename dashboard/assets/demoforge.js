// Clientside pieces of the episode view: one frame index drives every camera, the plot cursor and the
// end-effector marker, without a server round trip (the browser caches the frame URLs).
window.demoforge = {
  frameUrls: function (prefixes, t, length) {
    const i = Math.max(0, Math.min(t, length - 1));
    return prefixes.map(function (p) { return p + i + ".jpg"; });
  },
  moveCursor: function (t, info) {
    const d = window.demoforge;
    d.wanted = [t, info];
    clearTimeout(d.retry);
    const plot = document.querySelector("#timeline .js-plotly-plot");
    const plotReady = plot && plot._fullLayout && plot.layout && plot.layout.shapes && plot.layout.shapes.length;
    if (plotReady) {
      window.Plotly.relayout(plot, {"shapes[0].x0": t, "shapes[0].x1": t});
    }
    const path = document.querySelector("#ee-path .js-plotly-plot");
    const hasPath = info.ee && info.ee.length;
    const pathReady = !hasPath || (path && path._fullLayout);
    if (hasPath && pathReady) {
      const p = info.ee[Math.max(0, Math.min(t, info.ee.length - 1))];
      window.Plotly.restyle(path, {x: [[p[0]]], y: [[p[1]]], z: [[p[2]]]}, [1]);
    }
    // Plots load after the page (plotly.js is fetched lazily): a frame chosen before they are drawn is
    // placed once they are, with the latest frame asked for (tried for up to 10 s).
    if (!(plotReady && pathReady) && (d.tries = (d.tries || 0) + 1) < 100) {
      d.retry = setTimeout(function () { d.moveCursor(d.wanted[0], d.wanted[1]); }, 100);
    } else {
      d.tries = 0;
    }
  },
  showFrame: function (t, info) {
    if (t === null || t === undefined || !info) { return [window.dash_clientside.no_update, window.dash_clientside.no_update, ""]; }
    window.demoforge.moveCursor(t, info);
    const seconds = (t / info.fps).toFixed(2);
    return [window.demoforge.frameUrls(info.cameras, t, info.length),
            window.demoforge.frameUrls(info.source, t, info.source_length),
            "frame " + t + " / " + (info.length - 1) + "  (" + seconds + " s)"];
  },
  togglePlay: function (n, disabled) {
    return disabled ? [false, "Pause"] : [true, "Play"];
  },
  tick: function (t, info) {
    const next = (t || 0) + 1;
    if (next >= info.length) { return [info.length - 1, true, "Play"]; }
    return [next, window.dash_clientside.no_update, window.dash_clientside.no_update];
  },
  seek: function (click) {
    if (!click || !click.points || !click.points.length) { return window.dash_clientside.no_update; }
    return Math.round(click.points[0].x);
  },
};

// Keyboard on the episode view: space plays or pauses, left/right arrows step one frame.
document.addEventListener("keydown", function (e) {
  const slider = document.querySelector("#frame [role=slider]");
  if (!slider || ["INPUT", "TEXTAREA"].includes(document.activeElement.tagName)) { return; }
  if (e.key === " ") { e.preventDefault(); document.getElementById("play").click(); return; }
  if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") { return; }
  // A focused slider steps itself on the arrow keys: stepping here too would move two frames per key.
  if (e.defaultPrevented || (e.target && e.target.closest && e.target.closest("#frame"))) { return; }
  const now = parseInt(slider.getAttribute("aria-valuenow") || "0", 10);
  const max = parseInt(slider.getAttribute("aria-valuemax") || "0", 10);
  const next = Math.max(0, Math.min(max, now + (e.key === "ArrowRight" ? 1 : -1)));
  window.dash_clientside.set_props("frame", {value: next});
  e.preventDefault();
});
