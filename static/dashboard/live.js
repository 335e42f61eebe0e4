/* memoryhub dashboard: live updates over /ws/v1/events/ with the browser's session.
 *
 * - Connects with ?since=<seq the page was rendered at>, so nothing committed in between is missed;
 *   after a drop it reconnects with backoff and resumes from the last seq it saw (the server replays
 *   the gap; a frame at or below that seq is a duplicate and ignored).
 * - Event feeds ([data-feed]) get new events prepended, filtered like the page's own filters.
 * - Regions ([data-live="memory lock ..."], with an id) are re-read from the page's URL when an event of
 *   one of their families arrives, and swapped in, unless the user is typing in them (then later).
 * Without JavaScript every page is complete as served; reloading shows what is new.
 */
(function () {
  "use strict";

  var body = document.body;
  var since = body.getAttribute("data-since");
  if (since === null || since === "") return;

  var lastSeq = parseInt(since, 10) || 0;
  var pageUrl = body.getAttribute("data-page-url") || location.pathname + location.search;
  var statusEl = document.getElementById("live-status");
  var attempt = 0;
  var stopped = false;
  var retryTimer = null;

  function setStatus(state, text) {
    if (!statusEl) return;
    statusEl.setAttribute("data-state", state);
    statusEl.textContent = text;
  }

  // --- the socket ----------------------------------------------------------------------------------

  function socketUrl() {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + "/ws/v1/events/?since=" + lastSeq;
  }

  function connect() {
    clearTimeout(retryTimer);
    if (stopped) return;
    setStatus("connecting", attempt ? "Reconnecting…" : "Connecting…");
    var socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch (error) {
      scheduleReconnect();
      return;
    }
    socket.onopen = function () {
      attempt = 0;
      setStatus("live", "Live");
    };
    socket.onmessage = function (message) {
      var frame;
      try {
        frame = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (!frame || frame.type !== "event" || typeof frame.seq !== "number") return;
      if (frame.seq <= lastSeq) return; // already seen (a replay overlapping what arrived live)
      lastSeq = frame.seq;
      handle(frame.event);
    };
    socket.onclose = function (closing) {
      if (stopped) return;
      if (closing.code === 4401 || closing.code === 4403) {
        setStatus("down", "Not live: log in again");
        return;
      }
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    attempt += 1;
    // Exponential backoff with jitter, 0.5 s doubling up to 30 s, so a restarted server is not stampeded.
    var ceiling = Math.min(30000, 500 * Math.pow(2, Math.min(attempt - 1, 6)));
    var delay = ceiling / 2 + Math.random() * (ceiling / 2);
    setStatus("down", "Offline, retrying in " + Math.max(1, Math.round(delay / 1000)) + " s");
    retryTimer = setTimeout(connect, delay);
  }

  window.addEventListener("pagehide", function () {
    stopped = true;
    clearTimeout(retryTimer);
  });
  window.addEventListener("online", function () {
    if (!stopped && attempt) connect();
  });

  // --- events ------------------------------------------------------------------------------------

  function family(type) {
    return String(type || "").split(".")[0];
  }

  function handle(event) {
    if (!event) return;
    document.dispatchEvent(new CustomEvent("hub:event", { detail: event }));
    var feeds = document.querySelectorAll("[data-feed]");
    for (var i = 0; i < feeds.length; i++) addToFeed(feeds[i], event);
    markRegions(event);
  }

  function globToRegExp(glob) {
    var parts = glob.split("*").map(function (part) {
      return part.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
    });
    return new RegExp("^" + parts.join(".*") + "$");
  }

  function matchesFilters(feed, event) {
    var actor = feed.getAttribute("data-filter-actor");
    var namespace = feed.getAttribute("data-filter-namespace");
    var resource = feed.getAttribute("data-filter-resource");
    var type = feed.getAttribute("data-filter-type");
    var start = feed.getAttribute("data-filter-start");
    if (actor && (!event.actor || event.actor.id !== actor)) return false;
    if (namespace && !globToRegExp(namespace).test(event.namespace || "")) return false;
    if (resource && event.resource !== resource) return false;
    if (type) {
      if (type.slice(-1) === "*") {
        if (String(event.type).indexOf(type.slice(0, -1)) !== 0) return false;
      } else if (event.type !== type) {
        return false;
      }
    }
    if (start && Date.parse(event.at) < Date.parse(start)) return false;
    return true;
  }

  function actorLabel(actor) {
    if (!actor) return "";
    return actor.kind === "agent" ? actor.id : actor.kind + ":" + actor.id;
  }

  function resourceHref(event) {
    var resource = event.resource || "";
    var type = event.type || "";
    if (type.indexOf("memory.") === 0 || type === "conflict.rejected") {
      var bare = resource.replace(/^memory:/, "");
      var slash = bare.indexOf("/");
      if (slash > 0) {
        return "/memories/" + encodeURIComponent(bare.slice(0, slash)) + "/" + encodeURIComponent(bare.slice(slash + 1)) + "/";
      }
    }
    return "/events/?resource=" + encodeURIComponent(resource);
  }

  function formatTime(iso) {
    var moment = new Date(iso);
    if (isNaN(moment.getTime())) return iso;
    return moment.toISOString().slice(0, 19).replace("T", " ");
  }

  function addToFeed(feed, event) {
    if (!matchesFilters(feed, event)) return;
    if (feed.querySelector('[data-seq="' + event.seq + '"]')) return;
    var template = document.getElementById("event-item-template");
    if (!template) return;
    var item = template.content.firstElementChild.cloneNode(true);
    item.className = "fam-" + family(event.type) + " fresh";
    item.setAttribute("data-seq", String(event.seq));
    var fill = function (name, text) {
      var node = item.querySelector('[data-field="' + name + '"]');
      if (node) node.textContent = text;
      return node;
    };
    fill("seq", "#" + event.seq);
    var time = fill("at", formatTime(event.at));
    if (time) time.setAttribute("datetime", event.at);
    fill("type", event.type);
    fill("actor", actorLabel(event.actor));
    fill("summary", event.summary || "");
    var reason = fill("reason", event.reason ? "— " + event.reason : "");
    if (reason && !event.reason) reason.remove();
    var link = item.querySelector('[data-field="resource"]');
    if (link) {
      if (event.resource) {
        link.textContent = event.resource;
        link.setAttribute("href", resourceHref(event));
      } else {
        link.remove();
      }
    }
    var placeholder = feed.querySelector("[data-feed-empty]");
    if (placeholder) placeholder.remove();
    feed.insertBefore(item, feed.firstElementChild);
    var limit = parseInt(feed.getAttribute("data-feed-limit") || "0", 10);
    while (limit && feed.children.length > limit) feed.lastElementChild.remove();
  }

  // --- regions re-read from the server -------------------------------------------------------------

  var dirty = {};
  var refreshTimer = null;
  var refreshing = false;

  function markRegions(event) {
    var kind = family(event.type);
    var regions = document.querySelectorAll("[data-live]");
    var any = false;
    for (var i = 0; i < regions.length; i++) {
      var region = regions[i];
      if (!region.id) continue;
      var families = region.getAttribute("data-live").split(/\s+/);
      if (families.indexOf(kind) === -1) continue;
      var only = region.getAttribute("data-live-resource");
      if (only && event.resource !== only) continue;
      dirty[region.id] = true;
      any = true;
    }
    if (any) scheduleRefresh(400);
  }

  function scheduleRefresh(delay) {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      refresh();
    }, delay);
  }

  function busy(region) {
    // Someone typing in a region (a reason, a note) must not lose it to a refresh.
    var active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName) && active.type !== "submit") {
      return true;
    }
    var fields = region.querySelectorAll("input[type=text], input:not([type]), textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== fields[i].defaultValue) return true;
    }
    return false;
  }

  function refresh() {
    if (refreshing) {
      scheduleRefresh(500);
      return;
    }
    var ids = Object.keys(dirty);
    if (!ids.length) return;
    refreshing = true;
    fetch(pageUrl, { credentials: "same-origin", headers: { "X-Requested-With": "memoryhub-live" } })
      .then(function (response) {
        if (response.redirected && response.url.indexOf("/login/") !== -1) {
          stopped = true;
          setStatus("down", "Session ended: reload to log in");
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var deferred = false;
        ids.forEach(function (id) {
          var region = document.getElementById(id);
          var replacement = fresh.getElementById(id);
          if (!region || !replacement) {
            delete dirty[id];
            return;
          }
          if (busy(region)) {
            deferred = true;
            return;
          }
          delete dirty[id];
          if (region.innerHTML === replacement.innerHTML) return;
          var open = Array.prototype.map.call(region.querySelectorAll("details"), function (d) {
            return d.open;
          });
          region.innerHTML = replacement.innerHTML;
          region.querySelectorAll("details").forEach(function (d, index) {
            if (open[index]) d.open = true;
          });
          document.dispatchEvent(new CustomEvent("hub:refreshed", { detail: { id: id } }));
        });
        if (deferred) scheduleRefresh(1500);
      })
      .catch(function () {
        scheduleRefresh(3000); // the server is unreachable: the socket's reconnect will tell
      })
      .then(function () {
        refreshing = false;
      });
  }

  connect();
})();
