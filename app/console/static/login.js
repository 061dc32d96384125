/* The console's login page: ask every few seconds (data-poll) whether this page's QR code was
   scanned, say what happened, and enter the console once it was. Plain XMLHttpRequest: works in
   WeChat's browser and old ones; without JavaScript the page shows a link instead. */
(function () {
  "use strict";
  var box = document.getElementById("login-box");
  if (!box) { return; }
  var url = box.getAttribute("data-status");
  var every = Math.max(250, (parseFloat(box.getAttribute("data-poll")) || 1) * 1000);
  var message = document.getElementById("login-message");
  var refresh = document.getElementById("login-refresh");
  var qr = document.getElementById("login-qr");

  function show(text, tone) {
    message.textContent = text;
    message.className = "mt-3 fs-5" + (tone ? " text-" + tone : "");
  }

  function answered(xhr) {
    var answer = null;
    try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = null; }
    if (xhr.status !== 200 || !answer) {  // the server is away for a moment: ask again later
      setTimeout(ask, every * 3);
      return;
    }
    if (answer.state === "done") {
      show(answer.message, "success");
      window.location.replace(answer.next);
      return;
    }
    if (answer.state === "expired" || answer.state === "used") {
      show(answer.message, "danger");
      qr.style.opacity = "0.2";
      refresh.hidden = false;
      return;
    }
    show(answer.message, answer.state === "refused" ? "danger" : "");
    setTimeout(ask, every);
  }

  function ask() {
    var xhr = new XMLHttpRequest();
    xhr.open("GET", url, true);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.onreadystatechange = function () {
      if (xhr.readyState === 4) { answered(xhr); }
    };
    xhr.send();
  }

  setTimeout(ask, every);
})();
