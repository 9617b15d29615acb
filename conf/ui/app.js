/*
 * The chat page: every call is to this server's API (README "API"); nothing is loaded from
 * elsewhere.  Model output is Markdown, rendered with marked, its raw HTML shown as text, and the
 * result sanitized by DOMPurify before it is put in the page.
 */
(function () {
  "use strict";

  var state = {
    mode: "none",          // GET /auth/config: token, remote-user or none
    registration: "closed",
    token: null,           // AUTH=token: the bearer token
    userId: null,          // AUTH=none: the user id the chats belong to
    archived: false,       // the list shows archived chats
    chats: [],
    chat: null,            // the open Chat
    messages: [],
    more: false,           // earlier messages lie before those read
    models: [],
    defaultModel: null,
    streaming: null,       // {controller} while a reply streams in
    highlight: null        // a message id to show (a search result)
  };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] === null || attrs[k] === undefined) return;
      if (k === "text") e.textContent = attrs[k];
      else if (k === "class") e.className = attrs[k];
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }

  function status(text) { $("status").textContent = text || ""; }

  /* ---- the API ---- */

  function withUser(path) {
    if (state.mode !== "none" || !state.userId) return path;
    return path + (path.indexOf("?") < 0 ? "?" : "&") + "user_id=" + encodeURIComponent(state.userId);
  }

  function headers(extra) {
    var h = { "Accept": "application/json" };
    if (state.token) h.Authorization = "Bearer " + state.token;
    Object.keys(extra || {}).forEach(function (k) { h[k] = extra[k]; });
    return h;
  }

  function detail(data, status) {
    if (data && typeof data.detail === "string") return data.detail;
    if (data && Array.isArray(data.detail)) return data.detail.map(function (d) { return d.msg; }).join("; ");
    return "HTTP " + status;
  }

  /* A JSON call: resolves to the decoded body (null for a 204); rejects with an Error whose status is set. */
  function api(method, path, body) {
    var opts = { method: method, headers: headers(body !== undefined ? { "Content-Type": "application/json" } : {}) };
    if (body !== undefined) opts.body = JSON.stringify(body);
    return fetch(withUser(path), opts).then(function (resp) {
      if (resp.status === 204) return null;
      return resp.json().catch(function () { return null; }).then(function (data) {
        if (!resp.ok) {
          var err = new Error(detail(data, resp.status));
          err.status = resp.status;
          if (resp.status === 401 && state.mode === "token") signedOut("Please log in again.");
          throw err;
        }
        return data;
      });
    });
  }

  function fail(err) {
    if (err && err.name === "AbortError") return;
    status(err && err.message ? err.message : String(err));
  }

  /* ---- signing in ---- */

  function showLogin(message) {
    $("main").hidden = true;
    $("login").hidden = false;
    $("login-token").hidden = state.mode !== "token";
    $("login-none").hidden = state.mode !== "none";
    $("signup-button").hidden = !(state.mode === "token" && state.registration === "open");
    $("login-error").textContent = message || "";
    (state.mode === "token" ? $("email") : $("user-id")).focus();
  }

  function signedOut(message) {
    state.token = null;
    localStorage.removeItem("ac_token");
    showLogin(message);
  }

  function login(signup) {
    if (state.mode === "none") {
      var id = $("user-id").value.trim();
      if (!id) { $("login-error").textContent = "Name a user id."; return; }
      state.userId = id;
      localStorage.setItem("ac_user", id);
      start();
      return;
    }
    var email = $("email").value.trim(), password = $("password").value;
    var first = signup ? api("POST", "/auth/register", { email: email, password: password }) : Promise.resolve();
    first.then(function () {
      return api("POST", "/auth/login", { email: email, password: password });
    }).then(function (data) {
      state.token = data.access_token;
      localStorage.setItem("ac_token", state.token);
      $("password").value = "";
      start();
    }).catch(function (err) { $("login-error").textContent = err.message; });
  }

  function logout() {
    if (state.mode === "token") {
      api("POST", "/auth/logout").catch(function () {}).then(function () { signedOut(""); });
    } else {
      state.userId = null;
      localStorage.removeItem("ac_user");
      showLogin("");
    }
  }

  /* ---- the chat list and search ---- */

  function chatLabel(c) { return (c.pinned ? "📌 " : "") + (c.title || "Untitled chat"); }

  function loadChats() {
    return api("GET", "/chats?limit=100&archived=" + state.archived).then(function (data) {
      state.chats = data.chats;
      renderChats();
    });
  }

  function renderChats() {
    var list = $("chat-list");
    list.textContent = "";
    state.chats.forEach(function (c) {
      var b = el("button", { type: "button", text: chatLabel(c), "data-chat": c.id, title: c.title || "Untitled chat",
        onclick: function () { openChat(c.id); } });
      if (state.chat && state.chat.id === c.id) b.setAttribute("aria-current", "true");
      list.appendChild(el("li", {}, [b]));
    });
    if (!state.chats.length)
      list.appendChild(el("li", { class: "hint", text: state.archived ? "No archived chats." : "No chats yet." }));
  }

  /* A snippet's text, its matched words (between U+0002 and U+0003) as <mark>: text nodes only. */
  function snippetNode(text) {
    var span = el("span", { class: "snippet" });
    var parts = String(text).split("\u0002");
    span.appendChild(document.createTextNode(parts[0]));
    for (var i = 1; i < parts.length; i++) {
      var end = parts[i].indexOf("\u0003");
      var word = end < 0 ? parts[i] : parts[i].slice(0, end);
      span.appendChild(el("mark", { text: word }));
      if (end >= 0) span.appendChild(document.createTextNode(parts[i].slice(end + 1)));
    }
    return span;
  }

  var searchTimer = null;
  function onSearch() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, 250);
  }

  function runSearch() {
    var q = $("search").value.trim();
    var results = $("search-results");
    if (!q) {
      results.hidden = true;
      $("chat-list").hidden = false;
      return;
    }
    api("GET", "/search?limit=50&q=" + encodeURIComponent(q)).then(function (data) {
      results.textContent = "";
      data.results.forEach(function (r) {
        var b = el("button", { type: "button", "data-chat": r.chat_id, "data-message": r.message_id || "",
          onclick: function () { state.highlight = r.message_id; openChat(r.chat_id); } },
          [el("strong", { text: r.chat_title || "Untitled chat" }), snippetNode(r.snippet)]);
        results.appendChild(el("li", {}, [b]));
      });
      if (!data.results.length) results.appendChild(el("li", { class: "hint", text: "Nothing found." }));
      else results.appendChild(el("li", { class: "hint", text: data.total + " found" }));
      results.hidden = false;
      $("chat-list").hidden = true;
    }).catch(fail);
  }

  /* ---- one chat ---- */

  function setLayoutOpen(open) { $("main").classList.toggle("chat-open", open); }

  function openChat(id) {
    stopStream();
    return api("GET", "/chats/" + encodeURIComponent(id)).then(function (chat) {
      state.chat = chat;
      renderHead();
      renderChats();
      setLayoutOpen(true);
      $("composer").hidden = false;
      status("");
      return loadMessages();
    }).then(function () {
      if (!state.highlight) $("input").focus();
    }).catch(fail);
  }

  function renderHead() {
    var c = state.chat;
    $("chat-title").textContent = c ? c.title || "Untitled chat" : "No chat open";
    $("chat-actions").hidden = !c;
    $("rename-form").hidden = true;
    $("chat-title").hidden = false;
    if (!c) return;
    $("pin").textContent = c.pinned ? "Unpin" : "Pin";
    $("pin").setAttribute("aria-pressed", String(c.pinned));
    $("archive").textContent = c.archived ? "Unarchive" : "Archive";
    $("archive").setAttribute("aria-pressed", String(c.archived));
    $("delete").textContent = "Delete";
    var select = $("model");
    select.textContent = "";
    select.appendChild(el("option", { value: "", text: "default (" + (state.defaultModel || "?") + ")" }));
    state.models.forEach(function (m) { select.appendChild(el("option", { value: m.alias, text: m.alias })); });
    select.value = c.model || "";
  }

  var PAGE = 200;   // messages read at once; earlier ones on request

  /* A page of the active path: {msgs, more} (more: earlier messages lie before it, X-Has-More). */
  function getPage(chatId, query) {
    return fetch(withUser("/chats/" + chatId + "/messages?" + query), { headers: headers() }).then(function (resp) {
      return resp.json().catch(function () { return null; }).then(function (data) {
        if (!resp.ok) throw new Error(detail(data, resp.status));
        return { msgs: data, more: resp.headers.get("X-Has-More") === "true" };
      });
    });
  }

  function has(id) {
    return state.messages.some(function (m) { return m.id === id; });
  }

  /* Earlier pages until the message to show (a search result) is among those read. */
  function reveal(chatId, pages) {
    if (!state.highlight || has(state.highlight) || !state.more || !state.messages.length || pages > 50)
      return Promise.resolve();
    return getPage(chatId, "before=" + state.messages[0].id + "&limit=" + PAGE).then(function (p) {
      state.messages = p.msgs.concat(state.messages);
      state.more = p.more;
      return reveal(chatId, pages + 1);
    });
  }

  function loadMessages() {
    var c = state.chat;
    if (!c) return Promise.resolve();
    return getPage(c.id, "newest=true&limit=" + PAGE).then(function (p) {
      if (!state.chat || state.chat.id !== c.id) return;
      state.messages = p.msgs;
      state.more = p.more;
      return reveal(c.id, 0).then(function () { renderMessages(); });
    });
  }

  function loadEarlier() {
    var c = state.chat, list = $("messages");
    if (!c || !state.messages.length) return;
    getPage(c.id, "before=" + state.messages[0].id + "&limit=" + PAGE).then(function (p) {
      if (!state.chat || state.chat.id !== c.id) return;
      var fromBottom = list.scrollHeight - list.scrollTop;
      state.messages = p.msgs.concat(state.messages);
      state.more = p.more;
      renderMessages(true);
      list.scrollTop = list.scrollHeight - fromBottom;   // the messages read before stay in view
      if ($("earlier")) $("earlier").focus();
    }).catch(fail);
  }

  /* Markdown, its raw HTML escaped (shown as text), then sanitized. */
  function escapeHtml(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  var markdownReady = false;
  function markdown(text) {
    if (!window.marked || !window.DOMPurify) return null;
    if (!markdownReady) {
      window.marked.use({ gfm: true, breaks: true, renderer: { html: function (token) { return escapeHtml(token.raw || token.text || ""); } } });
      window.DOMPurify.addHook("afterSanitizeAttributes", function (node) {
        if (node.tagName === "A") { node.setAttribute("rel", "noopener noreferrer"); node.setAttribute("target", "_blank"); }
      });
      markdownReady = true;
    }
    var html = window.marked.parse(String(text));
    return window.DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, FORBID_TAGS: ["style", "form", "input"] });
  }

  function renderBody(body, m) {
    if (m.role === "assistant") {
      var html = markdown(m.content);
      if (html !== null) {
        body.className = "body markdown";
        body.innerHTML = html;   // sanitized by DOMPurify just above
        return;
      }
    }
    body.className = "body plain";
    body.textContent = m.content;
  }

  function lastUserId() {
    for (var i = state.messages.length - 1; i >= 0; i--) if (state.messages[i].role === "user") return state.messages[i].id;
    return null;
  }

  function messageNode(m, isLast) {
    var meta = el("div", { class: "meta" }, [
      el("strong", { text: m.role === "user" ? "You" : "Assistant" }),
      el("time", { datetime: m.created_at, text: new Date(m.created_at).toLocaleString() })
    ]);
    if (m.incomplete) meta.appendChild(el("span", { class: "badge incomplete", text: "incomplete" }));
    var sibs = m.sibling_ids || [m.id];
    if (sibs.length > 1) {
      var at = sibs.indexOf(m.id);
      meta.appendChild(el("span", { class: "branches" }, [
        el("button", { type: "button", class: "secondary small prev", "aria-label": "Previous version", text: "‹",
          disabled: at <= 0 ? "" : null, onclick: function () { switchTo(sibs[at - 1]); } }),
        el("span", { class: "branch-at", text: (at + 1) + "/" + sibs.length }),
        el("button", { type: "button", class: "secondary small next", "aria-label": "Next version", text: "›",
          disabled: at >= sibs.length - 1 ? "" : null, onclick: function () { switchTo(sibs[at + 1]); } })
      ]));
    }
    var body = el("div", { class: "body" });
    renderBody(body, m);
    var tools = el("div", { class: "tools" });
    if (m.role === "user")
      tools.appendChild(el("button", { type: "button", class: "secondary small edit", text: "Edit",
        onclick: function () { editMessage(li, m); } }));
    if (m.role === "assistant" && isLast)
      tools.appendChild(el("button", { type: "button", class: "secondary small regenerate", text: "Regenerate",
        onclick: regenerate }));
    var li = el("li", { class: "message " + m.role, "data-id": m.id, "data-role": m.role }, [meta, body, tools]);
    return li;
  }

  function renderMessages(keepScroll) {
    var list = $("messages");
    list.textContent = "";
    if (state.more)
      list.appendChild(el("li", { class: "earlier" }, [el("button", { type: "button", id: "earlier",
        class: "secondary small", text: "Load earlier messages", onclick: loadEarlier })]));
    state.messages.forEach(function (m, i) { list.appendChild(messageNode(m, i === state.messages.length - 1)); });
    if (state.highlight) {
      var target = list.querySelector("[data-id='" + state.highlight + "']");
      state.highlight = null;
      if (target) { target.classList.add("highlight"); target.scrollIntoView({ block: "center" }); return; }
    }
    if (!keepScroll) list.scrollTop = list.scrollHeight;
  }

  function switchTo(id) {
    api("PUT", "/chats/" + state.chat.id + "/active", { message_id: id }).then(function (chat) {
      state.chat = chat;
      return loadMessages();
    }).catch(fail);
  }

  /* ---- sending, with the reply streaming in ---- */

  function setStreaming(on) {
    $("send").hidden = on;
    $("stop").hidden = !on;
    $("input").disabled = false;
  }

  function stopStream() {
    if (state.streaming) {
      state.streaming.controller.abort();
      state.streaming = null;
      setStreaming(false);
    }
  }

  /* The pending exchange at the end of the list: the user's text (if any) and the reply as it comes. */
  function pendingNodes(userText) {
    var list = $("messages");
    if (userText !== null)
      list.appendChild(messageNode({ id: 0, role: "user", content: userText, created_at: new Date().toISOString() }, false));
    var reply = messageNode({ id: 0, role: "assistant", content: "", created_at: new Date().toISOString() }, false);
    reply.classList.add("streaming");
    reply.querySelector(".tools").textContent = "";
    list.appendChild(reply);
    list.scrollTop = list.scrollHeight;
    return reply.querySelector(".body");
  }

  /* POSTs body to path asking for a stream; shows the deltas in the page; reloads the chat at the end. */
  function streamCall(path, body, userText) {
    stopStream();
    var chatId = state.chat.id;
    var controller = new AbortController();
    var text = "";
    var replyBody = pendingNodes(userText);
    var drawn = false;
    state.streaming = { controller: controller };
    setStreaming(true);
    status("The model is answering…");
    body.stream = true;
    if (state.mode === "none") body.user_id = state.userId;

    function draw() {
      drawn = false;
      renderBody(replyBody, { role: "assistant", content: text });
      $("messages").scrollTop = $("messages").scrollHeight;
    }

    function onEvent(name, data) {
      if (name === "delta") {
        text += JSON.parse(data).content || "";
        if (!drawn) { drawn = true; requestAnimationFrame(draw); }
      } else if (name === "error") {
        throw new Error(detail(JSON.parse(data), 503));
      } else if (name === "done") {
        status("");
      }
    }

    return fetch(withUser(path), {
      method: "POST", signal: controller.signal,
      headers: headers({ "Content-Type": "application/json", "Accept": "text/event-stream" }),
      body: JSON.stringify(body)
    }).then(function (resp) {
      if (!resp.ok || !resp.body) {
        return resp.json().catch(function () { return null; }).then(function (d) { throw new Error(detail(d, resp.status)); });
      }
      var reader = resp.body.getReader(), decoder = new TextDecoder(), buf = "";
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) return;
          buf += decoder.decode(r.value, { stream: true });
          var at;
          while ((at = buf.indexOf("\n\n")) >= 0) {
            var block = buf.slice(0, at);
            buf = buf.slice(at + 2);
            var name = "message", data = [];
            block.split("\n").forEach(function (line) {
              if (line.indexOf("event:") === 0) name = line.slice(6).trim();
              else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
            });
            if (data.length) onEvent(name, data.join("\n"));
          }
          return pump();
        });
      }
      return pump();
    }).catch(function (err) {
      if (err.name === "AbortError") status("Stopped: the reply is kept as it was, marked incomplete.");
      else fail(err);
    }).then(function () {
      if (state.streaming && state.streaming.controller === controller) { state.streaming = null; setStreaming(false); }
      if (!state.chat || state.chat.id !== chatId) return;
      // What was stored (a stopped reply is stored once the server sees the client gone).
      var wait = controller.signal.aborted ? 700 : 0;
      return new Promise(function (r) { setTimeout(r, wait); }).then(function () {
        return api("GET", "/chats/" + chatId);
      }).then(function (chat) { state.chat = chat; renderHead(); return loadMessages(); })
        .then(loadChats).catch(fail);
    });
  }

  function send() {
    var text = $("input").value;
    if (!text.trim() || !state.chat || state.streaming) return;
    $("input").value = "";
    streamCall("/chat", { chat_id: state.chat.id, message: text }, text);
  }

  function regenerate() {
    if (!state.chat) return;
    var list = $("messages");
    if (list.lastElementChild && list.lastElementChild.dataset.role === "assistant") list.removeChild(list.lastElementChild);
    streamCall("/chats/" + state.chat.id + "/regenerate", {}, null);
  }

  function editMessage(li, m) {
    var body = li.querySelector(".body"), tools = li.querySelector(".tools");
    var area = el("textarea", { class: "edit-input", rows: "3", "aria-label": "Edited message" });
    area.value = m.content;
    var save = el("button", { type: "button", class: "small save-edit", text: "Save and send" });
    var cancel = el("button", { type: "button", class: "secondary small", text: "Cancel",
      onclick: function () { renderMessages(); } });
    body.textContent = "";
    body.appendChild(area);
    tools.textContent = "";
    tools.appendChild(save);
    tools.appendChild(cancel);
    area.focus();
    save.addEventListener("click", function () {
      var text = area.value;
      if (!text.trim()) return;
      // The new branch: what follows this message is not on it.
      while (li.nextSibling) li.parentNode.removeChild(li.nextSibling);
      li.parentNode.removeChild(li);
      streamCall("/chats/" + state.chat.id + "/messages/" + m.id + "/edit", { content: text }, text);
    });
    area.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); save.click(); }
      if (e.key === "Escape") { e.preventDefault(); renderMessages(); }
    });
  }

  /* ---- chat actions ---- */

  function newChat() {
    var body = state.mode === "none" ? { user_id: state.userId } : {};
    api("POST", "/chats", body).then(function (chat) {
      state.archived = false;
      tabs();
      return loadChats().then(function () { return openChat(chat.id); });
    }).catch(fail);
  }

  function patch(changes) {
    return api("PATCH", "/chats/" + state.chat.id, changes).then(function (chat) {
      state.chat = chat;
      renderHead();
      return loadChats();
    }).catch(fail);
  }

  function startRename() {
    $("rename-input").value = state.chat.title || "";
    $("rename-form").hidden = false;
    $("chat-title").hidden = true;
    $("rename-input").focus();
    $("rename-input").select();
  }

  function rename(e) {
    e.preventDefault();
    var title = $("rename-input").value.trim();
    if (!title) return;
    patch({ title: title }).then(function () { $("chat-title").focus(); });
  }

  function removeChat() {
    var b = $("delete");
    if (b.textContent !== "Confirm delete") {
      b.textContent = "Confirm delete";
      status("Press Delete again to delete this chat and its messages.");
      return;
    }
    api("DELETE", "/chats/" + state.chat.id).then(function () {
      state.chat = null;
      state.messages = [];
      renderHead();
      renderMessages();
      $("composer").hidden = true;
      setLayoutOpen(false);
      status("Chat deleted.");
      return loadChats();
    }).catch(fail);
  }

  /* A download made in the page (the token is a header, not a cookie): a blob, saved under its name. */
  function exportChat(format) {
    fetch(withUser("/chats/" + state.chat.id + "/export?format=" + format), { headers: headers() }).then(function (resp) {
      if (!resp.ok) return resp.json().then(function (d) { throw new Error(detail(d, resp.status)); });
      var name = /filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "");
      return resp.blob().then(function (blob) {
        var url = URL.createObjectURL(blob), old = $("last-export");
        if (old) old.remove();
        var a = el("a", { href: url, download: name ? name[1] : "chat." + (format === "markdown" ? "md" : "json") });
        a.id = "last-export";
        a.dataset.size = String(blob.size);
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(url); a.remove(); }, 60000);
        status("Exported " + a.download + " (" + blob.size + " bytes).");
      });
    }).catch(fail);
  }

  function tabs() {
    $("show-active").setAttribute("aria-selected", String(!state.archived));
    $("show-archived").setAttribute("aria-selected", String(state.archived));
  }

  /* ---- start ---- */

  function start() {
    $("login").hidden = true;
    $("main").hidden = false;
    $("logout").hidden = state.mode === "remote-user";
    var who = state.mode === "none" ? "User " + state.userId : "";
    $("who").textContent = who;
    var me = state.mode !== "none" ? api("GET", "/auth/me").then(function (u) {
      $("who").textContent = u.email || u.id;
    }).catch(function () {}) : Promise.resolve();
    return Promise.all([me, api("GET", "/models").then(function (m) {
      state.models = m.models;
      state.defaultModel = m.default;
    }), loadChats()]).then(function () {
      renderHead();
      if (window.innerWidth > 700) $("new-chat").focus();
    }).catch(fail);
  }

  function wire() {
    $("login-form").addEventListener("submit", function (e) { e.preventDefault(); login(false); });
    $("signup-button").addEventListener("click", function () { login(true); });
    $("logout").addEventListener("click", logout);
    $("new-chat").addEventListener("click", newChat);
    $("search").addEventListener("input", onSearch);
    $("show-active").addEventListener("click", function () { state.archived = false; tabs(); loadChats().catch(fail); });
    $("show-archived").addEventListener("click", function () { state.archived = true; tabs(); loadChats().catch(fail); });
    $("composer").addEventListener("submit", function (e) { e.preventDefault(); send(); });
    $("stop").addEventListener("click", stopStream);
    $("input").addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && state.streaming) { e.preventDefault(); stopStream(); }
      var t = e.target.tagName;
      if (e.key === "/" && t !== "INPUT" && t !== "TEXTAREA" && t !== "SELECT") { e.preventDefault(); $("search").focus(); }
    });
    $("rename").addEventListener("click", startRename);
    $("rename-form").addEventListener("submit", rename);
    $("rename-cancel").addEventListener("click", renderHead);
    $("pin").addEventListener("click", function () { patch({ pinned: !state.chat.pinned }); });
    $("archive").addEventListener("click", function () { patch({ archived: !state.chat.archived }); });
    $("delete").addEventListener("click", removeChat);
    $("delete").addEventListener("blur", function () { if (state.chat) $("delete").textContent = "Delete"; });
    $("model").addEventListener("change", function () { patch({ model: $("model").value || null }); });
    $("export-md").addEventListener("click", function () { exportChat("markdown"); });
    $("export-json").addEventListener("click", function () { exportChat("json"); });
    $("back").addEventListener("click", function () { setLayoutOpen(false); $("new-chat").focus(); });
  }

  function init() {
    wire();
    fetch("/auth/config", { headers: { "Accept": "application/json" } }).then(function (resp) {
      // A server without accounts' routes answers 404: it is mode none.
      if (resp.status === 404) return { mode: "none" };
      return resp.json();
    }).catch(function () { return { mode: "none" }; }).then(function (cfg) {
      state.mode = cfg.mode || "none";
      state.registration = cfg.registration || "closed";
      if (state.mode === "token") {
        state.token = localStorage.getItem("ac_token");
        if (state.token) return start();
      } else if (state.mode === "none") {
        state.userId = localStorage.getItem("ac_user");
        if (state.userId) return start();
      } else {
        return start();
      }
      showLogin("");
    });
  }

  document.addEventListener("DOMContentLoaded", init);
})();
