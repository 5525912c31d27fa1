// Live updates (server-sent events), claims while viewing or typing, the length counter and
// canned replies. No build step, no library.
(function () {
  "use strict";
  const csrf = (document.querySelector("input[name=csrf]") || {}).value || "";
  const live = document.getElementById("live");
  const queue = document.getElementById("queue");
  const thread = document.getElementById("thread");
  const compose = document.getElementById("compose");
  const text = document.getElementById("reply-text");

  function post(url, fields) {
    return fetch(url, {
      method: "POST",
      headers: {"Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrf},
      body: new URLSearchParams(fields),
      credentials: "same-origin",
    });
  }

  // A panel the agent is working in (focus inside, or a draft edited) is not replaced under
  // their hands; it is refreshed once they leave it.
  function busy(box) {
    const edited = Array.from(box.querySelectorAll("textarea"))
      .some(function (area) { return area.value !== area.defaultValue; });
    return edited || box.contains(document.activeElement);
  }

  async function refresh(box) {
    if (!box) { return; }
    if (busy(box)) { box.dataset.stale = "1"; return; }
    const response = await fetch(box.dataset.src, {credentials: "same-origin"});
    if (response.ok && !busy(box)) { box.innerHTML = await response.text(); delete box.dataset.stale; }
  }

  [queue, thread].forEach(function (box) {
    if (box) {
      box.addEventListener("focusout", function () {
        setTimeout(function () { if (box.dataset.stale) { refresh(box); } }, 0);
      });
    }
  });

  const events = new EventSource("/events");
  events.addEventListener("changed", function (event) {
    live.textContent = "live · update " + JSON.parse(event.data).version;
    refresh(queue);
    refresh(thread);
  });
  events.onerror = function () { live.textContent = "reconnecting…"; };

  if (thread && thread.dataset.claim) {
    let activity = "viewing";
    const claim = async function () {
      const response = await post(thread.dataset.claim, {activity: activity});
      const holder = document.getElementById("holder");
      const answer = await response.json();
      if (holder && !answer.mine) {
        holder.textContent = answer.holder + " is working on this conversation.";
      }
    };
    claim();
    setInterval(claim, 20000);
    if (text) {
      text.addEventListener("input", function () {
        if (activity !== "typing") { activity = "typing"; claim(); }
      });
    }
  }

  if (compose && text) {
    const counter = document.getElementById("counter");
    let timer = 0;
    const count = function () {
      clearTimeout(timer);
      timer = setTimeout(async function () {
        const response = await post("/count", {
          network: compose.dataset.network, private: compose.dataset.private, text: text.value,
        });
        const answer = await response.json();
        counter.textContent = answer.count + " / " + answer.limit + " " + answer.unit;
        counter.classList.toggle("over", answer.count > answer.limit);
      }, 150);
    };
    text.addEventListener("input", count);
    const canned = document.getElementById("canned");
    canned.addEventListener("change", async function () {
      if (!canned.value) { return; }
      const query = new URLSearchParams({
        name: canned.value, network: compose.dataset.network,
        private: compose.dataset.private, customer: compose.dataset.customer,
      });
      const response = await fetch("/canned?" + query, {credentials: "same-origin"});
      if (response.ok) { text.value = await response.text(); text.focus(); count(); }
    });
  }
})();
