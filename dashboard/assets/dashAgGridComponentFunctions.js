// Cell renderers for the episodes grid: thumbnails are URLs the server caches (never base64 in rows).
var dagcomponentfuncs = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});

dagcomponentfuncs.Thumb = function (props) {
  if (!props.value) { return null; }
  return React.createElement("img", {src: props.value, loading: "lazy", style: {height: "44px"}});
};

dagcomponentfuncs.EpisodeLink = function (props) {
  if (!props.value) { return null; }
  const href = "/d/" + props.dataset + "/e/" + props.value;
  return React.createElement("a", {href: href, className: "episode-link"}, props.value);
};
